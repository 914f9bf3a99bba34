"""Expected values of the demo tree (`tiled serve demo` / `tessera serve demo`).

The demo draws every random array from ``numpy.random.default_rng(42)`` in a fixed
order (see the reference, section 8).  ``Generator.random`` consumes exactly one
64-bit draw per float, so the two huge arrays at the start of the stream
(big_image, 10000x10000, and tiny_hypercube, 50**5) never need to be generated in
full: we jump over them with ``bit_generator.advance`` and compute spot checks of
their regions the same way.

Draw order: big_image, small_image, medium_image, tiny_image, tiny_cube,
tiny_hypercube, then (after the big ones) high_entropy, tiny_column,
short_column_int, short_column_float, long_column, complex (real, imag), temp,
precip, sparse base array, flat_array.
"""

import datetime

import numpy

SEED = 42

BIG_SHAPE = (10_000, 10_000)
HYPERCUBE_SHAPE = (50, 50, 50, 50, 50)

# Offsets (in 64-bit draws) of each float array from the start of the stream.
BIG_OFFSET = 0
SMALL_OFFSET = BIG_OFFSET + 10_000 * 10_000
MEDIUM_OFFSET = SMALL_OFFSET + 300 * 300
TINY_OFFSET = MEDIUM_OFFSET + 1000 * 1000
CUBE_OFFSET = TINY_OFFSET + 50 * 50
HYPERCUBE_OFFSET = CUBE_OFFSET + 50**3
AFTER_HYPERCUBE = HYPERCUBE_OFFSET + 50**5

