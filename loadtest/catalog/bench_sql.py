#!/usr/bin/env python3
"""p50/p99 of tessera's hot catalog queries, run directly in SQL against a schema filled by
load.sh, with EXPLAIN (ANALYZE, BUFFERS) of each to confirm index use.

The SQL is written the way api/src/catalog/postgres.rs compiles a search: the page is
`SELECT <node columns> FROM nodes n LEFT JOIN LATERAL (<first data source>) ds ON true
 WHERE n.parent = $1 AND (<filters>) ORDER BY ... LIMIT $l OFFSET $o`, filters are
`metadata @> doc` (Eq), `jsonb_typeof(e) = jsonb_typeof(v) AND e op v` on `metadata -> 'key'`
(Comparison), `metadata_text @@ to_tsquery('simple', ...)` (FullText); a filtered count is
exact up to 10,000 (`count(*)` over a LIMIT 10001 subquery) and the planner's estimate above.

Usage (see bench_sql.sh, which makes the venv):
  bench_sql.py [--schema tessera_bench] [--reps 200] [--budget 60] [--only a,b] [--no-explain]
Each query runs 3 warm-up times, then up to --reps times with varied parameters, stopping
early when --budget seconds are used (at least 5 repetitions). Times are client wall-clock
(psycopg, binary protocol, rows fetched), on a warm cache.
"""
import argparse
import json
import os
import random
import re
import statistics
import sys
import time

import psycopg
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Int8

NODE_COLUMNS = (
    "n.id, n.key, n.structure_family, n.metadata, n.specs, n.access_tags, "
    "n.data_version, ds.structure, ds.source{child_count}"
)
SOURCE_JOIN = (
    "LEFT JOIN LATERAL ( "
    "SELECT d.structure, jsonb_build_object( "
    "'structure_family', d.structure_family, 'mimetype', d.mimetype, "
    "'parameters', d.parameters, 'management', d.management, "
    "'assets', coalesce((SELECT jsonb_agg(jsonb_build_object('data_uri', a.data_uri, "
    "'is_directory', a.is_directory, 'parameter', x.parameter, 'num', x.num) "
    "ORDER BY x.num, a.id) "
    "FROM data_source_assets x JOIN assets a ON a.id = x.asset_id "
    "WHERE x.data_source_id = d.id), '[]'::jsonb)) AS source "
    "FROM data_sources d WHERE d.node_id = n.id ORDER BY d.id LIMIT 1) ds ON true"
)
EXACT_COUNT_LIMIT = 10_000
TIME = "n.metadata -> 'time'"
MATERIALS = ["silicon", "gold", "quartz", "collagen", "lysozyme", "graphite", "copper",
             "platinum", "halite", "cellulose", "hematite", "water"]


def pct(values, p):
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def plan_summary(plan):
    """Scan nodes with their relation/index, e.g. 'Index Scan nodes_parent_id'."""
    out = []

    def walk(p):
        t = p.get("Node Type", "")
        if "Scan" in t or t in ("ModifyTable",):
            what = p.get("Index Name") or p.get("Relation Name") or ""
            out.append(f"{t} {what}".strip())
        for c in p.get("Plans", []):
            walk(c)

    walk(plan)
    seen = []
    for x in out:
        if x not in seen:
            seen.append(x)
    return "; ".join(seen)


