#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/seed-*), small valid and
near-valid inputs made by the real libraries: numpy (.npy), netCDF4 (NetCDF-3), tifffile
(TIFF), zarr (stores), pyarrow (Arrow IPC), h5py with hdf5plugin (raw HDF5 chunks), msgpack.

Run with the test venv's Python (test.sh creates it): python fuzz/seed.py
Inputs the fuzzer adds to the corpus (other names) are left alone.
"""

import io
import json
import os
import struct
import sys
import tempfile
import urllib.parse
from pathlib import Path

import h5py
import hdf5plugin
import msgpack
import netCDF4
import numpy as np
import pyarrow as pa
import tifffile
import zarr

CORPUS = Path(__file__).resolve().parent / "corpus"

# The element sizes the raw-chunk harnesses pick from by their first byte (fuzz/src/lib.rs).
ITEMSIZES = [1, 2, 4, 8, 3, 16, 12, 6]
# The names the zarr_metadata harness writes its parts under, and their separator.
ZARR_NAMES = [
    "zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata",
    "a/zarr.json", "a/.zarray", "a/.zattrs", "a/.zgroup",
    "c/0", "c/0/0", "0", "0.0", "a/c/0", "a/0", "a/c/0/0",
]
ZARR_SEPARATOR = b"\xff\xfe"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


def slice_parser():
    def seed(name, shape, text, huge=False):
        head = len(shape) | (0x80 if huge else 0)
        write("slice_parser", name, bytes([head, *shape]) + text.encode())

    seed("range-step", [5, 7], "1:4,::-2")
    seed("ellipsis-index", [4, 3, 2], "...,-1")
    seed("step3", [10], "::3")
    seed("all", [3, 3], "")
    seed("zero-d", [], "")
    seed("reverse-mixed", [2, 3, 4, 5], "1,...,::-1,0:2")
    seed("negative-bounds", [9], "-9:-1:-2")
    seed("extremes", [1, 2], "-9223372036854775808:9223372036854775807:2,5", huge=True)
    seed("bad-step", [4], "::0")
    seed("empty-dim", [0, 4], ":,1:3")


def query_filters():
    def seed(name, pairs):
        write("query_filters", name, urllib.parse.urlencode(pairs))

    seed("eq", [("filter[eq][condition][key]", "color"),
                ("filter[eq][condition][value]", '"green"')])
    seed("comparison", [("filter[comparison][condition][operator]", "gt"),
                        ("filter[comparison][condition][key]", "sample.temperature"),
                        ("filter[comparison][condition][value]", "-20")])
    seed("regex", [("filter[regex][condition][key]", "text"),
                   ("filter[regex][condition][pattern]", "qu?ick.*f[aeiou]x"),
                   ("filter[regex][condition][case_sensitive]", "false")])
    seed("like-in-notin", [("filter[like][condition][key]", "color"),
                           ("filter[like][condition][pattern]", '"gr\\_e%"'),
                           ("filter[in][condition][key]", "precision"),
                           ("filter[in][condition][value]", "[5, 6]"),
                           ("filter[notin][condition][key]", "color"),
                           ("filter[notin][condition][value]", '["red"]')])
    seed("keys-specs-family", [("filter[keypresent][condition][key]", "sample.name"),
                               ("filter[keypresent][condition][exists]", "true"),
                               ("filter[specs][condition][include]", '["xarray_dataset"]'),
                               ("filter[specs][condition][exclude]", "[]"),
                               ("filter[structure_family][condition][value]", '"array"'),
                               ("filter[keys_filter][condition][keys]", '["scan"]'),
                               ("filter[lookup][condition][key]", "scan"),
                               ("filter[access_tags_filter][condition][tags]", '["public"]'),
                               ("filter[fulltext][condition][text]", "brown fox"),
                               ("filter[contains][condition][key]", "tags"),
                               ("filter[contains][condition][value]", '"a"')])
    seed("paged-sorted", [("page[offset]", "0"), ("page[limit]", "10"), ("sort", "-color,"),
                          ("fields", "metadata"), ("counts", "true"), ("block", "1,2")])
    seed("repeated", [("filter[eq][condition][key]", "a"), ("filter[eq][condition][key]", "b"),
                      ("filter[eq][condition][value]", "1"), ("filter[eq][condition][value]", "2")])


PATCHES = [
    ("json-patch", {
        "content-type": "application/json-patch+json",
        "metadata": [{"op": "add", "path": "/x", "value": {"y": [1, 2]}},
                     {"op": "copy", "from": "/nested", "path": "/n2"},
                     {"op": "move", "from": "/color", "path": "/colour"},
                     {"op": "replace", "path": "/list/0", "value": 10},
                     {"op": "test", "path": "/n", "value": 1},
                     {"op": "remove", "path": "/list/2"}],
        "specs": [{"op": "add", "path": "/-", "value": {"name": "s", "version": "1"}}],
        "access_tags": [{"op": "remove", "path": "/0"}],
    }),
    ("merge-patch", {
        "content-type": "application/merge-patch+json",
        "metadata": {"color": None, "new": {"a": 1}, "nested": {"a": {"c": 2}}},
        "specs": [{"name": "xarray_dataset", "version": None}],
        "access_tags": ["public"],
    }),
    ("default-dialect", {"metadata": [{"op": "add", "path": "/nested/a/b/-", "value": False}]}),
    ("copy-root", {"metadata": [{"op": "copy", "from": "", "path": "/self"},
                                {"op": "copy", "from": "", "path": "/self2"}]}),
]


def metadata_patch():
    for name, body in PATCHES:
        write("metadata_patch", name, json.dumps(body))


def data_type(kind, itemsize, endianness="little"):
    return {"endianness": endianness, "kind": kind, "itemsize": itemsize, "dt_units": None}


def arrow_schema_uri(schema):
    import base64
    return "data:application/vnd.apache.arrow.file;base64," + base64.b64encode(
        schema.serialize().to_pybytes()).decode()


def source(structure):
    return {"structure_family": None, "structure": structure, "mimetype": None,
            "parameters": {}, "assets": [], "management": "writable"}


def creation_bodies():
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    return [
        ("container", {"id": "c", "structure_family": "container", "metadata": {"k": 1},
                       "specs": [], "data_sources": [], "access_tags": None}),
        ("array", {"id": "a", "structure_family": "array", "metadata": {"units": "m"},
                   "specs": [{"name": "xdi", "version": "1.0"}],
                   "data_sources": [source({"data_type": data_type("f", 8),
                                            "chunks": [[2, 2], [3]], "shape": [4, 3],
                                            "dims": ["y", "x"], "resizable": False})]}),
        ("array-structured", {"structure_family": "array", "data_sources": [source({
            "data_type": {"itemsize": 12, "fields": [
                {"name": "x", "dtype": data_type("i", 4), "shape": None},
                {"name": "y", "dtype": data_type("f", 8, "big"), "shape": None}]},
            "chunks": [[5]], "shape": [5], "dims": None, "resizable": False})]}),
        ("table", {"id": "t", "structure_family": "table", "data_sources": [source({
            "arrow_schema": arrow_schema_uri(schema), "npartitions": 2,
            "columns": ["a", "b"], "resizable": False})]}),
        ("sparse", {"structure_family": "sparse", "data_sources": [source({
            "chunks": [[10], [10]], "shape": [10, 10], "data_type": data_type("f", 8),
            "coord_data_type": data_type("u", 8), "dims": None, "resizable": False,
            "layout": "COO"})]}),
        ("awkward", {"structure_family": "awkward", "data_sources": [source({
            "length": 3, "form": {"class": "ListOffsetArray", "offsets": "i64",
                                  "content": {"class": "NumpyArray", "primitive": "float64",
                                              "form_key": "node1"},
                                  "form_key": "node0"}})]}),
        ("bad-chunks", {"structure_family": "array", "data_sources": [source({
            "data_type": data_type("u", 2), "chunks": [[3, 2]], "shape": [4],
            "dims": None, "resizable": False})]}),
    ]


def json_body():
    for name, body in creation_bodies():
        write("json_body", name, json.dumps(body))
    write("json_body", "put-metadata", json.dumps(
        {"metadata": {"a": [1, 2.5, None, True]}, "specs": None, "access_tags": ["x"]}))


def msgpack_body():
    for name, body in creation_bodies() + PATCHES:
        write("msgpack_body", name, msgpack.packb(body))
    write("msgpack_body", "scalars", msgpack.packb(
        {"i": -2**63, "u": 2**64 - 1, "f": 1.5, "b": b"\x00\x01", "l": [None, True], "e": {}}))


def arrow_ipc_upload():
    def ipc(table):
        sink = io.BytesIO()
        with pa.ipc.new_file(sink, table.schema) as w:
            for batch in table.to_batches(max_chunksize=3):
                w.write_batch(batch)
        return sink.getvalue()

    import pandas as pd
    df = pd.DataFrame({"a": [1, 2, 3, 4, 5], "b": ["x", "y", None, "w", "v"],
                       "c": [0.5, 1.5, np.nan, 3.5, 4.5]}, index=pd.Index([10, 11, 12, 13, 14]))
    write("arrow_ipc_upload", "pandas-index", ipc(pa.Table.from_pandas(df)))
    write("arrow_ipc_upload", "types", ipc(pa.table({
        "i8": pa.array([1, -1], pa.int8()), "u64": pa.array([0, 2**64 - 1], pa.uint64()),
        "f32": pa.array([1.0, None], pa.float32()), "bool": [True, False],
        "ls": pa.array(["a", "bc"], pa.large_string()), "bin": [b"\x00", b""],
        "ts": pa.array([0, 10**9], pa.timestamp("ns")),
        "dict": pa.array(["a", "b"]).dictionary_encode(),
        "list": pa.array([[1, 2], []], pa.list_(pa.int32())),
    })))
    write("arrow_ipc_upload", "empty", ipc(pa.table({"a": pa.array([], pa.int64())})))


def zarr_input(root):
    """Packs the files of a store under `root` into a zarr_metadata input."""
    parts = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        if rel not in ZARR_NAMES:
            continue
        data = path.read_bytes()
        if ZARR_SEPARATOR in data:
            continue
        parts.append(bytes([ZARR_NAMES.index(rel)]) + data)
    return ZARR_SEPARATOR.join(parts)


def zarr_metadata():
    with tempfile.TemporaryDirectory() as tmp:
        def store(name):
            return Path(tmp) / f"s{name}"

        a = zarr.create_array(str(store(1)), shape=(4,), chunks=(4,), dtype="int16", fill_value=0)
        a[:] = np.arange(4, dtype="int16")
        write("zarr_metadata", "v3-array", zarr_input(store(1)))

        a = zarr.create_array(str(store(2)), shape=(3, 2), chunks=(3, 2), dtype="float64",
                              zarr_format=2, dimension_names=None)
        a[:] = np.arange(6.0).reshape(3, 2)
        a.attrs["_ARRAY_DIMENSIONS"] = ["y", "x"]
        write("zarr_metadata", "v2-array", zarr_input(store(2)))

        g = zarr.open_group(str(store(3)), mode="w", zarr_format=3)
        a = g.create_array("a", shape=(5,), chunks=(5,), dtype="uint8")
        a[:] = np.arange(5, dtype="uint8")
        g.attrs["title"] = "scan"
        zarr.consolidate_metadata(str(store(3)))
        write("zarr_metadata", "v3-group-consolidated", zarr_input(store(3)))

        g = zarr.open_group(str(store(4)), mode="w", zarr_format=2)
        a = g.create_array("a", shape=(2, 2), chunks=(2, 2), dtype=">i4")
        a[:] = np.arange(4).reshape(2, 2)
        zarr.consolidate_metadata(str(store(4)))
        write("zarr_metadata", "v2-group-consolidated", zarr_input(store(4)))

        a = zarr.create_array(str(store(5)), shape=(6, 4), chunks=(6, 4), shards=None,
                              dtype="float32", dimension_names=["t", "x"])
        a[:] = np.ones((6, 4), dtype="float32")
        write("zarr_metadata", "v3-2d", zarr_input(store(5)))

        a = zarr.create_array(str(store(6)), shape=(4, 4), chunks=(2, 2), shards=(4, 4),
                              dtype="int32")
        a[:] = np.arange(16, dtype="int32").reshape(4, 4)
        write("zarr_metadata", "v3-sharded", zarr_input(store(6)))


def npy():
    def save(name, arr, version=None):
        buf = io.BytesIO()
        if version is None:
            np.save(buf, arr)
        else:
            np.lib.format.write_array(buf, arr, version=version)
        write("npy_header", name, buf.getvalue())

    save("i2", np.arange(6, dtype="<i2").reshape(3, 2))
    save("f8-scalar", np.array(2.5))
    save("bool-empty", np.zeros((0,), dtype=bool))
    save("f4-big-endian", np.arange(8, dtype=">f4").reshape(2, 2, 2))
    save("u1-v2", np.arange(20, dtype="u1").reshape(4, 5), version=(2, 0))
    save("c16", np.arange(3, dtype="c16"))
    save("fortran", np.asfortranarray(np.arange(6, dtype="i4").reshape(2, 3)))
    save("structured", np.zeros(2, dtype=[("x", "i4"), ("y", "f8")]))
    save("unicode", np.array(["ab", "c"], dtype="<U2"))


def netcdf3():
    for fmt in ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET"]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "t.nc"
            with netCDF4.Dataset(path, "w", format=fmt) as ds:
                ds.title = "scan"
                ds.createDimension("time", None)
                ds.createDimension("x", 3)
                ds.createDimension("len", 4)
                t = ds.createVariable("time", "f8", ("time",))
                t.units = "s"
                x = ds.createVariable("x", "i4", ("x",))
                x[:] = [10, 20, 30]
                v = ds.createVariable("v", "f4", ("time", "x"), fill_value=-1.0)
                v.coordinates = "x"
                t[:] = [0.0, 1.0]
                v[:] = np.arange(6, dtype="f4").reshape(2, 3)
                b = ds.createVariable("b", "i1", ("x",))
                b[:] = [-1, 0, 1]
                s = ds.createVariable("s", "i2", ())
                s.assignValue(7)
                c = ds.createVariable("c", "S1", ("x", "len"))
                c[:] = netCDF4.stringtochar(np.array(["ab", "cde", ""], dtype="S4"))
                c.note = [1.5, 2.5]
            write("netcdf3_header", fmt.lower(), path.read_bytes())


def raw_chunks(name, data, chunks, **filters):
    """The stored chunks of an HDF5 dataset written with `filters`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("d", data=data, chunks=chunks, **filters)
        with h5py.File(path, "r") as f:
            d = f["d"]
            return [d.id.read_direct_chunk(c.chunk_offset)[1]
                    for c in (d.id.get_chunk_info(i) for i in range(d.id.get_num_chunks()))]


