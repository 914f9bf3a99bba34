"""Lazy (dask) reads: ``from_uri(url, structure_clients="dask")``."""

import dask.array
import dask.dataframe
import numpy

import demo


def test_dask_array_read_is_lazy_and_correct(dask_client, demo_data):
    lazy = dask_client["nested/images/medium_image"].read()
    assert isinstance(lazy, dask.array.Array)
    assert lazy.shape == (1000, 1000)
    numpy.testing.assert_array_equal(lazy.compute(), demo_data["medium_image"])


def test_dask_array_slice_compute(dask_client, demo_data):
    lazy = dask_client["nested/images/medium_image"].read()
    numpy.testing.assert_array_equal(
        lazy[240:260, 95:105].compute(), demo_data["medium_image"][240:260, 95:105]
    )


def test_dask_big_image_region(dask_client):
    lazy = dask_client["nested/images/big_image"].read()
    assert lazy.shape == (10000, 10000)
    numpy.testing.assert_array_equal(
        lazy[100:110, 5000:5010].compute(), demo.big_image_region(100, 110, 5000, 5010)
    )


def test_dask_table_read(dask_client, demo_data):
    lazy = dask_client["tables/long_table"].read()
    assert isinstance(lazy, dask.dataframe.DataFrame)
    assert lazy.npartitions == 5
    df = lazy.compute()
    assert len(df) == 100_000
    for column in "ABC":
        numpy.testing.assert_array_equal(df[column].to_numpy(), demo_data["long_table"][column])


def test_dask_table_column_subset(dask_client, demo_data):
    df = dask_client["tables/wide_table"].read(columns=["C"]).compute()
    numpy.testing.assert_array_equal(df["C"].to_numpy(), 3 * demo_data["tiny_column"])