class Bench:
    def __init__(self, conn, args):
        self.conn = conn
        self.args = args
        self.results = []
        self.rng = random.Random(42)

    def q(self, sql, params=()):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def one(self, sql, params=()):
        return self.q(sql, params)[0][0]

    def explain(self, name, sql, params, rollback=False):
        if self.args.no_explain:
            return ""
        with self.conn.cursor() as cur:
            # Each EXPLAIN ANALYZE of a DELETE in its own rolled-back transaction.
            if rollback:
                cur.execute("BEGIN")
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
            js = cur.fetchone()[0]
            if rollback:
                cur.execute("ROLLBACK")
                cur.execute("BEGIN")
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
            text = "\n".join(r[0] for r in cur.fetchall())
            if rollback:
                cur.execute("ROLLBACK")
        plan = js[0]["Plan"]
        summary = plan_summary(plan)
        seq = bool(re.search(r"Seq Scan on nodes\b", text))
        print(f"\n### EXPLAIN {name}{'  <-- Seq Scan on nodes' if seq else ''}\n{text}", flush=True)
        return summary + (" [SEQ SCAN on nodes]" if seq else "")

    def measure(self, name, make, fetch=True, rollback=False, explain=True, note=""):
        """make(i) -> (sql, params); times executions (fetching all rows)."""
        if self.args.only and not any(o in name for o in self.args.only):
            return
        sql0, params0 = make(0)
        summary = self.explain(name, sql0, params0, rollback) if explain else ""
        times, rows = [], 0
        warm = 0 if rollback else 3
        start = time.monotonic()
        i = 0
        while True:
            sql, params = make(i + 1)
            with self.conn.cursor() as cur:
                t0 = time.perf_counter()
                if rollback:
                    cur.execute("BEGIN")
                cur.execute(sql, params)
                got = cur.fetchall() if (fetch and cur.description) else []
                affected = cur.rowcount
                if rollback:
                    cur.execute("ROLLBACK")
                dt = (time.perf_counter() - t0) * 1000
            i += 1
            if i > warm:
                times.append(dt)
                rows += len(got) if not rollback else affected
            n = len(times)
            if n >= self.args.reps or (n >= 5 and time.monotonic() - start > self.args.budget):
                break
        r = {
            "query": name, "reps": len(times), "p50": pct(times, 50), "p99": pct(times, 99),
            "mean": statistics.mean(times), "rows": rows / max(len(times), 1),
            "plan": summary, "note": note,
        }
        self.results.append(r)
        print(f"-- {name}: reps {r['reps']} p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms "
              f"mean {r['mean']:.2f} ms rows/rep {r['rows']:.1f}", flush=True)

    def measure_fn(self, name, fn, note=""):
        """fn(i) runs one repetition itself (several statements) and returns a row count."""
        if self.args.only and not any(o in name for o in self.args.only):
            return
        times, rows = [], 0
        start = time.monotonic()
        for i in range(3):
            fn(i)
        i = 0
        while True:
            t0 = time.perf_counter()
            got = fn(i + 3)
            times.append((time.perf_counter() - t0) * 1000)
            rows += got
            i += 1
            if i >= self.args.reps or (i >= 5 and time.monotonic() - start > self.args.budget):
                break
        r = {"query": name, "reps": len(times), "p50": pct(times, 50), "p99": pct(times, 99),
             "mean": statistics.mean(times), "rows": rows / len(times), "plan": "", "note": note}
        self.results.append(r)
        print(f"-- {name}: reps {r['reps']} p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms "
              f"mean {r['mean']:.2f} ms value/rep {r['rows']:.1f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schema", default=os.environ.get("SCHEMA", "tessera_bench"))
    ap.add_argument("--dsn", default=os.environ.get(
        "DSN", "host=127.0.0.1 port=5432 dbname=test user=root"))
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--budget", type=float, default=60.0,
                    help="seconds per query before stopping early (min 5 reps)")
    ap.add_argument("--only", default="", help="comma-separated substrings of query names")
    ap.add_argument("--no-explain", action="store_true")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--generic", action="store_true",
                    help="prepare every statement and force generic plans (what a client that "
                         "caches prepared statements may get after 5 executions)")
    args = ap.parse_args()
    args.only = [o for o in args.only.split(",") if o]

    conn = psycopg.connect(args.dsn, autocommit=True,
                           options=f"-c search_path={args.schema}")
    # Like tokio-postgres' client.query(&str): an unnamed statement per execution, so every
    # execution is planned with its parameter values (psycopg would otherwise prepare after 5
    # executions, and PostgreSQL may then switch to a generic plan). --generic shows that case.
    conn.prepare_threshold = 0 if args.generic else None
    if args.generic:
        conn.execute("SET plan_cache_mode = force_generic_plan")
    b = Bench(conn, args)
    rng = b.rng

    has_cc = b.one("SELECT count(*) FROM information_schema.columns WHERE table_schema = %s "
                   "AND table_name = 'nodes' AND column_name = 'child_count'", (args.schema,)) > 0
    cols = NODE_COLUMNS.format(child_count=", n.child_count" if has_cc else "")
    raw = b.one("SELECT id FROM nodes WHERE parent = (SELECT id FROM nodes WHERE parent IS NULL) "
                "AND key = 'raw'")
    p0001 = b.one("SELECT id FROM nodes WHERE key = 'p0001' AND parent = "
                  "(SELECT id FROM nodes WHERE key = 'proposals' AND parent = "
                  "(SELECT id FROM nodes WHERE parent IS NULL))")
    # tessera (tokio-postgres) binds i64 as int8; psycopg would pick int2 for small ints.
    raw, p0001 = Int8(raw), Int8(p0001)
    total = b.one("SELECT reltuples::bigint FROM pg_class WHERE oid = 'nodes'::regclass")
    lo, hi = b.q("SELECT min(id), max(id) FROM nodes WHERE parent = %s", (raw,))[0]
    nruns = b.one("SELECT child_count FROM nodes WHERE id = %s", (raw,)) if has_cc else \
        b.one("SELECT count(*) FROM nodes WHERE parent = %s", (raw,))
    # Runs of /raw have scan_id 1..nruns (load.sql); fetch times and uids of a random sample.
    sample_ids = rng.sample(range(1, nruns + 1), min(400, nruns))
    runs = b.q("SELECT (metadata->>'scan_id')::bigint, metadata->'time', metadata->>'uid' "
               "FROM nodes WHERE parent = %s AND metadata @> ANY(%s::jsonb[])",
               (raw, [json.dumps({"scan_id": s}) for s in sample_ids]))
    time_lo, time_hi = min(float(r[1]) for r in runs), max(float(r[1]) for r in runs)
    indexes = [r[0] for r in b.q(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'nodes' "
        "ORDER BY 1", (args.schema,))]
    print(f"schema {args.schema}: ~{total} nodes, /raw id {raw} with {nruns} children "
          f"(ids {lo}..{hi}), p0001 id {p0001}\nindexes on nodes: {', '.join(indexes)}\n"
          f"PostgreSQL: {b.one('SELECT version()')}", flush=True)

    def page(where="", order="ORDER BY n.id", limit=100, offset=0, extra=(), few=False):
        """postgres.rs page_sql: the page is chosen on nodes alone, then joined to its data
        sources; with few=True (filters, bounded count <= 10,000) the matches are gathered
        first in a MATERIALIZED CTE through the filters' indexes, then sorted."""
        if few:
            inner = (f"WITH m AS MATERIALIZED (SELECT n.id FROM nodes n WHERE n.parent = %s{where}) "
                     f"SELECT n.* FROM m JOIN nodes n ON n.id = m.id {order} LIMIT %s OFFSET %s")
        else:
            inner = (f"SELECT n.* FROM nodes n WHERE n.parent = %s{where} {order} "
                     f"LIMIT %s OFFSET %s")
        sql = f"SELECT {cols} FROM ({inner}) n {SOURCE_JOIN} {order}"
        return sql, (raw, *extra, Int8(limit), Int8(offset))

    def fpage(where, extra=(), **kw):
        """A filtered page as tessera issues it: the few-matches shape when the bounded count
        (run here, untimed: make() is called before the clock starts) is <= 10,000."""
        few = b.one(*bounded_count(where, extra)) <= EXACT_COUNT_LIMIT
        return page(where, extra=extra, few=few, **kw)

    def page_join_first(where="", order="ORDER BY n.id", limit=100, offset=0, extra=()):
        """The earlier postgres.rs shape: the LATERAL data-source join under LIMIT/OFFSET."""
        sql = (f"SELECT {cols} FROM nodes n {SOURCE_JOIN} WHERE n.parent = %s{where} "
               f"{order} LIMIT %s OFFSET %s")
        return sql, (raw, *extra, Int8(limit), Int8(offset))

    def page_ids_first(where="", order="ORDER BY n.id", limit=100, offset=0, extra=()):
        """Proposed: choose the page's ids on nodes alone (index-only when possible), then
        join the rows and their data sources, so OFFSET does not run the join for skipped rows."""
        sql = (f"SELECT {cols} FROM (SELECT n.id FROM nodes n WHERE n.parent = %s{where} "
               f"{order} LIMIT %s OFFSET %s) p JOIN nodes n ON n.id = p.id {SOURCE_JOIN} {order}")
        return sql, (raw, *extra, Int8(limit), Int8(offset))

    def bounded_count(where, extra=()):
        return (f"SELECT count(*) FROM (SELECT 1 FROM nodes n WHERE n.parent = %s{where} "
                f"LIMIT {EXACT_COUNT_LIMIT + 1}) s", (raw, *extra))

    def estimate(where, extra=()):
        row = b.q(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM nodes n WHERE n.parent = %s{where}",
                  (raw, *extra))
        return int(row[0][0][0]["Plan"]["Plan Rows"])

    relpages = b.one("SELECT relpages FROM pg_class WHERE oid = 'nodes'::regclass")
    sample_pct = min(100.0, 100.0 * 4000 / max(relpages, 1))  # about 4000 pages (32 MB)

    def sampled_count(where, extra=()):
        """Proposed: a block sample of ~4000 pages; matches / children seen in the sample,
        times the container's child_count (a ratio estimate, so the container's own share of
        the sample does not matter)."""
        hit, seen = b.q(f"SELECT count(*) FILTER (WHERE true{where}), count(*) "
                        f"FROM nodes n TABLESAMPLE SYSTEM ({sample_pct:.4f}) WHERE n.parent = %s",
                        (*extra, raw))[0]
        return round(hit / seen * nruns) if seen else None

    def proposed_count(where, extra=()):
        n = b.one(*bounded_count(where, extra))
        if n > EXACT_COUNT_LIMIT:
            s = sampled_count(where, extra)
            n = min(nruns, max(n, s if s is not None else estimate(where, extra)))
        return n

    def tessera_count(where, extra=()):
        """What the catalog returns as meta.count for a filtered search."""
        n = b.one(*bounded_count(where, extra))
        if n > EXACT_COUNT_LIMIT:
            n = max(estimate(where, extra), n)
        return n

    # --- Pages --------------------------------------------------------------------------
    b.measure("page: first 100 (ORDER BY id)", lambda i: page())
    b.measure("page: keyset 100 after random id (id > last)",
              lambda i: page(" AND n.id > %s", extra=(Int8(rng.randint(lo, hi)),)))
    b.measure("page: OFFSET random in [0, N) (vs keyset)",
              lambda i: page(offset=rng.randrange(0, nruns)))
    b.measure("page: OFFSET random, data-source join under OFFSET (earlier shape)",
              lambda i: page_join_first(offset=rng.randrange(0, nruns)))
    b.measure("page: OFFSET 100,000", lambda i: page(offset=100_000 + 100 * (i % 50)))
    b.measure("page: OFFSET random, ids first then join (proposed)",
              lambda i: page_ids_first(offset=rng.randrange(0, nruns)))

    # --- Counts of the 1M-child container ------------------------------------------------
    if has_cc:
        b.measure("count: child_count column (unfiltered, what tessera serves)",
                  lambda i: ("SELECT child_count FROM nodes WHERE id = %s", (raw,)),
                  explain=False)
    b.measure("count: exact count(*) of children",
              lambda i: ("SELECT count(*) FROM nodes n WHERE n.parent = %s", (raw,)))
    b.measure("count: Tiled approx_len (pg_stats MCV freq x reltuples)", lambda i: (
        "SELECT (SELECT reltuples FROM pg_class WHERE oid = 'nodes'::regclass) * f.freq "
        "FROM (SELECT unnest(most_common_vals::text::bigint[]) AS parent, "
        "unnest(most_common_freqs) AS freq FROM pg_stats WHERE schemaname = current_schema() "
        "AND tablename = 'nodes' AND attname = 'parent') f WHERE f.parent = %s", (raw,)),
        explain=False)
    b.measure("count: EXPLAIN (FORMAT JSON) row estimate",
              lambda i: ("EXPLAIN (FORMAT JSON) SELECT 1 FROM nodes n WHERE n.parent = %s",
                         (raw,)), explain=False)
    b.measure("count: bounded count(*) LIMIT 10001 (lower bound)",
              lambda i: bounded_count(""))
    if not args.only or any("count" in o for o in args.only):
        exact = b.one("SELECT count(*) FROM nodes WHERE parent = %s", (raw,))
        est = estimate("")
        tiled = b.q(
            "SELECT (SELECT reltuples FROM pg_class WHERE oid = 'nodes'::regclass) * f.freq "
            "FROM (SELECT unnest(most_common_vals::text::bigint[]) AS parent, "
            "unnest(most_common_freqs) AS freq FROM pg_stats WHERE schemaname = current_schema() "
            "AND tablename = 'nodes' AND attname = 'parent') f WHERE f.parent = %s", (raw,))
        print(f"-- count accuracy for /raw: exact {exact}, EXPLAIN estimate {est} "
              f"({100 * (est - exact) / exact:+.2f}%), pg_stats estimate "
              f"{int(tiled[0][0]) if tiled else None}", flush=True)

    # --- Eq on scan_id (GIN jsonb_path_ops) ---------------------------------------------
    eq = " AND (n.metadata @> %s)"
    b.measure("eq scan_id: page", lambda i: fpage(
        eq, extra=(Jsonb({"scan_id": rng.randint(1, nruns)}),)))
    b.measure("eq scan_id: count (bounded)", lambda i: bounded_count(
        eq, extra=(Jsonb({"scan_id": rng.randint(1, nruns)}),)))
    plans = ["count", "scan", "rel_scan", "grid_scan", "tune_max", "spiral"]
    b.measure("eq plan_name (common value): page", lambda i: fpage(
        eq, extra=(Jsonb({"plan_name": plans[i % len(plans)]}),)))
    b.measure_fn("eq plan_name (common value): tessera count (bounded, then EXPLAIN)",
                 lambda i: tessera_count(eq, (Jsonb({"plan_name": plans[i % len(plans)]}),)))
    b.measure_fn("eq plan_name (common value): proposed count (bounded, then block sample)",
                 lambda i: proposed_count(eq, (Jsonb({"plan_name": plans[i % len(plans)]}),)))

    # --- Comparison on time --------------------------------------------------------------
    cmp2 = (f" AND (jsonb_typeof({TIME}) = jsonb_typeof(%s) AND {TIME} >= %s)"
            f" AND (jsonb_typeof({TIME}) = jsonb_typeof(%s) AND {TIME} < %s)")

    def window(hours):
        t = rng.uniform(time_lo, time_hi)
        a, z = Jsonb(t), Jsonb(t + hours * 3600)
        return (a, a, z, z)

    b.measure("comparison time in 24 h window: page",
              lambda i: fpage(cmp2, extra=window(24)))
    b.measure("comparison time in 24 h window: count (bounded)",
              lambda i: bounded_count(cmp2, extra=window(24)))
    b.measure("comparison time > random (open range): page", lambda i: fpage(
        f" AND (jsonb_typeof({TIME}) = jsonb_typeof(%s) AND {TIME} > %s)",
        extra=(Jsonb(rng.uniform(time_lo, time_hi)),) * 2))
    b.measure_fn("comparison time > random (open range): tessera count", lambda i: tessera_count(
        f" AND (jsonb_typeof({TIME}) = jsonb_typeof(%s) AND {TIME} > %s)",
        (Jsonb(rng.uniform(time_lo, time_hi)),) * 2))

    # --- Full text -----------------------------------------------------------------------
    ft = " AND (n.metadata_text @@ to_tsquery('simple', %s))"
    uids = [r[2].split("-")[0] for r in runs]
    b.measure("fulltext rare word (a uid segment): page",
              lambda i: fpage(ft, extra=(uids[i % len(uids)],)))
    b.measure("fulltext rare word: count (bounded)",
              lambda i: bounded_count(ft, extra=(uids[i % len(uids)],)))
    b.measure("fulltext common word (a material, ~3% of runs): page",
              lambda i: fpage(ft, extra=(MATERIALS[i % len(MATERIALS)],)))
    b.measure_fn("fulltext common word: tessera count (bounded, then EXPLAIN)",
                 lambda i: tessera_count(ft, (MATERIALS[i % len(MATERIALS)],)))
    b.measure_fn("fulltext common word: proposed count (bounded, then block sample)",
                 lambda i: proposed_count(ft, (MATERIALS[i % len(MATERIALS)],)))

    # --- Filtered counts: exact vs what tessera reports (bounded count, then EXPLAIN) -------
    if not args.only or any("accuracy" in o for o in args.only):
        print("\n-- filtered count accuracy (exact count(*) vs tessera's count: exact up to "
              f"{EXACT_COUNT_LIMIT}, else max(planner estimate, {EXACT_COUNT_LIMIT + 1}))")
        cases = [
            ("eq plan_name=count", eq, (Jsonb({"plan_name": "count"}),)),
            ("eq plan_name=tune_max", eq, (Jsonb({"plan_name": "tune_max"}),)),
            ("eq beamline=CHX", eq, (Jsonb({"beamline": "CHX"}),)),
            ("time >= median-ish", f" AND (jsonb_typeof({TIME}) = jsonb_typeof(%s) AND {TIME} >= %s)",
             (Jsonb((time_lo + time_hi) / 2),) * 2),
            ("time in 30 days", cmp2, (Jsonb(time_lo), Jsonb(time_lo), Jsonb(time_lo + 30 * 86400),
                                       Jsonb(time_lo + 30 * 86400))),
            ("fulltext silicon", ft, ("silicon",)),
            ("fulltext smith", ft, ("smith",)),
        ]
        accuracy = []
        for label, where, extra in cases:
            exact = b.one(f"SELECT count(*) FROM nodes n WHERE n.parent = %s{where}", (raw, *extra))
            reported = tessera_count(where, extra)
            est = estimate(where, extra)
            proposed = proposed_count(where, extra)
            accuracy.append((label, exact, reported, est, proposed))
            print(f"--   {label}: exact {exact}, planner estimate {est}, tessera reports {reported} "
                  f"({100 * (reported - exact) / max(exact, 1):+.0f}%), proposed (sample) "
                  f"{proposed} ({100 * (proposed - exact) / max(exact, 1):+.0f}%)", flush=True)
        b.accuracy = accuracy

    # --- Sorting by time ------------------------------------------------------------------
    desc = f"ORDER BY {TIME} DESC NULLS FIRST, n.id DESC"
    b.measure("sort=-time: latest 10", lambda i: page(order=desc, limit=10))
    b.measure("sort=-time: page 100 at OFFSET 0..9900",
              lambda i: page(order=desc, offset=100 * rng.randrange(0, 100)))

    # --- Distinct plan_name with counts ----------------------------------------------------
    b.measure("distinct plan_name with counts (GROUP BY over the container)", lambda i: (
        "SELECT v, count(*) FROM (SELECT n.metadata -> 'plan_name' AS v, n.id "
        "FROM nodes n WHERE n.parent = %s) s WHERE v IS NOT NULL "
        "GROUP BY v ORDER BY count(*) DESC, min(id)", (raw,)))

    # --- Delete of the 10,000-node subtree -------------------------------------------------
    b.measure("delete p0001 subtree (10,000 nodes via closure), ROLLBACK", lambda i: (
        "DELETE FROM nodes WHERE id IN (SELECT descendant FROM node_closure WHERE ancestor = %s)",
        (p0001,)), fetch=False, rollback=True)

    # The whole transaction of postgres.rs `delete` (lock, the subtree's data sources for the
    # response and the external_only check, its assets, the DELETE, orphan assets), rolled back.
    def delete_tx(i):
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT n.id, n.child_count FROM nodes n WHERE n.id = %s FOR UPDATE"
                        if has_cc else "SELECT n.id FROM nodes n WHERE n.id = %s FOR UPDATE",
                        (p0001,))
            cur.execute(f"SELECT ds.source FROM node_closure c JOIN nodes n ON n.id = c.descendant "
                        f"{SOURCE_JOIN} WHERE c.ancestor = %s AND ds.source IS NOT NULL", (p0001,))
            cur.fetchall()
            cur.execute("SELECT x.asset_id FROM node_closure c JOIN data_sources d "
                        "ON d.node_id = c.descendant JOIN data_source_assets x "
                        "ON x.data_source_id = d.id WHERE c.ancestor = %s", (p0001,))
            assets = [r[0] for r in cur.fetchall()]
            cur.execute("DELETE FROM nodes WHERE id IN "
                        "(SELECT descendant FROM node_closure WHERE ancestor = %s)", (p0001,))
            n = cur.rowcount
            cur.execute("DELETE FROM assets a WHERE a.id = ANY(%s) AND NOT EXISTS "
                        "(SELECT 1 FROM data_source_assets x WHERE x.asset_id = a.id)", (assets,))
            cur.execute("ROLLBACK")
        return n

    b.measure_fn("delete p0001: whole tessera delete transaction, ROLLBACK", delete_tx)

    # --- Summary -----------------------------------------------------------------------------
    print("\n| query | reps | p50 ms | p99 ms | mean ms | rows/rep | plan (scans) |")
    print("|---|---|---|---|---|---|---|")
    for r in b.results:
        print(f"| {r['query']} | {r['reps']} | {r['p50']:.2f} | {r['p99']:.2f} | "
              f"{r['mean']:.2f} | {r['rows']:.0f} | {r['plan']} |")
    acc = getattr(b, "accuracy", [])
    if acc:
        print("\n| filtered count | exact | planner estimate | tessera reports (bounded, "
              "then estimate) | proposed (bounded, then block sample) |")
        print("|---|---|---|---|---|")
        for label, exact, reported, est, proposed in acc:
            print(f"| {label} | {exact} | {est} | {reported} ({100 * (reported - exact) / max(exact, 1):+.0f}%) "
                  f"| {proposed} ({100 * (proposed - exact) / max(exact, 1):+.0f}%) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"schema": args.schema, "indexes": indexes, "results": b.results,
                       "count_accuracy": acc}, f, indent=1)
    conn.close()


if __name__ == "__main__":
    sys.exit(main())
