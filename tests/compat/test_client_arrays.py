"""Array nodes through the stock client: structure (shape, dtype, chunks), full
reads compared bit for bit with the demo's numpy data, slicing semantics and
read_block."""

import numpy
import pytest

import demo

IMAGES = "nested/images"


@pytest.mark.parametrize("path", list(demo.ARRAYS))
def test_array_structure(client, path):
    shape, dtype, chunks = demo.ARRAYS[path]
    node = client[path]
    assert node.shape == shape
    assert node.dtype == numpy.dtype(dtype)
    assert node.chunks == chunks
    assert node.ndim == len(shape)
    assert node.size == int(numpy.prod(shape))


def test_structured_array_structure(client):
    node = client["structured_data/pets"]
    assert node.shape == (2,)
    assert node.dtype == demo.PETS_DTYPE
    assert node.dtype.itemsize == 48
    assert node.chunks == ((2,),)


def test_xarray_variable_dims(client):
    node = client["structured_data/xarray_dataset/temperature"]
    assert tuple(node.dims) == ("x", "y", "time")
    assert tuple(client["structured_data/xarray_dataset/lon"].dims) == ("x", "y")


@pytest.mark.parametrize("name", ["tiny_image", "small_image", "medium_image"])
def test_read_image_exact(client, demo_data, name):
    got = client[f"{IMAGES}/{name}"].read()
    assert got.dtype == numpy.float64
    numpy.testing.assert_array_equal(got, demo_data[name])


def test_read_tiny_cube_exact(client, demo_data):
    numpy.testing.assert_array_equal(
        client["nested/cubes/tiny_cube"].read(), demo_data["tiny_cube"]
    )


def test_read_big_image_region(client):
    got = client[f"{IMAGES}/big_image"][100:200, 5000:5100]
    numpy.testing.assert_array_equal(got, demo.big_image_region(100, 200, 5000, 5100))


def test_read_big_image_region_across_chunk_boundary(client):
    # 4096 is a chunk boundary on both axes.
    got = client[f"{IMAGES}/big_image"][4090:4100, 4000:4200]
    numpy.testing.assert_array_equal(got, demo.big_image_region(4090, 4100, 4000, 4200))


def test_read_block_of_big_image(client):
    got = client[f"{IMAGES}/big_image"].read_block((2, 2))
    assert got.shape == (1808, 1808)
    for row in (0, 1, 900, 1807):
        expected = demo.big_image_region(8192 + row, 8193 + row, 8192, 10000)[0]
        numpy.testing.assert_array_equal(got[row], expected)


def test_read_block_of_big_image_with_slice(client):
    got = client[f"{IMAGES}/big_image"].read_block((0, 1), slice=numpy.s_[10:12, 5:15])
    numpy.testing.assert_array_equal(got, demo.big_image_region(10, 12, 4101, 4111))


def test_read_hypercube_small_slice(client):
    got = client["nested/cubes/tiny_hypercube"][3, 4, 5, 1:3, 10:20]
    assert got.shape == (2, 10)
    expected = demo.hypercube_values((3, 4, 5, slice(1, 3), slice(10, 20)))
    numpy.testing.assert_array_equal(got, expected)


def test_read_hypercube_slice_across_chunks(client):
    # 27 is a chunk boundary on every axis.
    got = client["nested/cubes/tiny_hypercube"][26:28, 0, 49, 26, 20:30]
    expected = demo.hypercube_values((slice(26, 28), 0, 49, 26, slice(20, 30)))
    numpy.testing.assert_array_equal(got, expected)


def test_read_complex(client, demo_data):
    got = client["nested/complex"].read()
    assert got.dtype == numpy.complex128
    numpy.testing.assert_array_equal(got, demo_data["complex"])


def test_read_high_entropy(client, demo_data):
    got = client["high_entropy"].read()
    assert got.dtype == numpy.int64
    numpy.testing.assert_array_equal(got, demo_data["high_entropy"])


def test_read_low_entropy(client):
    got = client["low_entropy"].read()
    assert got.dtype == numpy.int32
    numpy.testing.assert_array_equal(got, numpy.ones((100, 100), dtype="int32"))


def test_read_flat_array(client, demo_data):
    numpy.testing.assert_array_equal(client["flat_array"].read(), demo_data["flat_array"])


def test_read_structured_pets(client):
    got = client["structured_data/pets"].read()
    assert got.dtype == demo.PETS_DTYPE
    numpy.testing.assert_array_equal(got, demo.PETS)
    assert got["name"].tolist() == ["Rex", "Fido"]
    assert got["age"].tolist() == [9, 3]
    assert got["weight"].tolist() == [81.0, 27.0]


def test_read_scalar_pi(client):
    got = client["scalars/pi"].read()
    assert got.shape == ()
    assert got.dtype == numpy.float64
    assert got == demo.PI


def test_read_scalar_fortytwo(client):
    got = client["scalars/fortytwo"].read()
    assert got.shape == ()
    assert got.dtype == numpy.int64
    assert got == 42


def test_read_scalar_unicode_fsc(client):
    got = client["scalars/fsc"].read()
    assert got.shape == ()
    assert got.dtype == numpy.dtype("<U5")
    assert str(got) == "1/137"


def test_read_unicode_e_arr(client):
    got = client["scalars/e_arr"].read()
    assert got.dtype == numpy.dtype("<U7")
    assert got.tolist() == ["2.71828"]


