"""Prometheus metrics of an API node: after N known requests the counters say N, bytes out
are the bytes sent, caches report what they hold and push out, catalog operations are timed,
and `/api/v1/metrics` needs Tiled's `metrics` scope. Each test runs its own server, so no
other test's requests land in its counters."""

import os
import subprocess
import tempfile
import time
import uuid

import httpx
import pytest

import cluster

ON_TILED = os.environ.get("TESTED_SERVER", "").lower() == "tiled"
pytestmark = pytest.mark.skipif(ON_TILED, reason="tessera's own metrics")
BIN = os.environ.get("TESSERA_BIN", "")
PLAIN = {"accept-encoding": "identity"}


class Server:
    """`tessera serve ARGS` on a free port, stopped on exit."""

    def __init__(self, *args, env=None):
        self.dir = tempfile.mkdtemp(prefix="tessera-metrics-")
        port = cluster.free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = cluster.Proc(
            "node", [BIN, "serve", *args, "--host", "127.0.0.1", "--port", str(port)],
            self.dir, env=env,
        )

    def __enter__(self):
        self.proc.start()
        cluster.wait_for("the server", lambda: httpx.get(f"{self.url}/healthz").status_code == 200,
                         proc=self.proc.p, log=self.proc.log)
        return self

    def __exit__(self, *exc):
        self.proc.stop()

    def page(self, path="/metrics"):
        return cluster.metrics(f"{self.url}{path}")

    def metric(self, name, **labels):
        return cluster.metric(self.page(), name, **labels)


def test_counters_say_how_many_requests_were_answered_and_how():
    with Server("demo") as s:
        before = s.page()
        n, sent = 7, 0
        for _ in range(n):
            r = httpx.get(f"{s.url}/api/v1/metadata/scalars", headers=PLAIN)
            assert r.status_code == 200
            sent += len(r.content)
        for _ in range(3):
            assert httpx.get(f"{s.url}/api/v1/metadata/no_such_node").status_code == 404
        r = httpx.get(f"{s.url}/api/v1/array/full/scalars/pi", params={"format": "json"},
                      headers=PLAIN)
        assert r.status_code == 200
        after = s.page()

        def delta(name, **labels):
            return cluster.metric(after, name, **labels) - cluster.metric(before, name, **labels)

        assert delta("tessera_http_requests_total", endpoint="metadata", method="GET",
                     status="200") == n
        assert delta("tessera_http_requests_total", endpoint="metadata", status="404") == 3
        assert delta("tessera_http_requests_total", endpoint="array_full", status="200") == 1
        assert delta("tessera_http_request_duration_seconds_count", endpoint="metadata",
                     method="GET") == n + 3
        # Bytes out are the bodies as sent, by media type and encoding.
        assert delta("tessera_http_response_bytes_total", endpoint="metadata",
                     format="application/json", encoding="identity") >= sent
        assert delta("tessera_http_response_bytes_total", endpoint="array_full",
                     format="application/json") == len(r.content)
        # A path that names no route has a label of its own, never the path.
        httpx.get(f"{s.url}/nowhere/{uuid.uuid4().hex}")
        page = s.page()
        assert cluster.metric(page, "tessera_http_requests_total", endpoint="not_found",
                              status="404") == 1
        assert not any("nowhere" in k for k in page)
        assert cluster.metric(page, "tessera_build_info") == 1
        assert cluster.metric(page, "tessera_ready") == 1
        assert cluster.metric(page, "tessera_catalog_query_seconds_count", op="get") > 0


def test_gzip_bodies_are_counted_as_sent():
    with Server("demo") as s:
        before = s.metric("tessera_http_response_bytes_total", endpoint="search", encoding="gzip")
        with httpx.Client(headers={"accept-encoding": "gzip"}) as c:
            r = c.get(f"{s.url}/api/v1/search/", params={"page[limit]": 100})
            assert r.headers.get("content-encoding") == "gzip"
            on_wire = int(r.headers.get("content-length") or len(r.read()))
        after = s.metric("tessera_http_response_bytes_total", endpoint="search", encoding="gzip")
        assert after - before == on_wire


