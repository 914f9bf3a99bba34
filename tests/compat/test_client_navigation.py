"""Browsing the demo tree with the stock Tiled client: connecting, keys, len,
indexing, metadata, specs, structure families, items, first/last/head/tail,
sorting and distinct."""

import pytest
from tiled.client.container import Container

import demo

CONTAINERS = [""] + list(demo.CHILD_KEYS)

# Every node below the root: path -> (structure family, spec names, metadata).
XR = "structured_data/xarray_dataset"
NODES = {
    "scalars": ("container", [], demo.CONTAINER_METADATA["scalars"]),
    "scalars/pi": ("array", [], {}),
    "scalars/e_arr": ("array", [], {}),
    "scalars/fsc": ("array", [], {}),
    "scalars/fortytwo": ("array", [], {}),
    "nested": ("container", [], demo.CONTAINER_METADATA["nested"]),
    "nested/images": ("container", [], demo.CONTAINER_METADATA["nested/images"]),
    "nested/images/tiny_image": ("array", [], {}),
    "nested/images/small_image": ("array", [], {}),
    "nested/images/medium_image": ("array", [], {}),
    "nested/images/big_image": ("array", [], {}),
    "nested/cubes": ("container", [], demo.CONTAINER_METADATA["nested/cubes"]),
    "nested/cubes/tiny_cube": ("array", [], {}),
    "nested/cubes/tiny_hypercube": ("array", [], {}),
    "nested/complex": ("array", [], {}),
    "nested/sparse_image": ("sparse", [], {}),
    "nested/awkward_array": ("awkward", [], {}),
    "nested/ragged_array": ("ragged", [], {}),
    "tables": ("container", [], {}),
    "tables/short_table": ("table", ["dataframe"], {"animal": "dog", "color": "red"}),
    "tables/long_table": ("table", ["dataframe"], {"animal": "dog", "color": "green"}),
    "tables/wide_table": ("table", ["dataframe"], {"animal": "dog", "color": "red"}),
    "structured_data": ("container", [], demo.CONTAINER_METADATA["structured_data"]),
    "structured_data/pets": ("array", [], {}),
    XR: ("container", ["xarray_dataset"], {"attrs": {}}),
    f"{XR}/temperature": ("array", ["xarray_data_var"], {"attrs": {}}),
    f"{XR}/precipitation": ("array", ["xarray_data_var"], {"attrs": {}}),
    f"{XR}/lon": ("array", ["xarray_coord"], {"attrs": {}}),
    f"{XR}/lat": ("array", ["xarray_coord"], {"attrs": {}}),
    f"{XR}/time": ("array", ["xarray_coord"], {"attrs": {}}),
    "flat_array": ("array", [], {}),
    "low_entropy": ("array", [], {}),
    "high_entropy": ("array", [], {}),
    "dynamic": ("array", [], {}),
}


def test_from_uri_gives_the_root_container(client):
    assert isinstance(client, Container)
    assert client.structure_family == "container"
    assert dict(client.metadata) == {}
    assert client.specs == []


def test_root_keys_in_insertion_order(client):
    assert list(client) == demo.ROOT_KEYS
    assert list(client.keys()) == demo.ROOT_KEYS


@pytest.mark.parametrize("path", list(demo.CHILD_KEYS))
def test_container_keys_in_insertion_order(client, path):
    assert list(client[path]) == demo.CHILD_KEYS[path]


@pytest.mark.parametrize("path", CONTAINERS)
def test_len_of_container(client, path):
    node = client[path] if path else client
    expected = demo.ROOT_KEYS if not path else demo.CHILD_KEYS[path]
    assert len(node) == len(expected)


def test_index_by_slash_path(client):
    node = client["nested/images/tiny_image"]
    assert node.structure_family == "array"
    assert node.shape == (50, 50)


def test_index_by_chained_keys(client):
    node = client["nested"]["images"]["tiny_image"]
    assert node.structure_family == "array"
    assert node.item["id"] == "tiny_image"


def test_index_by_tuple_of_keys(client):
    node = client["nested", "images", "medium_image"]
    assert node.shape == (1000, 1000)


def test_contains(client):
    assert "nested" in client
    assert "nope" not in client
    assert "images" in client["nested"]


