"""The long tail of real files, read through the real Tiled client and compared with the library
a user would otherwise call: an Eiger master file whose frames are external links into data
files (h5py + hdf5plugin), complex numbers in HDF5 (h5py), NetCDF variables decoded as
`xr.open_dataset` decodes them (fill values, packing, `_Unsigned`, character arrays), and SciPy's
own NetCDF-3 test files. Each is served both by `tessera register` and `tessera serve
directory` (the `cli_tree` fixture of test_files.py)."""

import os
import warnings

import h5py
import hdf5plugin  # noqa: F401  (bitshuffle for h5py's own reads)
import numpy as np
import pytest
import xarray as xr

from test_files import _body, _register, cli_tree, files, served_directory, server  # noqa: F401

SERIES = ("eiger_series", "series_7_master")


def master(files):
    return h5py.File(os.path.join(files[0], "eiger_series", "series_7_master.h5"))


@pytest.mark.parametrize("name", ["data_000001", "data_000002"])
def test_eiger_frames_are_read_through_the_master_files_external_links(cli_tree, files, name):
    with master(files) as f:
        ds = f[f"entry/data/{name}"]
        want, attrs = ds[()], dict(ds.attrs)
    node = cli_tree[0][SERIES[0]][SERIES[1]]["entry"]["data"][name]
    got = node.read()
    assert got.dtype == want.dtype == np.uint32 and got.shape == want.shape
    assert np.array_equal(got, want)
    assert np.array_equal(node[1, 2:9], want[1, 2:9])  # one frame's chunk, from the data file
    assert node.metadata["image_nr_low"] == attrs["image_nr_low"]
    assert node.metadata["image_nr_high"] == attrs["image_nr_high"]
    assert node.structure().chunks[0] == (1,) * want.shape[0]


def test_eiger_master_metadata_beside_its_frames(cli_tree, files):
    entry = cli_tree[0][SERIES[0]][SERIES[1]]["entry"]
    assert sorted(entry["data"]) == ["data_000001", "data_000002"]
    det = entry["instrument"]["detector"]
    assert det.metadata["NX_class"] == "NXdetector"
    assert det["count_time"].read() == 0.1
    with master(files) as f:
        mask = f["entry/instrument/detector/detectorSpecific/pixel_mask"][()]
    assert np.array_equal(det["detectorSpecific"]["pixel_mask"].read(), mask)


def test_external_links_that_leave_the_files_directory_are_not_followed(cli_tree):
    """Links to a file outside the linking file's directory (by a relative or an absolute
    name, or through a soft link) and to a missing file are left out; the rest serves."""
    node = cli_tree[0]["eiger_links"]["links_master"]
    assert list(node) == ["local"]
    assert list(node["local"].read()) == [0, 1, 2, 3]


def test_a_registered_dataset_behind_an_external_link(server, files):
    """Registration names the master file and the link's path, as the Tiled client does; a
    link out of the file's directory is refused with a 4xx naming it."""
    uri = "file://localhost" + os.path.join(files[0], "eiger_series", "series_7_master.h5")
    body = _body(uri, family="array", mimetype="application/x-hdf5", key="frames2",
                 parameters={"dataset": "/entry/data/data_000002"})
    r = _register(server, body)
    assert r.status_code == 200, r.text
    with master(files) as f:
        want = f["entry/data/data_000002"][()]
    node = server.client()["bad"]["frames2"]
    assert np.array_equal(node.read(), want)
    links = "file://localhost" + os.path.join(files[0], "eiger_links", "links_master.h5")
    body = _body(links, family="array", mimetype="application/x-hdf5", key="escape",
                 parameters={"dataset": "/escape_relative"})
    r = _register(server, body)
    assert r.status_code in (403, 422), r.text
    assert "secret.h5" in r.json()["detail"] and "outside the directory" in r.json()["detail"]