def test_the_chunk_cache_counts_what_it_pushes_out():
    # A cache of 1 MB and medium_image in 200 KB chunks: reading 20 distinct
    # blocks must push most of them out again.
    with Server("demo", "--cache-bytes", "1000000") as s:
        for i in range(20):
            r = httpx.get(f"{s.url}/api/v1/array/block/nested/images/medium_image",
                          params={"block": f"{i // 10},{i % 10}"})
            assert r.status_code == 200, r.text
        # The cache settles its books as it is used: keep reading one block until it has.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for _ in range(20):
                httpx.get(f"{s.url}/api/v1/array/block/nested/images/medium_image",
                          params={"block": "1,9"})
            evicted = s.metric("tessera_cache_evictions_total", cache="chunk")
            held = s.metric("tessera_cache_bytes", cache="chunk")
            if evicted > 0 and 0 < held <= 1_000_000:
                break
            time.sleep(0.2)
        assert evicted >= 10
        assert 0 < held <= 1_000_000


def test_api_v1_metrics_needs_the_metrics_scope():
    key = uuid.uuid4().hex
    with Server("catalog", "--temp", "--api-key", key, "--public") as s:
        anonymous = httpx.get(f"{s.url}/api/v1/metrics")
        assert anonymous.status_code == 401
        assert "metrics" in anonymous.json()["detail"]
        keyed = httpx.get(f"{s.url}/api/v1/metrics", headers={"authorization": f"Apikey {key}"})
        assert keyed.status_code == 200
        assert "tessera_http_requests_total" in keyed.text
        # /metrics stays open to scrapers: counters, no node names.
        assert httpx.get(f"{s.url}/metrics").status_code == 200


def test_metrics_can_be_turned_off_as_in_tiled(tmp_path):
    port = cluster.free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        "trees:\n  - path: /\n    tree: tiled.examples.generated:tree\n"
        f"uvicorn:\n  host: 127.0.0.1\n  port: {port}\n"
        "metrics:\n  prometheus: false\n"
            "authentication:\n  allow_anonymous_access: true\n"
    )
    proc = subprocess.Popen([BIN, "serve", "config", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        cluster.wait_for("the server", lambda: httpx.get(f"{url}/healthz").status_code == 200,
                         proc=proc)
        assert httpx.get(f"{url}/metrics").status_code == 404
        # (an anonymous caller lacks the metrics scope, which is checked first)
        assert httpx.get(f"{url}/api/v1/metrics").status_code in (401, 404)
        assert httpx.get(f"{url}/api/v1/metadata/scalars").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_the_postgresql_pool_is_reported():
    schema = f"tessera_metrics_{uuid.uuid4().hex[:10]}"
    cluster.psql(f"CREATE SCHEMA {schema}")
    try:
        uri = (f"postgresql://{cluster.pg_user()}@127.0.0.1:5432/test"
               f"?options=-csearch_path%3D{schema}")
        with Server("catalog", uri, "--public") as s:
            assert httpx.get(f"{s.url}/api/v1/search/").status_code == 200
            page = s.page()
            assert cluster.metric(page, "tessera_catalog_pool_connections", state="max") == 16
            assert cluster.metric(page, "tessera_catalog_pool_connections", state="idle") >= 1
            assert cluster.metric(page, "tessera_catalog_query_seconds_count", op="search") >= 1
    finally:
        cluster.psql(f"DROP SCHEMA {schema} CASCADE")


def test_a_worker_counts_its_jobs_and_says_its_version():
    with cluster.Cluster(BIN, nodes=1, workers=1) as c:
        node, worker = c.nodes[0], c.workers[0]
        for i in range(3):
            r = httpx.get(f"{node.url}/api/v1/array/block/nested/images/medium_image", params={"block": f"{i},0"})
            assert r.status_code == 200
        page = cluster.metrics(worker.metrics_url)
        assert cluster.metric(page, "tessera_worker_jobs_total", kind="block", outcome="done") == 3
        assert cluster.metric(page, "tessera_worker_job_seconds_count", kind="block") == 3
        assert cluster.metric(page, "tessera_build_info") == 1
        node_page = cluster.metrics(f"{node.url}/metrics")
        assert cluster.metric(node_page, "tessera_jobs_sent_total", outcome="done") == 3
        assert cluster.metric(node_page, "tessera_jobs_in_flight") == 0
        ready = httpx.get(worker.metrics_url.replace("/metrics", "/readyz"))
        assert ready.status_code == 200
