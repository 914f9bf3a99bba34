"""Files tessera does not own, served two ways: registered (`tessera register URL PATH`, and
`POST /register` as the Tiled client's `register()` sends it) and `tessera serve directory`.
Every node is read back through the real client and compared with what h5py, zarr and
pandas read from the files directly, and with what the real Tiled server serves."""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time

import h5py
import hdf5plugin  # noqa: F401  (registers bitshuffle for the reference reads)
import numpy as np
import pandas as pd
import httpx
import pytest
import tifffile
import zarr

from writable import ON_TILED, tessera_binary, tiled_binary, writable_server

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures", "make_files.py")


@pytest.fixture(scope="module")
def files():
    root = tempfile.mkdtemp(prefix="tessera-files-")
    out = os.path.join(root, "files")
    subprocess.run([sys.executable, FIXTURES, out], check=True)
    # A directory the server may not read, with a file in it.
    outside = os.path.join(root, "outside")
    os.makedirs(outside)
    pd.DataFrame({"x": [1]}).to_csv(os.path.join(outside, "secret.csv"), index=False)
    yield out, outside
    import shutil

    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server(files):
    with writable_server(read=[files[0]]) as s:
        yield s


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def directory_server(command, root, expect, timeout=90):
    """Runs `command` (which serves `root` on the port it is given) until every top-level
    key in `expect` is listed; yields (url, process)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(command(port), stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, _log(log)
            try:
                r = httpx.get(f"{url}/api/v1/search/", params={"page[limit]": 300, "fields": ""})
                if r.status_code == 200 and expect <= {d["id"] for d in r.json()["data"]}:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the directory was not indexed in time\n" + _log(log)
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _log(f):
    f.seek(0)
    return f.read().decode(errors="replace")[-5000:]


TOP = {"raw", "images_v2", "images_v3", "lone", "runs", "log", "broken", "stack", "multipage",
       "single", "python", "vector", "book", "weather", "records", "legacy", "eiger"}


@pytest.fixture(scope="module")
def served_directory(files):
    if ON_TILED:
        pytest.skip("`tessera serve directory` is tessera's command")
    cmd = lambda port: [tessera_binary(), "serve", "directory", files[0], "--public", "--port", str(port)]
    with directory_server(cmd, files[0], TOP) as (url, proc):
        yield url


@pytest.fixture(scope="module", params=["register", "directory"])
def cli_tree(request, files):
    """The fixture directory as tessera serves it: registered by `tessera register` under
    /cli, or served by `tessera serve directory`. Returns (tree, report)."""
    if ON_TILED:
        pytest.skip("tessera's commands")
    if request.param == "directory":
        from tiled.client import from_uri

        return from_uri(request.getfixturevalue("served_directory")), None
    server = request.getfixturevalue("server")
    run = subprocess.run(
        [tessera_binary(), "register", server.url, files[0], "--prefix", "cli",
         "--api-key", server.api_key],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return server.client()["cli"], run.stdout


def h5(files, dataset):
    with h5py.File(os.path.join(files[0], "raw", "scan_0042.nxs")) as f:
        return f[dataset][()]


NUMERIC_DATASETS = [
    "entry/instrument/detector/data",
    "entry/instrument/detector/mask",
    "entry/sample/temperature",
    "entry/sample/positions",
    "entry/sample/labels",
    "entry/data/frame",
    "big_endian",
    "entry/scan_id",
    "entry/instrument/detector/exposure_time",
    "entry/instrument/detector/roi",
    "entry/instrument/detector/partial",
]


@pytest.mark.parametrize("dataset", NUMERIC_DATASETS)
def test_hdf5_datasets_read_as_h5py_reads_them(cli_tree, files, dataset):
    node = cli_tree[0]["raw"]["scan_0042"]
    for part in dataset.split("/"):
        node = node[part]
    got, want = node.read(), h5(files, dataset)
    assert got.shape == want.shape
    assert got.dtype.kind == want.dtype.kind and got.dtype.itemsize == want.dtype.itemsize
    assert got.dtype.names == want.dtype.names  # structured (compound) fields, in order
    assert np.array_equal(got, want)


@pytest.mark.parametrize("name", ["log", "events"])
def test_hdf5_compound_datasets_are_structured_arrays(cli_tree, files, name):
    with h5py.File(os.path.join(files[0], "records.h5")) as f:
        want = f[name][()]
    node = cli_tree[0]["records"][name]
    got = node.read()
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert np.array_equal(node[5:12], want[5:12])


@pytest.mark.parametrize("name", ["aligned", "aligned_events"])
def test_hdf5_compounds_with_padding_are_served_packed(cli_tree, files, name):
    """Structured types on the wire have no offsets: a padded compound (a C struct) is served
    packed, with the same fields and values."""
    with h5py.File(os.path.join(files[0], "records.h5")) as f:
        want = f[name][()]
    assert want.dtype.itemsize == 24  # the file's type has padding
    node = cli_tree[0]["records"][name]
    got = node.read()
    assert got.dtype.names == want.dtype.names and got.dtype.itemsize == 1 + 8 + 2
    for field in want.dtype.names:
        assert got[field].dtype == want[field].dtype, field
        assert np.array_equal(got[field], want[field]), field
    assert np.array_equal(node[10:20]["energy"], want[10:20]["energy"])


@pytest.mark.parametrize("name", ["data", "small_blocks", "zstd", "zstd_plain", "lz4_plain",
                                  "bzip2"])
def test_eiger_bitshuffle_lz4_frames(cli_tree, files, name):
    """Bitshuffle (LZ4 or zstd) chunks (Eiger files) and hdf5plugin's zstd, LZ4 and bzip2
    filters are decoded in Rust, without the filter plugins."""
    with h5py.File(os.path.join(files[0], "eiger.h5")) as f:
        want = f[f"entry/data/{name}"][()]
    node = cli_tree[0]["eiger"]["entry"]["data"][name]
    got = node.read()
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert np.array_equal(node[2, 5:40], want[2, 5:40])


def test_a_filter_without_plugin_is_a_clear_4xx(cli_tree):
    node = cli_tree[0]["eiger"]["entry"]["data"]["blosc2"]
    assert node.shape == (2, 70, 52)  # described from the file's metadata
    r = node.context.http_client.get(node.item["links"]["full"], params={"format": "json"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "eiger.h5" in detail and "32026" in detail and "no plugin" in detail


def test_a_filter_plugin_on_the_plugin_path_is_used(files, monkeypatch):
    """libhdf5 loads filters tessera does not decode (Blosc2 here) from HDF5_PLUGIN_PATH."""
    if ON_TILED:
        pytest.skip("`tessera serve directory` is tessera's command")
    monkeypatch.setenv("HDF5_PLUGIN_PATH", hdf5plugin.PLUGINS_PATH)
    cmd = lambda port: [tessera_binary(), "serve", "directory", files[0], "--public", "--port", str(port)]
    with directory_server(cmd, files[0], {"eiger"}) as (url, _):
        from tiled.client import from_uri

        with h5py.File(os.path.join(files[0], "eiger.h5")) as f:
            want = f["entry/data/blosc2"][()]
        got = from_uri(url)["eiger"]["entry"]["data"]["blosc2"].read()
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_hdf5_slices_and_blocks(cli_tree, files):
    stack = cli_tree[0]["raw"]["scan_0042"]["entry"]["instrument"]["detector"]["data"]
    want = h5(files, "entry/instrument/detector/data")
    assert np.array_equal(stack[2], want[2])
    assert np.array_equal(stack[1:4, 10:20, ::3], want[1:4, 10:20, ::3])
    # Blocks are the native chunks: one frame each.
    assert stack.structure().chunks[0] == (1,) * want.shape[0]
    assert np.array_equal(stack.read_block((3, 0, 0)), want[3:4])


def test_hdf5_soft_links_strings_and_attributes(cli_tree, files):
    scan = cli_tree[0]["raw"]["scan_0042"]
    entry = scan["entry"]
    assert entry.metadata["NX_class"] == "NXentry"
    assert [s.name for s in entry.specs] == ["NXentry"]
    # The NXdata group's soft link reads the detector stack.
    assert np.array_equal(entry["data"]["data"].read(), h5(files, "entry/instrument/detector/data"))
    assert entry["data"].metadata["axes"] == ["frame", ".", "."]
    det = entry["instrument"]["detector"]["data"]
    assert det.metadata["units"] == "counts"
    assert det.metadata["long_name"] == "detector counts"
    assert str(entry["title"].read()) == h5(files, "entry/title").decode()
    assert entry["sample"]["name"].read().item() == h5(files, "entry/sample/name")


@pytest.mark.parametrize("store", ["images_v2", "images_v3"])
def test_zarr_groups_read_as_zarr_reads_them(cli_tree, files, store):
    z = zarr.open_group(os.path.join(files[0], f"{store}.zarr"), mode="r")
    node = cli_tree[0][store]
    # A group's metadata as Tiled gives it (zarr-python's group metadata document).
    assert dict(node.metadata) == {"attributes": dict(z.attrs), "node_type": "group",
                                   "zarr_format": z.metadata.zarr_format}
    names = sorted(k for k, _ in z.arrays())
    assert names and all(k in node for k in names)
    for k, arr in z.arrays():
        got = node[k].read()
        assert got.dtype == arr.dtype and np.array_equal(got, arr[:])
        assert dict(node[k].metadata) == dict(arr.attrs)
    if store == "images_v3":
        assert tuple(node["frames"].dims) == ("t", "y", "x")
        # Sharded: blocks are the inner chunks.
        assert node["sharded"].structure().chunks[0] == (10, 10, 10, 10)
        assert np.array_equal(node["sharded"][5:25, 3], z["sharded"][5:25, 3])
    else:
        assert np.array_equal(node["nested"]["flags"].read(), z["nested"]["flags"][:])


def test_lone_zarr_array(cli_tree, files):
    z = zarr.open_array(os.path.join(files[0], "lone.zarr"), mode="r")
    assert np.array_equal(cli_tree[0]["lone"].read(), z[:])


def test_parquet_row_groups_are_partitions(cli_tree, files):
    node = cli_tree[0]["runs"]
    want = pd.read_parquet(os.path.join(files[0], "runs.parquet"))
    assert node.structure().npartitions == 4  # 1000 rows in groups of 300
    pd.testing.assert_frame_equal(node.read(), want, check_dtype=False)
    pd.testing.assert_frame_equal(node.read(["energy", "ok"]), want[["energy", "ok"]])
    part = node.read_partition(1)
    pd.testing.assert_frame_equal(part, want.iloc[300:600], check_dtype=False)
    assert np.array_equal(node["counts"].read(), want["counts"].to_numpy())


def test_csv_columns_are_typed_as_pandas_types_them(cli_tree, files):
    got = cli_tree[0]["log"].read()
    want = pd.read_csv(os.path.join(files[0], "log.csv"))
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    for col in ["a", "b", "flag"]:
        assert got[col].dtype == want[col].dtype


def test_tiff_and_npy_files_and_sequences(cli_tree, files):
    tree = cli_tree[0]
    d = files[0]
    seq = np.stack([tifffile.imread(os.path.join(d, "stack", f"frame_{i:03d}.tif")) for i in range(5)])
    node = tree["stack"]["frame_"]
    assert node.shape == seq.shape and node.dtype == seq.dtype
    assert np.array_equal(node.read(), seq)
    assert np.array_equal(node[2, 10:20], seq[2, 10:20])
    multi = tifffile.imread(os.path.join(d, "multipage.tif"))
    assert multi.shape == (3, 16, 20)
    assert np.array_equal(tree["multipage"].read(), multi)
    assert np.array_equal(tree["multipage"][1], multi[1])
    assert np.array_equal(tree["single"].read(), tifffile.imread(os.path.join(d, "single.tif")))
    # A numbered .npy is a sequence of one, as Tiled serves it: key 'python', shape (1, 3, 4).
    py = tree["python"].read()
    assert py.shape == (1, 3, 4) and np.array_equal(py[0], np.load(os.path.join(d, "python3.npy")))
    assert np.array_equal(tree["vector"].read(), np.load(os.path.join(d, "vector.npy")))
    assert np.array_equal(tree["vector"][10:20], np.load(os.path.join(d, "vector.npy"))[10:20])


def test_excel_sheets_are_tables(cli_tree, files):
    book = cli_tree[0]["book"]
    want = pd.read_excel(os.path.join(files[0], "book.xlsx"), sheet_name=None)
    assert sorted(book) == sorted(want)
    for name, df in want.items():
        got = book[name].read()
        pd.testing.assert_frame_equal(got, df, check_dtype=False)
        for col in df.columns:
            if df[col].dtype.kind in "ifbM":
                assert got[col].dtype.kind == df[col].dtype.kind, (name, col)


def test_netcdf_is_an_xarray_dataset(cli_tree, files):
    import xarray as xr

    want = xr.open_dataset(os.path.join(files[0], "weather.nc"))
    node = cli_tree[0]["weather"]
    assert [s.name for s in node.specs] == ["xarray_dataset"]
    got = node.read()
    xr.testing.assert_identical(got.load(), want.load())
    assert tuple(node["temperature"].dims) == ("time", "y", "x")


def test_netcdf3_is_an_xarray_dataset(cli_tree, files):
    """A NetCDF-3 file (not HDF5): the same dataset as xarray opens, record by record."""
    import xarray as xr

    want = xr.open_dataset(os.path.join(files[0], "legacy.nc"))
    node = cli_tree[0]["legacy"]
    assert [s.name for s in node.specs] == ["xarray_dataset"]
    xr.testing.assert_identical(node.read().load(), want.load())
    signal = node["signal"]
    assert tuple(signal.dims) == ("time", "channel")
    assert signal.structure().chunks[0] == (1,) * 6  # one block per record
    np.testing.assert_array_equal(signal[2:4], want["signal"].values[2:4])
    assert node["counts"].read().dtype == np.int16


def test_broken_files_are_reported_and_the_rest_serves(cli_tree):
    tree, report = cli_tree
    if report is None:
        pytest.skip("the served directory keeps broken files as nodes (tested below)")
    assert "truncated.h5" in report and "not a readable HDF5 file" in report
    assert "empty.csv" in report and "empty" in report
    assert "loop: a symlink loop" in report
    assert "escape.csv: leads outside" in report and "escape_dir: leads outside" in report
    assert "notes.txt: no adapter" in report
    assert "bad.tif" in report
    assert sorted(tree["broken"]) == []


def test_the_client_register_method(server, files):
    """The Tiled client's own `register()` infers the structure client-side and POSTs it."""
    c = server.client()
    c.create_container("by_client")
    node = c["by_client"]
    path = os.path.join(files[0], "raw", "scan_0042.nxs")
    scan = node.register(path, key="scan")
    want = h5(files, "entry/instrument/detector/data")
    assert np.array_equal(scan["entry"]["instrument"]["detector"]["data"].read(), want)
    one = node.register(path, key="frames", parameters={"dataset": "entry/instrument/detector/data"})
    assert np.array_equal(one[1], want[1])
    table = node.register(os.path.join(files[0], "runs.parquet"), key="runs")
    pd.testing.assert_frame_equal(
        table.read(), pd.read_parquet(os.path.join(files[0], "runs.parquet")), check_dtype=False
    )
    log = node.register(os.path.join(files[0], "log.csv"), key="log")
    pd.testing.assert_frame_equal(
        log.read(), pd.read_csv(os.path.join(files[0], "log.csv")), check_dtype=False
    )
    arr = node.register(
        os.path.join(files[0], "images_v3.zarr", "frames"), key="zframes", mimetype="application/x-zarr"
    )
    z = zarr.open_array(os.path.join(files[0], "images_v3.zarr", "frames"), mode="r")
    assert np.array_equal(arr.read(), z[:])


