"""SIGKILL at a chosen step of a write, on SQLite and on PostgreSQL, then a look at the
catalog database and the storage directory themselves, not only through the API.

The server logs each step of a write (`storing` the data, `committing` it to the catalog,
`removing` what it replaced) at debug level; each test starts a write, waits for the step it
targets to appear in the log, kills the server at once, and afterwards asserts that the log
ends in that step for that request (so the test knows which phase it hit). After a restart:

* the node reads all-or-nothing: as before the write, never a mix;
* no dangling rows: every asset row is linked to a data source and its location exists;
* no orphaned data: every location in the storage directory is some asset's, and no
  staging file of an interrupted put is left (the server sweeps them at start-up).
"""

import os
import re
import sqlite3
import subprocess
import threading
import time
import uuid

import httpx
import numpy
import pandas
import pyarrow
import pytest
from tiled.structures.array import ArrayStructure, BuiltinDtype
from tiled.structures.core import StructureFamily
from tiled.structures.data_source import DataSource

import writable

ON_TILED = os.environ.get("TESTED_SERVER", "").lower() == "tiled"
pytestmark = pytest.mark.skipif(ON_TILED, reason="reads tessera's write log and catalog tables")

N = 12_500_000  # float64: 100 MB, stored as 100 chunks of 1 MB
CHUNK = 125_000
TIMEOUT = float(os.environ.get("CRASH_TIMEOUT", "120"))
# Write steps in the log; this node is the only writer, so what a crash left is swept at once
# (with PostgreSQL the default waits an hour, for other nodes' writes in flight).
SERVER_ENV = {"RUST_LOG": "info,tessera::write=debug", "TESSERA_ORPHAN_GRACE": "0"}


def pg_user():
    return os.environ.get("PGUSER") or os.environ.get("USER") or "postgres"


def psql(sql):
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", pg_user(), "-d", "test", "-AtX", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


@pytest.fixture(params=["sqlite", "postgresql"])
def srv(request):
    schema = None
    database = None
    if request.param == "postgresql":
        schema = f"tessera_crash_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        psql(f"CREATE SCHEMA {schema}")
        database = f"postgresql://{pg_user()}@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    try:
        with writable.writable_server(persistent=True, database=database, env=SERVER_ENV) as server:
            server.schema = schema
            yield server
    finally:
        if schema:
            psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def asset_rows(server):
    """(data_uri, linked to a data source) of every asset row, read from the database."""
    sql = (
        "SELECT a.data_uri, EXISTS (SELECT 1 FROM data_source_assets x WHERE x.asset_id = a.id) "
        "FROM assets a"
    )
    if server.schema:
        rows = psql(f"SET search_path TO {server.schema}; {sql}").splitlines()
        return [(line.rsplit("|", 1)[0], line.rsplit("|", 1)[1] == "t") for line in rows if "|" in line]
    with sqlite3.connect(server.database) as conn:
        return [(uri, bool(linked)) for uri, linked in conn.execute(sql)]


def local_path(uri):
    return re.sub(r"^file://localhost", "", uri)


def check_catalog_and_storage(server):
    """No dangling rows, no orphaned data, no staging files."""
    rows = asset_rows(server)
    data_dir = os.path.realpath(server.data_dir)
    ours = {os.path.realpath(local_path(u)) for u, _ in rows if local_path(u).startswith(data_dir)}
    for uri, linked in rows:
        assert linked, f"asset row {uri} belongs to no data source"
        if local_path(uri).startswith(data_dir):
            assert os.path.exists(local_path(uri)), f"asset row {uri} points at nothing"
    on_disk = set()
    for shard in os.listdir(data_dir):
        for name in os.listdir(os.path.join(data_dir, shard)):
            on_disk.add(os.path.realpath(os.path.join(data_dir, shard, name)))
    orphans = on_disk - ours
    assert not orphans, f"data no catalog row points at: {sorted(orphans)}"
    staging = [
        os.path.join(d, f) for d, _, files in os.walk(data_dir) for f in files if "#" in f
    ]
    assert not staging, f"staging files of interrupted puts: {staging}"


def phases(server):
    """(request_id, node, phase) of every write step in the current log."""
    with open(server.stdout_path, errors="replace") as f:
        text = f.read()
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # colours, if any
    pattern = r'request_id=(\w+) node=(\S+) phase="?(\w+)"?'
    return re.findall(pattern, text)


