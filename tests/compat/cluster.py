"""A local tessera cluster for the tests (not a conftest: import it).

``Cluster`` starts, on free 127.0.0.1 ports, a private ``redis-server`` and a private
``nats-server`` (so that a test may stop and restart them without touching the machine's
shared ones), ``workers`` × ``tessera worker`` and ``nodes`` × ``tessera serve ...`` API nodes
with ``--redis-url``, ``--nats-url`` and a key prefix of its own. ``serve`` gives the serve
arguments of the API nodes (default: the demo tree). ``metrics(url)`` parses a Prometheus
text page; ``decodes()`` sums ``tessera_chunk_decodes_total`` over every process.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import httpx
import pytest

STARTUP_TIMEOUT = 60.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_pair():
    """A free port whose successor is free too."""
    while True:
        p = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
                return p
            except OSError:
                continue


def wait_for(what, check, timeout=STARTUP_TIMEOUT, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = open(log, errors="replace").read()[-4000:] if log else ""
            pytest.fail(f"{what} exited with {proc.returncode}:\n{tail}", pytrace=False)
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    tail = open(log, errors="replace").read()[-4000:] if log else ""
    pytest.fail(f"{what} not ready within {timeout:.0f} s:\n{tail}", pytrace=False)


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def metrics(url):
    """{name{labels}: value} of a Prometheus text page."""
    out = {}
    for line in httpx.get(url, timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def metric(page, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for key, value in page.items():
        m = re.fullmatch(r"([^{]+)(?:\{(.*)\})?", key)
        if m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += value
    return total


def pg_user():
    return os.environ.get("PGUSER") or os.environ.get("USER") or "postgres"


def psql(sql):
    """Runs `sql` in the machine's PostgreSQL, database `test`."""
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", pg_user(), "-d", "test", "-AtX", "-c", sql],
        check=True, capture_output=True, text=True,
    )


class Proc:
    def __init__(self, name, args, logdir, env=None):
        self.name, self.args, self.env = name, args, env
        self.log = os.path.join(logdir, f"{name}.log")
        self.p = None

    def start(self):
        env = dict(os.environ, **(self.env or {}))
        with open(self.log, "ab") as log:
            self.p = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def kill(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
            self.p.wait()

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class Cluster:
    def __init__(self, binary, nodes=2, workers=2, serve=("demo",), node_args=(), env=None,
                 config=None):
        """`config`, if given, is a function of this cluster giving the text of a config
        file: the nodes run `serve config` on it and the workers read it (its `tessera:`
        section must give this cluster's redis_url, nats_url and key_prefix)."""
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="tessera-cluster-")
        self.prefix = f"t{uuid.uuid4().hex[:12]}"
        self.redis_port, self.nats_port = free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/"
        self.nats_url = f"nats://127.0.0.1:{self.nats_port}"
        self.env = env or {}
        config_args = []
        if config is not None:
            self.config_path = os.path.join(self.dir, "config.yml")
            with open(self.config_path, "w") as f:
                f.write(config(self))
            config_args = ["--config", self.config_path]
        self.redis = Proc(
            "redis",
            [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1",
             "--port", str(self.redis_port), "--save", "", "--appendonly", "no"],
            self.dir,
        )
        nats = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.nats = Proc("nats", [nats, "-a", "127.0.0.1", "-p", str(self.nats_port)], self.dir)
        self.workers = []
        for i in range(workers):
            mport = free_port()
            w = Proc(
                f"worker{i}",
                [binary, "worker", "--nats-url", self.nats_url, "--redis-url", self.redis_url,
                 "--key-prefix", self.prefix, "--metrics", f"127.0.0.1:{mport}", "--threads", "2",
                 *config_args],
                self.dir, env=self.env,
            )
            w.metrics_url = f"http://127.0.0.1:{mport}/metrics"
            self.workers.append(w)
        self.nodes = []
        for i in range(nodes):
            port = free_port()
            if config is None:
                args = [*serve, "--host", "127.0.0.1", "--port", str(port),
                        "--redis-url", self.redis_url, "--nats-url", self.nats_url,
                        "--key-prefix", self.prefix]
            else:
                args = ["config", self.config_path, "--host", "127.0.0.1", "--port", str(port)]
            n = Proc(f"node{i}", [binary, "serve", *args, *node_args], self.dir, env=self.env)
            n.url = f"http://127.0.0.1:{port}"
            self.nodes.append(n)

    def start_redis(self):
        self.redis.start()
        wait_for("redis", lambda: port_open(self.redis_port), proc=self.redis.p, log=self.redis.log)

    def start_nats(self):
        self.nats.start()
        wait_for("nats", lambda: port_open(self.nats_port), proc=self.nats.p, log=self.nats.log)

    def start_worker(self, w):
        w.start()
        wait_for(w.name, lambda: httpx.get(w.metrics_url, timeout=2).status_code == 200,
                 proc=w.p, log=w.log)
        # Registered with NATS once its log says it takes jobs.
        wait_for(w.name, lambda: "taking jobs" in open(w.log, errors="replace").read(),
                 proc=w.p, log=w.log)

    def start_node(self, n):
        n.start()
        wait_for(n.name, lambda: httpx.get(f"{n.url}/healthz", timeout=2).status_code == 200,
                 proc=n.p, log=n.log)

    def __enter__(self):
        try:
            self.start_redis()
            self.start_nats()
            for w in self.workers:
                self.start_worker(w)
            for n in self.nodes:
                self.start_node(n)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for p in [*self.nodes, *self.workers, self.nats, self.redis]:
            p.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def decodes(self):
        """Chunks decoded by every process of the cluster."""
        urls = [w.metrics_url for w in self.workers if w.p and w.p.poll() is None]
        urls += [f"{n.url}/metrics" for n in self.nodes if n.p and n.p.poll() is None]
        return sum(metric(metrics(u), "tessera_chunk_decodes_total") for u in urls)

    def node_metric(self, node, name, **labels):
        return metric(metrics(f"{node.url}/metrics"), name, **labels)


class TcpProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target`; `stop()` closes the listener and
    every connection (the service behind it looks down to its clients), `start()` again."""

    def __init__(self, target):
        import threading

        self.target, self.port = target, free_port()
        self.lock = threading.Lock()
        self.conns, self.listener = [], None

    def start(self):
        import threading

        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()
        return self

    def _accept(self, listener):
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        if self.listener:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
