"""Traces: with `otlp_endpoint` set, one request gives one trace that runs from the API
node (request, catalog, cache, job dispatch) into the worker that decoded for it (the job's
NATS message carries the trace context), received by a real OTLP/HTTP receiver on loopback."""

import os
import time
import uuid

import httpx
import pytest

import cluster
from otlp_receiver import Receiver

ON_TILED = os.environ.get("TESTED_SERVER", "").lower() == "tiled"
pytestmark = pytest.mark.skipif(ON_TILED, reason="tessera's own traces")
BIN = os.environ.get("TESSERA_BIN", "")


def wait_for_spans(receiver, check, timeout=20):
    """The receiver's spans once `check(spans)` holds (the exporters send in batches)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = receiver.snapshot()
        if check(spans):
            return spans
        time.sleep(0.2)
    return receiver.snapshot()


def test_one_trace_spans_the_api_node_and_the_worker():
    receiver = Receiver().start()
    env = {"TESSERA_OTLP_ENDPOINT": receiver.url}
    try:
        with cluster.Cluster(BIN, nodes=1, workers=1, env=env,
                             node_args=("--cache-bytes", "0", "--no-l2-cache")) as c:
            node = c.nodes[0]
            rid = f"t{uuid.uuid4().hex[:12]}"
            r = httpx.get(f"{node.url}/api/v1/array/block/nested/images/medium_image", params={"block": "0,0"},
                          headers={"x-request-id": rid})
            assert r.status_code == 200

            def request_span(spans):
                return [s for s in spans if s["attributes"].get("request_id") == rid]

            def complete(spans):
                mine = request_span(spans)
                if not mine:
                    return False
                trace = mine[0]["trace_id"]
                return {"tessera-api", "tessera-worker"} <= {
                    s["service"] for s in spans if s["trace_id"] == trace}

            spans = wait_for_spans(receiver, complete)
        mine = request_span(spans)
        assert len(mine) == 1, f"{len(spans)} spans received, none with request_id {rid}"
        root = mine[0]
        assert root["service"] == "tessera-api"
        assert root["name"] == "GET array_block"
        assert root["attributes"]["http.response.status_code"] == 200
        assert root["parent_id"] in ("", "0" * 16)
        trace = [s for s in spans if s["trace_id"] == root["trace_id"]]
        by_id = {s["span_id"]: s for s in trace}
        names = {(s["service"], s["name"]) for s in trace}
        assert ("tessera-api", "job.dispatch") in names, names
        assert ("tessera-worker", "worker.job") in names, names
        assert ("tessera-worker", "decode") in names, names
        assert any(s["service"] == "tessera-api" and s["name"] in ("get", "catalog")
                   for s in trace), names
        # The worker's span hangs under the node's dispatch span: one tree, not two.
        job = next(s for s in trace if s["name"] == "worker.job")
        assert by_id[job["parent_id"]]["name"] == "job.dispatch"
        assert job["attributes"]["job.kind"] == "block"
    finally:
        receiver.stop()


def test_a_caller_trace_is_continued_and_sampling_can_be_off():
    receiver = Receiver().start()
    try:
        env = {"TESSERA_OTLP_ENDPOINT": receiver.url, "TESSERA_TRACE_SAMPLE_RATIO": "0"}
        with cluster.Cluster(BIN, nodes=1, workers=0, env=env) as c:
            url = c.nodes[0].url
            # Sampled by the caller: continued whatever the ratio.
            trace_id = uuid.uuid4().hex
            parent = "00f067aa0ba902b7"
            r = httpx.get(f"{url}/api/v1/metadata/scalars",
                          headers={"traceparent": f"00-{trace_id}-{parent}-01"})
            assert r.status_code == 200
            # Not sampled by anyone: ratio 0 keeps nothing.
            for _ in range(5):
                httpx.get(f"{url}/api/v1/metadata/scalars")
            spans = wait_for_spans(receiver, lambda s: any(x["trace_id"] == trace_id for x in s))
            time.sleep(6)  # one more export interval, for spans that should not exist
            spans = receiver.snapshot()
        continued = [s for s in spans if s["trace_id"] == trace_id]
        root = [s for s in continued if s["name"] == "GET metadata"]
        assert len(root) == 1 and root[0]["parent_id"] == parent
        assert {s["trace_id"] for s in spans} == {trace_id}
    finally:
        receiver.stop()