def bitshuffle_lz4():
    cases = [
        ("u2", np.arange(64, dtype="u2"), (64,), 0),
        ("u4-tail", np.arange(13, dtype="u4") * 7919, (13,), 0),
        ("u1-blocks", np.arange(100, dtype="u1"), (100,), 16),
        ("f8-2d", np.linspace(0, 1, 48).reshape(6, 8), (6, 8), 0),
        ("i8", np.arange(40, dtype="i8") - 20, (40,), 8),
    ]
    for name, data, chunks, nelems in cases:
        (chunk,) = raw_chunks(name, data, chunks,
                              **hdf5plugin.Bitshuffle(nelems=nelems, cname="lz4"))
        sel = ITEMSIZES.index(data.dtype.itemsize)
        write("bitshuffle_lz4", name, bytes([sel]) + chunk)


def gzip_shuffle():
    cases = [
        ("i2", np.arange(50, dtype="i2"), (50,)),
        ("f4-2d", np.linspace(0, 1, 24, dtype="f4").reshape(4, 6), (4, 6)),
        ("f8", np.arange(16, dtype="f8"), (16,)),
        ("u1", np.arange(30, dtype="u1"), (30,)),
        ("S3", np.array([b"abc", b"de", b"f"] * 5, dtype="S3"), (15,)),
        ("c16", np.arange(8, dtype="c16"), (8,)),
    ]
    for name, data, chunks in cases:
        (chunk,) = raw_chunks(name, data, chunks, shuffle=True, compression="gzip")
        sel = ITEMSIZES.index(data.dtype.itemsize)
        head = bytes([sel]) + struct.pack("<I", data.nbytes)[:3]
        write("gzip_shuffle", name, head + chunk)


