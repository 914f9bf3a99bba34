-- The catalog: nodes in a tree, their ancestry as a closure table (subtree queries and deletes
-- without recursion), metadata as JSONB with a GIN index and a full-text vector, access tags
-- kept apart from user metadata, data sources and assets, and metadata revisions.

CREATE TABLE nodes (
    id              BIGSERIAL PRIMARY KEY,
    -- NULL only for the root.
    parent          BIGINT REFERENCES nodes (id) ON DELETE CASCADE,
    key             TEXT NOT NULL CHECK (key <> '' OR parent IS NULL),
    structure_family TEXT NOT NULL,
    metadata        JSONB NOT NULL DEFAULT '{}'::jsonb,
    specs           JSONB NOT NULL DEFAULT '[]'::jsonb,
    access_tags     TEXT[] NOT NULL DEFAULT '{}',
    -- Bumped by every data write: chunk cache keys and ETags include it.
    data_version    BIGINT NOT NULL DEFAULT 0,
    time_created    TIMESTAMPTZ NOT NULL DEFAULT now(),
    time_updated    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Words of every string in the metadata, for FullText queries.
    metadata_text   TSVECTOR GENERATED ALWAYS AS (jsonb_to_tsvector('simple', metadata, '["string"]')) STORED
);
-- Children of a container in key order: listing, lookup and keyset pagination.
CREATE UNIQUE INDEX nodes_parent_key ON nodes (parent, key);
CREATE UNIQUE INDEX nodes_single_root ON nodes ((parent IS NULL)) WHERE parent IS NULL;
-- Insertion order (the default sort) and latest-first listings.
CREATE INDEX nodes_parent_id ON nodes (parent, id);
CREATE INDEX nodes_parent_time_created ON nodes (parent, time_created);
-- Eq/Contains/In on any metadata key, and full text.
CREATE INDEX nodes_metadata ON nodes USING GIN (metadata jsonb_path_ops);
CREATE INDEX nodes_metadata_text ON nodes USING GIN (metadata_text);
CREATE INDEX nodes_access_tags ON nodes USING GIN (access_tags);

-- Every (ancestor, descendant) pair with its distance, including (n, n, 0).
CREATE TABLE node_closure (
    ancestor   BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    descendant BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    depth      INTEGER NOT NULL,
    PRIMARY KEY (ancestor, descendant)
);
CREATE INDEX node_closure_descendant ON node_closure (descendant, depth);

CREATE TABLE data_sources (
    id               BIGSERIAL PRIMARY KEY,
    node_id          BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    structure_family TEXT NOT NULL,
    structure        JSONB,
    mimetype         TEXT NOT NULL,
    parameters       JSONB NOT NULL DEFAULT '{}'::jsonb,
    properties       JSONB NOT NULL DEFAULT '{}'::jsonb,
    management       TEXT NOT NULL CHECK (management IN ('external', 'immutable', 'locked', 'writable'))
);
CREATE INDEX data_sources_node ON data_sources (node_id);

CREATE TABLE assets (
    id           BIGSERIAL PRIMARY KEY,
    data_uri     TEXT NOT NULL UNIQUE,
    is_directory BOOLEAN NOT NULL,
    size         BIGINT,
    hash_type    TEXT,
    hash_content TEXT,
    time_created TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE data_source_assets (
    data_source_id BIGINT NOT NULL REFERENCES data_sources (id) ON DELETE CASCADE,
    asset_id       BIGINT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    parameter      TEXT,
    num            INTEGER,
    PRIMARY KEY (data_source_id, asset_id)
);
CREATE INDEX data_source_assets_asset ON data_source_assets (asset_id);

-- The metadata and specs a node had before each update.
CREATE TABLE revisions (
    id              BIGSERIAL PRIMARY KEY,
    node_id         BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    revision_number INTEGER NOT NULL,
    metadata        JSONB NOT NULL,
    specs           JSONB NOT NULL,
    access_tags     TEXT[] NOT NULL DEFAULT '{}',
    time_updated    TIMESTAMPTZ NOT NULL,
    UNIQUE (node_id, revision_number)
);
