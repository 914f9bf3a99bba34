"""Running tessera as a service: readiness that follows its dependencies, a drain on SIGTERM
that loses no request behind a load balancer, workers that finish their jobs when told to
stop, and log lines (text or JSON) that carry the request id."""

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import httpx
import pytest

import cluster

ON_TILED = os.environ.get("TESTED_SERVER", "").lower() == "tiled"
pytestmark = pytest.mark.skipif(ON_TILED, reason="tessera's own operation")
BIN = os.environ.get("TESSERA_BIN", "")
HERE = os.path.dirname(os.path.abspath(__file__))
LOADGEN = os.environ.get("LOADGEN_BIN") or os.path.join(os.path.dirname(BIN), "loadgen")


def test_readiness_follows_redis_and_nats():
    with cluster.Cluster(BIN, nodes=1, workers=1) as c:
        node = c.nodes[0]
        ready = httpx.get(f"{node.url}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"catalog": "ok", "redis": "ok", "nats": "ok"}
        c.redis.kill()
        r = httpx.get(f"{node.url}/readyz", timeout=10)
        assert r.status_code == 503
        assert r.json()["checks"]["redis"] != "ok"
        assert r.json()["checks"]["catalog"] == "ok"
        # Alive all the same: a restart would not help.
        assert httpx.get(f"{node.url}/healthz").status_code == 200
        c.start_redis()
        cluster.wait_for("readiness after Redis is back",
                         lambda: httpx.get(f"{node.url}/readyz", timeout=5).status_code == 200,
                         timeout=30)
        c.nats.kill()
        cluster.wait_for("NATS seen down",
                         lambda: httpx.get(f"{node.url}/readyz", timeout=5).status_code == 503,
                         timeout=30)
        assert httpx.get(f"{node.url}/readyz").json()["checks"]["nats"] != "ok"


def test_an_embedded_node_is_ready_when_its_catalog_answers():
    port = cluster.free_port()
    d = tempfile.mkdtemp(prefix="tessera-ready-")
    p = cluster.Proc("node", [BIN, "serve", "catalog", "--temp", "--public", "--host",
                              "127.0.0.1", "--port", str(port)], d).start()
    try:
        url = f"http://127.0.0.1:{port}"
        cluster.wait_for("node", lambda: httpx.get(f"{url}/healthz").status_code == 200,
                         proc=p.p, log=p.log)
        r = httpx.get(f"{url}/readyz")
        assert r.status_code == 200
        assert r.json() == {"status": "ready", "checks": {"catalog": "ok"}}
    finally:
        p.stop()


def test_sigterm_drains_without_failing_a_request_behind_the_load_balancer(tmp_path):
    """Two nodes behind nginx under load; SIGTERM to one: it reports not ready, keeps serving
    for shutdown_delay, closes its listener and finishes what it holds. The clients see no
    error, and the node exits 0 within delay + what was in flight."""
    script = os.path.join(HERE, "..", "..", "loadtest", "cluster.sh")
    node_port, metrics_port, lb_port = cluster.free_pair(), cluster.free_pair(), cluster.free_port()
    delay = 2.0
    env = dict(os.environ, TESSERA_BIN=BIN, CLUSTER_DIR=str(tmp_path / "cluster"),
               CLUSTER_PORT=str(lb_port), NODE_PORT=str(node_port),
               METRICS_PORT=str(metrics_port), TESSERA_SHUTDOWN_DELAY=str(delay),
               TESSERA_SHUTDOWN_TIMEOUT="20")
    up = subprocess.run([script, "up"], env=env, capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        pid = int(open(tmp_path / "cluster" / "node0.pid").read())
        load = subprocess.Popen(
            [LOADGEN, "--url", f"http://127.0.0.1:{lb_port}", "--scenario", "mix",
             "--clients", "8", "--seconds", "9", "--label", "drain", "--header"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        node0 = f"http://127.0.0.1:{node_port}"
        assert httpx.get(f"{node0}/readyz").status_code == 200
        sent = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.3)
        # Draining: not ready, still answering.
        r = httpx.get(f"{node0}/readyz")
        assert r.status_code == 503 and r.json()["status"] == "draining"
        assert httpx.get(f"{node0}/api/v1/metadata/scalars").status_code == 200
        while time.monotonic() - sent < 30:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        took = time.monotonic() - sent
        out, err = load.communicate(timeout=60)
        assert load.returncode == 0, err
        header, _, row = out.strip().splitlines()
        cells = dict(zip([c.strip() for c in header.split("|")],
                         [c.strip() for c in row.split("|")]))
        assert cells["errors"] == "0", out
        assert float(cells["req/s"]) > 1, out
        assert delay <= took < delay + 10, took
        log = open(tmp_path / "cluster" / "node0.log").read()
        assert "draining" in log
        print(f"SIGTERM to exit under load: {took:.2f} s (shutdown_delay {delay} s); "
              f"{cells['req/s']} req/s, 0 errors")
    finally:
        subprocess.run([script, "down"], env=env, capture_output=True, timeout=60)


def test_a_worker_told_to_stop_mid_job_costs_no_request():
    """Without caches every read is a job. SIGTERM to one worker while 6 clients read: it
    stops taking jobs, finishes those it holds and exits 0; the other worker takes the rest.
    No request fails."""
    c = cluster.Cluster(BIN, nodes=1, workers=2, node_args=("--cache-bytes", "0",
                                                            "--no-l2-cache"))
    with c:
        node, (w0, w1) = c.nodes[0], c.workers
        failures, done = [], [0]
        stop = threading.Event()

        def read(i):
            with httpx.Client(timeout=60) as h:
                while not stop.is_set():
                    r = h.get(f"{node.url}/api/v1/array/block/nested/images/big_image",
                              params={"block": "0,0", "slice": f"{i}:{i + 200}"})
                    if r.status_code != 200:
                        failures.append(r.status_code)
                    done[0] += 1

        threads = [threading.Thread(target=read, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        try:
            # The signal goes while the worker holds a job.
            deadline, held = time.monotonic() + 20, 0
            while held < 1 and time.monotonic() < deadline:
                held = cluster.metric(cluster.metrics(w0.metrics_url), "tessera_worker_jobs_held")
            assert held >= 1, "the worker never held a job"
            w0.p.send_signal(signal.SIGTERM)
            code = w0.p.wait(timeout=40)
            before = done[0]
            time.sleep(2)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        assert code == 0
        assert failures == []
        assert done[0] > before, "the other worker took no jobs after the first stopped"
        log = open(w0.log).read()
        assert "finishing" in log
        taken = cluster.metric(cluster.metrics(w1.metrics_url), "tessera_worker_jobs_total",
                               outcome="done")
        assert taken > 0
        print(f"worker held {held:.0f} jobs at SIGTERM; {done[0]} reads, 0 failed")


def test_json_logs_carry_the_request_id(tmp_path):
    port = cluster.free_port()
    env = {"TESSERA_LOG_FORMAT": "json", "RUST_LOG": "info,tessera::access=debug"}
    p = cluster.Proc("node", [BIN, "serve", "demo", "--host", "127.0.0.1", "--port",
                              str(port)], str(tmp_path), env=env).start()
    try:
        url = f"http://127.0.0.1:{port}"
        cluster.wait_for("node", lambda: httpx.get(f"{url}/healthz").status_code == 200,
                         proc=p.p, log=p.log)
        rid = f"lb-{uuid.uuid4().hex[:12]}"
        r = httpx.get(f"{url}/api/v1/metadata/no_such_node", headers={"x-request-id": rid})
        assert r.status_code == 404
        assert r.headers["x-request-id"] == rid
        assert r.json()["request_id"] == rid
        # A forged id (a new line in it) is replaced, never logged.
        r = httpx.get(f"{url}/api/v1/metadata/scalars", headers={"x-request-id": "a b\\nc"})
        assert r.headers["x-request-id"] != "a b\\nc"
        time.sleep(0.5)
    finally:
        p.stop()
    lines = [line for line in open(p.log).read().splitlines() if line.strip()]
    # Every log line is one JSON object; the banner on standard output is the only other line.
    others = [line for line in lines if not line.startswith("{")]
    assert len(others) == 1 and others[0].startswith("Serving the demo tree"), others
    records = [json.loads(line) for line in lines if line.startswith("{")]
    mine = [r for r in records if r.get("span", {}).get("request_id") == rid]
    assert mine, lines[-5:]
    access = [r for r in mine if r.get("target") == "tessera::access"]
    assert access and access[0]["fields"]["status"] == 404
    assert access[0]["span"]["http.route"] == "metadata"
