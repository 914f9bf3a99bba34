"""schemathesis against the OpenAPI document the server publishes (`GET /openapi.json`):
requests generated from the document for every operation, on the demo tree and on a
writable catalog, and not one answer may be a 5xx (schemathesis' `not_a_server_error`).
Answers are not checked against the documented schemas: a clear 4xx for nonsense is the
point here, and the wire format has its own tests.

The node routes take the node path as one `{path}` parameter. schemathesis percent-encodes
a `/` inside a path parameter, and tessera refuses a key that holds `/`, so generated paths
never reach a nested node. The test therefore gives schemathesis a copy of the document
with each node route also written out for a few nodes that exist (the path spelled in,
the parameter gone), and with `format`, `column`, `block` and bodies narrowed to values
the server knows, mixed with arbitrary ones, so that the requests reach the readers,
encoders and writers instead of stopping at a 404 or a 406.

Bounded: at most EXAMPLES cases per operation in each phase, with a fixed seed (set
SCHEMATHESIS_EXAMPLES and SCHEMATHESIS_SEED to explore further). A failure shows
schemathesis' report: each failing case with a curl line that replays it.
"""

import copy
import json
import os
import re
import subprocess
import sys

import awkward
import dask.array
import dask.dataframe
import httpx
import numpy as np
import pandas as pd
import pytest

import writable

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "15"))
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "20261206"))
TIMEOUT = 600

# Nodes of the demo tree each node route is written out for.
DEMO_NODES = {
    "metadata": ["", "nested/images/tiny_image", "tables/short_table",
                 "structured_data/xarray_dataset", "nested/sparse_image"],
    "search": ["", "nested", "structured_data/xarray_dataset"],
    "search-deep": ["", "nested"],
    "distinct": ["", "nested"],
    "array/full": ["nested/images/tiny_image", "scalars/pi", "nested/sparse_image",
                   "structured_data/pets", "nested/cubes/tiny_hypercube", "nested/complex",
                   "structured_data/xarray_dataset/time"],
    "array/block": ["nested/images/small_image", "scalars/fortytwo", "nested/sparse_image",
                    "structured_data/pets", "nested/cubes/tiny_hypercube"],
    "table/partition": ["tables/short_table", "tables/long_table"],
    "table/full": ["tables/short_table", "structured_data/xarray_dataset"],
    "awkward/buffers": ["nested/awkward_array"],
    "awkward/full": ["nested/awkward_array"],
    "ragged/full": ["nested/ragged_array"],
    "container/full": ["structured_data/xarray_dataset", "scalars"],
    "node/full": ["structured_data/xarray_dataset", "tables/short_table"],
}

# Nodes the writable catalog is given before the run (see `writable_catalog`); keys that
# generated paths will not hit by chance.
W = "fuzz_box"
WRITABLE_NODES = {
    "metadata": ["", W, f"{W}/arr", f"{W}/table"],
    "search": ["", W],
    "search-deep": [W],
    "distinct": [W],
    "array/full": [f"{W}/arr", f"{W}/grid", f"{W}/sparse"],
    "array/block": [f"{W}/grid", f"{W}/sparse"],
    "table/partition": [f"{W}/table", f"{W}/parts"],
    "table/full": [f"{W}/table", f"{W}/parts"],
    "node/full": [f"{W}/table"],
    "awkward/buffers": [f"{W}/awk"],
    "awkward/full": [f"{W}/awk"],
    "container/full": [W],
    "revisions": [f"{W}/arr"],
    "register": [W],
}
# Deletes only go to nodes kept for them: the rest must outlive the run.
DELETABLE = ["fuzz_doomed", "fuzz_doomed/arr"]

FORMATS = [
    "json", "csv", "png", "tiff", "html", "h5", "nc", "arrow", "parquet", "xlsx", "zip",
    "text", "application/octet-stream", "application/json-seq", "application/x-netcdf",
]


def any_of(known, schema):
    """`schema`, or one of the `known` values (hypothesis picks those often)."""
    return {"anyOf": [{"enum": list(known)}, schema]} if known else schema


def narrowed(doc, op, name, schema):
    """`op`'s parameter `name` with a new schema (inlined, the shared one stays)."""
    params = []
    for p in op.get("parameters", []):
        resolved = resolve(doc, p)
        if resolved["name"] == name:
            p = dict(resolved, schema=schema)
            p.pop("content", None)
        params.append(p)
    op["parameters"] = params


