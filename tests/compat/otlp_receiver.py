"""A small OTLP/HTTP trace receiver for the tests and the telemetry benchmark: it accepts
`POST /v1/traces` (protobuf, as the OpenTelemetry SDKs send it), answers 200, and keeps the
spans it decoded (``keep=True``) or only counts the bytes (a sink for benchmarks).

    python otlp_receiver.py PORT     # a sink that counts, for benchmarks
"""

import gzip
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def _value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class Receiver:
    def __init__(self, port=0, keep=True):
        self.spans, self.requests, self.keep, self.bytes_seen = [], 0, keep, 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                if receiver.keep:
                    receiver._take(ExportTraceServiceRequest.FromString(body))
                else:
                    # A sink for benchmarks: counts bytes, decodes nothing (its CPU is the
                    # machine's too).
                    with receiver.lock:
                        receiver.requests += 1
                        receiver.bytes_seen += len(body)
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def _take(self, req):
        spans = []
        for rs in req.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append({
                        "service": resource.get("service.name"),
                        "name": s.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_id": s.parent_span_id.hex(),
                        "attributes": {a.key: _value(a.value) for a in s.attributes},
                    })
        with self.lock:
            self.requests += 1
            self.spans.extend(spans)

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self):
        with self.lock:
            return list(self.spans)


if __name__ == "__main__":
    r = Receiver(int(sys.argv[1]), keep=False)
    print(f"receiving traces at {r.url}", flush=True)
    try:
        r.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        print(f"{r.requests} export requests, {r.bytes_seen} bytes", flush=True)
