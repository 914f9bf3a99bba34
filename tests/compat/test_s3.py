"""Writable storage in an S3-compatible bucket (a real S3 server on loopback: moto's).

A config file's `writable_storage` names the bucket as Tiled's does (`provider: s3`, `uri`,
`config`). Written arrays, tables, sparse and awkward arrays go to the bucket and nowhere
else; they read back the same, also through a second API node and the workers of a cluster;
superseded and deleted data leave the bucket; what a crash leaves behind is swept at start-up
without touching what the catalog points at or what lies outside the storage's prefix.
"""

import os
import shutil
import subprocess
import sys
import time
import uuid

import httpx
import numpy
import pandas
import pytest
from tiled.client import from_uri

import cluster
import test_config_file as configs

pytestmark = pytest.mark.skipif(
    os.environ.get("TESTED_SERVER", "").lower() == "tiled", reason="tessera's storage"
)
BIN = os.environ.get("TESSERA_BIN", "")
SECRET = "not-a-real-secret"


class S3:
    """A moto S3 server of this test module, with one bucket."""

    def __init__(self, port):
        import boto3

        self.endpoint = f"http://127.0.0.1:{port}"
        self.bucket = f"tessera-{uuid.uuid4().hex[:8]}"
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )
        self.client.create_bucket(Bucket=self.bucket)

    def keys(self, prefix=""):
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def put(self, key, body=b"x"):
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def storage(self, prefix):
        """The `writable_storage` item of a config, the secret through the environment."""
        return f"""\
    - provider: s3
      uri: "{self.endpoint}/{self.bucket}/{prefix}"
      config:
        access_key_id: testing
        secret_access_key: "${{S3_TEST_SECRET}}"
        region: us-east-1
        client_options: {{allow_http: true}}
"""


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    moto = shutil.which("moto_server", path=os.path.dirname(sys.executable))
    if moto is None:
        pytest.fail("moto_server is not installed (tests/compat/requirements.txt has it)")
    port = cluster.free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        cluster.wait_for("moto", lambda: cluster.port_open(port), proc=process, log=str(log))
        yield S3(port)
    finally:
        process.terminate()
        process.wait(timeout=15)


def config_text(s3, prefix, database, port, key, extra=""):
    return f"""\
catalog:
  uri: "{database}"
  init_if_not_exists: true
  writable_storage:
{s3.storage(prefix)}
authentication:
  single_user_api_key: "{key}"
uvicorn:
  host: 127.0.0.1
  port: {port}
tessera:
  request_timeout: 3
{extra}"""


def serve(tmp, s3, prefix, key):
    port = configs._free_port()
    text = config_text(s3, prefix, f"sqlite:///{tmp}/catalog.db", port, key)
    path = configs._write(tmp, text)
    return configs._serve(path, port, {"S3_TEST_SECRET": SECRET})


def eventually(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.2)


def test_written_data_lives_in_the_bucket_and_reads_back(s3, tmp_path):
    import awkward
    import sparse

    prefix = f"embedded-{uuid.uuid4().hex[:6]}"
    key = uuid.uuid4().hex
    tmp = str(tmp_path)
    served = serve(tmp, s3, prefix, key)
    try:
        c = from_uri(served.url, api_key=key)
        arr = numpy.arange(30_000, dtype="float32").reshape(100, 300)
        a = c.write_array(arr, key="arr", metadata={"unit": "counts"})
        table = pandas.DataFrame({"t": numpy.arange(500) * 0.5, "name": ["x"] * 500})
        c.write_table(table, key="table")
        coo = sparse.COO(coords=numpy.array([[0, 3, 7], [1, 2, 9]]), data=[1.0, 2.0, 3.0],
                         shape=(10, 10))
        c.write_sparse(coords=coo.coords, data=coo.data, shape=coo.shape, key="sp")
        ragged = awkward.Array([[1, 2, 3], [], [4, 5]])
        c.write_awkward(ragged, key="ak")

        # Everything went to the bucket under the storage's prefix, nothing to disk.
        keys = s3.keys(prefix + "/")
        assert any(k.endswith("zarr.json") for k in keys), keys
        assert any(k.endswith(".parquet") for k in keys), keys
        assert any(k.endswith("buffers.zip") for k in keys), keys
        on_disk = [f for f in os.listdir(tmp) if not f.startswith(("catalog.db", "config.yml"))]
        assert on_disk == []

        # A second client reads it back from the bucket.
        r = from_uri(served.url, api_key=key)
        numpy.testing.assert_array_equal(r["arr"].read(), arr)
        numpy.testing.assert_array_equal(r["arr"][10:20, ::7], arr[10:20, ::7])
        got = r["table"].read()
        pandas.testing.assert_frame_equal(got[["t"]], table[["t"]])
        assert got["name"].tolist() == table["name"].tolist()
        assert (r["sp"].read() == coo).all()
        assert r["ak"].read().tolist() == ragged.tolist()

        # A rewrite goes to a new location; the old one leaves the bucket.
        before = {k.split("/")[2] for k in s3.keys(prefix + "/") if k.endswith("zarr.json")}
        a.write(arr * 2)
        numpy.testing.assert_array_equal(r["arr"].read(), arr * 2)
        eventually(lambda: {k.split("/")[2] for k in s3.keys(prefix + "/")
                            if k.endswith("zarr.json")} not in (before, set()))
        eventually(lambda: not before & {k.split("/")[2] for k in s3.keys(prefix + "/")})

        # A deleted node's data leaves the bucket; the others' stays.
        objects = len(s3.keys(prefix + "/"))
        r["table"].delete(external_only=False)
        eventually(lambda: len(s3.keys(prefix + "/")) < objects)
        assert (r["sp"].read() == coo).all()
    finally:
        configs._stop(served)

    # A crash's leftovers: a location no row points at (the sweep's), and an object outside
    # the storage's prefix (not the storage's business).
    s3.put(f"{prefix}/ff/orphan.zarr/zarr.json", b"{}")
    s3.put(f"{prefix}-other/keep.txt")
    kept = set(s3.keys(prefix + "/")) - {f"{prefix}/ff/orphan.zarr/zarr.json"}
    served = serve(tmp, s3, prefix, key)
    try:
        assert set(s3.keys(prefix + "/")) == kept
        assert s3.keys(f"{prefix}-other/") == [f"{prefix}-other/keep.txt"]
        numpy.testing.assert_array_equal(from_uri(served.url, api_key=key)["arr"].read(), arr * 2)
    finally:
        configs._stop(served)