def kill_at(server, node, phase, start_write, after=0.0):
    """Starts `start_write` in a thread, kills the server `after` seconds once the log shows
    `node` at `phase`, and answers the step the request was in when it died."""
    outcome = {}

    def run():
        try:
            outcome["status"] = start_write()
        except Exception as err:  # the server dies under it
            outcome["error"] = err

    earlier = len(phases(server))  # steps of writes before this one
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    request = None
    while time.monotonic() < deadline and request is None:
        steps = phases(server)[earlier:]
        request = next((r for r, n, p in steps if n == node and p == phase), None)
        time.sleep(0.002)
    time.sleep(after)
    server.kill()
    thread.join(TIMEOUT)
    assert request is not None, f"the write never reached {phase}: {outcome}"
    last = [p for r, _, p in phases(server) if r == request][-1]
    return last, outcome


def swept(server):
    """How many data locations the server's last start removed."""
    with open(server.stdout_path, errors="replace") as f:
        m = re.search(r"removed (\d+) data locations", f.read())
    return int(m.group(1)) if m else 0


# Storing 100 MB takes about half a second here: a kill this long after it starts finds
# part of the data written.
MID_STORING = 0.1


def new_array(client, key):
    structure = ArrayStructure(
        data_type=BuiltinDtype.from_numpy_dtype(numpy.dtype("float64")), shape=(N,), chunks=((CHUNK,) * (N // CHUNK),)
    )
    return client.new(
        StructureFamily.array,
        [DataSource(structure=structure, structure_family=StructureFamily.array)],
        key=key,
    )


def put_array(server, key, data):
    headers = {**server.auth_headers, "Content-Type": "application/octet-stream"}
    return httpx.put(
        f"{server.url}/api/v1/array/full/{key}", content=data.tobytes(), headers=headers, timeout=TIMEOUT
    ).status_code


def test_kill_while_storing_a_new_array(srv):
    new_array(srv.client(), "a")
    data = numpy.arange(1, N + 1, dtype="float64")
    step, outcome = kill_at(srv, "a", "storing", lambda: put_array(srv, "a", data), MID_STORING)
    assert step == "storing", f"the kill came at {step}, not while storing ({outcome})"
    srv.start()
    assert swept(srv) == 1, "the half-written location was not swept"
    check_catalog_and_storage(srv)
    got = srv.client()["a"].read()
    assert not got.any(), "a write killed while storing left data behind"


def test_kill_while_overwriting_an_array(srv):
    new_array(srv.client(), "a")
    old = numpy.arange(1, N + 1, dtype="float64")
    assert put_array(srv, "a", old) == 200
    new = -old
    step, outcome = kill_at(srv, "a", "storing", lambda: put_array(srv, "a", new), MID_STORING)
    assert step == "storing", f"the kill came at {step}, not while storing ({outcome})"
    srv.start()
    # Swept: the half-written location, and the one `old` replaced if its removal (deferred
    # for readers still on it) had not run yet; nothing else stays (checked below).
    assert swept(srv) in (1, 2), "the half-written location was not swept"
    check_catalog_and_storage(srv)
    numpy.testing.assert_array_equal(srv.client()["a"].read(), old)


def test_kill_while_appending_to_a_table(srv):
    client = srv.client()
    first = pandas.DataFrame({"x": numpy.arange(10, dtype="int64"), "y": numpy.arange(10) * 0.5})
    table = client.create_appendable_table(pyarrow.Schema.from_pandas(first), key="t")
    table.append_partition(0, first)
    rows = 4_000_000
    more = pandas.DataFrame({"x": numpy.arange(rows, dtype="int64"), "y": numpy.arange(rows) * 0.5})

    def append():
        table.append_partition(0, more)
        return 200

    step, outcome = kill_at(srv, "t", "storing", append)
    assert step == "storing", f"the kill came at {step}, not while storing ({outcome})"
    srv.start()
    check_catalog_and_storage(srv)
    got = srv.client()["t"].read()
    pandas.testing.assert_frame_equal(got.reset_index(drop=True), first, check_dtype=False)


def test_kill_while_removing_deleted_data(srv):
    new_array(srv.client(), "a")
    assert put_array(srv, "a", numpy.arange(1, N + 1, dtype="float64")) == 200

    def delete():
        return httpx.delete(
            f"{srv.url}/api/v1/metadata/a?external_only=false", headers=srv.auth_headers, timeout=TIMEOUT
        ).status_code

    step, outcome = kill_at(srv, "a", "removing", delete)
    assert step == "removing", f"the kill came at {step} ({outcome})"
    srv.start()
    check_catalog_and_storage(srv)
    assert "a" not in srv.client()
