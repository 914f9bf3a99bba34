#!/usr/bin/env python3
"""p50/p99 of the hot catalog operations over HTTP, for any server speaking Tiled's API (the
real Tiled, or tessera), on the tree made by load.sh / load_tiled.sh.

  bench_http.py BASE_URL [--reps 200] [--budget 60] [--api-key KEY] [--restore-cmd CMD]
                [--only a,b] [--json FILE]

BASE_URL is the server root, e.g. http://127.0.0.1:8001 (requests go to BASE_URL/api/v1/...).
One keep-alive connection (httpx), sequential requests, wall-clock time to the full body.
Each operation: 3 warm-up requests, then up to --reps repetitions with varied parameters,
stopping early after --budget seconds (at least 5). The DELETE of /proposals/p0001 runs only
when --restore-cmd is given (run before every DELETE to put the subtree back, untimed), e.g.
--restore-cmd 'loadtest/catalog/load_tiled.sh restore'.
Needs httpx (bench_sql.sh's venv has it: $BENCH_VENV/bin/python).
"""
import argparse
import json
import random
import statistics
import subprocess
import sys
import time

import httpx

MATERIALS = ["silicon", "gold", "quartz", "collagen", "lysozyme", "graphite", "copper",
             "platinum", "halite", "cellulose", "hematite", "water"]