def tiff():
    def save(name, data, **kw):
        buf = io.BytesIO()
        tifffile.imwrite(buf, data, **kw)
        write("tiff", name, buf.getvalue())

    save("u8", np.arange(64, dtype="u1").reshape(8, 8))
    save("u16-pages", np.arange(3 * 16, dtype="u2").reshape(3, 4, 4))
    save("f32-deflate", np.linspace(0, 1, 36, dtype="f4").reshape(6, 6), compression="zlib")
    save("rgb", np.arange(4 * 4 * 3, dtype="u1").reshape(4, 4, 3), photometric="rgb")
    save("rgb-planar", np.arange(3 * 4 * 4, dtype="u1").reshape(3, 4, 4), photometric="rgb",
         planarconfig="separate")
    save("i16-tiled", np.arange(32 * 32, dtype="i2").reshape(32, 32), tile=(16, 16))
    save("bigtiff-f64", np.arange(12, dtype="f8").reshape(3, 4), bigtiff=True)


def main():
    os.chdir(Path(__file__).resolve().parent)
    for make in [slice_parser, query_filters, metadata_patch, json_body, msgpack_body,
                 arrow_ipc_upload, zarr_metadata, npy, netcdf3, bitshuffle_lz4, gzip_shuffle,
                 tiff]:
        make()
    total = sum(p.stat().st_size for p in CORPUS.rglob("seed-*"))
    print(f"wrote {len(list(CORPUS.rglob('seed-*')))} seeds, {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
