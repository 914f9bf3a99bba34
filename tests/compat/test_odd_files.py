"""Odd but real files (the `odd/` directory of tests/fixtures/make_files.py), served by
`tessera serve directory` and by `tessera register`, read through the real Tiled client and
compared with what the library a user would otherwise call reads: np.load, tifffile.imread,
pd.read_csv (defaults, as `tiled serve directory` calls it), pd.read_parquet, pd.read_excel
and zarr."""

import os
import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

# The served fixture directory, both ways (register and serve directory), as test_files.py
# serves it.
from test_files import cli_tree, files, served_directory, server  # noqa: F401


def odd(cli_tree):
    return cli_tree[0]["odd"]


def path(files, name):
    return os.path.join(files[0], "odd", name)


def np_load(files, name):
    with warnings.catch_warnings():
        # np.load warns that a Python 2 header needed extra parsing.
        warnings.simplefilter("ignore")
        return np.load(path(files, name))


NPY = [
    "npy_v_one",
    "npy_v_two",
    "npy_v_three",
    "npy_utf_header",
    "npy_python_two",
    "npy_no_padding",
    "npy_other_layout",
    "npy_fortran",
    "npy_fortran_matrix",
    "npy_big_endian",
    "npy_big_int",
    "npy_complex",
    "npy_complex_big",
    "npy_bool",
    "npy_half",
    "npy_times",
    "npy_text",
    "npy_bytes",
]


@pytest.mark.parametrize("name", NPY)
def test_npy_files_read_as_np_load_reads_them(cli_tree, files, name):
    """Header versions 1.0, 2.0 and 3.0 (utf-8), a header numpy wrote on Python 2 (`3L`),
    other header layouts, Fortran order, big-endian, complex, bool and half types."""
    want = np_load(files, f"{name}.npy")
    node = odd(cli_tree)[name]
    assert node.shape == want.shape
    got = node.read()
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.dtype.names == want.dtype.names
    np.testing.assert_array_equal(got, want)
    if want.ndim and want.dtype.names is None:
        np.testing.assert_array_equal(node[1:], want[1:])
    if want.dtype.kind in "fiub":
        # JSON as Tiled writes it: the values as Python numbers.
        r = node.context.http_client.get(node.item["links"]["full"], params={"format": "json"})
        assert r.status_code == 200, r.text
        assert r.json() == want.tolist()


def test_a_sequence_of_fortran_npy_files(cli_tree, files):
    names = sorted(os.listdir(path(files, "fseq")))
    want = np.stack([np.load(os.path.join(path(files, "fseq"), n)) for n in names])
    node = odd(cli_tree)["fseq"]["part_"]
    got = node.read()
    assert got.dtype == want.dtype and got.shape == want.shape == (3, 3, 4)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(node[2, 1:], want[2, 1:])


def test_padded_npy_structs_are_served_packed(cli_tree, files):
    """An aligned C struct has padding (numpy's unnamed void fields): served packed, with the
    same fields and values, as HDF5 compounds are."""
    want = np_load(files, "npy_aligned_struct.npy")
    assert want.dtype.itemsize == 24
    node = odd(cli_tree)["npy_aligned_struct"]
    got = node.read()
    assert got.dtype.names == want.dtype.names and got.dtype.itemsize == 1 + 8 + 2
    for field in want.dtype.names:
        assert got[field].dtype == want[field].dtype, field
        np.testing.assert_array_equal(got[field], want[field])
    np.testing.assert_array_equal(node[1:4]["energy"], want[1:4]["energy"])


def test_fortran_npy_is_served_in_c_order_block_by_block(cli_tree, files):
    """np.load gives a Fortran-ordered file's values; tessera serves them in C order, cut
    into blocks along the last axis (the slabs that are contiguous in the file)."""
    want = np_load(files, "npy_fortran.npy")
    assert want.flags.f_contiguous and not want.flags.c_contiguous
    node = odd(cli_tree)["npy_fortran"]
    chunks = node.structure().chunks
    assert chunks[:-1] == ((3,), (4,))
    np.testing.assert_array_equal(node[1, 2:4, 1:], want[1, 2:4, 1:])
    np.testing.assert_array_equal(node[:, :, 3], want[:, :, 3])
    np.testing.assert_array_equal(node.read_block((0, 0, 0)), want[:, :, : chunks[2][0]])


@pytest.mark.parametrize("name", ["rgb_pages", "rgb_single", "shaped_pages", "rgb_planar",
                                  "imagej_stack"])
