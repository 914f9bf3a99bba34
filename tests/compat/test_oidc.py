"""Logins at a real OpenID Connect provider, and the user table with argon2 passwords.

The module starts panva's oidc-provider (OpenID-certified; ``tests/oidc``) on loopback and one
``$TESSERA_BIN serve config FILE`` with three providers:

- ``idp``: Tiled's ``OIDCAuthenticator`` at that provider (discovery document, its keys, a
  confidential client). The stock client's ``login()`` drives the device-code flow; a script
  plays the user in the provider's login pages and on tessera's user-code form.
- ``local``: ``tessera.authenticators:DatabaseAuthenticator``, users with argon2id hashes in
  the authentication database, the first admin added with ``tessera user set`` before start.

Nothing of the OpenID protocol is mocked: the provider issues real codes and signed ID
tokens, and rotating its signing key (a restart with another key) is followed by tessera.
"""

import html
import os
import re
import secrets
import subprocess
import tempfile

import httpx
import pytest

import cluster
import oidc_user
import writable

pytestmark = pytest.mark.skipif(writable.ON_TILED, reason="tessera's own config")

CONFIRMATION = "You have logged in with the identity provider as {id}."
ROOT_PASSWORD = "root-password-1"


def config(tmp, port, idp_port):
    return f"""\
trees:
  - path: /
    tree: catalog
    args:
      uri: "sqlite:///{tmp}/catalog.db"
      writable_storage: "{tmp}/data"
      init_if_not_exists: true
authentication:
  providers:
    - provider: idp
      authenticator: tiled.authenticators:OIDCAuthenticator
      args:
        audience: tessera
        client_id: tessera
        client_secret: "${{OIDC_CLIENT_SECRET}}"
        well_known_uri: http://127.0.0.1:{idp_port}/.well-known/openid-configuration
        confirmation_message: "{CONFIRMATION}"
    - provider: local
      authenticator: tessera.authenticators:DatabaseAuthenticator
  tiled_admins:
    - {{provider: idp, id: admin}}
    - {{provider: local, id: root}}
  secret_keys: ["${{TESSERA_TEST_SECRET}}"]
  allow_anonymous_access: false
database:
  uri: "sqlite:///{tmp}/auth.db"
  init_if_not_exists: true
tessera:
  login_failures_per_minute: 5
uvicorn: {{host: 127.0.0.1, port: {port}}}
"""


class Idp:
    """The provider process, restartable with other keys on the same port."""

    def __init__(self, tmp, port, client):
        self.tmp, self.port, self.client = tmp, port, client
        self.proc = None
        self.jwks = os.path.join(tmp, "jwks.json")

    def start(self, *keys):
        oidc_user.write_jwks(self.jwks, *keys)
        self.proc = oidc_user.start_provider(self.port, [self.client], self.jwks)

    def stop(self):
        if self.proc is not None:
            oidc_user.stop_provider(self.proc)
            self.proc = None


class Server:
    def __init__(self, proc, port, tmp, idp):
        self.proc, self.dir, self.idp = proc, tmp, idp
        self.url = f"http://127.0.0.1:{port}"
        self.api = f"{self.url}/api/v1"

    def log(self):
        with open(self.proc.log, errors="replace") as f:
            return f.read()

    def whoami(self, token):
        r = httpx.get(f"{self.api}/auth/whoami", headers={"Authorization": f"Bearer {token}",
                                                          "Accept": "application/json"})
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    oidc_user.ensure_node_modules()
    tmp = str(tmp_path_factory.mktemp("oidc"))
    port, idp_port = cluster.free_port(), cluster.free_port()
    secret = secrets.token_hex(16)
    api = f"http://127.0.0.1:{port}/api/v1"
    idp = Idp(tmp, idp_port, {
        "client_id": "tessera",
        "client_secret": secret,
        "redirect_uris": [f"{api}/auth/provider/idp/device_code", f"{api}/auth/provider/idp/code"],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    })
    idp.start(oidc_user.genkey("k1"))
    path = os.path.join(tmp, "config.yml")
    with open(path, "w") as f:
        f.write(config(tmp, port, idp_port))
    env = {"OIDC_CLIENT_SECRET": secret, "TESSERA_TEST_SECRET": secrets.token_hex(32)}
    # The first admin of the user table, before start: what an operator does once.
    added = subprocess.run([writable.tessera_binary(), "user", "--config", path, "set", "local",
                            "root"], input=ROOT_PASSWORD + "\n", capture_output=True, text=True,
                           env=dict(os.environ, **env), timeout=60)
    assert added.returncode == 0, added.stderr
    assert "added root at local" in added.stdout, added.stdout
    proc = cluster.Proc("tessera", [writable.tessera_binary(), "serve", "config", path], tmp,
                        env=env).start()
    try:
        cluster.wait_for("tessera", lambda: httpx.get(f"http://127.0.0.1:{port}/healthz",
                                                      timeout=2).status_code == 200,
                         proc=proc.p, log=proc.log)
        yield Server(proc, port, tmp, idp)
    finally:
        proc.stop()
        idp.stop()


