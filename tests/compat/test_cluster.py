"""The cluster shape: two API nodes and two workers on a private Redis and NATS, read through
the real Tiled client, against the embedded server of the session (``client``)."""

import concurrent.futures
import os
import subprocess
import sys
import threading
import time
import uuid

import httpx
import numpy
import pandas
import pytest
from tiled.client import from_uri

import cluster

ON_TILED = os.environ.get("TESTED_SERVER", "").lower() == "tiled"
pytestmark = pytest.mark.skipif(ON_TILED, reason="tessera's cluster shape")
BIN = os.environ.get("TESSERA_BIN", "")


@pytest.fixture(scope="module")
def demo_cluster():
    """Both cache tiers on (the default)."""
    with cluster.Cluster(BIN, nodes=2, workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def uncached_cluster():
    """No L1, no L2: every chunk read is a job for a worker."""
    with cluster.Cluster(BIN, nodes=2, workers=2, node_args=("--cache-bytes", "0", "--no-l2-cache")) as c:
        yield c


@pytest.fixture(scope="module")
def l2_only_cluster():
    """No L1: every read looks in Redis (what a hot set larger than a node's memory gives)."""
    with cluster.Cluster(BIN, nodes=2, workers=1, node_args=("--cache-bytes", "0")) as c:
        yield c


def block_url(node, block, path="nested/images/medium_image"):
    return f"{node.url}/api/v1/array/block/{path}?block={block}"


def test_a_cold_chunk_asked_on_both_nodes_at_once_is_decoded_once(demo_cluster):
    a, b = demo_cluster.nodes
    block = "3,9"
    before = demo_cluster.decodes()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        urls = [block_url(a if i % 2 else b, block) for i in range(8)]
        bodies = list(pool.map(lambda u: httpx.get(u, timeout=60), urls))
    assert {r.status_code for r in bodies} == {200}
    assert len({r.content for r in bodies}) == 1
    assert demo_cluster.decodes() - before == 1

    # A chunk one node decoded is served by the other from the shared store.
    before = demo_cluster.decodes()
    hits_b = demo_cluster.node_metric(b, "tessera_chunk_cache_hits_total", tier="l2")
    first = httpx.get(block_url(a, "2,8"), timeout=60)
    second = httpx.get(block_url(b, "2,8"), timeout=60)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert demo_cluster.decodes() - before == 1
    assert demo_cluster.node_metric(b, "tessera_chunk_cache_hits_total", tier="l2") == hits_b + 1


def walk(node, path=()):
    """(path, client node) of every array and table under `node`."""
    for key, child in node.items():
        family = child.structure_family
        if family == "container":
            yield from walk(child, (*path, key))
        elif family in ("array", "table"):
            yield ("/".join((*path, key)), child)


def read(node):
    if node.structure_family == "table":
        return node.read()
    # big_image and the hypercube: a window, not the whole array.
    shape = node.structure().shape
    if shape and numpy.prod(shape) > 4_000_000:
        lead = (0,) * (len(shape) - 2)
        return node[(*lead, slice(0, 300), slice(0, 300))]
    return node.read()


def same(a, b):
    if hasattr(a, "equals"):
        return a.equals(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    nan_able = a.dtype.kind in "fc"
    return numpy.array_equal(a, b, equal_nan=nan_able)


def test_an_export_encoded_on_one_node_is_served_by_the_other(demo_cluster):
    a, b = demo_cluster.nodes
    path = "/api/v1/array/full/nested/images/medium_image?slice=500:700,0:400&format=png"
    hits_b = demo_cluster.node_metric(b, "tessera_encoded_cache_hits_total", tier="l2")
    first = httpx.get(a.url + path, timeout=60)
    decodes = demo_cluster.decodes()
    second = httpx.get(b.url + path, timeout=60)
    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"] == "image/png"
    assert first.content == second.content
    assert demo_cluster.node_metric(b, "tessera_encoded_cache_hits_total", tier="l2") == hits_b + 1
    assert demo_cluster.decodes() == decodes


def worker_metric(c, name, **labels):
    return sum(cluster.metric(cluster.metrics(w.metrics_url), name, **labels) for w in c.workers)


def test_images_are_encoded_by_workers_as_the_embedded_node_encodes_them(
    demo_cluster, server_url
):
    """PNG and TIFF of a selection are one job for a worker (decode, assemble, encode): the
    bytes equal the embedded node's, the nodes encode nothing, and concurrent requests on
    both nodes cost one encode."""
    a, b = demo_cluster.nodes
    for fmt, media in [("png", "image/png"), ("tiff", "image/tiff")]:
        path = f"/api/v1/array/full/nested/images/medium_image?slice=100:420:3,37:900&format={fmt}"
        embedded = httpx.get(server_url + path, timeout=60)
        assert embedded.status_code == 200, embedded.text
        encodes = worker_metric(demo_cluster, "tessera_encodes_total", media=media)
        node_decodes = sum(demo_cluster.node_metric(n, "tessera_chunk_decodes_total")
                           for n in demo_cluster.nodes)
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            got = list(pool.map(lambda n: httpx.get(n.url + path, timeout=60), [a, b] * 3))
        for r in got:
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == media
            assert r.content == embedded.content
        assert worker_metric(demo_cluster, "tessera_encodes_total", media=media) == encodes + 1
        assert sum(demo_cluster.node_metric(n, "tessera_chunk_decodes_total")
                   for n in demo_cluster.nodes) == node_decodes


def test_sparse_awkward_ragged_and_column_reads_are_worker_jobs(demo_cluster, client):
    """Sparse blocks, awkward buffers, ragged arrays and a table's columns are decoded by
    workers (and cached like chunks): the bytes equal the embedded node's."""
    kinds = ["sparse", "awkward", "ragged", "columns"]
    done = lambda k: worker_metric(demo_cluster, "tessera_worker_jobs_total", kind=k, outcome="done")
    before = {k: done(k) for k in kinds}
    want_sparse = client["nested/sparse_image"]
    want_table = client["tables/long_table"].read(["A", "C"])
    for n in demo_cluster.nodes:
        c = from_uri(n.url)
        got = c["nested/sparse_image"]
        numpy.testing.assert_array_equal(got.read().todense(), want_sparse.read().todense())
        numpy.testing.assert_array_equal(got[10:30, 50:].todense(),
                                         want_sparse[10:30, 50:].todense())
        assert (c["nested/awkward_array"].read().tolist()
                == client["nested/awkward_array"].read().tolist())
        assert (c["nested/ragged_array"].read().tolist()
                == client["nested/ragged_array"].read().tolist())
        pandas.testing.assert_frame_equal(c["tables/long_table"].read(["A", "C"]), want_table)
    for k in kinds:
        assert done(k) > before[k], k


def test_table_exports_are_encoded_by_workers(demo_cluster, server_url):
    """Parquet, XLSX and HDF5 exports of a table are one job for a worker (read the
    partitions, encode): what comes back reads as the embedded node's export."""
    import io

    import h5py

    parquet = "application/x-parquet"
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    h5 = "application/x-hdf5"
    for fmt, media, query in [("parquet", parquet, ""), ("xlsx", xlsx, "&field=A&field=C"),
                              ("h5", h5, "")]:
        path = f"/api/v1/table/full/tables/long_table?format={media}{query}"
        want = httpx.get(server_url + path, timeout=60)
        assert want.status_code == 200, want.text
        encodes = worker_metric(demo_cluster, "tessera_encodes_total", media=media)
        got = [httpx.get(n.url + path, timeout=60) for n in demo_cluster.nodes]
        for r in got:
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith(media)
            if fmt == "parquet":
                assert r.content == want.content
            elif fmt == "xlsx":
                pandas.testing.assert_frame_equal(pandas.read_excel(io.BytesIO(r.content)),
                                                  pandas.read_excel(io.BytesIO(want.content)))
            else:
                with h5py.File(io.BytesIO(r.content)) as a, h5py.File(io.BytesIO(want.content)) as b:
                    assert sorted(a) == sorted(b)
                    for k in a:
                        numpy.testing.assert_array_equal(a[k][()], b[k][()])
        # One encode for both nodes: the second is served from the shared store.
        assert worker_metric(demo_cluster, "tessera_encodes_total", media=media) == encodes + 1


def test_every_demo_array_and_table_reads_the_same_on_both_nodes(demo_cluster, client):
    nodes = [from_uri(n.url) for n in demo_cluster.nodes]
    paths = [p for p, _ in walk(client) if not p.startswith("dynamic")]
    assert len(paths) > 20
    for path in paths:
        want = read(client[path])
        for n in nodes:
            got = read(n[path])
            assert same(want, got), path
    # The workers decoded (not only the API nodes).
    worker_decodes = sum(
        cluster.metric(cluster.metrics(w.metrics_url), "tessera_chunk_decodes_total")
        for w in demo_cluster.workers
    )
    assert worker_decodes > 0


@pytest.fixture(scope="module")
def file_fixtures(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixtures") / "files"
    here = os.path.dirname(os.path.abspath(__file__))
    make = os.path.join(here, "..", "fixtures", "make_files.py")
    subprocess.run([sys.executable, make, str(out)], check=True)
    return str(out)


def outcome(read_it):
    """("ok", value) or ("error", HTTP status) of a read."""
    try:
        return "ok", read_it()
    except Exception as e:  # the client raises its own error types around httpx's
        response = getattr(e, "response", None)
        return "error", getattr(response, "status_code", type(e).__name__)


def test_every_file_fixture_reads_the_same_on_both_nodes_as_embedded(file_fixtures):
    """`serve directory` of the file fixtures (HDF5, Zarr, Parquet, CSV, TIFF, NetCDF, Excel,
    broken files) as a 2+2 cluster: both nodes give what one embedded node gives, values and
    errors alike."""
    from test_files import TOP, directory_server

    def indexed(url):
        r = httpx.get(f"{url}/api/v1/search/", params={"page[limit]": 300, "fields": ""})
        return r.status_code == 200 and TOP <= {d["id"] for d in r.json()["data"]}

    embedded_cmd = lambda port: [BIN, "serve", "directory", file_fixtures, "--public",
                                 "--port", str(port)]
    with directory_server(embedded_cmd, file_fixtures, TOP) as (url, _), cluster.Cluster(
        BIN, serve=("directory", file_fixtures, "--public")
    ) as c:
        for n in c.nodes:
            cluster.wait_for(f"{n.name} indexing", lambda: indexed(n.url), timeout=90)
        embedded = from_uri(url)
        paths = sorted(p for p, _ in walk(embedded))
        assert len(paths) > 30
        nodes = [from_uri(n.url) for n in c.nodes]
        read_ok = 0
        for path in paths:
            kind, want = outcome(lambda: read(embedded[path]))
            read_ok += kind == "ok"
            for n in nodes:
                got_kind, got = outcome(lambda: read(n[path]))
                assert got_kind == kind, (path, want, got)
                assert same(want, got) if kind == "ok" else got == want, path
        # Most read (the broken files are the errors), and the workers decoded them.
        assert read_ok > 30 and read_ok > len(paths) * 0.8, (read_ok, len(paths))
        worker_decodes = sum(
            cluster.metric(cluster.metrics(w.metrics_url), "tessera_chunk_decodes_total")
            for w in c.workers
        )
        assert worker_decodes > 0


def hammer(nodes, seconds, during=None, at=1.0):
    """8 clients reading medium_image blocks round-robin over `nodes` for `seconds`;
    `during()` runs once, `at` seconds in. Returns (statuses, slowest answer in s)."""
    blocks = [f"{i},{j}" for i in range(4) for j in range(10)]
    stop = time.monotonic() + seconds
    results = []

    def client(k):
        with httpx.Client(timeout=120) as c:
            n = k
            while time.monotonic() < stop:
                node = nodes[n % len(nodes)]
                t = time.monotonic()
                r = c.get(block_url(node, blocks[n % len(blocks)]))
                results.append((r.status_code, time.monotonic() - t))
                n += 1

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, k) for k in range(8)]
        if during:
            time.sleep(at)
            during()
        for f in futures:
            f.result()
    return [s for s, _ in results], max(t for _, t in results)


def test_a_worker_killed_under_load_costs_no_request(uncached_cluster):
    c = uncached_cluster
    jobs_before = sum(c.node_metric(n, "tessera_jobs_sent_total", outcome="done") for n in c.nodes)
    statuses, slowest = hammer(c.nodes, 6, during=c.workers[0].kill)
    assert len(statuses) > 50
    assert [s for s in statuses if s != 200] == []
    # The jobs the dead worker held were sent again after the worker timeout (5 s).
    assert slowest < 15, slowest
    jobs = sum(c.node_metric(n, "tessera_jobs_sent_total", outcome="done") for n in c.nodes)
    assert jobs - jobs_before > 50
    # The other worker took over: nothing fell back to decoding on the nodes.
    fallbacks = sum(c.node_metric(n, "tessera_jobs_sent_total", outcome="inline_fallback") for n in c.nodes)
    assert fallbacks == 0
    c.start_worker(c.workers[0])


def test_without_nats_the_nodes_decode_themselves_then_go_back_to_workers(uncached_cluster):
    c = uncached_cluster
    statuses, slowest = hammer(c.nodes, 5, during=c.nats.kill)
    assert [s for s in statuses if s != 200] == []
    fallbacks = sum(c.node_metric(n, "tessera_jobs_sent_total", outcome="inline_fallback") for n in c.nodes)
    assert fallbacks > 0
    c.start_nats()
    # Nodes and workers reconnect on their own; jobs go to workers again.
    done = lambda: sum(c.node_metric(n, "tessera_jobs_sent_total", outcome="done") for n in c.nodes)
    before = done()
    deadline = time.monotonic() + 30
    while done() == before and time.monotonic() < deadline:
        httpx.get(block_url(c.nodes[0], "1,1"), timeout=30).raise_for_status()
        time.sleep(0.2)
    assert done() > before


def test_a_redis_restart_costs_no_request(l2_only_cluster):
    c = l2_only_cluster
    errors_before = sum(c.node_metric(n, "tessera_shared_store_errors_total") for n in c.nodes)

    def restart():
        c.redis.kill()
        time.sleep(0.5)
        c.start_redis()

    statuses, _ = hammer(c.nodes, 5, during=restart)
    assert [s for s in statuses if s != 200] == []
    errors = sum(c.node_metric(n, "tessera_shared_store_errors_total") for n in c.nodes)
    assert errors > errors_before
    # Served from the shared store again once it is back.
    hits = lambda: sum(c.node_metric(n, "tessera_chunk_cache_hits_total", tier="l2") for n in c.nodes)
    before = hits()
    for block in ["0,0", "0,1", "0,2"]:
        httpx.get(block_url(c.nodes[0], block), timeout=30).raise_for_status()
        httpx.get(block_url(c.nodes[1], block), timeout=30).raise_for_status()
    assert hits() > before


# --------------------------------------------------------------------------
# A writable cluster: one PostgreSQL catalog (a schema of its own), one data directory.

@pytest.fixture(scope="module")
def catalog_cluster(tmp_path_factory):
    schema = f"tessera_cluster_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    cluster.psql(f"CREATE SCHEMA {schema}")
    db = f"postgresql://{cluster.pg_user()}@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    data = tmp_path_factory.mktemp("cluster-data")
    key = uuid.uuid4().hex
    serve = ("catalog", db, "--write", str(data), "--api-key", key)
    try:
        with cluster.Cluster(BIN, nodes=2, workers=2, serve=serve) as c:
            c.api_key = key
            yield c
    finally:
        cluster.psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_data_written_through_one_node_reads_the_same_through_the_other(catalog_cluster):
    a, b = (from_uri(n.url, api_key=catalog_cluster.api_key) for n in catalog_cluster.nodes)
    x = a.create_container(f"scan_{uuid.uuid4().hex[:6]}", metadata={"sample": "Si"})
    arr = numpy.arange(240_000, dtype="float64").reshape(400, 600)
    x.write_array(arr, key="det", metadata={"unit": "counts"})
    table = pandas.DataFrame({"t": numpy.arange(1000) * 0.5, "i": numpy.arange(1000)})
    x.write_table(table, key="log")
    same_on_b = b[x.item["id"]]
    numpy.testing.assert_array_equal(same_on_b["det"].read(), arr)
    numpy.testing.assert_array_equal(same_on_b["det"][100:200, ::7], arr[100:200, ::7])
    assert same_on_b["det"].metadata["unit"] == "counts"
    pandas.testing.assert_frame_equal(same_on_b["log"].read(), table)
    assert same_on_b.metadata["sample"] == "Si"


def test_after_a_write_returns_no_node_serves_the_old_bytes(catalog_cluster):
    key = catalog_cluster.api_key
    a_client = from_uri(catalog_cluster.nodes[0].url, api_key=key)
    name = f"stale_{uuid.uuid4().hex[:6]}"
    arr = a_client.write_array(numpy.zeros((200, 200)), key=name)
    urls = [f"{n.url}/api/v1/array/full/{name}" for n in catalog_cluster.nodes]
    headers = {"Authorization": f"Apikey {key}", "Accept": "application/octet-stream"}
    reads = []  # (started, value seen)
    stop = threading.Event()

    def reader(url):
        with httpx.Client(timeout=60, headers=headers) as c:
            while not stop.is_set():
                started = time.monotonic()
                r = c.get(url)
                r.raise_for_status()
                values = numpy.frombuffer(r.content, dtype="float64")
                assert values.min() == values.max(), "a half-written array"
                reads.append((started, values[0]))

    threads = [threading.Thread(target=reader, args=(u,)) for u in urls for _ in range(2)]
    for t in threads:
        t.start()
    written = []  # (returned at, value)
    try:
        # Back to back: a reader that resolved the node just before a write commits is still
        # reading the superseded location when the next write lands.
        for k in range(1, 31):
            arr.write(numpy.full((200, 200), float(k)))
            written.append((time.monotonic(), float(k)))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(reads) > 50
    for returned, value in written:
        late = [v for started, v in reads if started > returned]
        assert all(v >= value for v in late), (value, sorted(set(late)))


def test_appends_through_both_nodes_at_once_lose_no_row(catalog_cluster):
    import pyarrow

    key = catalog_cluster.api_key
    clients = [from_uri(n.url, api_key=key) for n in catalog_cluster.nodes]
    name = f"log_{uuid.uuid4().hex[:6]}"
    schema = pyarrow.schema([("writer", pyarrow.int64()), ("n", pyarrow.int64())])
    clients[0].create_appendable_table(schema, npartitions=1, key=name)
    per_writer = 12

    def writer(w):
        node = clients[w % 2][name]
        for n in range(per_writer):
            node.append_partition(0, pyarrow.table({"writer": [w] * 3, "n": [n] * 3}, schema=schema))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))
    got = clients[1][name].read()
    assert len(got) == 4 * per_writer * 3
    for w in range(4):
        mine = got[got["writer"] == w]["n"].tolist()
        assert sorted(mine) == sorted(list(range(per_writer)) * 3)