def test_rgb_tiff_reads_as_tifffile_reads_it(cli_tree, files, name):
    want = tifffile.imread(path(files, f"{name}.tif"))
    node = odd(cli_tree)[name]
    assert node.shape == want.shape and node.dtype == want.dtype
    np.testing.assert_array_equal(node.read(), want)
    chunks = node.structure().chunks
    if name == "rgb_pages":
        assert want.shape == (4, 18, 22, 3)
        # One block is one page.
        assert chunks == ((1, 1, 1, 1), (18,), (22,), (3,))
        np.testing.assert_array_equal(node.read_block((2, 0, 0, 0)), want[2:3])
        np.testing.assert_array_equal(node[3, 5:9, :, 1], want[3, 5:9, :, 1])
    elif name == "shaped_pages":
        # tifffile's description of the series gives the leading axes over the six pages.
        assert want.shape == (2, 5, 10, 12)
        assert chunks == ((1, 1), (1,) * 5, (10,), (12,))
        np.testing.assert_array_equal(node.read_block((1, 2, 0, 0)), want[1:2, 2:3])
        np.testing.assert_array_equal(node[1, :, 3:5], want[1, :, 3:5])
    elif name == "imagej_stack":
        # ImageJ's description gives frames, slices and channels.
        assert want.shape == (2, 3, 4, 10, 12)
        assert chunks == ((1, 1), (1, 1, 1), (1, 1, 1, 1), (10,), (12,))
        np.testing.assert_array_equal(node.read_block((1, 2, 3, 0, 0)), want[1:2, 2:3, 3:4])
        np.testing.assert_array_equal(node[0, :, 2, 5], want[0, :, 2, 5])
    elif name == "rgb_planar":
        # Separate planes: samples come first in a page.
        assert want.shape == (2, 3, 10, 12)
        assert chunks == ((1, 1), (3,), (10,), (12,))
        np.testing.assert_array_equal(node[1, 2], want[1, 2])
    else:
        assert want.shape == (18, 22, 3)
        assert chunks == ((18,), (22,), (3,))
        np.testing.assert_array_equal(node[4:7, 2], want[4:7, 2])


def test_a_sequence_of_multi_page_tiffs_reads_every_page(cli_tree, files):
    """Numbered files of several pages each: an axis over the files, then the pages; one
    block is one page of one file."""
    names = sorted(os.listdir(path(files, "burst")))
    want = np.stack([tifffile.imread(os.path.join(path(files, "burst"), n)) for n in names])
    node = odd(cli_tree)["burst"]["shot_"]
    assert node.shape == want.shape == (3, 4, 9, 11)
    assert node.structure().chunks[:2] == ((1, 1, 1), (1, 1, 1, 1))
    np.testing.assert_array_equal(node.read(), want)
    np.testing.assert_array_equal(node.read_block((2, 3, 0, 0)), want[2:3, 3:4])
    np.testing.assert_array_equal(node[1, 2, 4:], want[1, 2, 4:])


def _same_dtype(got, want, what):
    # Text: any string dtype. The client builds the frame with dask, whose "convert-string"
    # option turns text into pandas' NA-variant string dtype; the arrow it reads is the same.
    if pd.api.types.is_string_dtype(want) and not isinstance(want, pd.CategoricalDtype):
        assert pd.api.types.is_string_dtype(got), (what, got)
    else:
        assert got == want, (what, got, want)


def _same_frame(got, want):
    """Equal values and index, and the same dtypes (text columns: any string dtype)."""
    assert list(got.columns) == list(want.columns)
    for col in want.columns:
        _same_dtype(got[col].dtype, want[col].dtype, col)
    _same_dtype(got.index.dtype, want.index.dtype, "index")
    assert got.index.name == want.index.name
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_index_type=False)


