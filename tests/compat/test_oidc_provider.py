"""The loopback OpenID Connect provider (tests/oidc) and its simulated user (oidc_user.py).

These tests need no tessera server: they check that the test provider and the browser-less
user do what the relying-party tests rely on (authorization code with PKCE S256 and nonce,
refresh tokens, the provider's own device flow, JWT access tokens for a resource, key
rotation across a restart). A few seconds in all.
"""

import base64
import hashlib
import json
import secrets
import socket
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from oidc_user import (
    OIDCUserError,
    ensure_node_modules,
    genkey,
    play_device_user,
    play_user,
    start_provider,
    stop_provider,
    write_jwks,
)

CLIENT_ID = "tessera-test"
CLIENT_SECRET = "tessera-test-secret"
REDIRECT_URI = "http://127.0.0.1:9/cb"
RESOURCE = "http://127.0.0.1:9/api"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CLIENT = {
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "redirect_uris": [REDIRECT_URI],
    "grant_types": ["authorization_code", "refresh_token", DEVICE_GRANT],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic",
}
AUTH = (CLIENT_ID, CLIENT_SECRET)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _jwt_parts(token):
    header, payload, signature = token.split(".")
    return json.loads(_b64url(header)), json.loads(_b64url(payload)), signature


def _verify_rs256(token, jwks):
    """Check an RS256 JWS against the RSA key of its kid in ``jwks`` (PKCS#1 v1.5, by hand)."""
    header, _, signature = _jwt_parts(token)
    assert header["alg"] == "RS256"
    [key] = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert set(key) >= {"n", "e"} and "d" not in key, "the jwks_uri must publish public keys only"
    n = int.from_bytes(_b64url(key["n"]), "big")
    e = int.from_bytes(_b64url(key["e"]), "big")
    size = (n.bit_length() + 7) // 8
    em = pow(int.from_bytes(_b64url(signature), "big"), e, n).to_bytes(size, "big")
    signed = token.rsplit(".", 1)[0].encode()
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(signed).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    assert em == expected, "bad RS256 signature"


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    ensure_node_modules()
    jwks_path = tmp_path_factory.mktemp("oidc") / "jwks.json"
    write_jwks(jwks_path, genkey("k1"))
    started = time.monotonic()
    proc = start_provider(_free_port(), [CLIENT], jwks_path, resource=RESOURCE)
    proc.start_seconds = time.monotonic() - started
    try:
        with httpx.Client(timeout=30.0) as http:
            proc.config = http.get(f"{proc.issuer}/.well-known/openid-configuration").json()
            proc.jwks = http.get(proc.config["jwks_uri"]).json()
        yield proc
    finally:
        stop_provider(proc)
    assert proc.returncode == 0, proc.stderr_text()


def _authorize(provider, login, *, scope="openid offline_access", extra=None, verifier=None):
    """Run the browser part of the code flow; returns (code, verifier, nonce)."""
    verifier = verifier or secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "scope": scope,
        "redirect_uri": REDIRECT_URI,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "prompt": "consent",
        **(extra or {}),
    }
    target = play_user(f"{provider.config['authorization_endpoint']}?{urlencode(params)}", login)
    parts = urlsplit(target)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT_URI
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert "error" not in query, query
    assert query["state"] == state
    assert query["iss"] == provider.issuer
    return query["code"], verifier, nonce


def test_discovery_and_jwks(provider):
    config = provider.config
    assert config["issuer"] == provider.issuer == f"http://127.0.0.1:{urlsplit(provider.issuer).port}"
    assert "S256" in config["code_challenge_methods_supported"]
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                 "device_authorization_endpoint", "revocation_endpoint"):
        assert config[name].startswith(provider.issuer + "/"), name
    assert [k["kid"] for k in provider.jwks["keys"]] == ["k1"]
    assert provider.start_seconds < 20