def form_fields(page):
    """The hidden fields and action of tessera's user-code form."""
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    action = re.search(r'<form method="post" action="([^"]*)"', page)
    assert action, page
    return html.unescape(action.group(1)), {k: html.unescape(v) for k, v in fields.items()}


def approve(back_url, user_code, client=None):
    """The user, sent back by the provider to tessera's form, types the user code."""
    client = client or httpx.Client(timeout=10)
    page = client.get(back_url)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html"), page.headers
    assert "script" not in page.text
    action, fields = form_fields(page.text)
    return client.post(action, data={**fields, "user_code": user_code})


def start_device(server):
    r = httpx.post(f"{server.api}/auth/provider/idp/authorize", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def poll(server, doc):
    return httpx.post(doc["verification_uri"], json={
        "device_code": doc["device_code"],
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code"}, timeout=10)


def device_login(server, login):
    """The device flow over plain HTTP (what the client does, without its 5 s sleeps)."""
    doc = start_device(server)
    back = oidc_user.play_user(doc["authorization_uri"], login)
    done = approve(back, doc["user_code"])
    assert done.status_code == 200, done.text
    r = poll(server, doc)
    assert r.status_code == 200, r.text
    return r.json()


def password_grant(server, username, password, provider="local"):
    return httpx.post(f"{server.api}/auth/provider/{provider}/token",
                      data={"grant_type": "password", "username": username, "password": password},
                      timeout=30)


# --------------------------------------------------------------------------

def test_the_root_document_advertises_both_kinds_of_provider(server):
    r = httpx.get(f"{server.api}/", headers={"Accept": "application/json"})
    providers = {p["provider"]: p for p in r.json()["authentication"]["providers"]}
    assert providers["idp"]["mode"] == "external"
    assert providers["idp"]["links"]["auth_endpoint"] == f"{server.api}/auth/provider/idp/authorize"
    assert providers["idp"]["confirmation_message"] == CONFIRMATION
    assert providers["local"]["mode"] == "internal"
    assert providers["local"]["links"]["auth_endpoint"] == f"{server.api}/auth/provider/local/token"


def test_device_code_login_with_the_stock_client(server, monkeypatch, capsys):
    """`from_uri` on a server that requires login runs the client's device-code flow; the
    browser it would open is this test, logging in as alice at the provider."""
    import webbrowser

    from tiled.client import from_uri

    opened = []

    def browser(url):
        printed = capsys.readouterr().out
        user_code = re.search(r"enter the code:\s+(\S+)", printed)
        assert user_code, printed
        opened.append(url)
        back = oidc_user.play_user(url, "alice")
        assert back.startswith(f"{server.api}/auth/provider/idp/device_code?"), back
        done = approve(back, user_code.group(1))
        assert done.status_code == 200, done.text
        assert "logged in as alice" in done.text
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    # Two providers: the client asks which; the first is idp.
    monkeypatch.setattr("builtins.input", lambda prompt="": "1")
    monkeypatch.delenv("TILED_API_KEY", raising=False)
    monkeypatch.setenv("TILED_CACHE_DIR", tempfile.mkdtemp(prefix="tokens-", dir=server.dir))
    c = from_uri(server.url, remember_me=True)
    assert opened and opened[0].startswith(server.idp.proc.issuer + "/auth?"), opened
    assert "code_challenge_method=S256" in opened[0] and "nonce=" in opened[0], opened[0]
    me = c.context.whoami()
    assert [(i["provider"], i["id"]) for i in me["identities"]] == [("idp", "alice")]
    assert {r["name"] for r in me["roles"]} == {"user"}
    assert CONFIRMATION.format(id="alice") in capsys.readouterr().out
    # The session is an ordinary one: the client reads with it, then refreshes it.
    assert list(c) == []
    c.context.force_auth_refresh()
    assert c.context.whoami()["uuid"] == me["uuid"]


def test_the_device_code_is_pending_until_approved_and_redeemed_once(server):
    doc = start_device(server)
    assert re.fullmatch(r"[0-9A-F]{4}-[0-9A-F]{4}", doc["user_code"]), doc
    assert re.fullmatch(r"[0-9a-f]{64}", doc["device_code"]), doc
    assert doc["interval"] > 0 and doc["expires_in"] > 60, doc
    r = poll(server, doc)
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == {"error": "authorization_pending"}, r.text
    back = oidc_user.play_user(doc["authorization_uri"], "bob")
    assert approve(back, doc["user_code"].lower().replace("-", "")).status_code == 200
    r = poll(server, doc)
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["identity"] == {"id": "bob", "provider": "idp"}, tokens
    assert server.whoami(tokens["access_token"])["identities"][0]["id"] == "bob"
    again = poll(server, doc)
    assert again.status_code == 404, again.text
    bad = httpx.post(doc["verification_uri"], json={"device_code": "zz"})
    assert bad.status_code == 401, bad.text
    unknown = httpx.post(doc["verification_uri"], json={"device_code": "ab" * 32})
    assert unknown.status_code == 404, unknown.text


def test_a_user_code_approves_only_the_login_it_belongs_to(server):
    """A wrong user code is refused on the form; so is the right user code brought back
    from another login (its state differs): nobody approves someone else's device."""
    victim, attacker = start_device(server), start_device(server)
    back = oidc_user.play_user(attacker["authorization_uri"], "mallory")
    wrong = approve(back, "0000-0000")
    assert wrong.status_code == 401, wrong.text
    assert "Invalid user code" in wrong.text
    stolen = approve(back, victim["user_code"])
    assert stolen.status_code == 401, stolen.text
    assert poll(server, victim).status_code == 400
    # The attacker's own code still works with the attacker's own login.
    back = oidc_user.play_user(attacker["authorization_uri"], "mallory")
    assert approve(back, attacker["user_code"]).status_code == 200
    assert poll(server, attacker).json()["identity"]["id"] == "mallory"
    assert poll(server, victim).status_code == 400


def test_an_admin_of_the_identity_provider_gets_the_admin_role(server):
    tokens = device_login(server, "admin")
    me = server.whoami(tokens["access_token"])
    assert {r["name"] for r in me["roles"]} == {"admin"}, me
    principals = httpx.get(f"{server.api}/auth/principal",
                           headers={"Authorization": f"Bearer {tokens['access_token']}",
                                    "Accept": "application/json"})
    assert principals.status_code == 200, principals.text


def test_browser_login_returns_tokens_to_the_browser_that_began_it(server):
    browser = httpx.Client(timeout=10)
    r = browser.get(f"{server.api}/auth/provider/idp/authorize", params={"state": "mine"})
    assert r.status_code == 302, r.text
    to_idp = r.headers["location"]
    assert to_idp.startswith(server.idp.proc.issuer + "/auth?"), to_idp
    assert "prompt=login" in to_idp
    assert "tessera_oidc_state" in r.headers["set-cookie"], r.headers
    assert "HttpOnly" in r.headers["set-cookie"]
    back = oidc_user.play_user(to_idp, "carol")
    assert back.startswith(f"{server.api}/auth/provider/idp/code?"), back
    # Another browser (no state cookie) cannot finish this login...
    stranger = httpx.get(back, timeout=10)
    assert stranger.status_code == 401, stranger.text
    # ...and that did not spend it: the browser that began it can.
    r = browser.get(back)
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["identity"] == {"id": "carol", "provider": "idp"}, tokens
    assert server.whoami(tokens["access_token"])["identities"][0]["id"] == "carol"
    # The state is used once.
    assert browser.get(back).status_code == 401


def test_a_rotated_signing_key_is_fetched_again(server):
    before = device_login(server, "dave")
    server.idp.stop()
    # The provider comes back signing with a new key of another algorithm; tessera still
    # holds the old key set, meets an unknown kid and fetches the keys again.
    server.idp.start(oidc_user.genkey("k2", "ES256"))
    after = device_login(server, "dave")
    assert after["principal"] == before["principal"]
    assert "signing keys fetched again" in server.log()


def test_an_unreachable_provider_is_a_clear_503_and_no_session(server):
    doc = start_device(server)
    back = oidc_user.play_user(doc["authorization_uri"], "erin")
    server.idp.stop()
    try:
        r = approve(back, doc["user_code"])
        assert r.status_code == 503, r.text
        assert "identity provider cannot be reached" in r.text
        assert poll(server, doc).status_code == 400
    finally:
        server.idp.start(oidc_user.genkey("k3"))


def test_nothing_secret_reaches_the_log(server):
    log = server.log()
    assert server.idp.client["client_secret"] not in log
    assert ROOT_PASSWORD not in log
    for word in ("access_token", "refresh_token", "id_token"):
        assert not re.search(word + r'"?\s*[:=]\s*"?ey', log), word


# --------------------------------------------------------------------------
# The user table.

def auth_headers(token):
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def test_the_first_admin_from_the_command_line_logs_in(server):
    r = password_grant(server, "root", ROOT_PASSWORD)
    assert r.status_code == 200, r.text
    me = server.whoami(r.json()["access_token"])
    assert {role["name"] for role in me["roles"]} == {"admin"}
    assert password_grant(server, "root", ROOT_PASSWORD + "x").status_code == 401
    assert password_grant(server, "nobody", ROOT_PASSWORD).status_code == 401


def test_an_admin_adds_resets_and_removes_users(server):
    root = password_grant(server, "root", ROOT_PASSWORD).json()["access_token"]
    users = f"{server.api}/auth/provider/local/users"
    r = httpx.put(f"{users}/frank", json={"password": "frank-pw-1"}, headers=auth_headers(root))
    assert r.status_code == 200, r.text
    assert r.json()["added"] is True
    assert httpx.put(f"{users}/frank", json={"password": "short"},
                     headers=auth_headers(root)).status_code == 400
    frank = password_grant(server, "frank", "frank-pw-1")
    assert frank.status_code == 200, frank.text
    listed = httpx.get(users, headers=auth_headers(root))
    assert [u["username"] for u in listed.json()] == ["frank", "root"], listed.text
    assert "hash" not in listed.text and "argon2" not in listed.text
    # A user is no admin of users.
    ftoken = frank.json()["access_token"]
    r = httpx.put(f"{users}/grace", json={"password": "grace-pw-1"}, headers=auth_headers(ftoken))
    assert r.status_code in (401, 403), r.text
    assert httpx.get(users, headers=auth_headers(ftoken)).status_code in (401, 403)
    # Frank changes his own password; the old one stops working.
    change = f"{server.api}/auth/provider/local/password"
    r = httpx.post(change, json={"old_password": "wrong-pw-1", "new_password": "frank-pw-2"},
                   headers=auth_headers(ftoken))
    assert r.status_code == 401, r.text
    r = httpx.post(change, json={"old_password": "frank-pw-1", "new_password": "frank-pw-2"},
                   headers=auth_headers(ftoken))
    assert r.status_code == 204, r.text
    assert password_grant(server, "frank", "frank-pw-1").status_code == 401
    session = password_grant(server, "frank", "frank-pw-2")
    assert session.status_code == 200
    # Removed: no login, and his sessions end.
    assert httpx.delete(f"{users}/frank", headers=auth_headers(root)).status_code == 204
    assert password_grant(server, "frank", "frank-pw-2").status_code == 401
    refresh = httpx.post(f"{server.api}/auth/session/refresh",
                         json={"refresh_token": session.json()["refresh_token"]})
    assert refresh.status_code == 401, refresh.text
    assert httpx.delete(f"{users}/frank", headers=auth_headers(root)).status_code == 404


def test_the_user_table_stores_argon2id_hashes_only(server):
    import sqlite3

    db = sqlite3.connect(os.path.join(server.dir, "auth.db"))
    rows = db.execute("SELECT username, hash FROM auth_users WHERE provider = 'local'").fetchall()
    assert rows, rows
    for username, hash_ in rows:
        assert hash_.startswith("$argon2id$"), hash_
        assert ROOT_PASSWORD not in hash_


# --------------------------------------------------------------------------
# Configs.

def check_config(tmp, text, env):
    path = os.path.join(tmp, "config.yml")
    with open(path, "w") as f:
        f.write(text)
    return subprocess.run([writable.tessera_binary(), "check-config", path], capture_output=True,
                          text=True, env=dict(os.environ, **env), timeout=30)


def test_check_config_masks_the_client_secret_and_names_what_is_wrong(tmp_path):
    tmp = str(tmp_path)
    text = config(tmp, 8000, 9000)
    ok = check_config(tmp, text, {"OIDC_CLIENT_SECRET": "very-secret-value",
                                  "TESSERA_TEST_SECRET": "s" * 32})
    assert ok.returncode == 0, ok.stderr
    assert "very-secret-value" not in ok.stdout
    assert "client_secret: '***'" in ok.stdout, ok.stdout
    # An unset variable leaves the secret empty: refused, naming the key.
    unset = check_config(tmp, text, {"OIDC_CLIENT_SECRET": "", "TESSERA_TEST_SECRET": "s" * 32})
    assert unset.returncode != 0
    assert "authentication.providers[0].args.client_secret" in unset.stderr, unset.stderr
    # An argument of another authenticator is refused, naming it.
    mixed = text.replace("        audience: tessera\n",
                         "        audience: tessera\n        users_to_passwords: {a: b}\n")
    out = check_config(tmp, mixed, {"OIDC_CLIENT_SECRET": "x", "TESSERA_TEST_SECRET": "s" * 32})
    assert out.returncode != 0
    assert "args.users_to_passwords" in out.stderr, out.stderr
    claim = text.replace("        audience: tessera\n",
                         "        audience: tessera\n        user_id_claim: phone\n")
    out = check_config(tmp, claim, {"OIDC_CLIENT_SECRET": "x", "TESSERA_TEST_SECRET": "s" * 32})
    assert out.returncode != 0
    assert "user_id_claim" in out.stderr and "phone" in out.stderr, out.stderr