def resolve(doc, obj):
    ref = obj.get("$ref")
    if not ref:
        return obj
    target = doc
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    return target


def param_schema(doc, name):
    for p in doc["components"]["parameters"].values():
        if p["name"] == name and "schema" in p:
            return p["schema"]
    raise KeyError(name)


def specialize(doc, url, nodes, *, headers=None, deletable=()):
    """A copy of `doc` where each route in `nodes` also appears once per listed node, with
    that node's path written in and its parameters narrowed to what the node has. Deletes
    are written out only for the `deletable` nodes."""
    doc = copy.deepcopy(doc)
    with httpx.Client(timeout=60, headers=headers) as http:
        for route, node_paths in nodes.items():
            template = doc["paths"][f"/api/v1/{route}/{{path}}"]
            for node_path in node_paths:
                r = http.get(f"{url}/api/v1/metadata/{node_path}")
                r.raise_for_status()
                attrs = r.json()["data"]["attributes"]
                item = {}
                for method, op in template.items():
                    if method == "parameters":
                        continue
                    if method == "delete" and route == "metadata":
                        continue
                    item[method] = narrow(doc, copy.deepcopy(op), attrs, node_path)
                doc["paths"][f"/api/v1/{route}/{node_path}"] = item
    delete = doc["paths"]["/api/v1/metadata/{path}"]["delete"]
    for node_path in deletable:
        op = copy.deepcopy(delete)
        op["operationId"] += f"[{node_path}]"
        doc["paths"][f"/api/v1/metadata/{node_path}"] = {"delete": op}
    return doc


def narrow(doc, op, attrs, node_path):
    op["operationId"] += f"[{node_path}]"
    structure = attrs.get("structure") or {}
    names = {resolve(doc, p)["name"] for p in op.get("parameters", [])}
    if "format" in names:
        narrowed(doc, op, "format", any_of(FORMATS, {"type": "string"}))
    if "block" in names and "chunks" in structure:
        # Indices within the grid and just past it.
        ndim = len(structure["chunks"])
        most = max((len(c) for c in structure["chunks"] if c), default=1)
        small = [",".join([str(k)] * ndim) for k in range(most + 1)]
        narrowed(doc, op, "block", any_of(small, param_schema(doc, "block")))
    columns = structure.get("columns") or []
    for name in ("column", "field"):
        if name in names and columns:
            items = any_of(columns, {"type": "string"})
            narrowed(doc, op, name, {"type": "array", "items": items})
    form_keys = re.findall(r'"form_key":\s*"([^"]+)"', json.dumps(structure.get("form", {})))
    if "form_key" in names and form_keys:
        narrowed(doc, op, "form_key", {"type": "array",
                                       "items": any_of(form_keys, {"type": "string"})})
    body = op.get("requestBody", {}).get("content", {})
    if "application/json" in body and body["application/json"]["schema"].get("$ref", "").endswith(
        "/Names"
    ):
        known = columns or form_keys
        body["application/json"]["schema"] = {
            "type": "array", "items": any_of(known, {"type": "string"})}
    if "application/vnd.apache.arrow.file" in body:
        # A well-formed Arrow file of the node's columns (any of them, any types) or bytes.
        cols = columns or [f"dim{i}" for i in range(len(structure.get("shape", [])))] + ["data"]
        file = {"type": "object",
                "properties": {c: {"type": "array", "maxItems": 8} for c in cols}}
        body["application/vnd.apache.arrow.file"]["schema"] = {
            "anyOf": [file, {"type": "string", "format": "binary"}]}
    if "application/zip" in body and form_keys:
        entries = {f"{k}-{role}": {"type": "string"} for k in form_keys
                   for role in ("data", "offsets")}
        body["application/zip"]["schema"] = {
            "anyOf": [{"type": "object", "properties": entries},
                      {"type": "string", "format": "binary"}]}
    return op