def _register(server, body, path="bad"):
    with server.http() as h:
        h.post("/api/v1/metadata/", json={"id": "bad", "structure_family": "container"})
        return h.post(f"/api/v1/register/{path}", json=body)


def _body(uri, family="table", mimetype="text/csv", key="x", parameters=None):
    return {
        "id": key,
        "structure_family": family,
        "metadata": {},
        "specs": [],
        "data_sources": [{
            "mimetype": mimetype,
            "structure_family": family,
            "structure": None,
            "parameters": parameters or {},
            "management": "external",
            "assets": [{"data_uri": uri, "is_directory": False, "parameter": "data_uris", "num": 0}],
        }],
    }


def test_registration_refuses_bad_input(server, files):
    if ON_TILED:
        pytest.skip("tessera's messages")
    good = "file://localhost" + os.path.join(files[0], "log.csv")
    outside = "file://localhost" + os.path.join(files[1], "secret.csv")
    r = _register(server, _body(outside))
    assert r.status_code == 403 and "outside the directories" in r.json()["detail"]
    escape = "file://localhost" + os.path.join(files[0], "..", "outside", "secret.csv")
    assert _register(server, _body(escape)).status_code == 403
    r = _register(server, _body(good, mimetype="image/x-unknown"))
    assert r.status_code == 415
    r = _register(server, _body("file://localhost" + os.path.join(files[0], "nope.csv")))
    assert r.status_code == 422 and "cannot be opened" in r.json()["detail"]
    r = _register(server, _body("file://localhost" + os.path.join(files[0], "broken", "empty.csv")))
    assert r.status_code == 422 and "empty.csv" in r.json()["detail"]
    h5uri = "file://localhost" + os.path.join(files[0], "raw", "scan_0042.nxs")
    r = _register(server, _body(h5uri, family="array", mimetype="application/x-hdf5",
                                parameters={"dataset": "entry/nope"}))
    assert r.status_code == 422 and "entry/nope" in r.json()["detail"]
    r = _register(server, _body(good, key="a/b"))
    assert r.status_code == 422
    assert _register(server, _body(good, key="ok")).status_code == 200
    r = _register(server, _body(good, key="ok"))
    assert r.status_code == 409
    # Nothing half-made: only the good node is there.
    assert list(server.client()["bad"]) == ["ok"]