def test_read_xarray_variables_as_arrays(client, demo_data):
    base = "structured_data/xarray_dataset"
    numpy.testing.assert_array_equal(client[f"{base}/temperature"].read(), demo_data["temperature"])
    numpy.testing.assert_array_equal(
        client[f"{base}/precipitation"].read(), demo_data["precipitation"]
    )
    numpy.testing.assert_array_equal(client[f"{base}/lon"].read(), demo.LON)
    numpy.testing.assert_array_equal(client[f"{base}/lat"].read(), demo.LAT)
    time = client[f"{base}/time"].read()
    assert time.dtype == numpy.dtype("<M8[ns]")
    numpy.testing.assert_array_equal(time, demo.TIME)


def test_read_dynamic_array(client):
    got = client["dynamic"].read()
    assert got.shape == (3, 3)
    # The value changes over time but is always k * ones((3, 3)).
    assert numpy.all(got == got.flat[0])
    assert got.flat[0] == int(got.flat[0])


# --- slicing semantics (the client normalises slices; the server applies them) ---

SLICES = {
    "row": numpy.s_[7],
    "row_and_range": numpy.s_[3, 10:20],
    "negative_index": numpy.s_[-1],
    "negative_index_both": numpy.s_[-2, -3],
    "step_3": numpy.s_[::3],
    "step_3_both": numpy.s_[2:40:3, 1::3],
    "reversed": numpy.s_[::-1],
    "reversed_columns": numpy.s_[:, ::-1],
    "negative_step_window": numpy.s_[20:5:-2, 40:10:-7],
    "negative_bounds": numpy.s_[-10:-2, -5:],
    "open_start": numpy.s_[:5, :7],
    "open_stop": numpy.s_[45:, 48:],
    "single_element": numpy.s_[49:50, 0:1],
    "clipped_stop": numpy.s_[40:500, :3],
    "ellipsis": numpy.s_[..., 4],
    "column": numpy.s_[:, 9],
}


@pytest.mark.parametrize("name", list(SLICES))
def test_slicing_matches_numpy(client, demo_data, name):
    sl = SLICES[name]
    got = client[f"{IMAGES}/tiny_image"][sl]
    expected = demo_data["tiny_image"][sl]
    assert got.shape == expected.shape
    numpy.testing.assert_array_equal(got, expected)


def test_slicing_medium_image_across_chunks(client, demo_data):
    sl = numpy.s_[240:260:3, 95:305:7]
    numpy.testing.assert_array_equal(
        client[f"{IMAGES}/medium_image"][sl], demo_data["medium_image"][sl]
    )


def test_slicing_3d_cube(client, demo_data):
    sl = numpy.s_[1, ::-5, 10:13]
    numpy.testing.assert_array_equal(
        client["nested/cubes/tiny_cube"][sl], demo_data["tiny_cube"][sl]
    )


def test_slice_past_the_end_is_empty(client):
    got = client[f"{IMAGES}/tiny_image"][100:200]
    assert got.shape == (0, 50)


def test_empty_slice_is_empty(client):
    got = client["flat_array"][10:10]
    assert got.shape == (0,)


def test_negative_step_on_1d(client, demo_data):
    numpy.testing.assert_array_equal(client["flat_array"][5:0:-1], demo_data["flat_array"][5:0:-1])


def test_read_with_slice_argument(client, demo_data):
    got = client["flat_array"].read(slice=numpy.s_[10:20:3])
    numpy.testing.assert_array_equal(got, demo_data["flat_array"][10:20:3])


def test_integer_index_on_structured_array(client):
    got = client["structured_data/pets"][1]
    assert got["name"] == "Fido"
    assert got["age"] == 3


def test_len_of_array(client):
    assert len(client[f"{IMAGES}/small_image"]) == 300


# --- read_block ---


def test_read_block_of_medium_image(client, demo_data):
    got = client[f"{IMAGES}/medium_image"].read_block((1, 3))
    assert got.shape == (250, 100)
    numpy.testing.assert_array_equal(got, demo_data["medium_image"][250:500, 300:400])


def test_read_last_block_of_medium_image(client, demo_data):
    got = client[f"{IMAGES}/medium_image"].read_block((3, 9))
    numpy.testing.assert_array_equal(got, demo_data["medium_image"][750:, 900:])


def test_read_block_with_slice(client, demo_data):
    got = client[f"{IMAGES}/medium_image"].read_block((0, 0), slice=numpy.s_[0:3, 0:4])
    numpy.testing.assert_array_equal(got, demo_data["medium_image"][0:3, 0:4])


def test_read_block_single_chunk_array(client, demo_data):
    got = client[f"{IMAGES}/tiny_image"].read_block((0, 0))
    numpy.testing.assert_array_equal(got, demo_data["tiny_image"])


def test_read_block_of_hypercube(client):
    got = client["nested/cubes/tiny_hypercube"].read_block(
        (1, 0, 1, 0, 1), slice=numpy.s_[0, 0, 0, 0:2, 0:5]
    )
    # Block (1, 0, 1, 0, 1) starts at (27, 0, 27, 0, 27).
    expected = demo.hypercube_values((27, 0, 27, slice(0, 2), slice(27, 32)))
    numpy.testing.assert_array_equal(got, expected)


def test_read_block_out_of_range_is_an_error(client):
    with pytest.raises(Exception) as info:
        client[f"{IMAGES}/medium_image"].read_block((9, 9))
    assert not _is_server_error(info.value)


def _is_server_error(exc):
    response = getattr(exc, "response", None)
    return response is not None and response.status_code >= 500
