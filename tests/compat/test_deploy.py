"""Deployment files: the Helm chart, the Dockerfile and the compose cluster.

Nothing here starts a cluster. The chart is linted and rendered with Helm's own Go code
(helm-python-sdk binds libhelm_c, Helm v4 built as a C library: `helm lint --strict` and
`helm template` in-process, no cluster, no download); every rendered manifest is checked
against the Kubernetes JSON schemas of the oldest and newest Kubernetes the chart supports
(kubernetes-validate, strict: unknown fields fail), the Prometheus Operator's kinds by hand.
The config.yml the chart renders and the compose cluster's config.yml go through
`$TESSERA_BIN check-config` with their ${VAR}s set, so chart, compose file and binary cannot
drift apart; every flag the chart and compose file pass must appear in the binary's --help.
The Dockerfile's runtime stage must install the Debian package of every shared library `ldd`
finds in the binary.
"""

import base64
import fnmatch
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

import writable

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tessera"
FULL_VALUES = CHART / "ci" / "full-values.yaml"
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_CONFIG = ROOT / "deploy" / "compose" / "tessera" / "config.yml"
DOCKERFILE = ROOT / "Dockerfile"

# The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion) and the newest whose
# schemas kubernetes-validate ships.
KUBE_VERSIONS = ["1.25.0", "1.37.0"]
RELEASE, NAMESPACE = "rel", "data"

pytestmark = pytest.mark.skipif(
    writable.ON_TILED, reason="tessera's deployment files; nothing about the server under test"
)

# Plausible values of the secrets the pods get as environment variables.
SECRET_ENV = {
    "CATALOG_DATABASE_URI": "postgresql://tessera:s3cret@db.example.org:5432/catalog",
    "AUTH_DATABASE_URI": "postgresql://tessera:s3cret@db.example.org:5432/auth",
    "REDIS_URL": "redis://:s3cret@redis.example.org:6379/0",
    "SINGLE_USER_API_KEY": "k" * 40,
    "TOKEN_SIGNING_KEY_0": "a" * 64,
    "TOKEN_SIGNING_KEY_1": "b" * 64,
    "ALICE_PASSWORD": "correct horse battery staple",
}


# ---------------------------------------------------------------------------------------------
# Tools


def _helm():
    try:
        import helm_python
    except ImportError:
        pytest.fail(
            "helm-python-sdk is not installed: pip install -r tests/compat/requirements.txt",
            pytrace=False,
        )
    return helm_python


def _kubernetes_validate():
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail(
            "kubernetes-validate is not installed: pip install -r tests/compat/requirements.txt",
            pytrace=False,
        )
    return kubernetes_validate


def _tool(name, why):
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH ({why}); scripts/system-deps.sh installs it", pytrace=False)
    return path


@pytest.fixture(scope="module")
def tessera():
    binary = os.environ.get("TESSERA_BIN")
    if not binary:
        pytest.fail("set TESSERA_BIN (the tessera binary)", pytrace=False)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"TESSERA_BIN={binary} is not an executable file", pytrace=False)
    return binary


