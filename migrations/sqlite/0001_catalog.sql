-- The catalog for the embedded shape: the same tables as in PostgreSQL, with JSON as text
-- (queried with SQLite's JSON functions) and full text through FTS5 left to a later migration.

CREATE TABLE nodes (
    id               INTEGER PRIMARY KEY,
    parent           INTEGER REFERENCES nodes (id) ON DELETE CASCADE,
    key              TEXT NOT NULL CHECK (key <> '' OR parent IS NULL),
    structure_family TEXT NOT NULL,
    metadata         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    specs            TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(specs)),
    access_tags      TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(access_tags)),
    data_version     INTEGER NOT NULL DEFAULT 0,
    time_created     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    time_updated     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX nodes_parent_key ON nodes (parent, key);
CREATE UNIQUE INDEX nodes_single_root ON nodes ((parent IS NULL)) WHERE parent IS NULL;
CREATE INDEX nodes_parent_id ON nodes (parent, id);
CREATE INDEX nodes_parent_time_created ON nodes (parent, time_created);

CREATE TABLE node_closure (
    ancestor   INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    descendant INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    depth      INTEGER NOT NULL,
    PRIMARY KEY (ancestor, descendant)
) WITHOUT ROWID;
CREATE INDEX node_closure_descendant ON node_closure (descendant, depth);

CREATE TABLE data_sources (
    id               INTEGER PRIMARY KEY,
    node_id          INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    structure_family TEXT NOT NULL,
    structure        TEXT CHECK (structure IS NULL OR json_valid(structure)),
    mimetype         TEXT NOT NULL,
    parameters       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(parameters)),
    properties       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(properties)),
    management       TEXT NOT NULL CHECK (management IN ('external', 'immutable', 'locked', 'writable'))
);
CREATE INDEX data_sources_node ON data_sources (node_id);

CREATE TABLE assets (
    id           INTEGER PRIMARY KEY,
    data_uri     TEXT NOT NULL UNIQUE,
    is_directory INTEGER NOT NULL,
    size         INTEGER,
    hash_type    TEXT,
    hash_content TEXT,
    time_created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE data_source_assets (
    data_source_id INTEGER NOT NULL REFERENCES data_sources (id) ON DELETE CASCADE,
    asset_id       INTEGER NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    parameter      TEXT,
    num            INTEGER,
    PRIMARY KEY (data_source_id, asset_id)
);
CREATE INDEX data_source_assets_asset ON data_source_assets (asset_id);

CREATE TABLE revisions (
    id              INTEGER PRIMARY KEY,
    node_id         INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    revision_number INTEGER NOT NULL,
    metadata        TEXT NOT NULL,
    specs           TEXT NOT NULL,
    access_tags     TEXT NOT NULL DEFAULT '[]',
    time_updated    TEXT NOT NULL,
    UNIQUE (node_id, revision_number)
);