def test_registration_needs_readable_directories(files):
    if ON_TILED:
        pytest.skip("tessera's message")
    with writable_server() as s:
        with s.http() as h:
            r = h.post("/api/v1/register/", json=_body("file://localhost" + os.path.join(files[0], "log.csv")))
    assert r.status_code == 403 and "--read" in r.json()["detail"]


def test_served_directory_keeps_broken_files_as_errors(served_directory, files):
    from tiled.client import from_uri
    from tiled.client.utils import ClientError

    tree = from_uri(served_directory)
    # Unreadable files are listed, and reading one answers a 4xx naming the file and why
    # (the client would retry a 5xx for a long time).
    assert sorted(tree["broken"]) == ["bad", "empty", "truncated"]
    for key, name, why in [("truncated", "truncated.h5", "not a readable HDF5 file"),
                           ("empty", "empty.csv", "empty"),
                           ("bad", "bad.tif", "TIFF")]:
        with pytest.raises(ClientError) as e:
            tree["broken"][key]
        assert e.value.response.status_code == 422
        assert name in str(e.value) and why in str(e.value)
    # The symlink loop, the links out of the directory and the text file are not served.
    for key in ["loop", "escape", "escape_dir", "notes"]:
        assert key not in tree["broken"]
    assert np.array_equal(tree["lone"].read(), zarr.open_array(os.path.join(files[0], "lone.zarr"))[:])
    # Paths never leave the directory.
    r = httpx.get(f"{served_directory}/api/v1/metadata/raw/../../etc")
    assert r.status_code in (400, 404)


