#!/usr/bin/env python3
"""An Eiger series (a master file whose frames are external links into bitshuffle/LZ4 data
files) served by `tessera serve directory` and `tiled serve directory` (tiled 0.2.20), beside
h5py + hdf5plugin reading the same master file directly, in one run on one machine.

    python loadtest/files/eiger_bench.py --tessera BIN --tiled TILED_BIN [--work DIR]

1. the real client reading the whole stack (every data file, through the master's links) and
   one frame, against h5py (the physical reference). tessera runs twice: with its chunk cache
   (first read decodes, later ones hit the cache) and with `--cache-bytes 0` (every read
   decodes);
2. one-frame reads per second at 16 connections (wrk, 10 s), every request a different frame.

Run it with the Python of a venv holding tests/compat/requirements.txt; wrk from Debian.
Prints a markdown table.
"""
import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile

import h5py
import hdf5plugin
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bench import Server, run_wrk, timed  # noqa: E402

MASTER = "eiger/series_7_master"


def make_series(work, files, per_file, height, width):
    d = os.path.join(work, "eiger")
    if not os.path.exists(os.path.join(d, f"series_7_data_{files:06d}.h5")):
        spec = importlib.util.spec_from_file_location(
            "make_files", os.path.join(REPO, "tests", "fixtures", "make_files.py"))
        make = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(make)
        make.eiger_series(d, files=files, per_file=per_file, height=height, width=width)
        # Only the series: the links fixture written beside it is not part of this bench.
        subprocess.run(["rm", "-rf", os.path.join(work, "eiger_links")], check=True)
    return d


def wrk_frames(url, links, frames, connections=16, seconds=10):
    """wrk with a Lua script that asks for a different frame on every request."""
    paths = [f"/api/v1/array/full/{MASTER}/entry/data/{link}?slice={i}"
             for link in links for i in range(frames)]
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write("paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n"
                 "i = 0\n"
                 "request = function()\n"
                 "  i = i + 1\n"
                 "  return wrk.format('GET', paths[(i % #paths) + 1],"
                 " {Accept = 'application/octet-stream'})\n"
                 "end\n")
    script.close()
    try:
        return run_wrk(["-s", script.name, url], connections, seconds)
    finally:
        os.unlink(script.name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", required=True)
    ap.add_argument("--tiled", required=True)
    ap.add_argument("--work", default="/tmp/tessera-eiger-bench")
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--per-file", type=int, default=50)
    ap.add_argument("--height", type=int, default=1065)
    ap.add_argument("--width", type=int, default=1030)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    series = make_series(args.work, args.files, args.per_file, args.height, args.width)
    links = [f"data_{i + 1:06d}" for i in range(args.files)]
    master = os.path.join(series, "series_7_master.h5")
    with h5py.File(master) as f:
        read_all = lambda: [f[f"entry/data/{link}"][()] for link in links]  # noqa: E731
        read_all()  # page cache warm, as for the servers
        whole = timed(read_all, args.reps)
        frame = timed(lambda: f[f"entry/data/{links[0]}"][7], args.reps)
        want = read_all()
    size = sum(w.nbytes for w in want)
    on_disk = sum(os.path.getsize(os.path.join(series, n)) for n in os.listdir(series))
    ref = statistics.median(whole)
    rows = [
        ("stack", f"{sum(len(w) for w in want)} frames of {args.height} x {args.width} uint32, "
                  f"{size / 1e6:.0f} MB decoded, {on_disk / 1e6:.0f} MB on disk"),
        ("whole stack (s), h5py + hdf5plugin direct", f"{ref:.3f}"),
        ("one frame (ms), h5py + hdf5plugin direct", f"{statistics.median(frame) * 1e3:.2f}"),
    ]
    plugins = dict(os.environ, HDF5_PLUGIN_PATH=hdf5plugin.PLUGINS_PATH)
    commands = {
        "tessera": lambda p: [args.tessera, "serve", "directory", args.work, "--public",
                              "--port", str(p)],
        "tessera, no chunk cache": lambda p: [args.tessera, "serve", "directory", args.work,
                                              "--public", "--cache-bytes", "0", "--port", str(p)],
        "tiled": lambda p: [args.tiled, "serve", "directory", args.work, "--public",
                            "--port", str(p)],
    }
    from tiled.client import from_uri

    for name, command in commands.items():
        os.environ.update(plugins if name == "tiled" else {})
        log = os.path.join(args.work, f"{name.split(',')[0]}.log")
        s = Server(name, command, log)
        try:
            s.wait_root()
            s.wait_count(1, path="eiger/series_7_master/entry/data")
            c = from_uri(s.url)
            nodes = [c[f"{MASTER}/entry/data/{link}"] for link in links]
            read_all = lambda: [n.read() for n in nodes]  # noqa: E731
            one_cold = timed(lambda: nodes[0][7], 1)[0]
            first = timed(read_all, 1)[0]
            got = read_all()
            assert all(np.array_equal(g, w) for g, w in zip(got, want)), f"{name}: other values"
            again = statistics.median(timed(read_all, args.reps))
            one = statistics.median(timed(lambda: nodes[0][7], args.reps))
            rows.append((f"whole stack (s), {name}, first read", f"{first:.3f} ({first / ref:.2f}x h5py)"))
            rows.append((f"whole stack (s), {name}, again", f"{again:.3f} ({again / ref:.2f}x h5py)"))
            rows.append((f"one frame (ms), {name}, first / again", f"{one_cold * 1e3:.1f} / {one * 1e3:.1f}"))
            rps, p50, p99, errs = wrk_frames(s.url, links, args.per_file)
            rows.append((f"one-frame reads, 16 connections, {name}",
                         f"{rps:.1f} req/s (p50 {p50}, p99 {p99}, non-2xx {errs})"))
        finally:
            s.stop()
            os.environ.pop("HDF5_PLUGIN_PATH", None)
    print("| measurement | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
