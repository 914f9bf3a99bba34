#!/usr/bin/env python3
"""Serving files: `tessera serve directory` beside `tiled serve directory` (tiled 0.2.20) and
h5py reading the same file directly, measured in one run on one machine.

    python loadtest/files/bench.py --tessera BIN --tiled TILED_BIN [--work DIR] [--skip-startup]

1. start-up on 10,000 small files: seconds until the root answers, and until every file is
   listed;
2. the real client reading the whole 60 x 1065 x 1030 uint16 detector stack (gzip, one frame
   per chunk) and one frame of it, against h5py reading the same from the file (the physical
   reference). tessera's first read decodes (cold chunk cache); later reads hit its cache;
3. requests/s for a one-frame slice at 16 connections (wrk, 10 s).

Run it with the Python of a venv holding tiled[client,server], h5py, zarr, pandas, tifffile
(tests/compat/requirements.txt); wrk from Debian. Prints a markdown table.
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time

import h5py
import httpx
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
STACK = "raw/scan_0042/entry/instrument/detector/data"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name, command, log):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(command(self.port), stdout=self.log, stderr=self.log)

    def wait_root(self, limit=300):
        while time.perf_counter() - self.started < limit:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited early; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/api/v1/", timeout=2).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise SystemExit(f"{self.name} did not answer in {limit} s")

    def count(self, path=""):
        r = httpx.get(f"{self.url}/api/v1/search/{path}", params={"page[limit]": 0}, timeout=30)
        return r.json()["meta"]["count"] if r.status_code == 200 else -1

    def wait_count(self, n, path="", limit=600):
        while time.perf_counter() - self.started < limit:
            try:
                if self.count(path) >= n:
                    return time.perf_counter() - self.started
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.1)
        return float("nan")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def commands(args):
    return {
        "tessera": lambda d: lambda p: [args.tessera, "serve", "directory", d, "--public", "--port", str(p)],
        "tiled": lambda d: lambda p: [args.tiled, "serve", "directory", d, "--public",
                                      "--port", str(p)],
        # Every read decodes: the cold path, measured `--reps` times instead of once.
        "tessera-uncached": lambda d: lambda p: [args.tessera, "serve", "directory", d, "--public",
                                                 "--cache-bytes", "0", "--port", str(p)],
    }


def many_files(work, n=10_000):
    d = os.path.join(work, "many")
    if not os.path.isdir(d) or len(os.listdir(d)) != n:
        os.makedirs(d, exist_ok=True)
        for i in range(n):
            with open(os.path.join(d, f"f{i:05d}.csv"), "w") as f:
                f.write(f"a,b\n{i},{i * 0.5}\n")
    return d


def big_files(work):
    d = os.path.join(work, "big")
    if not os.path.exists(os.path.join(d, "raw", "scan_0042.nxs")):
        subprocess.run([sys.executable, os.path.join(REPO, "tests", "fixtures", "make_files.py"), d,
                        "--frames", "60", "--height", "1065", "--width", "1030"], check=True)
        # Only the scan: the other fixtures (and the broken ones) are not part of this bench.
        for name in os.listdir(d):
            if name != "raw":
                p = os.path.join(d, name)
                subprocess.run(["rm", "-rf", p], check=True)
    return d


def timed(fn, reps):
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def wrk(url, path, connections=16, seconds=10):
    return run_wrk(["-H", "Accept: application/octet-stream", url + path], connections, seconds)


def run_wrk(args, connections=16, seconds=10):
    """wrk's requests/s, p50, p99 and non-2xx count for `args` (URL, headers, script)."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", *args],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+\w+)", out).group(1)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p50, p99, int(errors.group(1)) if errors else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", required=True)
    ap.add_argument("--tiled", required=True)
    ap.add_argument("--work", default="/tmp/tessera-files-bench")
    ap.add_argument("--skip-startup", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    cmds = commands(args)
    from tiled.client import from_uri

    rows = []
    if not args.skip_startup:
        many = many_files(args.work)
        for name in ["tessera", "tiled"]:
            s = Server(name, cmds[name](many), os.path.join(args.work, f"{name}-many.log"))
            try:
                root = s.wait_root()
                full = s.wait_count(10_000)
            finally:
                s.stop()
            rows.append((f"10,000 files: root answers (s), {name}", f"{root:.2f}"))
            rows.append((f"10,000 files: all listed (s), {name}", f"{full:.2f}"))

    big = big_files(args.work)
    path = os.path.join(big, "raw", "scan_0042.nxs")
    ds = "entry/instrument/detector/data"
    with h5py.File(path) as f:
        f[ds][()]  # page cache warm, as for the servers
        whole = timed(lambda: f[ds][()], args.reps)
        frame = timed(lambda: f[ds][30], args.reps)
        want = f[ds][()]
    rows.append(("whole stack (s), h5py direct", f"{statistics.median(whole):.3f}"))
    rows.append(("one frame (ms), h5py direct", f"{statistics.median(frame) * 1e3:.1f}"))
    ref_whole = statistics.median(whole)
    for name in ["tessera", "tiled"]:
        s = Server(name, cmds[name](big), os.path.join(args.work, f"{name}-big.log"))
        try:
            s.wait_root()
            s.wait_count(1, path="raw")  # the scan itself is listed, not only its directory
            c = from_uri(s.url)
            node = c
            for k in STACK.split("/"):
                node = node[k]
            one_cold = timed(lambda: node[30], 1)[0]
            first = timed(lambda: node.read(), 1)[0]
            got = node.read()
            assert np.array_equal(got, want), f"{name} served different values"
            warm = timed(lambda: node.read(), args.reps)
            one = timed(lambda: node[30], args.reps)
            rows.append((f"whole stack (s), {name}, first read", f"{first:.3f} ({first / ref_whole:.2f}x h5py)"))
            rows.append((f"whole stack (s), {name}, again", f"{statistics.median(warm):.3f} ({statistics.median(warm) / ref_whole:.2f}x h5py)"))
            rows.append((f"one frame (ms), {name}, first read", f"{one_cold * 1e3:.1f}"))
            rows.append((f"one frame (ms), {name}, again", f"{statistics.median(one) * 1e3:.1f}"))
            rps, p50, p99, errs = wrk(s.url, f"/api/v1/array/full/{STACK}?slice=30")
            rows.append((f"1-frame slice, 16 connections, {name}", f"{rps:.1f} req/s (p50 {p50}, p99 {p99}, non-2xx {errs})"))
        finally:
            s.stop()
    s = Server("tessera-uncached", cmds["tessera-uncached"](big), os.path.join(args.work, "uncached.log"))
    try:
        s.wait_root()
        s.wait_count(1, path="raw")
        node = from_uri(s.url)
        for k in STACK.split("/"):
            node = node[k]
        cold = timed(lambda: node.read(), args.reps)
        med = statistics.median(cold)
        rows.append(("whole stack (s), tessera, no chunk cache (every read decodes)",
                     f"{med:.3f} ({med / ref_whole:.2f}x h5py; {min(cold):.3f}-{max(cold):.3f})"))
    finally:
        s.stop()
    print("| measurement | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
