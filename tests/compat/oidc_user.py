"""A real OpenID Connect provider on loopback, and a browser-less human to log in at it.

The provider is panva's oidc-provider run by ``tests/oidc/provider.mjs`` (Node.js). Its
built-in "devInteractions" pages accept any login name with any password; the account's
claims are ``sub`` = the login, ``name``, ``email`` = ``<login>@example.org`` and
``email_verified``. Consent is pre-granted (openid, offline_access, profile, email and the
requested resource scopes), so a login is all a flow needs; the consent page still appears
when the request says ``prompt=consent``, and ``play_user`` submits it.

Typical use::

    ensure_node_modules()                 # once per session: npm ci in tests/oidc if needed
    key = genkey("k1")                     # a private JWK (RS256; "ES256" also works)
    write_jwks(path, key)
    proc = start_provider(port, [client], path)
    ...
    redirect = play_user(authorization_uri, "alice")   # where the provider sends the browser
    ...
    stop_provider(proc)

Only the standard library and httpx are needed.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
OIDC_DIR = REPO_ROOT / "tests" / "oidc"
PROVIDER_SCRIPT = OIDC_DIR / "provider.mjs"
START_TIMEOUT = 20.0
MAX_STEPS = 30
PASSWORD = "any-password"


class OIDCUserError(RuntimeError):
    """The simulated user could not get through the provider's pages."""


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node (Node.js >= 20) is needed for the OIDC provider and is not on PATH")
    return node