def pct(values, p):
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def eq(key, value):
    return {"filter[eq][condition][key]": key, "filter[eq][condition][value]": json.dumps(value)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--restore-cmd", default=None)
    ap.add_argument("--only", default="")
    ap.add_argument("--json")
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()
    only = [o for o in args.only.split(",") if o]
    api = args.base.rstrip("/") + "/api/v1"
    headers = {"Accept": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Apikey {args.api_key}"
    client = httpx.Client(headers=headers, timeout=args.timeout)
    rng = random.Random(42)
    results = []

    def get(path, params=None):
        r = client.get(api + path, params=params)
        if r.status_code != 200:
            raise SystemExit(f"GET {r.url} -> {r.status_code}: {r.text[:500]}")
        return r.json()

    def measure(name, make, method="GET", warm=3, before=None, after=None):
        """make(i) -> (path, params). Times one request each."""
        if only and not any(o in name for o in only):
            return
        times, sizes, counts = [], [], []
        start = time.monotonic()
        i = 0
        while True:
            path, params = make(i)
            if before:
                before()
            url = path if path.startswith("http") else api + path
            t0 = time.perf_counter()
            r = client.request(method, url, params=params)
            body = r.content
            dt = (time.perf_counter() - t0) * 1000
            if after:
                after(r)
            if r.status_code >= 300:
                raise SystemExit(f"{method} {r.url} -> {r.status_code}: {body[:500]!r}")
            i += 1
            if i > warm:
                times.append(dt)
                sizes.append(len(body))
                if method == "GET":
                    js = r.json()
                    counts.append(len(js.get("data") or []) if isinstance(js.get("data"), list) else 0)
            if len(times) >= args.reps or (len(times) >= 5 and time.monotonic() - start > args.budget):
                break
        res = {"op": name, "reps": len(times), "p50": pct(times, 50), "p99": pct(times, 99),
               "mean": statistics.mean(times), "bytes": statistics.mean(sizes),
               "items": statistics.mean(counts) if counts else 0}
        results.append(res)
        print(f"-- {name}: reps {res['reps']} p50 {res['p50']:.1f} ms p99 {res['p99']:.1f} ms "
              f"mean {res['mean']:.1f} ms, {res['items']:.0f} items, {res['bytes']:.0f} bytes",
              flush=True)

    # Inputs: the number of runs, the time span, some uids.
    raw_count = get("/search/raw", {"fields": "count"})["meta"]["count"]
    first = get("/search/raw", {"sort": "time", "page[limit]": 1})["data"][0]["attributes"]["metadata"]
    last = get("/search/raw", {"sort": "-time", "page[limit]": 1})["data"][0]["attributes"]["metadata"]
    t_lo, t_hi = first["time"], last["time"]
    uids = []
    for s in rng.sample(range(1, raw_count + 1), 20):
        d = get("/search/raw", {**eq("scan_id", s), "page[limit]": 1})["data"]
        if d:
            uids.append(d[0]["attributes"]["metadata"]["uid"].split("-")[0])
    print(f"{args.base}: /raw has {raw_count} runs, time {t_lo}..{t_hi}", flush=True)

    lim = {"page[limit]": 100}
    measure("page: first 100", lambda i: ("/search/raw", lim))
    # Keyset: follow links.next from the first page (cursor pagination when the server emits it).
    state = {"next": get("/search/raw", lim)["links"]["next"]}

    def keep_next(r):
        state["next"] = r.json()["links"]["next"] or get("/search/raw", lim)["links"]["next"]

    measure("page: follow links.next (keyset walk from the start)",
            lambda i: (state["next"], None), after=keep_next)
    measure("page: page[offset] random in [0, N)",
            lambda i: ("/search/raw", {**lim, "page[offset]": rng.randrange(0, raw_count)}))
    measure("count: fields=count (client len(), exact)",
            lambda i: ("/search/raw", {"fields": "count"}))
    measure("count: meta.count of a page[limit]=0 search",
            lambda i: ("/search/raw", {"page[limit]": 0}))
    measure("eq scan_id (page of 100)",
            lambda i: ("/search/raw", {**lim, **eq("scan_id", rng.randint(1, raw_count))}))
    plans = ["count", "scan", "rel_scan", "grid_scan", "tune_max", "spiral"]
    measure("eq plan_name, common value (page of 100)",
            lambda i: ("/search/raw", {**lim, **eq("plan_name", plans[i % len(plans)])}))

    def window(i, hours=24):
        t = rng.uniform(t_lo, t_hi)
        return ("/search/raw", [("page[limit]", 100),
                                ("filter[comparison][condition][operator]", "ge"),
                                ("filter[comparison][condition][key]", "time"),
                                ("filter[comparison][condition][value]", json.dumps(t)),
                                ("filter[comparison][condition][operator]", "lt"),
                                ("filter[comparison][condition][key]", "time"),
                                ("filter[comparison][condition][value]", json.dumps(t + hours * 3600))])
    measure("comparison time in a 24 h window (page of 100)", window)
    measure("comparison time > random (page of 100)", lambda i: ("/search/raw", {
        **lim, "filter[comparison][condition][operator]": "gt",
        "filter[comparison][condition][key]": "time",
        "filter[comparison][condition][value]": json.dumps(rng.uniform(t_lo, t_hi))}))
    if uids:
        measure("fulltext rare word (uid segment)", lambda i: (
            "/search/raw", {**lim, "filter[fulltext][condition][text]": uids[i % len(uids)]}))
    measure("fulltext common word (material, ~3% of runs)", lambda i: (
        "/search/raw", {**lim, "filter[fulltext][condition][text]": MATERIALS[i % len(MATERIALS)]}))
    measure("sort=-time latest 10", lambda i: ("/search/raw", {"sort": "-time", "page[limit]": 10}))
    measure("sort=-time page of 100 at offset 0..9900", lambda i: (
        "/search/raw", {"sort": "-time", "page[limit]": 100,
                        "page[offset]": 100 * rng.randrange(0, 100)}))
    measure("distinct plan_name with counts",
            lambda i: ("/distinct/raw", {"metadata": "plan_name", "counts": "true"}))
    if args.restore_cmd:
        def restore():
            subprocess.run(args.restore_cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
        measure("DELETE /proposals/p0001 (10,000 nodes, recursive)", lambda i: (
            "/metadata/proposals/p0001", {"recursive": "true", "external_only": "false"}),
            method="DELETE", warm=0, before=restore)
        restore()

    print("\n| operation | reps | p50 ms | p99 ms | mean ms | items | bytes |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['op']} | {r['reps']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['mean']:.1f} | "
              f"{r['items']:.0f} | {r['bytes']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"base": args.base, "results": results}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