def _decoded(url, mimetype, metric="tessera_blocks_decoded_total"):
    text = httpx.get(f"{url}/metrics").text
    for line in text.splitlines():
        if line.startswith(metric) and f'mimetype="{mimetype}"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def test_a_csv_is_parsed_once_for_all_its_column_reads(served_directory, files):
    """CSV and Excel are parsed whole whatever columns are asked for: the partition is kept
    in the chunk cache, so further column reads parse nothing."""
    from tiled.client import from_uri

    table = from_uri(served_directory)["log"]
    want = pd.read_csv(os.path.join(files[0], "log.csv"))
    parsed = lambda: _decoded(served_directory, "text/csv", "tessera_partitions_read_total")
    before = parsed()
    assert table["a"].read().tolist() == want["a"].tolist()
    assert table["name"].read().tolist() == want["name"].tolist()
    pd.testing.assert_frame_equal(table.read(), want, check_dtype=False)
    assert parsed() - before <= 1  # once, or not at all if an earlier test read it


def test_one_frame_decodes_only_its_chunk(files):
    if ON_TILED:
        pytest.skip("tessera's metrics")
    from tiled.client import from_uri

    # A server of its own, so no earlier read has cached the frame.
    cmd = lambda port: [tessera_binary(), "serve", "directory", files[0], "--public", "--port", str(port)]
    with directory_server(cmd, files[0], TOP) as (url, _):
        stack = from_uri(url)["raw"]["scan_0042"]["entry"]["instrument"]["detector"]["data"]
        before = _decoded(url, "application/x-hdf5")
        frame = stack[3]
        after = _decoded(url, "application/x-hdf5")
        assert np.array_equal(frame, h5(files, "entry/instrument/detector/data")[3])
        # The stack is chunked one frame per chunk: one frame is one chunk decoded.
        assert after - before == 1
        stack[3]
        assert _decoded(url, "application/x-hdf5") == after, "the second read is cached"
        stack[1:3, 5:9]
        assert _decoded(url, "application/x-hdf5") == after + 2