def test_path_parts_of_nested_node(client):
    node = client["nested/images/small_image"]
    assert node.path_parts == ["nested", "images", "small_image"]


@pytest.mark.parametrize("path", list(NODES))
def test_structure_family_of_node(client, path):
    assert client[path].structure_family == NODES[path][0]


@pytest.mark.parametrize("path", list(NODES))
def test_specs_of_node(client, path):
    assert [spec.name for spec in client[path].specs] == NODES[path][1]


@pytest.mark.parametrize("path", list(NODES))
def test_metadata_of_node(client, path):
    assert dict(client[path].metadata) == NODES[path][2]


def test_metadata_of_root(client):
    assert dict(client.metadata) == {}


def test_items_of_container(client):
    items = list(client["tables"].items())
    assert [key for key, _ in items] == demo.CHILD_KEYS["tables"]
    for key, node in items:
        assert node.structure_family == "table"
        assert node.metadata == NODES[f"tables/{key}"][2]


def test_values_of_container(client):
    values = list(client["nested/cubes"].values())
    assert [v.shape for v in values] == [(50, 50, 50), (50,) * 5]


def test_keys_first_and_last(client):
    assert client.keys().first() == "scalars"
    assert client.keys().last() == "dynamic"


def test_keys_head_and_tail(client):
    assert client.keys().head(3) == ["scalars", "nested", "tables"]
    assert client.keys().tail(2) == ["high_entropy", "dynamic"]


def test_keys_slicing(client):
    assert client.keys()[2:5] == demo.ROOT_KEYS[2:5]
    assert client.keys()[-1] == "dynamic"
    assert client.keys()[0] == "scalars"


def test_values_first(client):
    assert client.values().first().item["id"] == "scalars"


def test_items_last(client):
    key, node = client.items().last()
    assert key == "dynamic"
    assert node.shape == (3, 3)


def test_sort_by_metadata_key_descending(client):
    keys = list(client["tables"].sort(("color", -1)))
    # red, red, green: ties may come in any order.
    assert sorted(keys[:2]) == ["short_table", "wide_table"]
    assert keys[2] == "long_table"


def test_sort_by_metadata_key_ascending(client):
    keys = list(client["tables"].sort(("color", 1)))
    assert keys[0] == "long_table"
    assert sorted(keys[1:]) == ["short_table", "wide_table"]


def test_sorted_view_keeps_len_and_lookup(client):
    view = client["tables"].sort(("color", -1))
    assert len(view) == 3
    assert view["long_table"].metadata["color"] == "green"


def _as_counts(entries):
    return sorted((repr(e["value"]), e["count"]) for e in entries)


def test_distinct_metadata_with_counts(client):
    result = client.distinct("color", "animal", counts=True)
    assert _as_counts(result["metadata"]["color"]) == [("'green'", 2)]
    assert _as_counts(result["metadata"]["animal"]) == [("'cat'", 2)]


def test_distinct_structure_families_and_specs(client):
    result = client.distinct("color", structure_families=True, specs=True, counts=True)
    assert _as_counts(result["structure_families"]) == [
        ("'array'", 4),
        ("'container'", 4),
    ]
    assert _as_counts(result["specs"]) == [("[]", 8)]


def test_distinct_in_nested_container(client):
    result = client["tables"].distinct("color", "animal", structure_families=True, counts=True)
    assert _as_counts(result["metadata"]["color"]) == [("'green'", 1), ("'red'", 2)]
    assert _as_counts(result["metadata"]["animal"]) == [("'dog'", 3)]
    assert _as_counts(result["structure_families"]) == [("'table'", 3)]


def test_distinct_without_counts(client):
    result = client["tables"].distinct("color")
    assert sorted(e["value"] for e in result["metadata"]["color"]) == ["green", "red"]


def test_missing_top_level_key_raises_key_error(client):
    with pytest.raises(KeyError):
        client["does_not_exist"]


def test_missing_nested_key_raises_key_error(client):
    with pytest.raises(KeyError):
        client["nested/images/nope"]


def test_missing_chained_key_raises_key_error(client):
    with pytest.raises(KeyError):
        client["nested"]["nope"]


def test_deep_missing_path_raises_key_error(client):
    with pytest.raises(KeyError):
        client["nested/images/tiny_image/deeper/still"]
