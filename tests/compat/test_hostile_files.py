"""Hostile files in a served directory (issue 10, "untrusted files"): files anyone at the
beamline could drop where tessera serves them must never take the server down, make it read
outside what it serves, or starve others. `tests/fixtures/make_hostile.py` writes them (each
says why it is there); here they are served by `tessera serve directory` and registered with
`POST /register`, and every node is read: metadata, search and data in the formats the client
asks for. Afterwards the server must be alive, no answer may be a 5xx, no body may carry the
marker written into every file outside the served directory, and the server's peak memory
(VmHWM) must stay under PEAK_RSS_BOUND."""

import json
import os
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

from writable import ON_TILED, tessera_binary, writable_server

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_HOSTILE = os.path.join(HERE, "..", "fixtures", "make_hostile.py")

# The bound on the server's peak resident memory while it indexes and serves the hostile
# files. The fixtures declare terabytes and hold gigabyte bombs; a server that honoured any
# of them would pass this by far, while the honest work (small files, chunks of kilobytes,
# capped sheets) stays well below.
PEAK_RSS_BOUND = 1 << 30

# Data requests are kept under this many bytes (the server's default response limit is
# larger; a hostile node must be refused whatever the request's size).
REQUEST_BYTES = 64 << 20

# Parts of hostile files that are ordinary data and may answer 200 (the rest of each file
# is refused): every other data request below a hostile entry must be a 4xx.
BENIGN = {
    "h5_extlink/local",
    "h5_huge/ok",
}

pytestmark = pytest.mark.skipif(ON_TILED, reason="tessera's commands and limits")


