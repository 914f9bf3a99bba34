"""Searching with every query type the client offers. Expected results follow
from the demo metadata:

    scalars          {"numbers": "constants", "precision": 5}
    nested           {"animal": "cat", "color": "green"}
      images         {"animal": "cat", "color": "green"}
      cubes          {"animal": "dog", "color": "red"}
    tables           {}
      short_table    {"animal": "dog", "color": "red"}    spec dataframe
      long_table     {"animal": "dog", "color": "green"}  spec dataframe
      wide_table     {"animal": "dog", "color": "red"}    spec dataframe
    structured_data  {"animal": "cat", "color": "green"}
      xarray_dataset {"attrs": {}}                         spec xarray_dataset
    (every array: {})
"""

import pytest
from tiled.queries import (
    Comparison,
    Contains,
    Eq,
    FullText,
    In,
    Key,
    KeyPresent,
    KeysFilter,
    Like,
    NotEq,
    NotIn,
    Regex,
    SpecsQuery,
    StructureFamilyQuery,
)

import demo

CASES = {
    # name: (container path, query, expected keys in listing order)
    "eq_root": ("", Eq("color", "green"), ["nested", "structured_data"]),
    "eq_none_at_root": ("", Eq("color", "red"), []),
    "eq_nested": ("nested", Eq("color", "red"), ["cubes"]),
    "eq_tables": ("tables", Eq("color", "red"), ["short_table", "wide_table"]),
    "eq_number": ("", Eq("precision", 5), ["scalars"]),
    "key_eq": ("tables", Key("color") == "green", ["long_table"]),
    "noteq_drops_entries_without_key": ("", NotEq("animal", "cat"), []),
    "noteq_tables": ("tables", NotEq("color", "red"), ["long_table"]),
    "key_noteq": ("nested", Key("animal") != "cat", ["cubes"]),
    "comparison_gt": ("", Comparison("gt", "precision", 3), ["scalars"]),
    "comparison_lt": ("", Comparison("lt", "precision", 5), []),
    "comparison_le": ("", Comparison("le", "precision", 5), ["scalars"]),
    "key_ge": ("", Key("precision") >= 5, ["scalars"]),
    "key_lt": ("", Key("precision") < 10, ["scalars"]),
    "contains_string_value_is_not_a_list": ("", Contains("color", "reen"), []),
    "in": ("tables", In("color", ["green", "blue"]), ["long_table"]),
    "in_root": ("", In("animal", ["cat", "dog"]), ["nested", "structured_data"]),
    "notin": ("tables", NotIn("color", ["green"]), ["short_table", "wide_table"]),
    "fulltext_dog": ("tables", FullText("dog"), ["short_table", "long_table", "wide_table"]),
    "fulltext_cat_root": ("", FullText("cat"), ["nested", "structured_data"]),
    "fulltext_no_match": ("", FullText("zebra"), []),
    "regex": ("tables", Regex("color", "^re"), ["short_table", "wide_table"]),
    "regex_search_not_match": ("tables", Regex("color", "ee"), ["long_table"]),
    "regex_case_insensitive": (
        "tables",
        Regex("color", "^RE", case_sensitive=False),
        ["short_table", "wide_table"],
    ),
    "regex_case_sensitive": ("tables", Regex("color", "^RE"), []),
    "keys_filter": ("", KeysFilter(["tables", "nested"]), ["nested", "tables"]),
    "structure_family_array": ("nested", StructureFamilyQuery("array"), ["complex"]),
    "structure_family_container": (
        "nested",
        StructureFamilyQuery("container"),
        ["images", "cubes"],
    ),
    "structure_family_sparse": ("nested", StructureFamilyQuery("sparse"), ["sparse_image"]),
    "structure_family_table": (
        "tables",
        StructureFamilyQuery("table"),
        ["short_table", "long_table", "wide_table"],
    ),
}

