"""The Grafana dashboard and the Prometheus alert rules (helm/tessera/files/): promtool checks
the rules and runs their unit tests (deploy/prometheus/alerts.test.yml); then a real
Prometheus scrapes a cluster (two API nodes and two workers on a PostgreSQL catalog) under a
short load, and every query of the dashboard and the measure of every alert must return data,
and every rule must evaluate without error.

An alert expression is `<measure> <comparison> <threshold>` (a guard may follow with `and`):
on a healthy cluster the whole condition is rightly empty, so it is the measure, the part
before the first top-level comparison, that must return data.
"""

import concurrent.futures
import json
import os
import shutil
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

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ALERTS = os.path.join(ROOT, "helm", "tessera", "files", "alerts.yml")
DASHBOARD = os.path.join(ROOT, "helm", "tessera", "files", "grafana-dashboard.json")
RULE_TESTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.test.yml")

# What Grafana puts in for its variables when the test evaluates a panel's query.
DASHBOARD_VARIABLES = {"$__rate_interval": "1m", "$instance": ".*"}
LOAD_SECONDS = 12


def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is missing: install Debian's prometheus package "
                    "(scripts/system-deps.sh does)", pytrace=False)
    return path


def promtool(*args):
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=120)


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def panels(d):
    """Every panel, those inside collapsed rows included."""
    for p in d["panels"]:
        yield p
        yield from p.get("panels", [])


def dashboard_queries():
    """(panel title, PromQL with the dashboard's variables filled in) of every target."""
    out = []
    for p in panels(dashboard()):
        for t in p.get("targets", []):
            expr = t["expr"]
            for var, value in DASHBOARD_VARIABLES.items():
                expr = expr.replace(var, value)
            out.append((p["title"], expr))
    return out


def alert_rules():
    import yaml

    with open(ALERTS) as f:
        groups = yaml.safe_load(f)["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


def measure(expr):
    """The part of an alert expression before its first comparison outside any brackets,
    braces, parentheses or string."""
    depth, quote, i = 0, None, 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            for op in COMPARISONS:
                if expr.startswith(op, i):
                    return expr[:i].strip()
        i += 1
    raise AssertionError(f"no top-level comparison in {expr!r}")


def test_measure_takes_the_left_of_the_first_top_level_comparison():
    assert measure('up{job=~"a.*",x!="b>c"} == 0') == 'up{job=~"a.*",x!="b>c"}'
    assert measure("(a > bool 1) / b > 0.5 and c > 1") == "(a > bool 1) / b"


# --------------------------------------------------------------------------
# Without a cluster: the files are what promtool and Grafana expect.

def test_the_alert_rules_pass_promtool_check():
    r = promtool("check", "rules", ALERTS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_alert_rules_pass_their_unit_tests():
    r = promtool("test", "rules", RULE_TESTS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_has_a_for_a_severity_and_a_runbook():
    rules = alert_rules()
    assert len(rules) >= 8
    for r in rules:
        assert r.get("for"), r["alert"]
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"], r["alert"]
        # The description says what to look at, in numbered steps or at least a few lines.
        assert r["annotations"]["description"].count("\n") >= 3, r["alert"]
        measure(r["expr"])


def test_every_dashboard_query_is_valid_promql(tmp_path):
    """promtool parses each panel query as a recording rule."""
    queries = dashboard_queries()
    assert len(queries) >= 25
    rules = tmp_path / "dashboard_rules.yml"
    group = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(queries)
    ]}]}
    rules.write_text(json.dumps(group))  # JSON is YAML
    r = promtool("check", "rules", str(rules))
    assert r.returncode == 0, r.stdout + r.stderr
    for title, expr in queries:
        assert "$" not in expr, (title, expr)


def test_the_dashboard_asks_for_its_datasource_and_instances():
    d = dashboard()
    assert d["schemaVersion"] >= 36
    assert d["uid"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    instance = variables["instance"]
    assert instance["includeAll"] and instance["multi"] and instance["allValue"] == ".*"
    assert "tessera_build_info" in instance["definition"]
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids))
    for p in panels(d):
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
            assert 'instance=~"$instance"' in t["expr"], (p["title"], t["expr"])


