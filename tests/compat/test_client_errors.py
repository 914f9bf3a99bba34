"""How errors surface through the stock client.

The client retries every 5xx (and transport error) with back-off; conftest.py
lowers TILED_RETRY_ATTEMPTS / TILED_RETRY_TIMEOUT so that a wrong 5xx shows up as
a quick failure instead of a ~45 s hang. Deterministic client mistakes must be
4xx, which the client raises at once as ``ClientError`` (an
``httpx.HTTPStatusError``) with the server's ``detail`` in the message."""

import io
import time

import numpy
import pytest
from tiled.client.utils import ClientError

TINY = "nested/images/tiny_image"
QUICK = 10.0  # seconds; far below what retrying a 5xx takes


def _expect_client_error(call, status):
    start = time.monotonic()
    with pytest.raises(ClientError) as info:
        call()
    elapsed = time.monotonic() - start
    assert info.value.response.status_code == status, str(info.value)
    assert elapsed < QUICK
    return info.value


def test_missing_key_raises_key_error(client):
    with pytest.raises(KeyError):
        client["nested/images/nope"]


def test_slice_with_too_many_dimensions_raises_client_error(client):
    err = _expect_client_error(
        lambda: client[TINY].export(io.BytesIO(), format="csv", slice=(0, 0, 0)), 400
    )
    assert "400" in str(err)


def test_unknown_export_format_raises_406(client):
    err = _expect_client_error(lambda: client[TINY].export(io.BytesIO(), format="foo"), 406)
    assert "text/csv" in str(err)  # the detail lists what is supported


def test_table_export_in_array_format_raises_406(client):
    _expect_client_error(
        lambda: client["tables/short_table"].export(io.BytesIO(), format="image/png"), 406
    )


def test_read_block_with_wrong_arity_raises_client_error(client):
    _expect_client_error(lambda: client[TINY].read_block((0,)), 422)


def test_oversized_request_raises_400(client):
    err = _expect_client_error(
        lambda: client["nested/images/big_image"].export(
            io.BytesIO(), format="application/octet-stream"
        ),
        400,
    )
    assert "slic" in str(err).lower()


def test_out_of_bounds_index_raises_index_error(client):
    with pytest.raises(IndexError):
        client[TINY][100]


def test_too_many_indices_raises_index_error(client):
    with pytest.raises(IndexError):
        client[TINY][0, 0, 0]


def test_block_out_of_range_raises_index_error(client):
    with pytest.raises(IndexError):
        client["nested/images/medium_image"].read_block((4, 0))


def test_partition_out_of_range_raises_index_error(client):
    with pytest.raises(IndexError):
        client["tables/long_table"].read_partition(5)


def test_zero_step_raises_value_error(client):
    with pytest.raises(ValueError):
        client[TINY][::0]


def test_server_still_serves_after_errors(client):
    for _ in range(3):
        with pytest.raises(ClientError):
            client[TINY].export(io.BytesIO(), format="foo")
    value = client[TINY][0, 0]
    assert numpy.shape(value) == ()
    assert value == client[TINY].read()[0, 0]