# Everything the demo does not draw from the generator.
PI = 3.14159
E_ARR = numpy.array(["2.71828"])
FSC = numpy.array("1/137")
FORTYTWO = numpy.array(42)
LON = numpy.array([[-99.83, -99.32], [-99.79, -99.23]])
LAT = numpy.array([[42.25, 42.21], [42.63, 42.59]])
TIME = numpy.array(["2014-09-06", "2014-09-07", "2014-09-08"], dtype="datetime64[ns]")
PETS = numpy.array(
    [("Rex", 9, 81.0), ("Fido", 3, 27.0)],
    dtype=[("name", "U10"), ("age", "i4"), ("weight", "f4")],
)
AWKWARD_LIST = [
    [{"x": 1.1, "y": [1]}, {"x": 2.2, "y": [1, 2]}],
    [],
    [{"x": 3.3, "y": [1, 2, 3]}],
]
RAGGED_LIST = [[[1.1, 2.2, 3.3], []], [[4.4]], [], [[5.5, 6.6, 7.7, 8.8], [9.9]]]
SHORT_TABLE_DATES = numpy.arange(
    datetime.datetime(2025, 1, 1),
    datetime.datetime(2025, 4, 11),
    datetime.timedelta(days=1),
    dtype="datetime64[D]",
)
# short_table.C holds 3-letter words made of one repeated ASCII letter, drawn with
# Python's unseeded `random`; short_table.E holds random booleans.
SHORT_TABLE_C_ALPHABET = {c * 3 for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def generator_at(offset):
    """A fresh demo generator advanced by `offset` 64-bit draws."""
    rng = numpy.random.default_rng(SEED)
    if offset:
        rng.bit_generator.advance(offset)
    return rng


def _region_2d(base, shape, rows, cols):
    """Values of `array[rows, cols]` (two range objects with step 1) of a 2-D
    float array whose first element is draw number `base`."""
    out = numpy.empty((len(rows), len(cols)))
    for k, r in enumerate(rows):
        rng = generator_at(base + r * shape[1] + cols.start)
        out[k] = rng.random(len(cols))
    return out


def big_image_region(row_start, row_stop, col_start, col_stop):
    """big_image[row_start:row_stop, col_start:col_stop] without building the image."""
    return _region_2d(BIG_OFFSET, BIG_SHAPE, range(row_start, row_stop), range(col_start, col_stop))


def hypercube_values(index):
    """tiny_hypercube[index] where index is a tuple of ints and (step-1) slices.

    Only the last axis may be a slice longer than one element cheaply; the function
    loops over the others, so keep the selection small."""
    index = tuple(index) + (slice(None),) * (len(HYPERCUBE_SHAPE) - len(index))
    ranges = []
    for sel, n in zip(index, HYPERCUBE_SHAPE):
        if isinstance(sel, slice):
            ranges.append(range(*sel.indices(n)))
        else:
            ranges.append(range(sel, sel + 1))
    out = numpy.empty([len(r) for r in ranges])
    strides = numpy.cumprod((1,) + HYPERCUBE_SHAPE[:0:-1])[::-1]
    for pos in numpy.ndindex(*out.shape[:-1]):
        lead = [ranges[a][p] for a, p in enumerate(pos)]
        first = sum(int(i) * int(s) for i, s in zip(lead, strides[:-1]))
        last_axis = ranges[-1]
        assert last_axis.step == 1
        rng = generator_at(HYPERCUBE_OFFSET + first + last_axis.start)
        out[pos] = rng.random(len(last_axis))
    keep = tuple(slice(None) if isinstance(sel, slice) else 0 for sel in index)
    return out[keep]


def build_demo_data():
    """All demo arrays except big_image and tiny_hypercube, bit for bit."""
    d = {}
    rng = generator_at(SMALL_OFFSET)
    d["small_image"] = rng.random((300, 300))
    d["medium_image"] = rng.random((1000, 1000))
    d["tiny_image"] = rng.random((50, 50))
    d["tiny_cube"] = rng.random((50, 50, 50))

    rng = generator_at(AFTER_HYPERCUBE)
    d["high_entropy"] = rng.integers(-10, 10, size=(100, 100))
    d["low_entropy"] = numpy.ones((100, 100), dtype="int32")
    d["tiny_column"] = rng.random(10)
    d["short_column_int"] = rng.integers(10, size=100, dtype=numpy.dtype("uint8"))
    d["short_column_float"] = rng.random(100)
    d["short_column_datetime"] = SHORT_TABLE_DATES
    d["long_column"] = rng.random(100_000)
    d["complex"] = rng.random((30, 50)) + 1j * rng.random((30, 50))
    d["temperature"] = 15 + 8 * rng.normal(size=(2, 2, 3))
    d["precipitation"] = 10 * rng.uniform(size=(2, 2, 3))
    sparse_arr = rng.random((100, 100))
    sparse_arr[sparse_arr < 0.9] = 0
    d["sparse_image"] = sparse_arr
    d["flat_array"] = rng.random(100)

    d["lon"] = LON
    d["lat"] = LAT
    d["time"] = TIME
    d["pets"] = PETS
    d["pi"] = numpy.array(PI)
    d["e_arr"] = E_ARR
    d["fsc"] = FSC
    d["fortytwo"] = FORTYTWO
    d["awkward_array"] = AWKWARD_LIST
    d["ragged_array"] = RAGGED_LIST
    # Derived tables (columns as numpy arrays).
    d["long_table"] = {
        "A": d["long_column"],
        "B": 2 * d["long_column"],
        "C": 3 * d["long_column"],
    }
    d["wide_table"] = {
        letter: i * d["tiny_column"]
        for i, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", start=1)
    }
    d["short_table"] = {
        "A": d["short_column_int"],
        "B": d["short_column_float"],
        "D": SHORT_TABLE_DATES.astype("datetime64[s]"),
    }
    return d


# Paths of every demo node, with family, in listing order (from demo_tree.txt).
ROOT_KEYS = [
    "scalars",
    "nested",
    "tables",
    "structured_data",
    "flat_array",
    "low_entropy",
    "high_entropy",
    "dynamic",
]
CHILD_KEYS = {
    "scalars": ["pi", "e_arr", "fsc", "fortytwo"],
    "nested": ["images", "cubes", "complex", "sparse_image", "awkward_array", "ragged_array"],
    "nested/images": ["tiny_image", "small_image", "medium_image", "big_image"],
    "nested/cubes": ["tiny_cube", "tiny_hypercube"],
    "tables": ["short_table", "long_table", "wide_table"],
    "structured_data": ["pets", "xarray_dataset"],
    "structured_data/xarray_dataset": ["temperature", "precipitation", "lon", "lat", "time"],
}
CONTAINER_METADATA = {
    "": {},
    "scalars": {"numbers": "constants", "precision": 5},
    "nested": {"animal": "cat", "color": "green"},
    "nested/images": {"animal": "cat", "color": "green"},
    "nested/cubes": {"animal": "dog", "color": "red"},
    "tables": {},
    "structured_data": {"animal": "cat", "color": "green"},
    "structured_data/xarray_dataset": {"attrs": {}},
}

# path -> (shape, numpy dtype string, chunks); from demo_tree.txt / the reference.
ARRAYS = {
    "scalars/pi": ((), "<f8", ()),
    "scalars/e_arr": ((1,), "<U7", ((1,),)),
    "scalars/fsc": ((), "<U5", ()),
    "scalars/fortytwo": ((), "<i8", ()),
    "nested/images/tiny_image": ((50, 50), "<f8", ((50,), (50,))),
    "nested/images/small_image": ((300, 300), "<f8", ((300,), (300,))),
    "nested/images/medium_image": ((1000, 1000), "<f8", ((250,) * 4, (100,) * 10)),
    "nested/images/big_image": (
        (10000, 10000),
        "<f8",
        ((4096, 4096, 1808), (4096, 4096, 1808)),
    ),
    "nested/cubes/tiny_cube": ((50, 50, 50), "<f8", ((50,), (50,), (50,))),
    "nested/cubes/tiny_hypercube": ((50,) * 5, "<f8", ((27, 23),) * 5),
    "nested/complex": ((30, 50), "<c16", ((30,), (50,))),
    "structured_data/xarray_dataset/temperature": ((2, 2, 3), "<f8", ((2,), (2,), (3,))),
    "structured_data/xarray_dataset/precipitation": ((2, 2, 3), "<f8", ((2,), (2,), (3,))),
    "structured_data/xarray_dataset/lon": ((2, 2), "<f8", ((2,), (2,))),
    "structured_data/xarray_dataset/lat": ((2, 2), "<f8", ((2,), (2,))),
    "structured_data/xarray_dataset/time": ((3,), "<M8[ns]", ((3,),)),
    "flat_array": ((100,), "<f8", ((100,),)),
    "low_entropy": ((100, 100), "<i4", ((100,), (100,))),
    "high_entropy": ((100, 100), "<i8", ((100,), (100,))),
    "dynamic": ((3, 3), "<f8", ((3,), (3,))),
}
PETS_DTYPE = numpy.dtype([("name", "<U10"), ("age", "<i4"), ("weight", "<f4")])