def test_authorization_code_with_pkce_nonce_and_refresh(provider):
    code, verifier, nonce = _authorize(provider, "alice", scope="openid offline_access profile email")
    with httpx.Client(timeout=30.0) as http:
        token = http.post(
            provider.config["token_endpoint"],
            data={"grant_type": "authorization_code", "code": code,
                  "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
            auth=AUTH,
        )
        assert token.status_code == 200, token.text
        tokens = token.json()
        assert tokens["token_type"].lower() == "bearer"
        assert tokens["refresh_token"]
        header, claims, _ = _jwt_parts(tokens["id_token"])
        assert header["kid"] == "k1"
        _verify_rs256(tokens["id_token"], provider.jwks)
        assert claims["sub"] == "alice"
        assert claims["nonce"] == nonce
        assert claims["aud"] == CLIENT_ID
        assert claims["iss"] == provider.issuer
        assert claims["email"] == "alice@example.org" and claims["email_verified"] is True
        assert 0 < claims["exp"] - claims["iat"] <= 600

        me = http.get(provider.config["userinfo_endpoint"],
                      headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.status_code == 200, me.text
        assert me.json()["email"] == "alice@example.org"

        refreshed = http.post(
            provider.config["token_endpoint"],
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=AUTH,
        )
        assert refreshed.status_code == 200, refreshed.text
        assert _jwt_parts(refreshed.json()["id_token"])[1]["sub"] == "alice"

        # The code is single-use.
        again = http.post(
            provider.config["token_endpoint"],
            data={"grant_type": "authorization_code", "code": code,
                  "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
            auth=AUTH,
        )
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_pkce_is_checked(provider):
    code, _, _ = _authorize(provider, "bob")
    with httpx.Client(timeout=30.0) as http:
        token = http.post(
            provider.config["token_endpoint"],
            data={"grant_type": "authorization_code", "code": code,
                  "redirect_uri": REDIRECT_URI, "code_verifier": secrets.token_urlsafe(48)},
            auth=AUTH,
        )
    assert token.status_code == 400 and token.json()["error"] == "invalid_grant", token.text


def test_pkce_is_not_required_from_a_confidential_client(provider):
    params = {"client_id": CLIENT_ID, "response_type": "code", "scope": "openid",
              "redirect_uri": REDIRECT_URI, "state": "s"}
    target = play_user(f"{provider.config['authorization_endpoint']}?{urlencode(params)}", "carol")
    code = parse_qs(urlsplit(target).query)["code"][0]
    with httpx.Client(timeout=30.0) as http:
        token = http.post(
            provider.config["token_endpoint"],
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
            auth=AUTH,
        )
    assert token.status_code == 200, token.text
    assert _jwt_parts(token.json()["id_token"])[1]["sub"] == "carol"
    assert "refresh_token" not in token.json()  # offline_access was not asked for


def test_access_token_for_the_resource_is_a_jwt(provider):
    code, verifier, _ = _authorize(
        provider, "dave", scope="openid offline_access read:metadata read:data",
        extra={"resource": RESOURCE},
    )
    with httpx.Client(timeout=30.0) as http:
        token = http.post(
            provider.config["token_endpoint"],
            data={"grant_type": "authorization_code", "code": code,
                  "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
            auth=AUTH,
        )
        assert token.status_code == 200, token.text
        tokens = token.json()
        header, claims, _ = _jwt_parts(tokens["access_token"])
        assert header["typ"] == "at+jwt" and header["kid"] == "k1"
        _verify_rs256(tokens["access_token"], provider.jwks)
        assert claims["aud"] == RESOURCE
        assert claims["iss"] == provider.issuer
        assert claims["sub"] == "dave"
        assert claims["client_id"] == CLIENT_ID
        assert set(claims["scope"].split()) == {"read:metadata", "read:data"}
        assert 0 < claims["exp"] - claims["iat"] <= 600
        assert _jwt_parts(tokens["id_token"])[1]["sub"] == "dave"

        # The refresh token redeems to a JWT for the same resource.
        refreshed = http.post(
            provider.config["token_endpoint"],
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=AUTH,
        )
        assert refreshed.status_code == 200, refreshed.text
        assert _jwt_parts(refreshed.json()["access_token"])[1]["aud"] == RESOURCE

        # An unknown resource is refused.
        bad = http.post(
            provider.config["device_authorization_endpoint"],
            data={"scope": "openid", "resource": "http://127.0.0.1:9/other"}, auth=AUTH,
        )
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_target", bad.text


@pytest.mark.parametrize("complete", [True, False], ids=["verification_uri_complete", "typed_user_code"])
def test_device_flow(provider, complete):
    login = "erin" if complete else "frank"
    with httpx.Client(timeout=30.0) as http:
        started = http.post(
            provider.config["device_authorization_endpoint"],
            data={"client_id": CLIENT_ID, "scope": "openid offline_access"},
            auth=AUTH,
        )
        assert started.status_code == 200, started.text
        device = started.json()
        poll = {"grant_type": DEVICE_GRANT, "device_code": device["device_code"]}

        pending = http.post(provider.config["token_endpoint"], data=poll, auth=AUTH)
        assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"

        if complete:
            play_device_user(device["verification_uri_complete"], None, login)
        else:
            play_device_user(device["verification_uri"], device["user_code"], login)

        token = http.post(provider.config["token_endpoint"], data=poll, auth=AUTH)
        assert token.status_code == 200, token.text
        tokens = token.json()
        assert _jwt_parts(tokens["id_token"])[1]["sub"] == login
        assert tokens["refresh_token"]

        # A used user code is refused with a message, which play_device_user reports.
        with pytest.raises(OIDCUserError, match="code"):
            play_device_user(device["verification_uri"], device["user_code"], login)


def test_play_user_reports_an_error_page(provider):
    url = f"{provider.config['authorization_endpoint']}?client_id=nobody&response_type=code&scope=openid"
    with pytest.raises(OIDCUserError, match="invalid_client|client is invalid"):
        play_user(url, "alice")


def test_key_rotation_across_a_restart(tmp_path):
    ensure_node_modules()
    jwks_path = tmp_path / "jwks.json"
    port = _free_port()
    write_jwks(jwks_path, genkey("old"))
    proc = start_provider(port, [CLIENT], jwks_path)
    try:
        jwks = httpx.get(f"{proc.issuer}/jwks").json()
        assert [k["kid"] for k in jwks["keys"]] == ["old"]
    finally:
        stop_provider(proc)
    assert proc.returncode == 0, proc.stderr_text()

    write_jwks(jwks_path, genkey("new", "ES256"))
    proc = start_provider(port, [CLIENT], jwks_path)
    try:
        config = httpx.get(f"{proc.issuer}/.well-known/openid-configuration").json()
        jwks = httpx.get(config["jwks_uri"]).json()
        assert [(k["kid"], k["kty"], k["crv"]) for k in jwks["keys"]] == [("new", "EC", "P-256")]
        assert "d" not in jwks["keys"][0]
        params = {"client_id": CLIENT_ID, "response_type": "code", "scope": "openid",
                  "redirect_uri": REDIRECT_URI, "state": "s"}
        target = play_user(f"{config['authorization_endpoint']}?{urlencode(params)}", "grace")
        code = parse_qs(urlsplit(target).query)["code"][0]
        token = httpx.post(
            config["token_endpoint"],
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
            auth=AUTH,
        )
        assert token.status_code == 200, token.text
        header, claims, _ = _jwt_parts(token.json()["id_token"])
        assert (header["kid"], header["alg"]) == ("new", "ES256")
        assert claims["sub"] == "grace"
    finally:
        stop_provider(proc)
    assert proc.returncode == 0, proc.stderr_text()
