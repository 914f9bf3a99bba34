"""A writable catalog server for the write tests (not a conftest: import it).

``writable_server(...)`` is a context manager that starts a server on a free
127.0.0.1 port, waits for ``/healthz`` and yields a ``WritableServer``; the
object unpacks as ``url, api_key, tmpdir`` and also offers ``client()``,
``http()``, ``kill()`` (SIGKILL), ``start()`` (again, on the same catalog and
data directory) and ``stop()``. ``fixture(scope=..., **options)`` turns it into
a pytest fixture.

Commands (``<tmp>`` is the server's temporary directory, ``<P>`` a free port):

* tessera (default; the binary is ``$TESSERA_BIN``):
  ``tessera serve catalog --temp --write <tmp>/data --host 127.0.0.1 --port <P> --api-key <KEY>``
  or, with ``persistent=True``,
  ``tessera serve catalog <tmp>/catalog.db --init-if-not-exists --write <tmp>/data ...``
  (``database=`` may instead be a URI: ``sqlite:///abs/path.db``, ``postgresql://...``).
* ``TESTED_SERVER=tiled`` (the binary is ``$TILED_BIN``, else the ``tiled`` next to
  ``sys.executable``, else the one on ``PATH``):
  ``tiled serve catalog --temp --write <tmp>/data --write duckdb:///<tmp>/tabular.duckdb ...``
  or ``tiled serve catalog <tmp>/catalog.db --init --write <tmp>/data --write duckdb:///... ...``.
  Tiled keeps appendable tables (``create_appendable_table``) only in an SQL
  "tabular" storage, which plain ``serve catalog --temp`` adds by itself but
  ``--write DIR`` replaces; the second ``--write`` gives it one back. tessera is
  expected to keep appendable tables in the data directory.
"""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

ON_TILED = os.environ.get("TESTED_SERVER", "").lower() == "tiled"
STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiled_binary():
    explicit = os.environ.get("TILED_BIN")
    if explicit:
        return explicit
    sibling = os.path.join(os.path.dirname(sys.executable), "tiled")
    if os.path.exists(sibling):
        return sibling
    found = shutil.which("tiled")
    if found:
        return found
    pytest.fail("TESTED_SERVER=tiled but no `tiled` command found; set TILED_BIN", pytrace=False)


def tessera_binary():
    binary = os.environ.get("TESSERA_BIN")
    if not binary:
        pytest.fail(
            "the write tests start their own writable server: set TESSERA_BIN "
            "(the tessera binary), or TESTED_SERVER=tiled",
            pytrace=False,
        )
    return binary


class WritableServer:
    """One writable server; may be killed and started again on the same storage."""

    def __init__(self, tmpdir, *, persistent=False, database=None, api_key=None, read=(), env=None):
        self.tmpdir = str(tmpdir)
        # Extra environment variables of the server process (RUST_LOG, say).
        self.env = {**os.environ, **(env or {})}
        # Directories whose files may be registered (`--read DIR`, the same flag in both).
        self.read = [str(d) for d in read]
        self.data_dir = os.path.join(self.tmpdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_dir = os.path.join(self.tmpdir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        if database is None and persistent:
            database = os.path.join(self.tmpdir, "catalog.db")
        self.database = database
        # The client only recognises keys matching ^\w+$.
        self.api_key = api_key or secrets.token_hex(16)
        self.process = None
        self.url = None
        self.starts = 0
        self.stderr_path = None

    # -- unpacking as (url, api_key, tmpdir) --
    def __iter__(self):
        return iter((self.url, self.api_key, self.tmpdir))

    def __repr__(self):
        return f"<WritableServer {self.url} tmpdir={self.tmpdir}>"

    def command(self, port):
        common = [
            "--write",
            self.data_dir,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--api-key",
            self.api_key,
        ]
        for d in self.read:
            common += ["--read", d]
        if ON_TILED:
            tabular = "duckdb:///" + os.path.join(self.tmpdir, "tabular.duckdb")
            common[2:2] = ["--write", tabular]
            if self.database is None:
                return [tiled_binary(), "serve", "catalog", "--temp", *common]
            return [tiled_binary(), "serve", "catalog", self.database, "--init", *common]
        if self.database is None:
            return [tessera_binary(), "serve", "catalog", "--temp", *common]
        return [
            tessera_binary(),
            "serve",
            "catalog",
            self.database,
            "--init-if-not-exists",
            *common,
        ]

    def start(self):
        """Start (or start again after kill/stop) on a fresh port."""
        assert self.process is None or self.process.poll() is not None, "already running"
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.starts += 1
        out_path = os.path.join(self.log_dir, f"stdout-{self.starts}.txt")
        self.stdout_path = out_path
        self.stderr_path = os.path.join(self.log_dir, f"stderr-{self.starts}.txt")
        with open(out_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(self.command(port), stdout=out, stderr=err, env=self.env)
        self._wait_until_ready()
        return self

    def ensure_running(self):
        if self.process is None or self.process.poll() is not None:
            self.start()
        return self

    def _stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()[-20000:]
        except OSError:
            return ""

    def _wait_until_ready(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"the writable server exited with status {self.process.returncode} "
                    f"before it answered /healthz; command: {self.process.args}\n"
                    f"stderr:\n{self._stderr()}",
                    pytrace=False,
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        pytest.fail(
            f"the writable server did not answer /healthz within {STARTUP_TIMEOUT:.0f} s; "
            f"command: {self.process.args}\nstderr:\n{self._stderr()}",
            pytrace=False,
        )

    def kill(self):
        """SIGKILL the server process (no chance to flush or clean up) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()

    def client(self, **kwargs):
        from tiled.client import from_uri

        return from_uri(self.url, api_key=self.api_key, **kwargs)

    @property
    def auth_headers(self):
        return {"Authorization": f"Apikey {self.api_key}"}

    def http(self, **kwargs):
        """A raw httpx client with the API key; use a fresh one per request where a
        5xx may close the connection under the pool."""
        kwargs.setdefault("timeout", 60)
        return httpx.Client(base_url=self.url, headers=self.auth_headers, **kwargs)


@contextlib.contextmanager
def writable_server(tmpdir=None, *, persistent=False, database=None, api_key=None, read=(), env=None):
    """Start a writable server; yield it (unpacks as ``url, api_key, tmpdir``)."""
    own_tmpdir = tmpdir is None
    if own_tmpdir:
        tmpdir = tempfile.mkdtemp(prefix="tessera-writable-")
    server = WritableServer(
        tmpdir, persistent=persistent, database=database, api_key=api_key, read=read, env=env
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if own_tmpdir and not os.environ.get("KEEP_WRITABLE_TMP"):
            shutil.rmtree(tmpdir, ignore_errors=True)


def fixture(scope="module", **options):
    """A pytest fixture (of the given scope) yielding a started ``WritableServer``."""

    @pytest.fixture(scope=scope)
    def _writable_server():
        with writable_server(**options) as server:
            yield server

    return _writable_server