# --------------------------------------------------------------------------
# A cluster under load, scraped by a real Prometheus.

class Prometheus:
    """A private Prometheus on a free port, with its own data directory, scraping `jobs`
    ({job name: [host:port]}) every second and evaluating `rule_file` every second."""

    def __init__(self, jobs, rule_file):
        self.dir = tempfile.mkdtemp(prefix="tessera-prometheus-")
        self.port = cluster.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [os.path.abspath(rule_file)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in jobs.items()
            ],
        }
        config_path = os.path.join(self.dir, "prometheus.yml")
        with open(config_path, "w") as f:
            json.dump(config, f)
        self.proc = cluster.Proc("prometheus", [
            tool("prometheus"), f"--config.file={config_path}",
            f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
        ], self.dir)

    def __enter__(self):
        self.proc.start()
        cluster.wait_for("prometheus",
                         lambda: httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200,
                         proc=self.proc.p, log=self.proc.log)
        return self

    def __exit__(self, *exc):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def query(self, expr):
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=30)
        body = r.json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def api(self, path, **params):
        r = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        r.raise_for_status()
        return r.json()["data"]


def host_port(url):
    return httpx.URL(url).netloc.decode()


def write_data(c):
    """A container with a chunked array (24 blocks of 80 kB) and a table, through node 0."""
    import dask.array
    import numpy
    import pandas
    from tiled.client import from_uri

    client = from_uri(c.nodes[0].url, api_key=c.api_key)
    x = client.create_container("monitoring", metadata={"sample": "Si", "beamline": 7})
    arr = numpy.arange(400 * 600, dtype="float64").reshape(400, 600)
    x.write_array(dask.array.from_array(arr, chunks=(100, 100)), key="det",
                  metadata={"unit": "counts"})
    x.write_table(pandas.DataFrame({"t": numpy.arange(2000) * 0.5, "i": numpy.arange(2000)}),
                  key="log")
    client.create_container("other", metadata={"sample": "Ge", "beamline": 7})


def requests_of_the_load():
    """(path, params, headers, expected status) of one round of the load."""
    octets = {"Accept": "application/octet-stream"}
    arrow = {"Accept": "application/vnd.apache.arrow.file"}
    search = {"filter[eq][condition][key]": "sample", "filter[eq][condition][value]": '"Si"'}
    round_ = [
        ("/healthz", {}, {}, 200),
        ("/readyz", {}, {}, 200),
        ("/api/v1/", {}, {}, 200),
        ("/api/v1/metadata/monitoring", {}, {}, 200),
        ("/api/v1/metadata/monitoring/det", {}, {}, 200),
        ("/api/v1/search/", search, {}, 200),
        ("/api/v1/search/monitoring", {}, {}, 200),
        ("/api/v1/distinct/", {"metadata": "sample", "counts": "true"}, {}, 200),
        ("/api/v1/metadata/monitoring/no_such_node", {}, {}, 404),
        # Over max_distinct_keys (16): refused, and counted as a refusal.
        ("/api/v1/distinct/", {"metadata": [f"k{i}" for i in range(17)]}, {}, 400),
        ("/api/v1/array/full/monitoring/det", {"slice": "0:200,0:300", "format": "png"},
         {}, 200),
        ("/api/v1/table/partition/monitoring/log", {"partition": "0"}, arrow, 200),
        ("/api/v1/table/full/monitoring/log", {"format": "csv"}, {}, 200),
    ]
    # Two hot blocks (L1 hits) among all 24 (more than the nodes' L1 holds: evictions, L2).
    blocks = [(0, 0), (1, 1)] * 3 + [(i, j) for i in range(4) for j in range(6)]
    for i, j in blocks:
        round_.append(("/api/v1/array/block/monitoring/det", {"block": f"{i},{j}"}, octets, 200))
    return round_