def test_watch_picks_up_added_changed_and_removed_files(tmp_path):
    if ON_TILED:
        pytest.skip("tessera's command")
    from tiled.client import from_uri

    root = tmp_path / "watched"
    root.mkdir()
    pd.DataFrame({"x": [1, 2]}).to_csv(root / "first.csv", index=False)
    cmd = lambda port: [tessera_binary(), "serve", "directory", str(root), "--public", "--port", str(port),
                        "--watch", "--watch-interval", "0.2"]
    with directory_server(cmd, str(root), {"first"}) as (url, proc):
        c = from_uri(url)

        def wait_for(check):
            # A changed file is indexed again: for a moment it may be missing.
            deadline = time.monotonic() + 30
            while True:
                try:
                    if check():
                        return
                except Exception:
                    pass
                assert time.monotonic() < deadline, "the change was not picked up"
                time.sleep(0.1)

        pd.DataFrame({"y": [3.5]}).to_csv(root / "second.csv", index=False)
        wait_for(lambda: "second" in c)
        assert c["second"].read()["y"].tolist() == [3.5]
        time.sleep(0.05)  # a later modification time
        pd.DataFrame({"x": [7, 8, 9]}).to_csv(root / "first.csv", index=False)
        wait_for(lambda: len(from_uri(url)["first"].read()) == 3)
        assert from_uri(url)["first"].read()["x"].tolist() == [7, 8, 9]
        os.remove(root / "second.csv")
        wait_for(lambda: "second" not in from_uri(url))