def ensure_node_modules() -> None:
    """Install tests/oidc's locked npm packages if they are not there yet."""
    if (OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install tests/oidc's packages and is not on PATH")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=OIDC_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"npm ci in {OIDC_DIR} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )


def genkey(kid: str, alg: str = "RS256") -> dict:
    """A fresh private signing JWK (with kid, alg and use=sig) made by Node's crypto."""
    done = subprocess.run(
        [_node(), str(PROVIDER_SCRIPT), "genkey", kid, alg],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"genkey {kid} {alg} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def write_jwks(path, *keys: dict) -> None:
    """Write the key file that start_provider's ``jwks_path`` names (the first key's alg is
    the provider's default signing alg)."""
    Path(path).write_text(json.dumps({"keys": list(keys)}))


def start_provider(port, clients, jwks_path, resource=None, *, resource_scopes=None):
    """Start the provider on 127.0.0.1:``port`` (issuer ``http://127.0.0.1:<port>``) and wait
    until it listens. ``clients`` is a list of oidc-provider client metadata dicts; ``resource``
    (an absolute URI) makes requests with ``resource=<it>`` get JWT access tokens for it.

    The returned Popen has ``.issuer`` and ``.stderr_text()``; stop it with stop_provider.
    """
    env = dict(os.environ)
    env.update(
        OIDC_PORT=str(port),
        OIDC_CLIENTS=json.dumps(list(clients)),
        OIDC_JWKS_FILE=str(jwks_path),
    )
    env.pop("OIDC_RESOURCE", None)
    env.pop("OIDC_RESOURCE_SCOPES", None)
    if resource is not None:
        env["OIDC_RESOURCE"] = resource
    if resource_scopes:
        env["OIDC_RESOURCE_SCOPES"] = " ".join(resource_scopes)
    # stderr goes to a file (it holds the provider's warnings and any crash), stdout is read by
    # a thread so that the wait below has a timeout.
    stderr_file = tempfile.TemporaryFile(mode="w+b")
    proc = subprocess.Popen(
        [_node(), str(PROVIDER_SCRIPT)],
        cwd=OIDC_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
    )

    def stderr_text() -> str:
        stderr_file.flush()
        stderr_file.seek(0)
        return stderr_file.read().decode("utf-8", "replace")

    proc.stderr_text = stderr_text
    proc.issuer = f"http://127.0.0.1:{port}"
    lines: queue.Queue = queue.Queue()

    def read_stdout():
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read_stdout, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            stop_provider(proc)
            raise RuntimeError(
                f"the OIDC provider did not listen within {START_TIMEOUT:.0f} s;"
                f" stdout: {seen!r}; stderr:\n{stderr_text()}"
            )
        try:
            line = lines.get(timeout=min(left, 0.5))
        except queue.Empty:
            continue
        if line is None:
            code = proc.wait(timeout=5)
            raise RuntimeError(
                f"the OIDC provider exited ({code}) before listening;"
                f" stdout: {seen!r}; stderr:\n{stderr_text()}"
            )
        seen.append(line)
        if line.startswith("listening "):
            proc.issuer = line.split(" ", 1)[1].strip()
            return proc


def stop_provider(proc, timeout: float = 10.0) -> None:
    """SIGTERM the provider and wait for it (SIGKILL if it does not stop in time)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    if proc.stdout is not None:
        proc.stdout.close()


# --- the simulated human ------------------------------------------------------------------


class _Form:
    def __init__(self, attrs):
        self.id = attrs.get("id")
        self.action = attrs.get("action") or ""
        self.method = (attrs.get("method") or "get").lower()
        self.fields: list[tuple[str, str]] = []  # (name, value) of every named input, in order
        self.types: dict[str, str] = {}

    def names(self):
        return [name for name, _ in self.fields]

    def value(self, name):
        for field, value in self.fields:
            if field == name:
                return value
        return None


class _PageParser(HTMLParser):
    """Collects the forms (action, method, named inputs) and the visible text of a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._by_id: dict[str, _Form] = {}
        self._open: _Form | None = None
        self._skip = 0  # inside <style>/<script>
        self._text: list[str] = []
        self.h1: list[str] = []
        self._in_h1 = False
        self.red: list[str] = []  # the provider's error paragraphs (<p class="red">)
        self._in_red = False

    def handle_starttag(self, tag, attrs):
        attrs = {k: (v if v is not None else "") for k, v in attrs}
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "form":
            self._open = _Form(attrs)
            self.forms.append(self._open)
            if self._open.id:
                self._by_id[self._open.id] = self._open
        elif tag in ("input", "textarea", "select"):
            # Inputs inside a form, or outside one that they name with form="id".
            form = self._by_id.get(attrs["form"]) if attrs.get("form") else self._open
            name = attrs.get("name")
            kind = attrs.get("type", "text").lower()
            if form is not None and name and kind not in ("submit", "button", "image", "reset"):
                if kind in ("checkbox", "radio") and "checked" not in attrs:
                    return
                form.fields.append((name, attrs.get("value", "")))
                form.types[name] = kind
        elif tag == "h1":
            self._in_h1 = True
        elif tag == "p" and "red" in attrs.get("class", "").split():
            self._in_red = True

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "form":
            self._open = None

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip = max(0, self._skip - 1)
        elif tag == "form":
            self._open = None
        elif tag == "h1":
            self._in_h1 = False
        elif tag == "p":
            self._in_red = False

    def handle_data(self, data):
        if self._skip:
            return
        text = data.strip()
        if not text:
            return
        self._text.append(text)
        if self._in_h1:
            self.h1.append(text)
        if self._in_red:
            self.red.append(text)

    @property
    def text(self) -> str:
        return " ".join(self._text)


def _parse(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return parts.scheme.lower(), f"{host}:{port}"


def _page_error(what: str, response: httpx.Response, page: _PageParser | None = None) -> OIDCUserError:
    if page is None:
        page = _parse(response.text)
    return OIDCUserError(
        f"{what} (HTTP {response.status_code} at {response.request.method} {response.url}):"
        f" {page.text[:2000]}"
    )


def _walk(start_url: str, login: str, user_code: str | None, client: httpx.Client | None, device: bool):
    """Drive the provider's pages from ``start_url``. Returns the first redirect target outside
    the provider's origin (authorization flow) or None when the device success page shows."""
    origin = _origin(start_url)
    own = client is None
    http = httpx.Client(timeout=30.0) if own else client
    try:
        method, url, data = "GET", start_url, None
        logged_in = False
        for _ in range(MAX_STEPS):
            if data is None:
                response = http.request(method, url, follow_redirects=False)
            else:
                response = http.request(
                    method,
                    url,
                    content=urlencode(data),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    follow_redirects=False,
                )
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if _origin(target) != origin:
                    if device:
                        raise OIDCUserError(
                            f"the device flow left the provider for {target} (from {response.url})"
                        )
                    return target
                method, url, data = "GET", target, None
                continue
            page = _parse(response.text)
            if response.status_code >= 400:
                raise _page_error("the provider answered with an error page", response, page)
            if device and "Sign-in Success" in page.h1:
                return None
            if page.red:
                raise _page_error(f"the provider said: {' '.join(page.red)}", response, page)
            forms = [f for f in page.forms if f.method == "post" or f.action]
            if not forms:
                raise _page_error("no form to fill and no redirect on this page", response, page)
            form = forms[0]
            fields = list(form.fields)
            names = form.names()
            if "login" in names:
                if logged_in:
                    raise _page_error("the login form came back after logging in", response, page)
                fields = [(n, v) for n, v in fields if n not in ("login", "password")]
                fields += [("login", login), ("password", PASSWORD)]
                logged_in = True
            elif "user_code" in names and not form.value("user_code"):
                if not user_code:
                    raise _page_error(
                        "the provider asks for the user code and none was given", response, page
                    )
                fields = [(n, v) for n, v in fields if n != "user_code"] + [("user_code", user_code)]
            # Anything else (consent, device confirmation, auto-submitting form_post pages) is
            # submitted as the page filled it, like pressing its "Continue" button.
            action = urljoin(str(response.url), form.action or str(response.url))
            if _origin(action) != origin:
                raise _page_error(
                    f"the page posts a form to {action}, outside the provider"
                    " (response_mode=form_post is not supported here)",
                    response,
                    page,
                )
            if form.method == "post":
                method, url, data = "POST", action, fields
            else:
                method, url, data = "GET", str(httpx.URL(action, params=fields)), None
        raise OIDCUserError(f"no end after {MAX_STEPS} pages (last: {method} {url})")
    finally:
        if own:
            http.close()


def play_user(authorization_uri: str, login: str, *, client: httpx.Client | None = None) -> str:
    """Act as the human in a browser at ``authorization_uri``: follow the provider's redirects,
    log in as ``login`` (any password), submit the consent page if one appears, and return the
    first redirect target outside the provider's origin (e.g. the relying party's callback with
    ``code``, ``state`` and ``iss``) without requesting it. ``client`` (an httpx.Client) lets
    the provider's session cookies be kept between calls; by default a fresh one is used."""
    target = _walk(authorization_uri, login, None, client, device=False)
    assert target is not None
    return target


def play_device_user(
    verification_uri_complete_or_uri: str,
    user_code: str | None,
    login: str,
    *,
    client: httpx.Client | None = None,
) -> None:
    """Act as the human at the provider's own device page: enter ``user_code`` if the URI does
    not carry it, confirm, log in as ``login``, consent, and return once the provider shows its
    "Sign-in Success" page. Raises OIDCUserError on any other ending (wrong or expired code...)."""
    _walk(verification_uri_complete_or_uri, login, user_code, client, device=True)