def run_load(c, seconds):
    """Cold blocks asked on both nodes at once (coalesced decodes), then 6 clients going
    round the requests for `seconds`, alternating nodes. Returns the unexpected answers."""
    wrong = []
    urls = [n.url for n in c.nodes]

    def cold(block):
        with httpx.Client(timeout=60) as h:
            return h.get(f"{urls[block[1] % 2]}/api/v1/array/block/monitoring/det",
                         params={"block": f"{block[0]},3"},
                         headers={"Accept": "application/octet-stream"}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(cold, [(i, k) for i in range(4) for k in range(4)]))
    wrong += [("cold block", s) for s in statuses if s != 200]

    stop = time.monotonic() + seconds
    requests = requests_of_the_load()

    def client(k):
        n = k * 7
        with httpx.Client(timeout=60) as h:
            while time.monotonic() < stop:
                path, params, headers, expected = requests[n % len(requests)]
                # Each round of the list goes to the other node.
                node = urls[(k + n // len(requests)) % len(urls)]
                r = h.get(node + path, params=params, headers=headers)
                if r.status_code != expected:
                    wrong.append((path, str(params), r.status_code, r.text[:200]))
                n += 1

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(client, range(6)))
    return wrong


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    """(cluster, prometheus) after the load, every series scraped at least twice since."""
    schema = f"tessera_monitoring_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    cluster.psql(f"CREATE SCHEMA {schema}")
    db = f"postgresql://{cluster.pg_user()}@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    data = tmp_path_factory.mktemp("monitoring-data")
    key = uuid.uuid4().hex
    serve = ("catalog", db, "--write", str(data), "--public", "--api-key", key)
    # A small L1 (about six chunks): the load makes it evict, and sends reads on to Redis.
    node_args = ("--cache-bytes", str(512 * 1024))
    try:
        with cluster.Cluster(BIN, nodes=2, workers=2, serve=serve, node_args=node_args) as c:
            c.api_key = key
            write_data(c)
            jobs = {"tessera-api": [host_port(n.url) for n in c.nodes],
                    "tessera-worker": [host_port(w.metrics_url) for w in c.workers]}
            with Prometheus(jobs, ALERTS) as prom:
                every = len(jobs["tessera-api"]) + len(jobs["tessera-worker"])
                cluster.wait_for(
                    "every target scraped",
                    lambda: sum(float(s["value"][1]) for s in prom.query("up")) == every)
                wrong = run_load(c, LOAD_SECONDS)
                assert wrong == [], sorted({w[:3] for w in wrong}, key=str)
                time.sleep(3)  # the last counts scraped at least twice
                yield c, prom
    finally:
        cluster.psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_every_dashboard_query_returns_data_on_a_loaded_cluster(monitored):
    _, prom = monitored
    empty = [f"{title}: {expr}" for title, expr in dashboard_queries() if not prom.query(expr)]
    assert empty == [], "queries without data:\n" + "\n".join(empty)


def test_the_instance_variable_lists_every_node_and_worker(monitored):
    c, prom = monitored
    series = prom.api("series", **{"match[]": "tessera_build_info"})
    instances = {s["instance"] for s in series}
    want = {host_port(n.url) for n in c.nodes} | {host_port(w.metrics_url) for w in c.workers}
    assert instances == want


def test_the_measure_of_every_alert_returns_data_on_a_loaded_cluster(monitored):
    _, prom = monitored
    empty = []
    for rule in alert_rules():
        prom.query(rule["expr"])  # the whole condition evaluates too
        if not prom.query(measure(rule["expr"])):
            empty.append(f"{rule['alert']}: {measure(rule['expr'])}")
    assert empty == [], "alert measures without data:\n" + "\n".join(empty)


def test_prometheus_evaluates_every_rule_without_error(monitored):
    _, prom = monitored
    want = {r["alert"] for r in alert_rules()}

    def evaluated():
        groups = prom.api("rules")["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        return rules if set(rules) == want and all(
            r["lastEvaluation"] > "1970-01-01T00:00:01Z" for r in rules.values()) else None

    cluster.wait_for("the rules evaluated", lambda: evaluated() is not None, timeout=30)
    time.sleep(2)  # two more evaluations
    rules = evaluated()
    bad = {name: r.get("lastError") for name, r in rules.items()
           if r["health"] != "ok" or r.get("lastError")}
    assert bad == {}
    # A healthy cluster under a short load fires nothing.
    firing = [a for a in prom.api("alerts")["alerts"] if a["state"] == "firing"]
    assert firing == []