def _tiled_tree(files):
    # Without the broken files: Tiled walks the symlink loop until the OS refuses (minutes).
    clean = tempfile.mkdtemp(prefix="tessera-tiled-")
    for name in ["raw", "eiger.h5", "images_v2.zarr", "images_v3.zarr", "runs.parquet", "log.csv", "stack",
                 "multipage.tif", "single.tif", "python3.npy"]:
        os.symlink(os.path.join(files[0], name), os.path.join(clean, name))
    cmd = lambda port: [tiled_binary(), "serve", "directory", clean, "--public",
                        "--port", str(port)]
    return directory_server(cmd, clean, {"raw", "images_v2", "runs", "log"}, timeout=180)


COMPARED = [
    ("raw", "scan_0042", "entry", "instrument", "detector", "data"),
    ("raw", "scan_0042", "entry", "sample", "temperature"),
    ("raw", "scan_0042", "entry", "sample", "positions"),
    ("eiger", "entry", "data", "data"),
    ("images_v2", "blosc"),
    ("images_v2", "ints"),
    ("images_v3", "frames"),
    ("runs",),
    ("log",),
    ("stack", "frame_"),
    ("multipage",),
    ("single",),
    ("python",),
]


def test_the_same_values_as_tiled_serve_directory(served_directory, files):
    """The real Tiled server and tessera, serving the same directory, give equal values."""
    from tiled.client import from_uri

    ours = from_uri(served_directory)
    with _tiled_tree(files) as (url, _):
        theirs = from_uri(url)
        compared = 0
        for path in COMPARED:
            a, b = ours, theirs
            for k in path:
                a, b = a[k], b[k]
            x, y = a.read(), b.read()
            if isinstance(x, pd.DataFrame):
                pd.testing.assert_frame_equal(x, y, check_dtype=False)
            else:
                assert x.dtype == y.dtype and np.array_equal(x, y), path
            compared += 1
    assert compared == len(COMPARED)