def test_a_wrong_bucket_stops_the_server_with_its_reason(s3, tmp_path):
    tmp = str(tmp_path)
    port = configs._free_port()
    unknown = config_text(s3, "p", f"sqlite:///{tmp}/catalog.db", port, "k").replace(
        "region: us-east-1", "regoin: us-east-1"
    )
    out = subprocess.run(
        [BIN, "serve", "config", configs._write(tmp, unknown)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "S3_TEST_SECRET": SECRET},
    )
    assert out.returncode != 0
    assert "writable_storage[0]" in out.stderr and "regoin" in out.stderr, out.stderr

    missing = config_text(s3, "p", f"sqlite:///{tmp}/catalog.db", port, "k").replace(
        s3.bucket, "no-such-bucket"
    )
    out = subprocess.run(
        [BIN, "serve", "config", configs._write(tmp, missing)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "S3_TEST_SECRET": SECRET},
    )
    assert out.returncode != 0
    assert "cannot be listed" in out.stderr and "no-such-bucket" in out.stderr, out.stderr
    assert SECRET not in out.stderr

    # check-config shows the bucket, never its secret.
    good = config_text(s3, "p", f"sqlite:///{tmp}/catalog.db", port, "k")
    out = subprocess.run(
        [BIN, "check-config", configs._write(tmp, good)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "S3_TEST_SECRET": SECRET},
    )
    assert out.returncode == 0, out.stderr
    assert s3.bucket in out.stdout and "***" in out.stdout
    assert SECRET not in out.stdout


# --------------------------------------------------------------------------
# A cluster on a bucket: what one node writes, the other node's workers read from S3.

def test_a_cluster_on_a_bucket_reads_through_its_workers(s3):
    schema = f"tessera_s3_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    cluster.psql(f"CREATE SCHEMA {schema}")
    database = f"postgresql://{cluster.pg_user()}@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    prefix = f"cluster-{uuid.uuid4().hex[:6]}"
    key = uuid.uuid4().hex

    def config(c):
        extra = (f"  redis_url: \"{c.redis_url}\"\n  nats_url: \"{c.nats_url}\"\n"
                 f"  key_prefix: \"{c.prefix}\"\n")
        return config_text(s3, prefix, database, 0, key, extra)

    try:
        with cluster.Cluster(BIN, nodes=2, workers=2, config=config,
                             env={"S3_TEST_SECRET": SECRET}) as c:
            a, b = (from_uri(n.url, api_key=key) for n in c.nodes)
            arr = numpy.random.default_rng(7).random((512, 384))
            a.write_array(arr, key="det", metadata={"unit": "counts"})
            table = pandas.DataFrame({"t": numpy.arange(100) * 0.25, "i": numpy.arange(100)})
            a.write_table(table, key="log")
            assert any(k.endswith("zarr.json") for k in s3.keys(prefix + "/"))

            decodes = c.decodes()
            numpy.testing.assert_array_equal(b["det"].read(), arr)
            numpy.testing.assert_array_equal(b["det"][100:200, ::5], arr[100:200, ::5])
            pandas.testing.assert_frame_equal(b["log"].read(), table)
            # The blocks were decoded by workers, which read them from the bucket.
            worker_decodes = sum(
                cluster.metric(cluster.metrics(w.metrics_url), "tessera_chunk_decodes_total")
                for w in c.workers
            )
            assert worker_decodes > 0 and c.decodes() > decodes
            for n in c.nodes:
                assert httpx.get(f"{n.url}/healthz", timeout=5).status_code == 200
    finally:
        cluster.psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
