"""Table nodes through the stock client: structure, read(), read(columns=...),
read_partition(i) and table columns addressed as array nodes.

short_table's columns C (3-letter words) and E (booleans) come from Python's
unseeded `random` in the real demo, so only their dtype, length and alphabet are
checked."""

import numpy
import pandas
import pytest

import demo


def _check_short_table_random_columns(df):
    assert len(df["C"]) == 100
    assert set(df["C"].astype(str)) <= demo.SHORT_TABLE_C_ALPHABET
    assert df["E"].dtype == bool
    assert len(df["E"]) == 100


def test_table_structure(client):
    short = client["tables/short_table"]
    assert list(short.columns) == ["A", "B", "C", "D", "E"]
    assert short.structure().npartitions == 1
    long = client["tables/long_table"]
    assert list(long.columns) == ["A", "B", "C"]
    assert long.structure().npartitions == 5
    wide = client["tables/wide_table"]
    assert list(wide.columns) == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert wide.structure().npartitions == 1


def test_table_keys_are_columns(client):
    assert list(client["tables/short_table"]) == ["A", "B", "C", "D", "E"]
    assert "B" in client["tables/short_table"]
    assert list(client["tables/long_table"]) == ["A", "B", "C"]


def test_read_short_table(client, demo_data):
    df = client["tables/short_table"].read()
    assert isinstance(df, pandas.DataFrame)
    assert list(df.columns) == ["A", "B", "C", "D", "E"]
    assert len(df) == 100
    assert list(df.index) == list(range(100))
    expected = demo_data["short_table"]
    assert df["A"].dtype == numpy.uint8
    numpy.testing.assert_array_equal(df["A"].to_numpy(), expected["A"])
    assert df["B"].dtype == numpy.float64
    numpy.testing.assert_array_equal(df["B"].to_numpy(), expected["B"])
    assert numpy.issubdtype(df["D"].dtype, numpy.datetime64)
    numpy.testing.assert_array_equal(df["D"].to_numpy().astype("datetime64[s]"), expected["D"])
    _check_short_table_random_columns(df)


def test_read_long_table_all_partitions(client, demo_data):
    df = client["tables/long_table"].read()
    assert len(df) == 100_000
    assert list(df.columns) == ["A", "B", "C"]
    numpy.testing.assert_array_equal(df.index.to_numpy(), numpy.arange(100_000))
    expected = demo_data["long_table"]
    for column in "ABC":
        numpy.testing.assert_array_equal(df[column].to_numpy(), expected[column])
    numpy.testing.assert_array_equal(df["B"].to_numpy(), 2 * df["A"].to_numpy())
    numpy.testing.assert_array_equal(df["C"].to_numpy(), 3 * df["A"].to_numpy())


@pytest.mark.parametrize("partition", range(5))
def test_read_partition_of_long_table(client, demo_data, partition):
    df = client["tables/long_table"].read_partition(partition)
    rows = slice(partition * 20_000, (partition + 1) * 20_000)
    assert len(df) == 20_000
    numpy.testing.assert_array_equal(df.index.to_numpy(), numpy.arange(100_000)[rows])
    for column in "ABC":
        numpy.testing.assert_array_equal(
            df[column].to_numpy(), demo_data["long_table"][column][rows]
        )


def test_read_wide_table(client, demo_data):
    df = client["tables/wide_table"].read()
    assert df.shape == (10, 26)
    for column, values in demo_data["wide_table"].items():
        numpy.testing.assert_array_equal(df[column].to_numpy(), values)


def test_read_selected_columns(client, demo_data):
    df = client["tables/short_table"].read(columns=["A", "B"])
    assert list(df.columns) == ["A", "B"]
    numpy.testing.assert_array_equal(df["A"].to_numpy(), demo_data["short_column_int"])
    numpy.testing.assert_array_equal(df["B"].to_numpy(), demo_data["short_column_float"])