def _run(args, env=None, cwd=None, timeout=120):
    return subprocess.run(
        args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


def _help(tessera, *sub):
    done = _run([tessera, *sub, "--help"])
    assert done.returncode == 0, (
        f"`tessera {' '.join(sub)} --help` failed ({done.returncode}): {done.stderr}"
    )
    return done.stdout


# ---------------------------------------------------------------------------------------------
# The chart, rendered


def _values(name):
    if name == "default":
        return None
    with open(FULL_VALUES) as f:
        return yaml.safe_load(f)


def _render(values=None):
    """`helm template`: the documents of every template (NOTES.txt aside), hooks included."""
    helm = _helm()
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                doc["__template__"] = path
                docs.append(doc)
    return docs


def _notes(values=None):
    helm = _helm()
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


@pytest.fixture(scope="module", params=["default", "full"])
def rendered(request):
    return request.param, _render(_values(request.param))


def _of_kind(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return found


def _one(docs, kind, name):
    found = _of_kind(docs, kind, name)
    names = [d["metadata"]["name"] for d in _of_kind(docs, kind)]
    assert len(found) == 1, f"expected one {kind} {name}, rendered {names}"
    return found[0]


def _deployment(docs, component):
    found = [
        d for d in _of_kind(docs, "Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {component} Deployment, got {len(found)}"
    return found[0]


def _env_refs(docs, component):
    """The Secret each environment variable of a component's container comes from."""
    container = _deployment(docs, component)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in container["env"]}


def _is_hook(doc):
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


def _config_map_config(docs):
    """The config.yml of the release's ConfigMap (the API nodes' and workers')."""
    maps = [
        d for d in _of_kind(docs, "ConfigMap")
        if "config.yml" in d.get("data", {}) and not _is_hook(d)
    ]
    assert len(maps) == 1, "expected one ConfigMap holding config.yml"
    return maps[0]["data"]["config.yml"]


def _strip(doc):
    return {k: v for k, v in doc.items() if k != "__template__"}


# ---------------------------------------------------------------------------------------------
# helm lint --strict, helm template, Kubernetes schemas


@pytest.mark.parametrize("values", ["default", "full"])
def test_chart_passes_helm_lint_strict(values):
    report = _helm().lint(str(CHART), _values(values), strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["total_charts_linted"] == 1
    assert not report["errors"] and not problems, json.dumps(report, indent=2)


def test_rendered_manifests_are_valid_kubernetes_objects(rendered):
    name, docs = rendered
    kv = _kubernetes_validate()
    checked = 0
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: test_prometheus_operator_objects_have_their_shape
        for version in KUBE_VERSIONS:
            try:
                kv.validate(_strip(doc), version, strict=True)
            except kv.ValidationError as e:
                pytest.fail(
                    f"{name} values: {doc['__template__']} {doc['kind']} "
                    f"{doc['metadata']['name']} is invalid for Kubernetes {version}: "
                    f"{e.message} at {'.'.join(str(p) for p in e.path)}",
                    pytrace=False,
                )
            except kv.SchemaNotFoundError:
                pytest.fail(
                    f"{name} values: {doc['__template__']}: Kubernetes {version} has no "
                    f"{doc['kind']} in {doc['apiVersion']}",
                    pytrace=False,
                )
        checked += 1
    assert checked >= 8, f"only {checked} manifests rendered with {name} values"


def test_default_values_render_the_core_objects():
    docs = _render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted([
        "ConfigMap", "ConfigMap", "Deployment", "Deployment", "Job", "PodDisruptionBudget",
        "PodDisruptionBudget", "Secret", "Secret", "Service", "Service", "ServiceAccount",
    ]), kinds
    # The chart keeps what was given in plain text, and makes the keys nobody gave.
    secret = _one(docs, "Secret", "rel-tessera-secrets")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["database-uri"] == "postgresql://tessera@postgresql:5432/tessera"
    assert data["redis-url"] == "redis://redis:6379/0"
    assert len(data["api-key"]) == 40 and len(data["secret-key"]) == 64
    notes = _notes()
    assert "rel-tessera-secrets" in notes and "port-forward service/rel-tessera" in notes


def test_full_values_render_every_optional_part():
    docs = _render(_values("full"))
    count = lambda kind: len(_of_kind(docs, kind))  # noqa: E731
    assert count("Ingress") == 1
    assert count("HorizontalPodAutoscaler") == 2
    assert count("PodDisruptionBudget") == 2
    assert count("ServiceMonitor") == 2
    assert count("PrometheusRule") == 1
    # Every secret comes from the operator's Secrets: the chart makes none.
    assert count("Secret") == 0
    ingress = _one(docs, "Ingress", "tessera")
    assert ingress["spec"]["tls"][0]["secretName"] == "tessera-tls"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "tessera", "port": {"name": "http"}}
    # Autoscaled Deployments leave the replica count to the HPA.
    for component in ("api", "worker"):
        assert "replicas" not in _deployment(docs, component)["spec"]
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in _of_kind(docs, "HorizontalPodAutoscaler")}
    assert set(hpas) == {"tessera-api", "tessera-worker"}
    assert hpas["tessera-api"]["apiVersion"] == "autoscaling/v2"
    api_metrics = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"]
                   for m in hpas["tessera-api"]["spec"]["metrics"]}
    assert api_metrics == {"cpu": 65, "memory": 80}
    pdbs = {p["metadata"]["name"]: p["spec"] for p in _of_kind(docs, "PodDisruptionBudget")}
    assert pdbs["tessera-api"]["minAvailable"] == 2
    assert pdbs["tessera-worker"]["maxUnavailable"] == "25%"
    env = _env_refs(docs, "api")
    assert env["CATALOG_DATABASE_URI"] == {"name": "tessera-database", "key": "catalog-uri"}
    assert env["AUTH_DATABASE_URI"] == {"name": "tessera-database", "key": "auth-uri"}
    assert env["REDIS_URL"] == {"name": "tessera-redis", "key": "url"}
    assert env["TOKEN_SIGNING_KEY_0"] == {"name": "tessera-auth", "key": "signing-key"}
    assert env["TOKEN_SIGNING_KEY_1"] == {"name": "tessera-auth", "key": "previous-signing-key"}
    # Multi-user: no single-user API key. Workers get the Redis URL and nothing else secret.
    assert "SINGLE_USER_API_KEY" not in env
    assert [k for k, ref in _env_refs(docs, "worker").items() if ref] == ["REDIS_URL"]


def test_optional_parts_can_be_switched_off():
    kv = _kubernetes_validate()
    docs = _render({
        "worker": {"enabled": False}, "migration": {"enabled": False},
        "serviceAccount": {"create": False},
        "api": {"podDisruptionBudget": {"enabled": False}, "autoscaling": {"enabled": True}},
    })
    components = {d["metadata"]["labels"].get("app.kubernetes.io/component") for d in docs}
    assert "worker" not in components and "migration" not in components
    assert not _of_kind(docs, "ServiceAccount") and not _of_kind(docs, "PodDisruptionBudget")
    assert [h["spec"]["scaleTargetRef"]["name"] for h in _of_kind(docs, "HorizontalPodAutoscaler")] == [
        "rel-tessera-api"]
    assert _deployment(docs, "api")["spec"]["template"]["spec"]["serviceAccountName"] == "default"
    for doc in docs:
        kv.validate(_strip(doc), KUBE_VERSIONS[-1], strict=True)


def test_single_user_api_key_from_an_existing_secret():
    docs = _render({"auth": {"apiKey": {"existingSecret": "keys", "existingSecretKey": "tessera"}}})
    assert _env_refs(docs, "api")["SINGLE_USER_API_KEY"] == {"name": "keys", "key": "tessera"}
    secret = _one(docs, "Secret", "rel-tessera-secrets")
    assert "api-key" not in secret["data"]


def test_pods_are_hardened_probed_and_drain_in_time(rendered):
    name, docs = rendered
    config = yaml.safe_load(_config_map_config(docs))
    settings = config["tessera"]
    # An API node answers 503 on /readyz for shutdown_delay, then drains for shutdown_timeout;
    # a worker only drains.
    api_stop = settings.get("shutdown_delay", 0) + settings.get("shutdown_timeout", 30)
    worker_stop = settings.get("shutdown_timeout", 30)
    for component, port_name, stop in (("api", "http", api_stop), ("worker", "metrics", worker_stop)):
        pod = _deployment(docs, component)["spec"]["template"]["spec"]
        container = pod["containers"][0]
        sc = container["securityContext"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert pod["automountServiceAccountToken"] is False
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port_name}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port_name}
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        assert pod["terminationGracePeriodSeconds"] > stop, (
            f"{name}: {component} gets {pod['terminationGracePeriodSeconds']} s to stop, "
            f"tessera may take {stop} s"
        )
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/etc/tessera"]["readOnly"] is True
        assert "/tmp" in mounts, "a read-only root needs a writable /tmp"
        annotations = _deployment(docs, component)["spec"]["template"]["metadata"]["annotations"]
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/config"])
    # Every pod the chart makes is non-root with a read-only root, the hook Job too.
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                assert c["securityContext"]["readOnlyRootFilesystem"] is True, doc["metadata"]["name"]


