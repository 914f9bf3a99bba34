"""Tiled's tag-based access policy, through the stock client and raw requests.

One server (a catalog on SQLite, one password provider) with the policy: proposal A's tag
gives alice write and carol read; proposal B's tag gives the group team_b (bob) read;
``open_data`` includes ``public``. An admin lays out ``a/``, ``b/`` and ``open/`` with their
tags. Each identity then sees, counts, searches and reads exactly what its grants allow, and
nothing else leaks: no key, count or value of another proposal in any answer, no chunk of it
through the shared cache, no write outside its grants.
"""

import json
import os
import uuid

import httpx
import numpy
import pytest
from tiled.client import from_uri

import cluster
import writable

pytestmark = pytest.mark.skipif(writable.ON_TILED, reason="tessera's own config")

PASSWORDS = {"alice": "pw-alice", "bob": "pw-bob", "carol": "pw-carol", "root": "pw-root"}

TAGS = """\
roles:
  reader: {scopes: ["read:metadata", "read:data"]}
  writer:
    scopes: ["read:metadata", "read:data", "write:metadata", "write:data", "create:node",
             "delete:node", "delete:revision"]
tags:
  proposal_a:
    users: [{name: alice, role: writer}, {name: carol, role: reader}]
  proposal_b:
    groups: [{name: team_b, role: reader}]
  open_data:
    users: [{name: alice, role: writer}]
    auto_tags: [{name: public}]
tag_owners:
  proposal_a: {users: [{name: alice}]}
  open_data: {users: [{name: alice}]}
groups:
  team_b: [bob]
"""


def config(tmp, port, catalog=None, auth_db=None, extra=""):
    """The server's config: catalog and authentication database default to SQLite files in
    `tmp`; `extra` is more of the `tessera:` section."""
    catalog = catalog or f"sqlite:///{tmp}/catalog.db"
    auth_db = auth_db or f"sqlite:///{tmp}/auth.db"
    users = "\n".join(f"          {u}: {p}" for u, p in PASSWORDS.items())
    return f"""\
trees:
  - path: /
    tree: catalog
    args:
      uri: "{catalog}"
      writable_storage: "{tmp}/data"
      init_if_not_exists: true
      top_level_access_tags: [public]
authentication:
  providers:
    - provider: toy
      authenticator: tiled.authenticators:DictionaryAuthenticator
      args:
        users_to_passwords:
{users}
  tiled_admins: [{{provider: toy, id: root}}]
  secret_keys: [policy-test-key]
  allow_anonymous_access: true
database: {{uri: "{auth_db}", init_if_not_exists: true}}
access_control:
  access_policy: "tiled.access_control.access_policies:TagBasedAccessPolicy"
  args:
    provider: toy
    access_tags_parser: "tiled.access_control.access_tags:AccessTagsParser"
tessera:
  access_tag_definitions: "{tmp}/tags.yml"
{extra}uvicorn: {{host: 127.0.0.1, port: {port}}}
"""