def run_schemathesis(schema_path, url, tmp_path, name, headers=()):
    """Runs schemathesis' CLI on the document at `schema_path`; returns its exit code and
    output. Each case gets the server-error check only."""
    env = dict(os.environ)
    env["SCHEMATHESIS_HOOKS"] = "schemathesis_hooks"
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(__file__)] + [p for p in [env.get("PYTHONPATH")] if p])
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", str(schema_path),
        "--url", url,
        "--checks", "not_a_server_error",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(EXAMPLES),
        "--seed", str(SEED),
        # One worker: CPython 3.11's ast module is not safe across threads (gh-106905), and
        # hypothesis parses source while describing strategies ("AST constructor recursion
        # depth mismatch" from two workers).
        "--workers", "1",
        "--request-timeout", "60",
        "--generation-database", "none",
        "--generation-with-security-parameters", "false",
        "--no-color",
        "--suppress-health-check", "all",
    ]
    for h in headers:
        command += ["-H", h]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=TIMEOUT,
                          cwd=tmp_path)
    output = done.stdout + done.stderr
    summary = re.search(r"Test cases:\s*\n\s*(.+)", output)
    print(f"schemathesis on {name}: {summary.group(1) if summary else '?'}")
    return done.returncode, output


def check(returncode, output):
    # The failing cases (with their curl lines) and errors come first, the summary last.
    starts = [i for i in (output.find("= FAILURES ="), output.find("= ERRORS =")) if i >= 0]
    first = min(starts, default=0)
    report = output[output.rfind("\n", 0, first) + 1 :]
    if len(report) > 30000:
        report = report[:20000] + "\n...\n" + report[-10000:]
    assert returncode == 0, f"schemathesis found problems:\n{report}"
    assert re.search(r"Test cases:\s*\n\s*\d+ generated", output), output[-5000:]


def published_document(url):
    r = httpx.get(f"{url}/openapi.json", timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"] == "application/json"
    return r.json()


def test_openapi_document_describes_the_api(server_url):
    doc = published_document(server_url)
    assert doc["openapi"].startswith("3.")
    for route in ["metadata", "search", "array/full", "array/block", "table/partition",
                  "table/full", "awkward/buffers", "container/full", "register"]:
        assert f"/api/v1/{route}/{{path}}" in doc["paths"], route
    assert {"apikey_header", "apikey_query"} <= set(doc["components"]["securitySchemes"])


def test_no_server_errors_on_the_demo_tree(server_url, tmp_path):
    doc = specialize(published_document(server_url), server_url, DEMO_NODES)
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(doc))
    check(*run_schemathesis(schema, server_url, tmp_path, "demo"))


@pytest.fixture(scope="module")
def writable_catalog(tmp_path_factory):
    """A writable server holding one node of each writable family, and files it may
    register."""
    files = tmp_path_factory.mktemp("registrable")
    pd.DataFrame({"x": [1, 2, 3], "y": [0.5, 1.5, 2.5]}).to_csv(files / "log.csv", index=False)
    np.save(files / "frame.npy", np.arange(12.0).reshape(3, 4))
    with writable.writable_server(read=[files]) as server:
        c = server.client()
        box = c.create_container(W, metadata={"color": "red", "n": 3})
        box.write_array(np.arange(12.0).reshape(3, 4), key="arr", metadata={"units": "m"})
        box["arr"].update_metadata({"units": "cm"})
        grid = dask.array.from_array(np.arange(24.0).reshape(6, 4), chunks=(3, 2))
        box.write_array(grid, key="grid")
        box.write_table(pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}), key="table")
        parts = pd.DataFrame({"a": np.arange(6), "b": np.linspace(0, 1, 6)})
        box.write_table(dask.dataframe.from_pandas(parts, npartitions=2), key="parts")
        box.write_sparse(
            coords=np.array([[0, 1], [2, 3]]), data=np.array([1.5, 2.5]), shape=(4, 5), key="sparse"
        )
        box.write_awkward(awkward.Array([[1, 2], [], [3]]), key="awk")
        doomed = c.create_container("fuzz_doomed")
        doomed.write_array(np.arange(3), key="arr")
        yield server, files


def test_no_server_errors_on_a_writable_catalog(writable_catalog, tmp_path):
    server, files = writable_catalog
    doc = specialize(published_document(server.url), server.url, WRITABLE_NODES,
                     headers=server.auth_headers, deletable=DELETABLE)
    uris = [f"file://localhost{files / name}" for name in ("log.csv", "frame.npy")]
    asset = doc["components"]["schemas"]["Asset"]["properties"]["data_uri"]
    asset.update(any_of(uris, {"type": "string"}))
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(doc))
    headers = [f"Authorization: {server.auth_headers['Authorization']}"]
    check(*run_schemathesis(schema, server.url, tmp_path, "writable", headers))
    # The server is still well after the run.
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
