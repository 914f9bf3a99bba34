"""Crash safety of writes: SIGKILL the server in the middle of writes, start it
again on the same catalog (an SQLite file) and data directory, and check what
the stock client then sees.

* Every single request is all-or-nothing: an array (or one block of it) reads
  either as before the request (the fill value, zeros, for a never-written node)
  or as the complete new content, never a mix; metadata is one of the complete
  documents that were sent, never a blend.
* A write the server acknowledged survives the kill.
* The catalog has no rows without their data: every listed node reads without
  error, and the server takes new writes after the restart.

One persistent server (``serve catalog <tmp>/catalog.db``, see writable.py) is
shared by the module and killed and started again by each test; every test
works in its own container and the final checks walk the whole tree (so later
tests also re-check what earlier crashes left behind).
"""

import re
import threading
import time

import httpx
import numpy
import pytest
from tiled.structures.array import ArrayStructure, BuiltinDtype
from tiled.structures.core import StructureFamily
from tiled.structures.data_source import DataSource

import writable

JOIN_TIMEOUT = 120.0
FULL_READ_LIMIT = 2_000_000  # elements; bigger arrays are checked block by block


@pytest.fixture(scope="module")
def crash_server():
    with writable.writable_server(persistent=True) as server:
        yield server


@pytest.fixture
def srv(crash_server):
    return crash_server.ensure_running()


@pytest.fixture
def box_key(request):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)


def _new_array(parent, key, shape, chunks, dtype):
    structure = ArrayStructure(
        data_type=BuiltinDtype.from_numpy_dtype(numpy.dtype(dtype)), shape=shape, chunks=chunks
    )
    return parent.new(
        StructureFamily.array,
        [DataSource(structure=structure, structure_family=StructureFamily.array)],
        key=key,
    )


def _block_indices(chunks):
    import itertools

    return list(itertools.product(*[range(len(c)) for c in chunks]))