class World:
    """The server (or the API nodes of a cluster, taken in turn request by request)."""

    def __init__(self, urls):
        self.urls = urls
        self.turn = 0
        self.keys = {}

    @property
    def url(self):
        self.turn += 1
        return self.urls[self.turn % len(self.urls)]

    @property
    def api(self):
        return f"{self.url}/api/v1"

    def key(self, user):
        """An inheriting API key of `user` (made once)."""
        if user not in self.keys:
            grant = {"grant_type": "password", "username": user, "password": PASSWORDS[user]}
            token = httpx.post(f"{self.api}/auth/provider/toy/token", data=grant,
                               timeout=10).json()["access_token"]
            r = httpx.post(f"{self.api}/auth/apikey", json={},
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert r.status_code == 200, r.text
            self.keys[user] = r.json()["secret"]
        return self.keys[user]

    def client(self, user):
        return from_uri(self.url) if user is None else from_uri(self.url, api_key=self.key(user))

    def get(self, user, path, **params):
        headers = {"Accept": "application/json"}
        if user is not None:
            headers["Authorization"] = f"Apikey {self.key(user)}"
        return httpx.get(f"{self.api}{path}", params=params, headers=headers, timeout=10)


def lay_out(w):
    """An admin makes proposals a, b and open, each with an array x, and a public array in b."""
    root = w.client("root")
    for key, tag, value in (("a", "proposal_a", 1.0), ("b", "proposal_b", 2.0),
                            ("open", "open_data", 3.0)):
        c = root.create_container(key, access_tags=[tag], metadata={"proposal": key})
        c.write_array(numpy.full((8, 8), value), key="x", access_tags=[tag],
                      metadata={"proposal": key, "secret_note": f"note-{key}"})
    # A public node inside proposal B: whoever cannot see b/ must not find it either.
    root["b"].write_array(numpy.zeros(2), key="pub", access_tags=["open_data"],
                          metadata={"secret_note": "note-b-public"})
    # A table of proposal B.
    import pandas

    root["b"].write_table(pandas.DataFrame({"v": [1.0, 2.0, 3.0]}), key="t",
                              access_tags=["proposal_b"])
    # A sparse and an awkward array of proposal B.
    import awkward

    root["b"].write_sparse(coords=numpy.array([[0, 2], [1, 3]]), data=numpy.array([1.5, 2.5]),
                           shape=(4, 4), key="sp", access_tags=["proposal_b"])
    root["b"].write_awkward(awkward.Array([[1, 2], [], [3]]), key="aw",
                            access_tags=["proposal_b"])
    # A proposal-B node inside open/: only B's readers may count it.
    root["open"].write_array(numpy.zeros(2), key="b_inside", access_tags=["proposal_b"])
    return w


def pg_schema(request):
    schema = f"tessera_policy_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    cluster.psql(f"CREATE SCHEMA {schema}")
    request.addfinalizer(lambda: cluster.psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    return f"postgresql://{cluster.pg_user()}@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="module", params=["sqlite", "postgres", "cluster"])
def world(request, tmp_path_factory):
    """The policy's world on an SQLite catalog, on a PostgreSQL one (own schema), and on two
    API nodes with workers and the shared cache (catalog and principals in PostgreSQL)."""
    tmp = str(tmp_path_factory.mktemp("policy"))
    with open(os.path.join(tmp, "tags.yml"), "w") as f:
        f.write(TAGS)
    if request.param == "cluster":
        database = pg_schema(request)

        def cluster_config(c):
            extra = (f"  redis_url: \"{c.redis_url}\"\n  nats_url: \"{c.nats_url}\"\n"
                     f"  key_prefix: \"{c.prefix}\"\n")
            return config(tmp, 0, database, database, extra)

        with cluster.Cluster(writable.tessera_binary(), nodes=2, workers=1,
                             config=cluster_config) as c:
            yield lay_out(World([n.url for n in c.nodes]))
        return
    catalog = pg_schema(request) if request.param == "postgres" else None
    port = cluster.free_port()
    path = os.path.join(tmp, "config.yml")
    with open(path, "w") as f:
        f.write(config(tmp, port, catalog))
    proc = cluster.Proc("tessera", [writable.tessera_binary(), "serve", "config", path], tmp).start()
    url = f"http://127.0.0.1:{port}"
    try:
        cluster.wait_for("tessera", lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200,
                         proc=proc.p, log=proc.log)
        yield lay_out(World([url]))
    finally:
        proc.stop()


def keys_of(r):
    assert r.status_code == 200, r.text
    return sorted(item["id"] for item in r.json()["data"])


SEES = {None: ["open"], "alice": ["a", "open"], "carol": ["a", "open"], "bob": ["b", "open"],
        "root": ["a", "b", "open"]}
# How many children of open/ each identity counts (x, and b_inside for B's readers).
OPEN_COUNT = {None: 1, "alice": 1, "carol": 1, "bob": 2, "root": 2}
# What a deep search for `secret_note` finds: the arrays under the visible containers.
DEEP = {None: ["x"], "alice": ["x", "x"], "carol": ["x", "x"], "bob": ["pub", "x", "x"],
        "root": ["pub", "x", "x", "x"]}


@pytest.mark.parametrize("user", list(SEES))
def test_listings_counts_and_distinct_hold_only_what_is_granted(world, user):
    assert keys_of(world.get(user, "/search/")) == SEES[user]
    assert world.get(user, "/search/", **{"page[limit]": 0}).json()["meta"]["count"] == len(SEES[user])
    root = world.get(user, "/metadata/").json()["data"]["attributes"]["structure"]
    assert root["count"] == len(SEES[user])
    # The counts of the children in a listing, and of a node on its own, are the caller's.
    listed = {i["id"]: i["attributes"]["structure"]["count"]
              for i in world.get(user, "/search/").json()["data"]}
    assert listed["open"] == OPEN_COUNT[user]
    single = world.get(user, "/metadata/open").json()["data"]["attributes"]["structure"]
    assert single["count"] == OPEN_COUNT[user]
    d = world.get(user, "/distinct/", metadata="proposal", counts="true").json()
    assert sorted(v["value"] for v in d["metadata"]["proposal"]) == SEES[user]
    # Deep search finds what is under the visible containers only (b/pub is public, but
    # inside b).
    found = world.get(user, "/search-deep/", **{"filter[keypresent][condition][key]": "secret_note",
                                                "filter[keypresent][condition][exists]": "true"})
    assert sorted(i["id"] for i in found.json()["data"]) == DEEP[user], found.text
    assert found.json()["meta"]["count"] == len(DEEP[user])
    # Nothing of a hidden proposal appears anywhere in these answers.
    hidden = {"a", "b", "open"} - set(SEES[user])
    for text in (world.get(user, "/search/").text, json.dumps(d), found.text):
        for key in hidden:
            assert f"note-{key}" not in text and f'"{key}"' not in text


@pytest.mark.parametrize("user", list(SEES))
def test_reads_of_hidden_nodes_are_404_as_missing_ones(world, user):
    for key in ("a", "b", "open"):
        meta = world.get(user, f"/metadata/{key}/x")
        data = world.get(user, f"/array/full/{key}/x")
        if key in SEES[user]:
            assert meta.status_code == 200 and data.status_code == 200, (meta.text, data.text)
            assert data.json()[0][0] == {"a": 1.0, "b": 2.0, "open": 3.0}[key]
        else:
            assert (meta.status_code, data.status_code) == (404, 404)
            assert meta.json()["detail"] == world.get(user, f"/metadata/{key}/nope").json()["detail"].replace("nope", "x")


def test_the_shared_cache_is_no_way_around_the_policy(world):
    # bob (and root) read b/x, so its chunk is cached; alice still cannot have it.
    assert world.get("bob", "/array/block/b/x", block="0,0").status_code == 200
    assert world.get("alice", "/array/block/b/x", block="0,0").status_code == 404
    assert world.get(None, "/array/block/b/x", block="0,0").status_code == 404


def test_writes_follow_the_grants(world):
    alice, carol, bob = world.client("alice"), world.client("carol"), world.client("bob")
    # alice writes in proposal A with its tag; carol reads it, bob does not see it.
    alice["a"].write_array(numpy.arange(4), key="by_alice", access_tags=["proposal_a"])
    numpy.testing.assert_array_equal(carol["a"]["by_alice"].read(), numpy.arange(4))
    assert world.get("bob", "/metadata/a/by_alice").status_code == 404
    # carol may see proposal A but not write there: 403.
    with pytest.raises(httpx.HTTPStatusError) as e:
        carol["a"].write_array(numpy.arange(3), key="by_carol", access_tags=["proposal_a"])
    assert e.value.response.status_code == 403
    # bob cannot even see A: 404; anonymous cannot write at all: 401.
    r = httpx.post(f"{world.api}/metadata/a", headers={"Authorization": f"Apikey {world.key('bob')}"},
                   json={"data": {"type": "container", "id": "nope",
                                  "attributes": {"structure_family": "container", "metadata": {},
                                                 "specs": []}}}, timeout=10)
    assert r.status_code == 404, r.text
    with pytest.raises(httpx.HTTPStatusError) as e:
        from_uri(world.url)["open"].write_array(numpy.arange(2), key="anon")
    assert e.value.response.status_code == 401
    with pytest.raises(httpx.HTTPStatusError) as e:
        bob["b"].write_array(numpy.arange(2), key="by_bob", access_tags=["proposal_b"])
    assert e.value.response.status_code == 403


def test_tags_a_user_may_not_apply_are_refused(world):
    alice = world.client("alice")
    for tags, why in ((["proposal_b"], "own"), (["public"], "admin"), (["user:bob"], "principal"),
                      (["nonexistent"], "not defined"), ([], "admin")):
        with pytest.raises(httpx.HTTPStatusError) as e:
            alice["a"].write_array(numpy.arange(2), key="tagged", access_tags=tags)
        assert e.value.response.status_code == 403, tags
        assert why in e.value.response.json()["detail"], (tags, e.value.response.text)


def test_an_untagged_node_is_its_makers_until_retagged(world):
    alice = world.client("alice")
    alice["a"].write_array(numpy.ones(3), key="private")
    assert world.get("alice", "/metadata/a/private").json()["data"]["attributes"]["access_tags"] == ["user:alice"]
    assert world.get("carol", "/metadata/a/private").status_code == 404
    # alice owns proposal_a: she shares her node with the proposal.
    r = httpx.put(f"{world.api}/metadata/a/private",
                  headers={"Authorization": f"Apikey {world.key('alice')}"},
                  json={"access_tags": ["proposal_a"]}, timeout=10)
    assert r.status_code == 200, r.text
    assert world.get("carol", "/metadata/a/private").status_code == 200
    # carol may not change tags on a node she only reads.
    r = httpx.put(f"{world.api}/metadata/a/private",
                  headers={"Authorization": f"Apikey {world.key('carol')}"},
                  json={"access_tags": ["open_data"]}, timeout=10)
    assert r.status_code == 403, r.text


def test_a_bad_policy_stops_start_up(tmp_path):
    import subprocess

    bad = TAGS.replace("role: reader}]\n  proposal_b", "role: nobody}]\n  proposal_b")
    (tmp_path / "tags.yml").write_text(bad)
    (tmp_path / "config.yml").write_text(config(str(tmp_path), 0))
    out = subprocess.run([writable.tessera_binary(), "check-config", str(tmp_path / "config.yml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "tessera.access_tag_definitions" in out.stderr and "nobody" in out.stderr, out.stderr


def test_a_key_restricted_to_tags_reaches_only_them(world):
    token_key = world.key("alice")
    headers = {"Authorization": f"Apikey {token_key}"}
    r = httpx.post(f"{world.api}/auth/apikey", headers=headers, timeout=10,
                   json={"scopes": ["read:metadata", "read:data"],
                         "access_tags": ["open_data", "public"]})
    assert r.status_code == 200, r.text
    assert r.json()["access_tags"] == ["open_data", "public"]
    # As in Tiled, the root's tag (public) must be among a restricted key's to get past it.
    r0 = httpx.post(f"{world.api}/auth/apikey", headers=headers, timeout=10,
                    json={"scopes": ["read:metadata"], "access_tags": ["open_data"]})
    assert keys_of(httpx.get(f"{world.api}/search/", timeout=10, headers={
        "Authorization": f"Apikey {r0.json()['secret']}", "Accept": "application/json"})) == []
    narrow = {"Authorization": f"Apikey {r.json()['secret']}", "Accept": "application/json"}
    listing = httpx.get(f"{world.api}/search/", headers=narrow, timeout=10)
    assert keys_of(listing) == ["open"]
    assert httpx.get(f"{world.api}/metadata/a/x", headers=narrow, timeout=10).status_code == 404
    assert httpx.get(f"{world.api}/array/full/open/x", headers=narrow, timeout=10).status_code == 200
    # Restricted keys list their scopes: no inherit, no admin:apikeys.
    r = httpx.post(f"{world.api}/auth/apikey", headers=headers, timeout=10,
                   json={"access_tags": ["open_data"]})
    assert r.status_code == 403, r.text


# Each data and write route on a node of proposal B: (route, method, expected status for alice,
# who cannot see B; for bob, who reads B; for root).
ROUTES = [
    ("/array/full/b/x", "GET", 404, 200, 200),
    ("/array/block/b/x?block=0,0", "GET", 404, 200, 200),
    ("/table/full/b/t", "GET", 404, 200, 200),
    ("/table/partition/b/t?partition=0", "GET", 404, 200, 200),
    ("/container/full/b", "GET", 404, 200, 200),
    ("/revisions/b/x", "GET", 404, 200, 200),
    ("/array/full/b/sp", "GET", 404, 200, 200),
    ("/array/block/b/sp?block=0,0", "GET", 404, 200, 200),
    ("/awkward/full/b/aw", "GET", 404, 200, 200),
    ("/awkward/buffers/b/aw?form_key=node0&form_key=node1", "GET", 404, 200, 200),
    ("/container/full/b?format=application/x-hdf5", "GET", 404, 200, 200),
    ("/array/full/b/x?format=image/png", "GET", 404, 200, 200),
    ("/table/full/b/t?format=text/csv", "GET", 404, 200, 200),
    ("/distinct/b?metadata=proposal", "GET", 404, 200, 200),
    ("/search-deep/b", "GET", 404, 200, 200),
    ("/metadata/b/x", "PATCH", 404, 403, None),
    ("/metadata/b/x?recursive=false", "DELETE", 404, 403, None),
    ("/revisions/b/x?number=1", "DELETE", 404, 403, None),
    # Registering needs the `register` scope, which role user lacks: 401 before any path.
    ("/register/b", "POST", 401, 401, None),
]


@pytest.mark.parametrize("route,method,alice,bob,root", ROUTES)
def test_every_route_keeps_to_the_grants(world, route, method, alice, bob, root):
    body = {"metadata": [{"op": "add", "path": "/k", "value": 1}]} if method == "PATCH" else None
    if method == "POST":
        body = {"data": {"type": "array", "id": "r", "attributes": {
            "structure_family": "array", "metadata": {}, "specs": [],
            "data_sources": [{"mimetype": "image/tiff", "structure_family": "array",
                              "parameters": {}, "management": "external", "structure": None,
                              "assets": [{"data_uri": "file:///nonexistent.tif",
                                          "is_directory": False, "parameter": "data_uri",
                                          "num": None}]}]}}}
    for user, want in (("alice", alice), ("bob", bob), ("root", root)):
        if want is None:
            continue
        headers = {"Authorization": f"Apikey {world.key(user)}", "Accept": "application/json"}
        if method == "PATCH":
            headers["Content-Type"] = "application/json"
        r = httpx.request(method, f"{world.api}{route}", headers=headers, timeout=10,
                          json=body)
        assert r.status_code == want, (user, route, r.status_code, r.text[:300])
        if want == 404:
            assert "note-b" not in r.text and "proposal_b" not in r.text


def test_admin_routes_are_for_admins(world):
    for user, want in (("alice", 401), ("bob", 401), ("root", 200)):
        r = world.get(user, "/auth/principal")
        assert r.status_code == want, (user, r.text)
