"""Heavy concurrent requests against `tessera serve demo`: peak memory and throughput.

Starts the server (``--bin``), then ``--clients`` threads each loop for ``--seconds`` over
requests for large answers of the demo's 10000 x 10000 float64 ``big_image`` (128 MiB native
blocks, large slices, a strided view touching every chunk), reading and discarding the
bodies. The server's resident memory is sampled every 20 ms; its peak (VmHWM) is read at the
end. Prints one table: answers by status, answers/s, MB/s of bodies, peak RSS.

    python loadtest/heavy.py --bin target/release/tessera [--clients 48] [--seconds 30]
    python loadtest/heavy.py --bin ... -- --max-bytes-in-flight 536870912   # server flags

Every answer must be 200, a 4xx or a 503 (the node shedding load); anything else is counted
as an error and makes the script exit 1.
"""

import argparse
import collections
import http.client
import os
import socket
import subprocess
import sys
import threading
import time

REQUESTS = [
    # (name, path)
    ("block 0,0 (128 MiB)", "/api/v1/array/block/nested/images/big_image?block=0,0"),
    ("block 1,1 (128 MiB)", "/api/v1/array/block/nested/images/big_image?block=1,1"),
    ("slice 3000 x 3000 (72 MB)", "/api/v1/array/full/nested/images/big_image?slice=0:3000,0:3000"),
    ("rows 5000:8000 (240 MB)", "/api/v1/array/full/nested/images/big_image?slice=5000:8000,:"),
    ("every other pixel (200 MB, 9 chunks)", "/api/v1/array/full/nested/images/big_image?slice=::2,::2"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def wait_ready(port, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    sys.exit("the server did not answer /healthz")


def client(port, until, index, results, lock):
    conn = None
    k = index
    while time.monotonic() < until:
        name, path = REQUESTS[k % len(REQUESTS)]
        k += 1
        t0 = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            conn.request(
                "GET", path, headers={"Accept": "application/octet-stream", "Accept-Encoding": "zstd"}
            )
            r = conn.getresponse()
            n = 0
            while True:
                b = r.read(1 << 20)
                if not b:
                    break
                n += len(b)
            status = r.status
            if r.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            status, n = f"error: {type(e).__name__}", 0
            conn = None
        with lock:
            results.append((name, status, n, time.monotonic() - t0))


def run(binary, clients=48, seconds=30.0, server_args=()):
    """Runs the load; answers a dict: elapsed, answers [(name, status, bytes, seconds)],
    peak_rss_kib (sampled), hwm_kib (the kernel's peak), alive (the server at the end)."""
    port = free_port()
    proc = subprocess.Popen(
        [binary, "serve", "demo", "--port", str(port), *server_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port, proc)
        results, lock = [], threading.Lock()
        peak = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], status_kib(proc.pid, "VmRSS"))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        start = time.monotonic()
        until = start + seconds
        threads = [threading.Thread(target=client, args=(port, until, i, results, lock)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        done.set()
        sampler.join()
        hwm = status_kib(proc.pid, "VmHWM")
        alive = proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"elapsed": elapsed, "answers": results, "peak_rss_kib": peak[0], "hwm_kib": hwm, "alive": alive}


def unexpected(answers):
    """Statuses other than 200, a 4xx or 503."""
    return sorted({str(s) for _, s, _, _ in answers if not (s == 200 or s == 503 or (isinstance(s, int) and 400 <= s < 500))})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the tessera binary")
    ap.add_argument("--clients", type=int, default=48)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("server_args", nargs="*", help="extra flags for `tessera serve demo`")
    a = ap.parse_args()
    r = run(a.bin, a.clients, a.seconds, a.server_args)
    results, elapsed = r["answers"], r["elapsed"]
    by_status = collections.Counter(str(s) for _, s, _, _ in results)
    ok = [(n, b, t) for n, s, b, t in results if s == 200]
    total_bytes = sum(b for _, b, _ in ok)
    print("| clients | seconds | answers | by status | 200/s | MB/s (200 bodies) | peak RSS (sampled) | VmHWM |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {a.clients} | {elapsed:.1f} | {len(results)} | {dict(sorted(by_status.items()))} "
        f"| {len(ok) / elapsed:.2f} | {total_bytes / elapsed / 1e6:.0f} "
        f"| {r['peak_rss_kib'] / 1024:.0f} MiB | {r['hwm_kib'] / 1024:.0f} MiB |"
    )
    per = collections.defaultdict(list)
    for n, s, b, t in results:
        per[n].append((s, t))
    for name, _ in REQUESTS:
        rows = per.get(name, [])
        oks = sorted(t for s, t in rows if s == 200)
        med = oks[len(oks) // 2] if oks else float("nan")
        print(f"  {name}: {len(rows)} answers, {len(oks)} ok, median {med:.2f} s")
    bad = unexpected(results)
    if bad or not r["alive"]:
        print(f"unexpected answers: {bad}; server alive: {r['alive']}")
        sys.exit(1)


if __name__ == "__main__":
    main()