def test_a_config_change_rolls_the_pods():
    def checksums(values):
        docs = _render(values)
        return {
            c: _deployment(docs, c)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for c in ("api", "worker")
        }

    base = {"config": {"tessera": {"cache_bytes": 1 << 30}}}
    assert checksums(base) == checksums(base)
    changed = checksums({"config": {"tessera": {"cache_bytes": 1 << 31}}})
    assert changed["api"] != checksums(base)["api"]
    assert changed["worker"] != checksums(base)["worker"]


def test_grace_period_follows_the_shutdown_settings():
    docs = _render({"config": {"tessera": {"shutdown_delay": 20, "shutdown_timeout": 100}}})
    assert _deployment(docs, "api")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 120
    # Workers drain for shutdown_timeout, read from the same config.yml.
    worker = _deployment(docs, "worker")["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] > 100


def _hook_weight(doc):
    return int(doc["metadata"]["annotations"].get("helm.sh/hook-weight", "0"))


def _migration_job(docs):
    jobs = _of_kind(docs, "Job")
    assert len(jobs) == 1, f"expected one Job, rendered {len(jobs)}"
    return jobs[0]


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(rendered):
    name, docs = rendered
    job = _migration_job(docs)
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["migrate", "--config", "/etc/tessera/config.yml"]
    # The release's own ConfigMap, Secret and ServiceAccount do not exist yet when pre-install
    # hooks run: the Job reads hook copies made before it, or the operator's Secrets.
    assert "serviceAccountName" not in pod
    hooks = {(d["kind"], d["metadata"]["name"]): d for d in docs if _is_hook(d) and d is not job}
    config_volume = next(v for v in pod["volumes"] if v["name"] == "config")
    config_map = hooks[("ConfigMap", config_volume["configMap"]["name"])]
    assert _hook_weight(config_map) < _hook_weight(job)
    assert config_map["data"]["config.yml"] == _config_map_config(docs)
    release_secrets = {d["metadata"]["name"] for d in _of_kind(docs, "Secret") if not _is_hook(d)}
    for env in container["env"]:
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            continue
        assert ref["name"] not in release_secrets, f"{env['name']} comes from a Secret made after the hook"
        if ("Secret", ref["name"]) in hooks:
            secret = hooks[("Secret", ref["name"])]
            assert _hook_weight(secret) < _hook_weight(job)
            assert ref["key"] in secret["data"]
    # The Job checks the config as the API nodes read it: the same variables and mounts.
    api = _deployment(docs, "api")["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"] for e in container["env"]} == {e["name"] for e in api["env"]}
    assert container["volumeMounts"] == api["volumeMounts"]
    if name == "full":
        assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}[
            "CATALOG_DATABASE_URI"] == {"name": "tessera-database", "key": "catalog-uri"}