@pytest.fixture(scope="module")
def hostile():
    root = tempfile.mkdtemp(prefix="tessera-hostile-")
    subprocess.run([sys.executable, MAKE_HOSTILE, root], check=True)
    with open(os.path.join(root, "manifest.json")) as f:
        manifest = json.load(f)
    yield os.path.join(root, "served"), os.path.join(root, "outside"), manifest
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss(pid):
    """The process's peak resident set size in bytes (VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


class Walker:
    """Reads every node under a path with raw HTTP requests, recording each answer."""

    def __init__(self, http, marker):
        self.http = http
        self.marker = marker.encode()
        self.answers = []  # (path, what, status, detail)

    def get(self, path, what, url, **params):
        r = self.http.get(url, params=params)
        assert self.marker not in r.content, f"{what} of {path} carries the outside marker"
        detail = r.text[:300] if r.status_code >= 400 else ""
        self.answers.append((path, what, r.status_code, detail))
        return r

    def walk(self, path):
        r = self.get(path, "metadata", f"/api/v1/metadata/{path}")
        if r.status_code != 200:
            return
        attrs = r.json()["data"]["attributes"]
        family = attrs["structure_family"]
        if family == "container":
            self.walk_container(path)
        elif family == "array":
            self.read_array(path, attrs["structure"])
        elif family == "table":
            for i in range(min(attrs["structure"]["npartitions"], 4)):
                self.get(path, "partition", f"/api/v1/table/partition/{path}",
                         partition=i, format="application/vnd.apache.arrow.file")

    def walk_container(self, path):
        url = f"/api/v1/search/{path}"
        offset = 0
        while True:
            r = self.get(path, "search", url, **{"page[offset]": offset, "page[limit]": 100})
            if r.status_code != 200:
                return
            data = r.json()["data"]
            for child in data:
                self.walk(f"{path}/{child['id']}" if path else child["id"])
            if len(data) < 100:
                return
            offset += len(data)

    def read_array(self, path, structure):
        shape = structure["shape"]
        itemsize = structure["data_type"].get("itemsize", 8) if isinstance(
            structure["data_type"], dict) else 8
        n = itemsize
        for d in shape:
            n *= d
        fmt = "application/octet-stream"
        if n <= REQUEST_BYTES:
            self.get(path, "full", f"/api/v1/array/full/{path}", format=fmt)
        if shape:
            block = ",".join("0" for _ in shape)
            first = [c[0] if c else 0 for c in structure["chunks"]]
            size = itemsize
            for c in first:
                size *= c
            if size <= REQUEST_BYTES:
                self.get(path, "block", f"/api/v1/array/block/{path}", block=block, format=fmt)
            # A small slice of the first block, whatever its size.
            sl = ",".join("0:1" for _ in shape)
            self.get(path, "slice", f"/api/v1/array/full/{path}", slice=sl, format=fmt)

    def failures(self):
        return [a for a in self.answers if a[2] >= 500]

    def data_answers(self):
        return [a for a in self.answers if a[1] in ("full", "block", "slice", "partition")]


def check_hostile_answers(walker, benign_prefix=""):
    for a in walker.answers:
        if a[2] >= 400:
            print(*a)  # shown with -s: what each hostile node answered
    assert not walker.failures(), "5xx answers:\n" + "\n".join(map(str, walker.failures()))
    for path, what, status, detail in walker.data_answers():
        rel = path[len(benign_prefix):] if path.startswith(benign_prefix) else path
        top = rel.split("/")[0]
        if top == "good" or rel in BENIGN:
            assert status == 200, (path, what, status, detail)
        else:
            assert 400 <= status < 500, (path, what, status, detail)


def wait_for_scan(url, proc, log_path, timeout=300):
    """Waits until the server has indexed the whole directory (it logs `indexed DIR`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server died while indexing:\n" + tail(log_path)
        with open(log_path, errors="replace") as f:
            if "indexed " in f.read():
                return
        time.sleep(0.5)
    raise AssertionError("the directory was not indexed in time\n" + tail(log_path))


def tail(path):
    with open(path, errors="replace") as f:
        return f.read()[-6000:]


def test_serving_a_directory_of_hostile_files(hostile):
    served, _outside, manifest = hostile
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = os.path.join(tempfile.mkdtemp(prefix="tessera-hostile-log-"), "server.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [tessera_binary(), "serve", "directory", served, "--public", "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=log, stderr=log,
        )
    try:
        wait_for_scan(url, proc, log_path)
        with httpx.Client(base_url=url, timeout=120) as http:
            listed = {
                d["id"]: d
                for d in http.get("/api/v1/search/", params={"page[limit]": 300}).json()["data"]
            }
            walker = Walker(http, manifest["marker"])
            walker.walk("")
            # A file that was refused whole stays listed as unreadable, answering a 422 that
            # names it relative to the served directory and says why.
            unreadable = {k for k, d in listed.items()
                          if "unreadable" in [s["name"] for s in d["attributes"]["specs"]]}
            for key in unreadable:
                listing = json.dumps(listed[key]["attributes"]["metadata"])
                assert served not in listing, listing
                r = http.get(f"/api/v1/metadata/{key}")
                assert r.status_code == 422, (key, r.status_code)
                assert served not in r.text and r.json()["detail"], r.text
            for key in ["zarr_huge_v3", "zarr_huge_v2", "zarr_overflow", "zarr_huge_chunk",
                        "zarr_deep", "zarr_symlink_attrs", "h5_deep", "h5_truncated",
                        "npy_lying", "npy_overflow", "nc3_huge", "tiff_huge", "tiff_offset",
                        "parquet_footer", "parquet_length", "xlsx_bomb", "xlsx_strings",
                        "xlsx_sparse", "csv_huge"]:
                assert key in unreadable, (key, listed.get(key))
            assert "good" in listed and "good" not in unreadable
            check_hostile_answers(walker)
            # The Tiled client lists the tree and opens every top-level node: a refused file
            # is a ClientError with a 4xx (a 5xx would be retried, then raised otherwise).
            from tiled.client import from_uri
            from tiled.client.utils import ClientError

            tree = from_uri(url)
            assert set(tree) == set(listed)
            for key in listed:
                try:
                    tree[key]
                except ClientError as e:
                    assert 400 <= e.response.status_code < 500, (key, str(e))
                    assert manifest["marker"] not in str(e)
            assert http.get("/healthz").status_code == 200
            rss = peak_rss(proc.pid)
            print(f"serve directory: peak RSS {rss / 2**20:.0f} MiB")
            assert rss < PEAK_RSS_BOUND, f"peak RSS {rss} bytes"
        assert proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _family(path):
    """The structure family a client would register a top-level entry as."""
    ext = os.path.splitext(path)[1].lower()
    if ext in (".parquet", ".csv"):
        return "table"
    if ext in (".tif", ".tiff", ".npy"):
        return "array"
    if ext == ".zarr":
        for meta in ("zarr.json", ".zarray"):
            p = os.path.join(path, meta)
            if os.path.exists(p):
                with open(p) as f:
                    return "array" if json.load(f).get("node_type", "array") == "array" else "container"
    return "container"


def test_registering_hostile_files(hostile):
    served, outside, manifest = hostile
    with writable_server(read=[served]) as s, s.http() as h:
        h.post("/api/v1/metadata/", json={"id": "hostile", "structure_family": "container"})
        pid = s.process.pid
        registered = []
        for name in manifest["served"]:
            path = os.path.join(served, name)
            family = _family(path)
            key = name.split(".")[0]
            body = {
                "id": key, "structure_family": family, "metadata": {}, "specs": [],
                "data_sources": [{
                    "mimetype": None, "structure_family": family, "structure": None,
                    "parameters": {}, "management": "external",
                    "assets": [{"data_uri": "file://localhost" + path,
                                "is_directory": os.path.isdir(path),
                                "parameter": "data_uri", "num": 0}],
                }],
            }
            r = h.post("/api/v1/register/hostile", json=body, timeout=120)
            assert r.status_code < 500, (name, r.status_code, r.text[:300])
            assert manifest["marker"].encode() not in r.content, name
            if r.status_code == 200:
                registered.append(key)
            else:
                # Refused: a clear 4xx, and nothing left behind.
                assert r.json()["detail"], name
                assert h.get(f"/api/v1/metadata/hostile/{key}").status_code == 404, name
        # The dataset of an HDF5 file registered directly, through an external link.
        body["id"] = "through_link"
        body["structure_family"] = "array"
        body["data_sources"][0].update(
            structure_family="array", mimetype="application/x-hdf5",
            parameters={"dataset": "abs"},
            assets=[{"data_uri": "file://localhost" + os.path.join(served, "h5_extlink.h5"),
                     "is_directory": False, "parameter": "data_uri", "num": 0}])
        r = h.post("/api/v1/register/hostile", json=body)
        assert 400 <= r.status_code < 500, r.text
        assert manifest["marker"].encode() not in r.content
        # Files outside the readable directory are refused outright.
        body["data_sources"][0]["assets"][0]["data_uri"] = (
            "file://localhost" + os.path.join(outside, "secret.h5"))
        assert h.post("/api/v1/register/hostile", json=body).status_code == 403
        assert "good" in registered
        walker = Walker(h, manifest["marker"])
        walker.walk("hostile")
        check_hostile_answers(walker, benign_prefix="hostile/")
        assert h.get("/healthz").status_code == 200
        rss = peak_rss(pid)
        print(f"register: peak RSS {rss / 2**20:.0f} MiB")
        assert rss < PEAK_RSS_BOUND, f"peak RSS {rss} bytes"
        assert s.process.poll() is None