@pytest.mark.parametrize("name", ["excel_export", "logger", "semicolons", "with_index"])
def test_csv_reads_as_pandas_read_csv_reads_it(cli_tree, files, name):
    """`tiled serve directory` reads a CSV with pandas' defaults: a UTF-8 BOM is dropped,
    CRLF ends lines, quoted fields keep separators, quotes and line breaks; NA, nan, N/A,
    NULL, -nan and empty fields are missing (an integer column with gaps is float); blank
    lines are skipped and a short row is padded with missing values. No separator sniffing:
    a file of semicolons is one text column (with an index when its rows have one field more
    than the header); an unnamed header field is `Unnamed: 0`."""
    import dask

    want = pd.read_csv(path(files, f"{name}.csv"))
    objects = [col for col in want.columns if want[col].dtype == object]
    for col in objects:
        # Booleans with gaps are objects (True, NaN, False) to pandas; pyarrow, and so
        # Tiled, serves them as booleans with nulls, which read back as None.
        want[col] = want[col].where(want[col].notna(), None)
    node = odd(cli_tree)[name]
    assert list(node.columns) == list(want.columns)
    with dask.config.set({"dataframe.convert-string": False}):
        # Without dask's string conversion (which makes the client turn object columns
        # into text, whatever the server sends) the client gives exactly what pandas reads.
        pd.testing.assert_frame_equal(node.read(), want)
    got = node.read()
    _same_frame(got.drop(columns=objects), want.drop(columns=objects))
    for col in want.columns:
        column = node[col].read()
        if want[col].dtype.kind in "fib":
            assert column.dtype == want[col].dtype
            np.testing.assert_array_equal(column, want[col].to_numpy())


def test_tsv_files_are_not_served_as_by_tiled(cli_tree):
    """Tiled has no adapter for text/tab-separated-values: `tiled serve directory` skips
    .tsv files, and so does tessera."""
    assert "tabbed" not in odd(cli_tree)
    report = cli_tree[1]
    if report is not None:
        assert "tabbed.tsv" in report


PARQUET = ["pq_range_index", "pq_stepped_index", "pq_named_index", "pq_unnamed_index",
           "pq_multi_index", "pq_types"]


@pytest.mark.parametrize("name", PARQUET)
def test_parquet_reads_as_pandas_read_parquet_reads_it(cli_tree, files, name):
    """pandas' metadata in the file restores the index (a RangeIndex kept only in metadata,
    a named or unnamed index kept as a column), categorical and tz-aware datetime columns."""
    want = pd.read_parquet(path(files, f"{name}.parquet"))
    node = odd(cli_tree)[name]
    assert list(node.columns) == list(want.columns)
    got = node.read()
    _same_frame(got, want)
    if node.structure().npartitions > 1:
        part = node.read_partition(1)
        _same_frame(part, want.iloc[5:10])
    import dask

    with dask.config.set({"dataframe.convert-string": False}):
        # Without dask's string conversion the client gives exactly what pandas reads.
        pd.testing.assert_frame_equal(node.read(), want)