def test_migration_job_migrates_with_its_config(rendered, tessera, tmp_path):
    """The hook's command, run here on SQLite files in place of PostgreSQL."""
    name, docs = rendered
    job = _migration_job(docs)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    config_volume = next(v for v in pod["volumes"] if v["name"] == "config")
    text = _one(docs, "ConfigMap", config_volume["configMap"]["name"])["data"]["config.yml"]
    path = _on_this_machine(text, container["volumeMounts"], tmp_path)
    env_names = {e["name"] for e in container["env"]}
    env = _clean_env()
    for var in env_names:
        env[var] = SECRET_ENV.get(var, f"value-of-{var.lower()}")
    env["CATALOG_DATABASE_URI"] = f"sqlite:///{tmp_path}/catalog.db"
    if "AUTH_DATABASE_URI" in env_names:
        env["AUTH_DATABASE_URI"] = f"sqlite:///{tmp_path}/auth.db"
    args = [a.replace("/etc/tessera/config.yml", str(path)) for a in container["args"]]
    done = _run([tessera, *args], env=env)
    assert done.returncode == 0, f"{name} values: `tessera {' '.join(args)}` failed:\n{done.stderr}"
    assert (tmp_path / "catalog.db").stat().st_size > 0
    if "AUTH_DATABASE_URI" in env_names:
        assert (tmp_path / "auth.db").stat().st_size > 0
    # Run again, as every upgrade does: nothing left to apply, still success.
    again = _run([tessera, *args], env=env)
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize(
    "values, complaint",
    [
        ({"api": {"replicaCount": "two"}}, "/api/replicaCount"),
        ({"replicaCount": 2}, "replicaCount"),
        ({"workers": {"enabled": True}}, "workers"),
        ({"config": {"tessera": {"cache_byte": 1}}}, "cache_byte"),
        ({"config": {"tessera": {"log_format": "xml"}}}, "/config/tessera/log_format"),
        ({"config": {"tessera": {"trace_sample_ratio": 2}}}, "/config/tessera/trace_sample_ratio"),
        ({"config": {"tessera": {"redis_url": "redis://elsewhere"}}}, "redis_url"),
        ({"redis": {"url": "localhost:6379"}}, "/redis/url"),
        ({"ingress": {"enabled": "yes"}}, "/ingress/enabled"),
    ],
    ids=["replicaCount-string", "unknown-top-level", "misspelled-section", "unknown-tessera-key",
         "bad-log-format", "ratio-above-1", "chart-owned-key", "url-without-scheme", "bool-as-string"],
)
def test_wrong_values_fail_helm_template(values, complaint):
    helm = _helm()
    with pytest.raises(helm.HelmValuesError) as raised:
        _render(values)
    assert complaint in str(raised.value)
    report = helm.lint(str(CHART), values, strict=True)
    assert report["errors"], f"helm lint accepted {values}"


# ---------------------------------------------------------------------------------------------
# Prometheus Operator objects and the Grafana dashboard