@pytest.mark.parametrize("name", ["z64", "z128"])
def test_hdf5_complex_numbers_are_complex(cli_tree, files, name):
    with h5py.File(os.path.join(files[0], "complex.h5")) as f:
        want, attrs = f[name][()], dict(f[name].attrs)
    node = cli_tree[0]["complex"][name]
    got = node.read()
    assert got.dtype == want.dtype and got.dtype.kind == "c"
    assert np.array_equal(got, want)
    assert np.array_equal(node[1:3, 1], want[1:3, 1])
    for key, value in attrs.items():
        assert node.metadata[key] == value, key


@pytest.mark.parametrize("name", ["packed", "packed3"])
def test_netcdf_variables_are_decoded_as_xarray_decodes_them(cli_tree, files, name):
    want = xr.open_dataset(os.path.join(files[0], f"{name}.nc")).load()
    node = cli_tree[0][name]
    got = node.read().load()
    xr.testing.assert_identical(got, want)
    for var in want.variables:
        assert got[var].dtype == want[var].dtype, var
    # The conventions' attributes went into decoding, as they go into xarray's encoding.
    assert "scale_factor" not in node["t2m"].metadata["attrs"]
    assert node["t2m"].metadata["attrs"]["units"] == "K"
    # A slice of a decoded variable (NaN where the fill was).
    part = node["t2m"][1:3]
    np.testing.assert_array_equal(part, want["t2m"].values[1:3])
    assert np.isnan(part[1, 1])
    assert tuple(node["name"].dims) == ("station",)


@pytest.mark.parametrize("name", ["example_1", "example_2", "example_3_maskedvals"])
def test_scipys_netcdf3_test_files(cli_tree, files, name):
    """SciPy's own test files: one pads its header with '0' characters where the format says
    zeros, one masks values every way the conventions allow, one has CF times."""
    path = os.path.join(files[0], "scipy", f"{name}.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # xarray warns of var3's two fill values
        want = xr.open_dataset(path).load()
    node = cli_tree[0]["scipy"][name]
    got = node.read().load()
    assert set(got.variables) == set(want.variables)
    for var in want.variables:
        if want[var].dtype.kind == "O":
            continue  # masked characters, which xarray turns into objects
        assert got[var].dtype == want[var].dtype, var
        np.testing.assert_array_equal(got[var].values, want[var].values, err_msg=var)
        assert set(got[var].attrs) == set(want[var].attrs), var



def test_raw_array_bytes_go_out_as_blosc2_when_the_client_offers_it(server):
    """The Tiled client offers blosc2 (and decodes it with C-Blosc2): raw array bytes are sent
    as byte-shuffled LZ4 chunks, blocks LZ4 cannot shrink as they are."""
    import tiled.client.decoders  # noqa: F401  (registers the client's blosc2 decoder)

    rng = np.random.default_rng(3)
    mixed = np.concatenate([np.zeros(300_000), rng.random(300_000), np.zeros(300_000)])
    mixed = mixed.reshape(9, -1)
    frames = rng.poisson(3, size=(4, 300, 200)).astype("uint16")
    # Random bytes between zeros: their blocks do not shrink and are sent as they are.
    raw = np.concatenate([np.zeros(600_000, "u1"), rng.integers(0, 256, 300_000, "u1"),
                          np.zeros(600_000, "u1")])
    c = server.client()
    for key, data in [("mixed", mixed), ("frames", frames), ("raw", raw)]:
        node = c.write_array(data, key=f"blosc_{key}")
        assert np.array_equal(node.read(), data), key  # the client's own negotiation
        url = node.item["links"]["full"]
        for encoding in ["blosc2", "zstd"]:
            r = node.context.http_client.get(url, headers={
                "Accept": "application/octet-stream", "Accept-Encoding": encoding})
            assert r.status_code == 200 and r.headers["content-encoding"] == encoding, key
            got = np.frombuffer(r.content, dtype=data.dtype).reshape(data.shape)
            assert np.array_equal(got, data), (key, encoding)
        r = node.context.http_client.get(url, headers={
            "Accept": "application/octet-stream", "Accept-Encoding": "blosc2"})
        assert int(r.headers["content-length"]) < 0.5 * data.nbytes, key