def test_categorical_and_tz_aware_columns_read_as_arrays(cli_tree, files):
    """A table's columns are also arrays: a categorical one gives its values (missing ones
    empty), a tz-aware one its instants in UTC."""
    want = pd.read_parquet(path(files, "pq_types.parquet"))
    node = odd(cli_tree)["pq_types"]
    phase = node["phase"].read()
    assert phase.dtype.kind == "U"
    assert phase.tolist() == ["" if pd.isna(v) else v for v in want["phase"]]
    at = node["at"].read()
    assert at.dtype.kind == "M"
    utc = want["at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    np.testing.assert_array_equal(at.astype("datetime64[us]"), utc.astype("datetime64[us]"))
    # An HDF5 export has no categorical type: refused, naming the column (not a 500).
    r = node.context.http_client.get(node.item["links"]["full"],
                                     params={"format": "application/x-hdf5"})
    assert r.status_code == 406 and "phase" in r.json()["detail"], r.text


def test_excel_datetimes_read_as_pandas_read_excel_reads_them(cli_tree, files):
    want = pd.read_excel(path(files, "times.xlsx"), sheet_name="log")
    got = odd(cli_tree)["times"]["log"].read()
    _same_frame(got, want)
    assert got["when"].dtype == want["when"].dtype == np.dtype("datetime64[us]")
    assert got["when"].isna().tolist() == want["when"].isna().tolist()
    assert (got["when"] == want["when"]).sum() == 3  # milliseconds as Excel keeps them


def test_excel_1904_dates_read_as_pandas_read_excel_reads_them(cli_tree, files):
    """Old Mac workbooks count days from 1904-01-01; openpyxl (and so pandas) follows the
    workbook's flag."""
    want = pd.read_excel(path(files, "mac_dates.xlsx"), sheet_name="mac")
    got = odd(cli_tree)["mac_dates"]["mac"].read()
    _same_frame(got, want)
    assert got["when"].dtype == np.dtype("datetime64[us]")


@pytest.mark.parametrize(
    "name, why",
    [("bad_objects", "Python objects"), ("bad_truncated", "truncated"), ("bad_header", "not readable")],
)
def test_npy_files_that_cannot_be_served_are_clear_errors(cli_tree, name, why):
    """np.load refuses these (objects need pickle; the data or the header is damaged):
    registering reports them, and the served directory answers a 4xx naming the file."""
    from tiled.client.utils import ClientError

    tree, report = cli_tree
    if report is not None:
        assert f"{name}.npy" in report and why in report, report
        assert name not in tree["odd"]
        return
    with pytest.raises(ClientError) as e:
        tree["odd"][name]
    assert e.value.response.status_code == 422
    assert f"{name}.npy" in str(e.value) and why in str(e.value)


@pytest.mark.parametrize("store", ["ome_v2", "ome_v3"])
def test_ome_zarr_group_attributes_are_where_tiled_puts_them(cli_tree, files, store):
    z = zarr.open_group(path(files, f"{store}.zarr"), mode="r")
    node = odd(cli_tree)[store]
    # Where Tiled puts a group's attributes: under `attributes` of zarr-python's group document.
    assert dict(node.metadata) == {"attributes": dict(z.attrs), "node_type": "group",
                                   "zarr_format": z.metadata.zarr_format}
    attrs = node.metadata["attributes"]
    if store == "ome_v2":
        assert attrs["multiscales"][0]["datasets"][2]["path"] == "2"
    else:
        assert attrs["ome"]["version"] == "0.5"
        assert attrs["ome"]["multiscales"][0]["datasets"][2]["path"] == "2"
    assert sorted(node) == ["0", "1", "2", "labels"]
    for level in ["0", "1", "2"]:
        want = z[level][:]
        got = node[level].read()
        assert got.dtype == want.dtype and np.array_equal(got, want), level
        np.testing.assert_array_equal(node[level][1:5, 2:], want[1:5, 2:])
    assert node["1"].shape == (16, 20) and node["2"].shape == (8, 10)
    labels = node["labels"]
    assert dict(labels.metadata["attributes"]) == dict(z["labels"].attrs)
    assert dict(labels["cells"].metadata["attributes"]) == dict(z["labels"]["cells"].attrs)
    np.testing.assert_array_equal(labels["cells"]["0"].read(), z["labels"]["cells"]["0"][:])
    if store == "ome_v3":
        assert tuple(node["0"].dims) == ("y", "x")


# Served by both; left out: the structured .npy files (Tiled 0.2.20 answers 500 for them) and
# the files neither serves.
SAME_AS_TILED = [
    "npy_v_one", "npy_v_two", "npy_v_three", "npy_python_two", "npy_no_padding",
    "npy_other_layout", "npy_fortran", "npy_fortran_matrix", "npy_big_endian", "npy_big_int",
    "npy_complex", "npy_complex_big", "npy_bool", "npy_half", "npy_times", "npy_text",
    "npy_bytes", "rgb_pages", "rgb_single", "shaped_pages", "rgb_planar", "imagej_stack",
    "excel_export", "logger", "semicolons", "with_index", "pq_range_index", "pq_stepped_index",
    "pq_named_index", "pq_unnamed_index", "pq_multi_index", "pq_types",
    ("burst", "shot_"), ("times", "log"), ("mac_dates", "mac"), ("ome_v2", "1"), ("ome_v3", "2"),
]


def test_the_same_values_as_tiled_serve_directory(served_directory, files, tmp_path):
    """The real Tiled server, serving the same odd files, gives the same values and types."""
    from test_files import directory_server
    from tiled.client import from_uri
    from writable import tiled_binary

    clean = tmp_path / "odd"
    clean.mkdir()
    for name in os.listdir(path(files, "")):
        if not name.startswith("bad_"):
            os.symlink(path(files, name), clean / name)
    cmd = lambda port: [tiled_binary(), "serve", "directory", str(clean), "--public",
                        "--port", str(port)]
    ours = from_uri(served_directory)["odd"]
    with directory_server(cmd, str(clean), {"npy_v_one", "logger", "ome_v2"}, timeout=180) as (url, _):
        theirs = from_uri(url)
        for key in SAME_AS_TILED:
            a, b = ours, theirs
            for k in (key,) if isinstance(key, str) else key:
                a, b = a[k], b[k]
            x, y = a.read(), b.read()
            if isinstance(x, pd.DataFrame):
                pd.testing.assert_frame_equal(x, y)
            else:
                assert x.dtype == y.dtype and x.shape == y.shape, (key, x.dtype, y.dtype)
                np.testing.assert_array_equal(x, y, err_msg=str(key))