# Correct answers where the real Tiled 0.2.20 in-memory tree is broken.
BUGGY_CASES = {
    "specs_include": (
        "structured_data",
        SpecsQuery(["xarray_dataset"]),
        ["xarray_dataset"],
        "SpecsQuery finds nothing on the in-memory tree (compares str with Spec)",
    ),
    "specs_include_dataframe": (
        "tables",
        SpecsQuery(["dataframe"]),
        ["short_table", "long_table", "wide_table"],
        "SpecsQuery finds nothing on the in-memory tree (compares str with Spec)",
    ),
    "specs_exclude": (
        "structured_data",
        SpecsQuery([], exclude=["xarray_dataset"]),
        ["pets"],
        "SpecsQuery finds nothing on the in-memory tree (compares str with Spec)",
    ),
    "keypresent": (
        "",
        KeyPresent("precision"),
        ["scalars"],
        "KeyPresent answers 500 on the in-memory tree",
    ),
    "keypresent_absent": (
        "nested",
        KeyPresent("animal", exists=False),
        ["complex", "sparse_image", "awkward_array", "ragged_array"],
        "KeyPresent answers 500 on the in-memory tree",
    ),
    "like": (
        "tables",
        Like("color", "gr%"),
        ["long_table"],
        "Like is rejected (400) on the in-memory tree",
    ),
    "like_underscore": (
        "tables",
        Like("color", "r_d"),
        ["short_table", "wide_table"],
        "Like is rejected (400) on the in-memory tree",
    ),
}


def _node(client, path):
    return client[path] if path else client


@pytest.mark.parametrize("name", list(CASES))
def test_search(client, name):
    path, query, expected = CASES[name]
    results = _node(client, path).search(query)
    assert list(results) == expected
    assert len(results) == len(expected)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail_on_tiled(reason=case[3]))
        for name, case in BUGGY_CASES.items()
    ],
)
def test_search_where_tiled_is_buggy(client, name):
    path, query, expected, _ = BUGGY_CASES[name]
    results = _node(client, path).search(query)
    assert list(results) == expected


def test_chained_searches_combine_with_and(client):
    results = client["tables"].search(Key("animal") == "dog").search(Key("color") == "green")
    assert list(results) == ["long_table"]


def test_chained_searches_of_different_types(client):
    results = client["nested"].search(StructureFamilyQuery("container")).search(FullText("dog"))
    assert list(results) == ["cubes"]


def test_chained_search_with_no_result(client):
    results = client.search(Key("color") == "green").search(Key("animal") == "dog")
    assert list(results) == []
    assert len(results) == 0


def test_search_result_lookup_by_key(client):
    results = client.search(Key("color") == "green")
    node = results["nested"]
    assert node.metadata["color"] == "green"
    assert list(node) == demo.CHILD_KEYS["nested"]


def test_search_result_lookup_of_excluded_key_raises_key_error(client):
    results = client.search(Key("color") == "green")
    with pytest.raises(KeyError):
        results["tables"]


def test_search_result_nested_path_lookup(client):
    results = client.search(Key("color") == "green")
    assert results["nested"]["images"]["tiny_image"].shape == (50, 50)


def test_search_items_and_values(client):
    results = client["tables"].search(Key("color") == "red")
    assert [key for key, _ in results.items()] == ["short_table", "wide_table"]
    assert [node.metadata["color"] for node in results.values()] == ["red", "red"]


def test_search_keys_first_last(client):
    results = client["tables"].search(Key("animal") == "dog")
    assert results.keys().first() == "short_table"
    assert results.keys().last() == "wide_table"


def test_search_then_sort(client):
    results = client["tables"].search(Key("animal") == "dog").sort(("color", 1))
    assert list(results)[0] == "long_table"


def test_search_then_distinct(client):
    result = client["tables"].search(Key("color") == "red").distinct("color", counts=True)
    assert [(e["value"], e["count"]) for e in result["metadata"]["color"]] == [("red", 2)]
