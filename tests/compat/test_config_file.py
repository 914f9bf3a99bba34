"""`serve config`: a Tiled operator's config.yml runs unchanged.

Each test writes a config file as one writes it for ``tiled serve config`` and
starts ``$TESSERA_BIN serve config FILE`` on it (``$TILED_BIN serve config`` with
``TESTED_SERVER=tiled`` for the configs both should run), then drives it with the
stock client. Bad configs must stop the server at start-up with a message naming
the key; ``check-config`` prints the effective configuration with secrets masked.
"""

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time

import httpx
import numpy
import pytest

import demo
import writable

ON_TILED = writable.ON_TILED
STARTUP_TIMEOUT = 60.0
tessera_only = pytest.mark.skipif(ON_TILED, reason="tessera's own behaviour")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tmp():
    path = tempfile.mkdtemp(prefix="tessera-config-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _binary():
    return writable.tiled_binary() if ON_TILED else writable.tessera_binary()


def _write(tmp, text, name="config.yml"):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class Served:
    def __init__(self, process, url, log):
        self.process, self.url, self.log = process, url, log


def _serve(config_path, port, env):
    log = config_path + ".log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [_binary(), "serve", "config", config_path],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with open(log, errors="replace") as f:
                pytest.fail(f"the server exited with {process.returncode}:\n{f.read()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return Served(process, url, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.fail("the server did not answer /healthz")


def _stop(served):
    served.process.terminate()
    try:
        served.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()


def test_a_tiled_catalog_config_runs_unchanged(tmp):
    from tiled.client import from_uri

    port = _free_port()
    key = secrets.token_hex(16)
    config = _write(
        tmp,
        f"""\
trees:
  - path: /
    tree: catalog
    args:
      uri: "sqlite:///{tmp}/catalog.db"
      writable_storage: "{tmp}/data"
      init_if_not_exists: true
authentication:
  single_user_api_key: "${{CONFIG_TEST_API_KEY}}"
uvicorn:
  host: 127.0.0.1
  port: {port}
""",
    )
    served = _serve(config, port, {"CONFIG_TEST_API_KEY": key})
    try:
        expected = numpy.arange(24.0).reshape(4, 6)
        from_uri(served.url, api_key=key).write_array(expected, key="written")
        # A second client: nothing comes from the writer's copy.
        got = from_uri(served.url, api_key=key)["written"].read()
        numpy.testing.assert_array_equal(got, expected)
        # The key came from the environment variable; without it nothing is readable
        # (allow_anonymous_access defaults to false).
        anonymous = httpx.get(f"{served.url}/api/v1/metadata/written", timeout=10)
        assert anonymous.status_code == 401, anonymous.text
        wrong = httpx.get(
            f"{served.url}/api/v1/metadata/written",
            headers={"Authorization": "Apikey ${CONFIG_TEST_API_KEY}"},
            timeout=10,
        )
        assert wrong.status_code == 401, wrong.text
    finally:
        _stop(served)
    # The catalog and the data are where the config put them.
    assert os.path.getsize(os.path.join(tmp, "catalog.db")) > 0
    assert os.listdir(os.path.join(tmp, "data"))


def test_the_demo_tree_config_serves_the_demo_with_cors(tmp):
    from tiled.client import from_uri

    port = _free_port()
    config = _write(
        tmp,
        f"""\
trees:
  - path: /
    tree: tiled.examples.generated:tree
authentication:
  allow_anonymous_access: true
allow_origins:
  - http://allowed.example
uvicorn:
  host: 127.0.0.1
  port: {port}
""",
    )
    served = _serve(config, port, {})
    try:
        got = from_uri(served.url)["nested/images/tiny_image"].read()
        numpy.testing.assert_array_equal(got, demo.build_demo_data()["tiny_image"])

        def preflight(origin):
            return httpx.options(
                f"{served.url}/api/v1/metadata/",
                headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
                timeout=10,
            ).headers

        allowed = preflight("http://allowed.example")
        assert allowed.get("access-control-allow-origin") == "http://allowed.example"
        assert allowed.get("access-control-allow-credentials") == "true"
        assert "access-control-allow-origin" not in preflight("http://other.example")
    finally:
        _stop(served)


DEMO_TREE = "trees:\n  - path: /\n    tree: tiled.examples.generated:tree\n"

BAD_CONFIGS = {
    "unknown key": (DEMO_TREE + "tesera: {cache_bytes: 1}\n", "tesera"),
    "wrong type": (DEMO_TREE + "tessera:\n  cache_bytes: lots\n", "tessera.cache_bytes"),
    "unknown tessera key": (DEMO_TREE + "tessera: {cache_byte: 1}\n", "tessera.cache_byte"),
    "login provider without users": (
        DEMO_TREE
        + "authentication:\n  providers:\n    - provider: toy\n"
        + "      authenticator: tiled.authenticators:DictionaryAuthenticator\n",
        "authentication.providers[0].args.users_to_passwords",
    ),
    "authenticator tessera does not have": (
        DEMO_TREE
        + "authentication:\n  providers:\n    - provider: pam\n"
        + "      authenticator: tiled.authenticators:PAMAuthenticator\n",
        "authentication.providers[0].authenticator",
    ),
    "python object tree": (
        "trees:\n  - path: /\n    tree: my_facility.trees:tree\n",
        "trees[0].tree",
    ),
    "two trees": (DEMO_TREE + "  - path: /more\n    tree: tiled.examples.generated:tree\n", "trees[1]"),
    "nats without redis": (
        DEMO_TREE + "tessera:\n  nats_url: nats://127.0.0.1:4222\n",
        "tessera.nats_url",
    ),
    "access control": (
        DEMO_TREE + "access_control:\n  access_policy: tiled.access_control.access_policies:TagBasedAccessPolicy\n",
        "access_control",
    ),
}


@tessera_only
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_bad_config_stops_start_up_naming_the_key(tmp, case):
    text, key = BAD_CONFIGS[case]
    port = _free_port()
    config = _write(tmp, text + f"uvicorn: {{port: {port}}}\n")
    result = subprocess.run(
        [_binary(), "serve", "config", config],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert f"{config}: {key}:" in result.stderr, result.stderr
    # Nothing was listening.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


@tessera_only
def test_check_config_prints_the_effective_config_with_secrets_masked(tmp):
    key = secrets.token_hex(16)
    config = _write(
        tmp,
        """\
catalog:
  uri: postgresql+asyncpg://tiled:pgsecret@127.0.0.1:5432/catalog
  writable_storage: [data]
authentication:
  single_user_api_key: ${CONFIG_TEST_API_KEY}
tessera:
  redis_url: redis://:redissecret@127.0.0.1:6379
  key_prefix: facility7
""",
    )
    env = {**os.environ, "CONFIG_TEST_API_KEY": key}
    result = subprocess.run(
        [_binary(), "check-config", config], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for secret in (key, "pgsecret", "redissecret"):
        assert secret not in out, out
    assert "single_user_api_key: '***'" in out, out
    assert "postgresql+asyncpg://tiled:***@127.0.0.1:5432/catalog" in out, out
    assert "key_prefix: facility7" in out, out
    # Defaults are shown: the effective value of every setting.
    assert "worker_timeout: 5.0" in out, out

    bad = _write(tmp, DEMO_TREE + "tessera: {l2_ttl: soon}\n", name="bad.yml")
    result = subprocess.run(
        [_binary(), "check-config", bad], capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert f"{bad}: tessera.l2_ttl:" in result.stderr, result.stderr