def test_netcdf_export_round_trips_the_file(cli_tree, files, tmp_path):
    """A NetCDF-4 file served by tessera, exported as NetCDF-3, reads back as the same dataset
    (int64 coordinates come back as int32, as with xarray's own NetCDF-3 writer)."""
    import xarray as xr

    path = tmp_path / "weather-export.nc"
    cli_tree[0]["weather"].export(str(path))
    with xr.open_dataset(os.path.join(files[0], "weather.nc")) as want, xr.open_dataset(path) as got:
        xr.testing.assert_identical(got.load(), want.load())
        for name, var in want.variables.items():
            assert got[name].dtype.kind == var.dtype.kind, name
        assert got["temperature"].dtype == want["temperature"].dtype


def test_detector_frames_export_as_unsigned_netcdf(cli_tree, files, tmp_path):
    import xarray as xr

    path = tmp_path / "frames.nc"
    data = cli_tree[0]["raw"]["scan_0042"]["entry"]["instrument"]["detector"]["data"]
    data.export(str(path), slice=np.s_[1:3])
    want = h5(files, "entry/instrument/detector/data")[1:3]
    with xr.open_dataset(path) as ds:
        got = ds["data"]
        assert got.dtype == np.uint16  # stored as int16 with _Unsigned = "true"
        np.testing.assert_array_equal(got.values, want)


def test_serve_directory_needs_its_key_unless_public(files):
    """As `tiled serve directory`: a key is made up and printed, and anonymous clients are
    refused; only --public opens reading to anyone."""
    if ON_TILED:
        pytest.skip("tessera's command")
    import re

    port = _free_port()
    proc = subprocess.Popen([tessera_binary(), "serve", "directory", files[0], "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        for line in proc.stdout:  # the log comes first, then the URL to connect with
            lines.append(line)
            key = re.search(r"\?api_key=([0-9a-f]{32})\b", line)
            if key or len(lines) > 50:
                break
        assert key, "".join(lines)
        url = f"http://127.0.0.1:{port}/api/v1/search/"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": f"Apikey {key[1]}"}).status_code == 200
        assert httpx.get(url, params={"api_key": "wrong"}).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=15)
