"""The cluster shape: two API nodes and two workers on a private Redis and NATS, read through
the real Tiled client, against the embedded server of the session (``client``)."""

import concurrent.futures
import os
import time

import httpx
import numpy
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