def test_read_selected_columns_in_requested_order(client, demo_data):
    df = client["tables/wide_table"].read(columns=["Z", "A"])
    assert list(df.columns) == ["Z", "A"]
    numpy.testing.assert_array_equal(df["Z"].to_numpy(), 26 * demo_data["tiny_column"])


def test_read_partition_with_columns(client, demo_data):
    df = client["tables/long_table"].read_partition(3, columns=["C"])
    assert list(df.columns) == ["C"]
    numpy.testing.assert_array_equal(
        df["C"].to_numpy(), demo_data["long_table"]["C"][60_000:80_000]
    )


def test_read_partition_of_single_partition_table(client, demo_data):
    df = client["tables/short_table"].read_partition(0)
    numpy.testing.assert_array_equal(df["B"].to_numpy(), demo_data["short_column_float"])


def test_table_column_as_array_node(client, demo_data):
    column = client["tables/short_table"]["B"]
    assert column.structure_family == "array"
    assert column.shape == (100,)
    assert column.dtype == numpy.float64
    numpy.testing.assert_array_equal(column.read(), demo_data["short_column_float"])


def test_table_column_slice(client, demo_data):
    column = client["tables/long_table"]["A"]
    assert column.shape == (100_000,)
    numpy.testing.assert_array_equal(column[19_990:20_010], demo_data["long_column"][19_990:20_010])


def test_table_integer_column_as_array(client, demo_data):
    column = client["tables/short_table"]["A"]
    assert column.dtype == numpy.uint8
    numpy.testing.assert_array_equal(column.read(), demo_data["short_column_int"])


def test_table_datetime_column_as_array(client):
    column = client["tables/short_table"]["D"]
    assert column.dtype.kind == "M"
    got = column.read()
    numpy.testing.assert_array_equal(got.astype("datetime64[D]"), demo.SHORT_TABLE_DATES)


def test_table_string_column_as_array(client):
    column = client["tables/short_table"]["C"]
    assert column.dtype.kind == "U"
    got = column.read()
    assert got.shape == (100,)
    assert set(got.tolist()) <= demo.SHORT_TABLE_C_ALPHABET


def test_table_bool_column_as_array(client):
    column = client["tables/short_table"]["E"]
    assert column.dtype == numpy.bool_
    assert column.read().shape == (100,)


def test_missing_table_column_raises_key_error(client):
    with pytest.raises(KeyError):
        client["tables/short_table"]["ZZZ"]


@pytest.mark.xfail_on_tiled("Tiled 0.2.20's /table/full ignores field= and answers every column")
def test_field_selects_columns_of_a_whole_table_as_documented(http, demo_data):
    """`GET /table/full/long_table?format=xlsx&field=A&field=B` is documented as columns A and
    B; an unknown field is refused naming it; `column=` keeps working."""
    import io

    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    r = http.get("/api/v1/table/full/tables/long_table",
                 params=[("format", xlsx), ("field", "A"), ("field", "B")])
    assert r.status_code == 200, r.text
    df = pandas.read_excel(io.BytesIO(r.content))
    assert list(df.columns) == ["A", "B"]
    assert len(df) == len(demo_data["long_column"])
    as_json = {"accept": "application/json"}
    r = http.get("/api/v1/table/full/tables/short_table", params={"field": "A"}, headers=as_json)
    assert r.status_code == 200
    assert list(r.json()) == ["A"]
    numpy.testing.assert_array_equal(r.json()["A"], demo_data["short_column_int"])
    r = http.get("/api/v1/table/full/tables/short_table", params={"column": "B"}, headers=as_json)
    assert r.status_code == 200 and list(r.json()) == ["B"]
    for route in ("full", "partition"):
        params = {"field": "no_such_column"} | ({"partition": 0} if route == "partition" else {})
        bad = http.get(f"/api/v1/table/{route}/tables/short_table", params=params)
        assert 400 <= bad.status_code < 500
        assert "no_such_column" in bad.json()["detail"]