def test_prometheus_operator_objects_have_their_shape():
    docs = _render(_values("full"))
    services = _of_kind(docs, "Service")
    monitors = _of_kind(docs, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {"tessera-api", "tessera-worker"}
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        spec = monitor["spec"]
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        selector = spec["selector"]["matchLabels"]
        matched = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1, f"{monitor['metadata']['name']} selects {len(matched)} Services"
        port_names = {p["name"] for p in matched[0]["spec"]["ports"]}
        # The Service's pods serve /metrics on that port.
        pods = [
            d for d in _of_kind(docs, "Deployment")
            if matched[0]["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(pods) == 1
        container_ports = {p["name"] for p in pods[0]["spec"]["template"]["spec"]["containers"][0]["ports"]}
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] in port_names and endpoint["port"] in container_ports
            assert endpoint["path"] == "/metrics"
            assert re.fullmatch(r"[0-9]+s", endpoint["interval"])
            jobs = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
            # TesseraTargetDown selects targets whose job names contain "tessera".
            assert len(jobs) == 1 and "tessera" in jobs[0]
    rule = _one(docs, "PrometheusRule", "tessera")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    with open(CHART / "files" / "alerts.yml") as f:
        alerts = yaml.safe_load(f)
    assert rule["spec"] == alerts, "the PrometheusRule must carry files/alerts.yml as it is"
    assert rule["spec"]["groups"], "no rule groups"
    for group in rule["spec"]["groups"]:
        assert group["name"] and group["rules"]
        for r in group["rules"]:
            assert ("alert" in r) != ("record" in r) and r["expr"].strip()
    dashboard = _one(docs, "ConfigMap", "tessera-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"]["grafana_folder"] == "tessera"
    with open(CHART / "files" / "grafana-dashboard.json") as f:
        assert json.loads(dashboard["data"]["tessera.json"]) == json.load(f)


# ---------------------------------------------------------------------------------------------
# Chart and binary agree


def _placeholders(text):
    """The ${VAR}s of a YAML document's strings (comments aside)."""
    found = set()

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(k)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            found.update(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", node))

    walk(yaml.safe_load(text))
    return found


def _on_this_machine(text, volume_mounts, tmp_path):
    """config.yml written under tmp_path, with the pod's storage volumes as directories there
    (tessera checks that storage directories exist)."""
    mounts = [m["mountPath"] for m in volume_mounts if m["mountPath"] not in ("/etc/tessera", "/tmp")]
    for mount in mounts:
        (tmp_path / mount.lstrip("/")).mkdir(parents=True, exist_ok=True)

    def move(node):
        if isinstance(node, dict):
            return {k: move(v) for k, v in node.items()}
        if isinstance(node, list):
            return [move(v) for v in node]
        if isinstance(node, str) and any(node == m or node.startswith(m + "/") for m in mounts):
            return str(tmp_path) + node
        return node

    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(move(yaml.safe_load(text))))
    return path


def _clean_env():
    """This process's environment less what tessera would read besides the file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TILED_", "TESSERA_"))}
    env["RUST_BACKTRACE"] = "0"
    return env


def _check_config(tessera, path, env_names):
    env = _clean_env()
    for name in env_names:
        env[name] = SECRET_ENV.get(name, f"value-of-{name.lower()}")
    return _run([tessera, "check-config", str(path)], env=env)


def test_chart_config_passes_check_config(rendered, tessera, tmp_path):
    name, docs = rendered
    text = _config_map_config(docs)
    api = _deployment(docs, "api")["spec"]["template"]["spec"]["containers"][0]
    env_names = {e["name"] for e in api["env"]}
    missing = _placeholders(text) - env_names
    assert not missing, f"{name}: config.yml uses ${{{missing}}} which the API pods do not get"
    path = _on_this_machine(text, api["volumeMounts"], tmp_path)
    done = _check_config(tessera, path, env_names)
    assert done.returncode == 0, f"{name} values: check-config refused the chart's config.yml:\n{done.stderr}\n{text}"
    effective = done.stdout
    settings = yaml.safe_load(text)["tessera"]
    for key in ("shutdown_delay", "shutdown_timeout", "log_format", "key_prefix"):
        assert key in effective, f"check-config's effective config lacks {key}"
    assert str(settings["key_prefix"]) in effective
    # Secrets are masked in what check-config prints.
    assert "s3cret" not in effective


def test_chart_flags_are_the_binarys(rendered, tessera):
    _, docs = rendered
    serve_help = _help(tessera, "serve", "config")
    worker_help = _help(tessera, "worker")
    migrate_help = _help(tessera, "migrate")
    api = _deployment(docs, "api")["spec"]["template"]["spec"]["containers"][0]
    assert api["args"][:2] == ["serve", "config"]
    worker = _deployment(docs, "worker")["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"][0] == "worker"
    for flag in (a for a in worker["args"][1:] if a.startswith("--")):
        assert flag in worker_help, f"the chart passes {flag} to `tessera worker`, which lacks it"
    for flag in (a for a in api["args"][3:] if a.startswith("--")):
        assert flag in serve_help, f"the chart passes {flag} to `tessera serve config`, which lacks it"
    job = _migration_job(docs)["spec"]["template"]["spec"]["containers"][0]
    for flag in (a for a in job["args"][1:] if a.startswith("--")):
        assert flag in migrate_help, f"the chart passes {flag} to `tessera migrate`, which lacks it"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker_reads_its_config(tessera, config_path, env_names, args=()):
    """Start `tessera worker` on the config with only the given environment, NATS and Redis
    pointed at closed local ports: it must get past its config (and fail on the connections)."""
    closed = _free_port()
    env = _clean_env()
    for name in env_names:
        env[name] = SECRET_ENV.get(name, f"value-of-{name.lower()}")
    # The Redis URL comes from the config's ${REDIS_URL}; no name lookups here.
    env["REDIS_URL"] = f"redis://127.0.0.1:{closed}/0"
    process = subprocess.Popen(
        [tessera, "worker", "--config", str(config_path), "--metrics", "127.0.0.1:0",
         "--nats-url", f"nats://127.0.0.1:{closed}", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        _, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    assert f"{config_path}:" not in err, f"the worker refused its config with its environment:\n{err[-2000:]}"
    return err


def test_chart_workers_read_their_config(rendered, tessera, tmp_path):
    name, docs = rendered
    path = tmp_path / "config.yml"
    path.write_text(_config_map_config(docs))
    worker = _deployment(docs, "worker")["spec"]["template"]["spec"]["containers"][0]
    env_names = {e["name"] for e in worker["env"]}
    # Workers get the Redis URL and, where the config names one, the API key; no database
    # URIs or signing keys.
    assert "REDIS_URL" in env_names
    assert not env_names & {"CATALOG_DATABASE_URI", "AUTH_DATABASE_URI", "TOKEN_SIGNING_KEY_0"}
    assert worker["args"][:3] == ["worker", "--config", "/etc/tessera/config.yml"]
    flags = worker["args"][3:]
    at = flags.index("--metrics")
    del flags[at:at + 2]  # the helper binds a free port instead
    _worker_reads_its_config(tessera, path, env_names, flags)


# ---------------------------------------------------------------------------------------------
# The compose cluster


@pytest.fixture(scope="module")
def compose():
    binary = _tool("docker-compose", "it validates docker-compose.yml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    done = _run([binary, "-f", str(COMPOSE_FILE), "config"], env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_is_valid():
    binary = _tool("docker-compose", "it validates docker-compose.yml")
    done = _run([binary, "-f", str(COMPOSE_FILE), "config", "-q"], cwd=ROOT)
    assert done.returncode == 0, f"docker-compose config -q: {done.stderr}"


def test_compose_cluster_has_its_parts(compose):
    services = compose["services"]
    assert {"postgres", "redis", "nats", "migrate", "api1", "api2", "worker1", "worker2",
            "nginx", "prometheus", "grafana"} <= set(services)
    assert "-js" in services["nats"]["command"]
    for name in ("api1", "api2"):
        s = services[name]
        assert s["command"] == ["serve", "config", "/etc/tessera/config.yml"]
        assert s["read_only"] is True
        assert s["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert s["depends_on"]["redis"]["condition"] == "service_healthy"
        assert s["depends_on"]["nats"]["condition"] == "service_healthy"
        assert "/readyz" in " ".join(s["healthcheck"]["test"])
    for name in ("worker1", "worker2"):
        s = services[name]
        assert s["command"][:3] == ["worker", "--config", "/etc/tessera/config.yml"]
        assert "--metrics" in s["command"]
        assert "/readyz" in " ".join(s["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["migrate", "--config", "/etc/tessera/config.yml"]
    assert services["migrate"]["environment"] == services["api1"]["environment"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api1", "api2"):
        assert services["nginx"]["depends_on"][name]["condition"] == "service_healthy"
    for name in ("postgres", "redis", "nats", "nginx", "prometheus", "grafana"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    # Every file the services mount is in the repository (the chart's alerts and dashboard too).
    mounted = {}
    for name, s in services.items():
        for v in s.get("volumes", []):
            source = v["source"] if isinstance(v, dict) else v.split(":")[0]
            target = v["target"] if isinstance(v, dict) else v.split(":")[1]
            if source.startswith("/") or source.startswith("."):
                assert os.path.exists(source), f"{name} mounts {source}, which does not exist"
                mounted[target] = os.path.realpath(source)
    assert mounted["/etc/prometheus/alerts.yml"] == str((CHART / "files" / "alerts.yml").resolve())
    dashboards = [t for t in mounted if t.startswith("/var/lib/grafana/dashboards/")]
    assert [mounted[t] for t in dashboards] == [str((CHART / "files" / "grafana-dashboard.json").resolve())]


def test_compose_config_passes_check_config(compose, tessera):
    with open(COMPOSE_CONFIG) as f:
        text = f.read()
    env = compose["services"]["api1"]["environment"]
    missing = _placeholders(text) - set(env)
    assert not missing, f"deploy/compose/tessera/config.yml uses {missing}, which api1 does not get"
    process_env = _clean_env()
    process_env.update({k: str(v) for k, v in env.items()})
    done = _run([tessera, "check-config", str(COMPOSE_CONFIG)], env=process_env)
    assert done.returncode == 0, f"check-config refused the compose config:\n{done.stderr}"
    for key in ("shutdown_delay", "shutdown_timeout", "redis_url", "nats_url"):
        assert key in done.stdout
    worker_flags = _help(tessera, "worker")
    for name in ("worker1", "worker2"):
        for flag in (a for a in compose["services"][name]["command"] if a.startswith("--")):
            assert flag in worker_flags, f"{name} passes {flag}, which `tessera worker` lacks"
    _worker_reads_its_config(tessera, COMPOSE_CONFIG, set(compose["services"]["worker1"]["environment"]))


def test_compose_migration_migrates_with_its_config(compose, tessera, tmp_path):
    """The migrate service's command, run here on SQLite files in place of PostgreSQL."""
    service = compose["services"]["migrate"]
    targets = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in service["volumes"]]
    mounts = [{"mountPath": t} for t in targets if not t.startswith("/etc/tessera")]
    path = _on_this_machine(COMPOSE_CONFIG.read_text(), mounts, tmp_path)
    env = _clean_env()
    env.update({k: str(v) for k, v in service["environment"].items()})
    env["CATALOG_DATABASE_URI"] = f"sqlite:///{tmp_path}/catalog.db"
    args = [a.replace("/etc/tessera/config.yml", str(path)) for a in service["command"]]
    done = _run([tessera, *args], env=env)
    assert done.returncode == 0, f"`tessera {' '.join(args)}` failed:\n{done.stderr}"
    assert (tmp_path / "catalog.db").stat().st_size > 0


def test_compose_prometheus_scrapes_every_node_and_loads_the_alerts(compose, tmp_path):
    promtool = _tool("promtool", "it checks the Prometheus configuration")
    with open(ROOT / "deploy" / "compose" / "prometheus" / "prometheus.yml") as f:
        prom = yaml.safe_load(f)
    # As mounted in the container: the rule file beside prometheus.yml.
    shutil.copy(ROOT / "deploy" / "compose" / "prometheus" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(CHART / "files" / "alerts.yml", tmp_path / "alerts.yml")
    done = _run([promtool, "check", "config", str(tmp_path / "prometheus.yml")])
    assert done.returncode == 0, f"promtool check config: {done.stdout}{done.stderr}"
    assert "SUCCESS" in done.stdout + done.stderr
    targets = {
        job["job_name"]: {t for sc in job["static_configs"] for t in sc["targets"]}
        for job in prom["scrape_configs"]
    }
    services = compose["services"]
    api_port = yaml.safe_load(open(COMPOSE_CONFIG))["uvicorn"]["port"]
    assert targets["tessera-api"] == {f"api1:{api_port}", f"api2:{api_port}"}
    expected_workers = set()
    for name in ("worker1", "worker2"):
        cmd = services[name]["command"]
        port = cmd[cmd.index("--metrics") + 1].rsplit(":", 1)[1]
        expected_workers.add(f"{name}:{port}")
    assert targets["tessera-worker"] == expected_workers
    # The chart's ServiceMonitors name their jobs alike, so one rule file serves both.
    chart_jobs = {
        r["replacement"]
        for m in _of_kind(_render(_values("full")), "ServiceMonitor")
        for e in m["spec"]["endpoints"] for r in e["relabelings"] if r["targetLabel"] == "job"
    }
    assert chart_jobs == {"tessera-api", "tessera-worker"} <= set(targets)


def test_compose_nginx_balances_the_api_nodes(compose):
    with open(ROOT / "deploy" / "compose" / "nginx" / "nginx.conf") as f:
        conf = f.read()
    upstream = re.search(r"upstream\s+tessera\s*\{(.*?)\}", conf, re.S)
    assert upstream, "nginx.conf has no `upstream tessera`"
    servers = set(re.findall(r"^\s*server\s+(\S+?)[\s;]", upstream.group(1), re.M))
    port = yaml.safe_load(open(COMPOSE_CONFIG))["uvicorn"]["port"]
    assert servers == {f"api1:{port}", f"api2:{port}"}
    assert "proxy_pass http://tessera;" in conf
    mounts = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in compose["services"]["nginx"]["volumes"]]
    assert "/etc/nginx/nginx.conf" in mounts


def test_compose_grafana_is_provisioned():
    base = ROOT / "deploy" / "compose" / "grafana" / "provisioning"
    with open(base / "datasources" / "prometheus.yml") as f:
        sources = yaml.safe_load(f)["datasources"]
    assert [s["type"] for s in sources] == ["prometheus"]
    assert sources[0]["url"] == "http://prometheus:9090" and sources[0]["isDefault"] is True
    with open(base / "dashboards" / "tessera.yml") as f:
        providers = yaml.safe_load(f)["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards/tessera"


# ---------------------------------------------------------------------------------------------
# The Dockerfile


def _dockerfile_stages():
    """Stages of the Dockerfile: [(FROM line, [instructions with continuations joined])]."""
    with open(DOCKERFILE) as f:
        text = f.read()
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    stages = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append((line, []))
        elif stages:
            stages[-1][1].append(line)
    return stages


def _ldd_packages(binary):
    """The Debian packages owning the shared libraries the binary loads, less libc's."""
    _tool("ldd", "it lists the binary's shared libraries")
    _tool("dpkg", "it maps libraries to Debian packages")
    done = _run(["ldd", binary])
    assert done.returncode == 0, done.stderr
    packages = {}
    for line in done.stdout.splitlines():
        m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if not m:
            assert "linux-vdso" in line or "not a dynamic" in line, f"unexpected ldd line: {line}"
            continue
        path = m.group(1)
        candidates = [path, os.path.realpath(path)]
        candidates += [p[len("/usr"):] for p in list(candidates) if p.startswith("/usr/")]
        candidates += ["/usr" + p for p in list(candidates) if p.startswith("/lib")]
        owner = None
        for candidate in dict.fromkeys(candidates):
            q = _run(["dpkg", "-S", candidate])
            if q.returncode == 0:
                owner = q.stdout.split(":")[0].strip()
                break
        assert owner, f"no Debian package owns {path} (from ldd); is the binary linked against a library built by hand?"
        packages[path] = owner
    return packages


def test_dockerfile_runtime_installs_every_linked_library(tessera):
    stages = _dockerfile_stages()
    assert len(stages) >= 2, "the Dockerfile should be multi-stage"
    runtime_from, runtime = stages[-1]
    assert re.match(r"FROM\s+debian:bookworm-slim\b", runtime_from, re.I), runtime_from
    installs = [i for i in runtime if "apt-get install" in i]
    assert len(installs) == 1, "the runtime stage should install its packages in one apt-get install"
    words = set(shlex.split(installs[0].replace("&&", " ")))
    linked = _ldd_packages(tessera)
    # libc6 (libc, libm, ld-linux...) is the base image's own.
    needed = {pkg for pkg in linked.values() if pkg != "libc6"}
    assert any(p.startswith("libhdf5") for p in needed), f"ldd found no libhdf5: {linked}"
    missing = sorted(needed - words)
    assert not missing, (
        f"the runtime stage does not install {missing} "
        f"(libraries: {[p for p, pkg in linked.items() if pkg in missing]})"
    )


def test_dockerfile_builds_with_the_repositorys_toolchain_as_a_non_root_user():
    stages = _dockerfile_stages()
    with open(ROOT / "rust-toolchain.toml") as f:
        channel = re.search(r'channel\s*=\s*"([^"]+)"', f.read()).group(1)
    builder_from, builder = stages[0]
    arg_defaults = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", DOCKERFILE.read_text(), re.M))
    image = re.sub(r"\$\{(\w+)\}", lambda m: arg_defaults.get(m.group(1), m.group(0)), builder_from.split()[1])
    assert image == f"rust:{channel}-bookworm", f"builder {image}; rust-toolchain.toml says {channel}"
    build = [i for i in builder if "cargo build" in i]
    assert len(build) == 1
    assert "--release" in build[0] and "--bin tessera" in build[0]
    assert "--mount=type=cache" in build[0], "the cargo build should use a cache mount"
    assert any("libhdf5-dev" in i and "pkg-config" in i for i in builder)
    _, runtime = stages[-1]
    users = [i.split()[1] for i in runtime if i.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(re.fullmatch(r"EXPOSE\s+8000(/tcp)?", i) for i in runtime)
    entry = [i for i in runtime if i.upper().startswith("ENTRYPOINT")]
    assert entry and json.loads(entry[-1].split(None, 1)[1])[0].endswith("tessera")
    # The chart's pods run as the image's user.
    docs = _render()
    uid = _deployment(docs, "api")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert any(str(uid) in i for i in runtime if "useradd" in i), f"the image's user should be uid {uid}"


def _dockerignored(path, patterns):
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pat) for p in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_build_reads():
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    with open(ROOT / "Cargo.toml") as f:
        members = re.search(r"members\s*=\s*\[([^\]]*)\]", f.read()).group(1)
    needed = ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml", "migrations/postgres/0001_catalog.sql",
              "api/src/openapi.json"]
    for member in re.findall(r'"([^"]+)"', members):
        needed.append(f"{member}/Cargo.toml")
        needed += [str(p.relative_to(ROOT)) for p in (ROOT / member).rglob("*.rs")
                   if "target" not in p.parts and "tests" not in p.relative_to(ROOT / member).parts]
    kept_out = [p for p in needed if _dockerignored(p, patterns)]
    assert not kept_out, f".dockerignore leaves out what the build needs: {kept_out[:10]}"
    for heavy in ("target/debug/tessera", ".git/HEAD", "tests/fixtures/x.h5", "fuzz/corpus/a/b"):
        assert _dockerignored(heavy, patterns), f".dockerignore lets {heavy} into the build context"
