"""Sparse, awkward, ragged and xarray-dataset nodes through the stock client."""

import awkward
import numpy
import pytest
import sparse
import xarray

import demo


def test_sparse_structure(client):
    node = client["nested/sparse_image"]
    assert node.shape == (100, 100)
    structure = node.structure()
    assert structure.data_type.to_numpy_dtype() == numpy.float64
    assert structure.chunks == ((100,), (100,))


def test_sparse_read_equals_thresholded_array(client, demo_data):
    got = client["nested/sparse_image"].read()
    assert isinstance(got, sparse.COO)
    assert got.shape == (100, 100)
    expected = demo_data["sparse_image"]
    assert got.nnz == numpy.count_nonzero(expected)
    numpy.testing.assert_array_equal(got.todense(), expected)


def test_sparse_read_slice(client, demo_data):
    got = client["nested/sparse_image"][10:30, 50:]
    assert isinstance(got, sparse.COO)
    numpy.testing.assert_array_equal(got.todense(), demo_data["sparse_image"][10:30, 50:])


def test_sparse_read_block(client, demo_data):
    got = client["nested/sparse_image"].read_block((0, 0))
    numpy.testing.assert_array_equal(got.todense(), demo_data["sparse_image"])


def test_awkward_read_equals_demo_list(client):
    got = client["nested/awkward_array"].read()
    assert isinstance(got, awkward.Array)
    assert got.tolist() == demo.AWKWARD_LIST
    assert len(got) == 3


def test_awkward_slice(client):
    got = client["nested/awkward_array"][2:]
    assert got.tolist() == demo.AWKWARD_LIST[2:]


def test_awkward_field_access(client):
    got = client["nested/awkward_array"].read()
    assert got["x"].tolist() == [[1.1, 2.2], [], [3.3]]


def test_ragged_structure(client):
    structure = client["nested/ragged_array"].structure()
    assert structure.shape[0] == 4
    assert structure.size == 9


def test_ragged_read_equals_demo_list(client):
    got = client["nested/ragged_array"].read()
    assert got.tolist() == demo.RAGGED_LIST


def test_ragged_read_slice(client):
    got = client["nested/ragged_array"][1:]
    assert got.tolist() == demo.RAGGED_LIST[1:]


def test_ragged_read_row(client):
    got = client["nested/ragged_array"][3]
    assert got.tolist() == demo.RAGGED_LIST[3]


def test_xarray_dataset_read(client, demo_data):
    ds = client["structured_data/xarray_dataset"].read()
    assert isinstance(ds, xarray.Dataset)
    assert set(ds.data_vars) == {"temperature", "precipitation"}
    assert set(ds.coords) == {"lon", "lat", "time"}
    assert ds["temperature"].dims == ("x", "y", "time")
    numpy.testing.assert_array_equal(ds["temperature"].values, demo_data["temperature"])
    numpy.testing.assert_array_equal(ds["precipitation"].values, demo_data["precipitation"])
    numpy.testing.assert_array_equal(ds["lon"].values, demo.LON)
    numpy.testing.assert_array_equal(ds["lat"].values, demo.LAT)
    assert ds["time"].dtype == numpy.dtype("<M8[ns]")
    numpy.testing.assert_array_equal(ds["time"].values, demo.TIME)


def test_xarray_dataset_variables_listed(client):
    node = client["structured_data/xarray_dataset"]
    assert list(node) == ["temperature", "precipitation", "lon", "lat", "time"]


def test_xarray_dataset_select_variables(client, demo_data):
    ds = client["structured_data/xarray_dataset"].read(variables=["temperature"])
    assert list(ds.data_vars) == ["temperature"]
    numpy.testing.assert_array_equal(ds["temperature"].values, demo_data["temperature"])


@pytest.mark.parametrize("name", ["temperature", "time"])
def test_xarray_dataset_variable_lookup(client, name):
    node = client["structured_data/xarray_dataset"][name]
    assert node.structure_family == "array"