def check_everything_reads(client):
    """Walk the whole tree: every node's metadata and data must be readable."""
    count = 0

    def walk(node):
        nonlocal count
        for child in node.values():
            count += 1
            family = child.structure_family
            assert isinstance(dict(child.metadata), dict)
            if family == "container":
                walk(child)
            elif family == "array":
                if child.size <= FULL_READ_LIMIT:
                    assert child.read().shape == child.shape
                else:
                    blocks = _block_indices(child.chunks)
                    for block in {blocks[0], blocks[len(blocks) // 2], blocks[-1]}:
                        child.read_block(block)
            else:
                child.read()

    walk(client)
    return count


def restart(server):
    server.kill()
    server.start()
    return server.client()


# --------------------------------------------------------------------------
# one big PUT killed half way through the body, or while the server stores it
# --------------------------------------------------------------------------

SINGLE_N = 8_000_000  # float64: 64 MB in one chunk, one request


def _put_array(server, url_path, content, extra_headers=None):
    headers = {**server.auth_headers, "Content-Type": "application/octet-stream"}
    headers.update(extra_headers or {})
    return httpx.put(
        f"{server.url}{url_path}", content=content, headers=headers, timeout=JOIN_TIMEOUT
    )


@pytest.mark.parametrize("when", ["mid_body", "while_storing"])
def test_kill_during_one_big_array_put(srv, box_key, when):
    client = srv.client()
    box = client.create_container(box_key)
    _new_array(box, "big", (SINGLE_N,), ((SINGLE_N,),), "float64")
    data = numpy.arange(1, SINGLE_N + 1, dtype="float64")  # no zeros in it
    payload = data.tobytes()
    url_path = f"/api/v1/array/full/{box_key}/big"

    reached = threading.Event()
    release = threading.Event()
    outcome = {}
    body_sent = []

    def content(hang_at_half):
        # Streamed with a declared Content-Length; `reached` is set once half
        # (mid_body, which then hangs until the server is dead) or all of the
        # body has been handed to the socket.
        piece = 1 << 20
        for start in range(0, len(payload), piece):
            if hang_at_half and start >= len(payload) // 2:
                reached.set()
                release.wait(JOIN_TIMEOUT)
                hang_at_half = False
            yield payload[start : start + piece]
        body_sent.append(time.monotonic())
        reached.set()

    length = {"Content-Length": str(len(payload))}
    if when == "while_storing":
        # Time how long the server takes from the end of the body to its answer on
        # an uninterrupted PUT of the same size, then kill the real PUT half way
        # through that: after the body, while it is being stored.
        _new_array(box, "calibration", (SINGLE_N,), ((SINGLE_N,),), "float64")
        response = _put_array(
            srv, f"/api/v1/array/full/{box_key}/calibration", content(False), length
        )
        tail = time.monotonic() - body_sent[-1]
        assert response.status_code == 200, response.text
        reached.clear()

    def put():
        try:
            outcome["status"] = _put_array(
                srv, url_path, content(when == "mid_body"), length
            ).status_code
        except httpx.HTTPError as err:
            outcome["error"] = err

    thread = threading.Thread(target=put, daemon=True)
    thread.start()
    assert reached.wait(JOIN_TIMEOUT)
    if when == "while_storing":
        time.sleep(tail / 2)
    srv.kill()
    release.set()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()

    client = restart(srv)
    node = client[f"{box_key}/big"]
    assert node.shape == (SINGLE_N,)
    assert node.chunks == ((SINGLE_N,),)
    got = node.read()
    is_fill = not got.any()
    is_new = numpy.array_equal(got, data)
    print(
        f"{when}: outcome={outcome} fill={is_fill} new={is_new}"
        + (f" (killed {tail / 2:.3f} s after the body)" if when == "while_storing" else "")
    )
    assert is_fill or is_new, "the array holds a mix of old and new bytes"
    if when == "mid_body":
        assert is_fill, "half a request body was stored"
    if outcome.get("status") == 200:
        assert is_new, "an acknowledged write was lost"

    check_everything_reads(client)
    # The node takes a complete write after the restart.
    node.write(data)
    numpy.testing.assert_array_equal(client[f"{box_key}/big"].read(), data)


# --------------------------------------------------------------------------
# a chunked write_array (one PUT per block) killed after some blocks
# --------------------------------------------------------------------------

ROWS, COLS = 20, 1_250_000  # float64: 200 MB in 20 blocks of 10 MB


def test_kill_during_chunked_write_array(srv, box_key):
    dask_array = pytest.importorskip("dask.array")
    client = srv.client()
    box = client.create_container(box_key)
    data = numpy.arange(1, ROWS * COLS + 1, dtype="float64").reshape(ROWS, COLS)
    dx = dask_array.from_array(data, chunks=(1, COLS))

    acked = set()
    lock = threading.Lock()

    def hook(response):
        request = response.request
        if (
            request.method == "PUT"
            and "/array/block/" in request.url.path
            and response.status_code == 200
        ):
            block = int(request.url.params["block"].split(",")[0])
            with lock:
                acked.add(block)

    client.context.http_client.event_hooks["response"].append(hook)
    outcome = {}

    def write():
        try:
            box.write_array(dx, key="big")
            outcome["done"] = True
        except Exception as err:  # the server dies under it
            outcome["error"] = err

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    while time.monotonic() < deadline and "done" not in outcome and "error" not in outcome:
        with lock:
            if len(acked) >= 4:
                break
        time.sleep(0.005)
    srv.kill()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    with lock:
        acked_before_kill = set(acked)
    assert acked_before_kill, f"no block was acknowledged before the kill: {outcome}"

    client = restart(srv)
    node = client[f"{box_key}/big"]  # created (acknowledged) before any block
    assert node.shape == (ROWS, COLS)
    assert node.chunks == ((1,) * ROWS, (COLS,))
    complete = []
    for i in range(ROWS):
        block = node.read_block((i, 0))
        is_fill = not block.any()
        is_new = numpy.array_equal(block, data[i : i + 1])
        assert is_fill or is_new, f"block {i} holds a mix of old and new bytes"
        if i in acked_before_kill:
            assert is_new, f"block {i} was acknowledged but is lost"
        if is_new:
            complete.append(i)
    print(f"acked before kill: {sorted(acked_before_kill)}; complete after restart: {complete}")
    assert set(complete) >= acked_before_kill

    check_everything_reads(client)
    # Blocks can be written after the restart.
    missing = [i for i in range(ROWS) if i not in complete][:2]
    for i in missing:
        node.write_block(data[i : i + 1], block=(i, 0))
        numpy.testing.assert_array_equal(node.read_block((i, 0)), data[i : i + 1])


# --------------------------------------------------------------------------
# concurrent metadata updates killed mid-way
# --------------------------------------------------------------------------


def _doc(version):
    """A metadata document whose every part says which version it is."""
    return {
        "version": version,
        "payload": [version] * 2000,
        "text": f"{version}:" + "x" * 20000,
        "nested": {"v": version, "list": list(range(version % 40)), "s": str(version) * 50},
    }


def _is_complete_doc(md):
    return isinstance(md.get("version"), int) and md == _doc(md["version"])


def test_kill_during_concurrent_metadata_updates(srv, box_key):
    client = srv.client()
    box = client.create_container(box_key)
    box.create_container("m", metadata=_doc(0))
    threads_n = 4
    acked = []
    attempted = {0}
    lock = threading.Lock()
    stop = threading.Event()

    def updater(t):
        own = srv.client()
        node = own[f"{box_key}/m"]
        k = 0
        while not stop.is_set():
            version = 1 + t + threads_n * k
            k += 1
            with lock:
                attempted.add(version)
            try:
                if version % 2:
                    node.replace_metadata(_doc(version))
                else:
                    node.patch_metadata(_doc(version), content_type="application/merge-patch+json")
            except Exception:
                return  # the server is gone
            with lock:
                acked.append(version)

    threads = [threading.Thread(target=updater, args=(t,), daemon=True) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= 20:
                break
        time.sleep(0.005)
    srv.kill()
    stop.set()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()
    with lock:
        acked_before_kill = list(acked)
    assert len(acked_before_kill) >= 20

    client = restart(srv)
    node = client[f"{box_key}/m"]
    md = dict(node.metadata)
    assert _is_complete_doc(md), "the metadata is a blend of several updates"
    assert md["version"] in attempted
    assert md["version"] != 0, "acknowledged updates were lost"

    revisions = node.metadata_revisions
    print(
        f"acked {len(acked_before_kill)} of {len(attempted) - 1} updates; "
        f"final version {md['version']}; {len(revisions)} revisions"
    )
    assert len(revisions) >= len(acked_before_kill), "acknowledged revisions were lost"
    for revision in revisions[:]:
        assert _is_complete_doc(revision["attributes"]["metadata"])

    check_everything_reads(client)
    node.replace_metadata(_doc(10_000))
    assert dict(client[f"{box_key}/m"].metadata) == _doc(10_000)


# --------------------------------------------------------------------------
# many concurrent creates (containers and small arrays) killed mid-way
# --------------------------------------------------------------------------


def _small(i):
    return numpy.arange(i, i + 5000, dtype="int64") + 1


def test_kill_during_concurrent_creates(srv, box_key):
    client = srv.client()
    client.create_container(box_key)
    threads_n = 4
    acked = []
    lock = threading.Lock()
    stop = threading.Event()

    def creator(t):
        own = srv.client()
        box = own[box_key]
        k = 0
        while not stop.is_set():
            i = t + threads_n * k
            k += 1
            try:
                if i % 2:
                    box.create_container(f"c{i}", metadata=_doc(i))
                else:
                    box.write_array(_small(i), key=f"a{i}", metadata=_doc(i))
            except Exception:
                return
            with lock:
                acked.append(i)

    threads = [threading.Thread(target=creator, args=(t,), daemon=True) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= 30:
                break
        time.sleep(0.005)
    srv.kill()
    stop.set()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()
    with lock:
        acked_before_kill = list(acked)

    client = restart(srv)
    box = client[box_key]
    keys = list(box)
    print(f"acked {len(acked_before_kill)} creates; {len(keys)} nodes after restart")
    assert len(keys) == len(set(keys))
    for i in acked_before_kill:
        assert (f"c{i}" if i % 2 else f"a{i}") in keys, f"acknowledged create {i} was lost"
    for key, child in box.items():
        i = int(key[1:])
        assert dict(child.metadata) == _doc(i), f"{key}: metadata incomplete"
        if key.startswith("c"):
            assert child.structure_family == "container"
            assert len(child) == 0
        else:
            assert child.structure_family == "array"
            assert child.shape == (5000,)
            got = child.read()
            is_fill = not got.any()
            is_new = numpy.array_equal(got, _small(i))
            assert is_fill or is_new, f"{key}: a mix of old and new bytes"
            if i in acked_before_kill:
                assert is_new, f"{key}: acknowledged data was lost"

    assert check_everything_reads(client) >= len(keys)
    box.write_array(_small(99_999), key="after_restart")
    numpy.testing.assert_array_equal(client[f"{box_key}/after_restart"].read(), _small(99_999))