def test_catalog_down_is_503_naming_it_and_recovers_without_restart(tmp_path):
    schema = f"tessera_down_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    cluster.psql(f"CREATE SCHEMA {schema}")
    proxy = cluster.TcpProxy(5432).start()
    db = f"postgresql://{cluster.pg_user()}@127.0.0.1:{proxy.port}/test?options=-csearch_path%3D{schema}"
    serve = ("catalog", db, "--write", str(tmp_path), "--public", "--api-key", "k")
    try:
        with cluster.Cluster(BIN, nodes=1, workers=0, serve=serve) as c:
            url = f"{c.nodes[0].url}/api/v1/search/"
            assert httpx.get(url, timeout=30).status_code == 200
            proxy.stop()
            t = time.monotonic()
            down = httpx.get(url, timeout=30)
            assert down.status_code == 503, down.text
            assert "catalog database" in down.json()["detail"]
            assert down.headers["retry-after"]
            assert time.monotonic() - t < 10
            proxy.start()
            t = time.monotonic()
            while httpx.get(url, timeout=30).status_code != 200:
                assert time.monotonic() - t < 20, "no recovery"
                time.sleep(0.2)
    finally:
        proxy.stop()
        cluster.psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_the_local_cluster_script_and_the_load_generator(tmp_path):
    """loadtest/cluster.sh up: 2 nodes behind nginx and 2 workers on the machine's Redis and
    NATS; loadgen drives the mix through nginx and reads the nodes' and workers' counters;
    down removes every Redis key of the run."""
    here = os.path.dirname(os.path.abspath(__file__))
    script = os.path.join(here, "..", "..", "loadtest", "cluster.sh")
    loadgen = os.environ.get("LOADGEN_BIN") or os.path.join(os.path.dirname(BIN), "loadgen")
    node_port, metrics_port, lb_port = cluster.free_pair(), cluster.free_pair(), cluster.free_port()
    env = dict(
        os.environ,
        TESSERA_BIN=BIN,
        CLUSTER_DIR=str(tmp_path / "cluster"),
        CLUSTER_PORT=str(lb_port),
        NODE_PORT=str(node_port),
        METRICS_PORT=str(metrics_port),
    )
    up = subprocess.run([script, "up"], env=env, capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        prefix = open(tmp_path / "cluster" / "prefix").read().strip()
        pages = [f"http://127.0.0.1:{node_port + i}/metrics" for i in range(2)]
        pages += [f"http://127.0.0.1:{metrics_port + i}/metrics" for i in range(2)]
        args = [loadgen, "--url", f"http://127.0.0.1:{lb_port}", "--scenario", "mix",
                "--clients", "4", "--seconds", "3", "--label", "ci", "--header"]
        for p in pages:
            args += ["--metrics", p]
        out = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        header, _, row = out.stdout.strip().splitlines()
        cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
        assert cells["errors"] == "0", out.stdout
        assert float(cells["req/s"]) > 1
        assert float(cells["decodes"]) >= 1
        keys = subprocess.run(["redis-cli", "--scan", "--pattern", f"{prefix}:*"],
                              capture_output=True, text=True).stdout.split()
        assert keys, "the run left chunks in Redis under its prefix"
    finally:
        down = subprocess.run([script, "down"], env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    keys = subprocess.run(["redis-cli", "--scan", "--pattern", f"{prefix}:*"],
                          capture_output=True, text=True).stdout.split()
    assert keys == []
