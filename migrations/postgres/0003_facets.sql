-- Facet counts: for the metadata keys an operator names (`tessera facet DATABASE KEY`), the
-- number of children of each container per distinct value, kept by statement-level triggers
-- in the same transaction as the write. `distinct` on such a key reads one row per value
-- instead of grouping a million children.

CREATE TABLE facet_keys (
    key TEXT PRIMARY KEY,
    -- The dotted key as a JSON path (`a.b` -> {a,b}).
    path TEXT[] NOT NULL
);

CREATE TABLE facet_counts (
    parent BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    key TEXT NOT NULL REFERENCES facet_keys (key) ON DELETE CASCADE,
    value JSONB NOT NULL,
    count BIGINT NOT NULL,
    -- The smallest id seen with this value: ties in count are listed in first-seen order.
    first_id BIGINT NOT NULL,
    PRIMARY KEY (parent, key, value)
);

CREATE FUNCTION facets_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM facet_keys) THEN
        INSERT INTO facet_counts (parent, key, value, count, first_id)
        SELECT r.parent, f.key, r.metadata #> f.path, count(*), min(r.id)
        FROM inserted r CROSS JOIN facet_keys f
        WHERE r.parent IS NOT NULL AND r.metadata #> f.path IS NOT NULL
        GROUP BY 1, 2, 3
        ON CONFLICT (parent, key, value) DO UPDATE
            SET count = facet_counts.count + excluded.count,
                first_id = least(facet_counts.first_id, excluded.first_id);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION facets_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM facet_keys) THEN
        -- Rows of parents deleted in the same statement are already gone (cascade).
        UPDATE facet_counts c SET count = c.count - d.n
        FROM (SELECT r.parent, f.key, r.metadata #> f.path AS value, count(*) AS n
              FROM deleted r CROSS JOIN facet_keys f
              WHERE r.parent IS NOT NULL AND r.metadata #> f.path IS NOT NULL
              GROUP BY 1, 2, 3) d
        WHERE c.parent = d.parent AND c.key = d.key AND c.value = d.value;
        DELETE FROM facet_counts c
        WHERE c.count <= 0 AND c.parent IN (SELECT DISTINCT parent FROM deleted);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION facets_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM facet_keys) THEN
        -- Only rows whose metadata changed count (child_count bumps also update nodes).
        UPDATE facet_counts c SET count = c.count - d.n
        FROM (SELECT o.parent, f.key, o.metadata #> f.path AS value, count(*) AS n
              FROM updated_old o JOIN updated_new n ON n.id = o.id CROSS JOIN facet_keys f
              WHERE o.parent IS NOT NULL AND o.metadata IS DISTINCT FROM n.metadata
                AND o.metadata #> f.path IS NOT NULL
              GROUP BY 1, 2, 3) d
        WHERE c.parent = d.parent AND c.key = d.key AND c.value = d.value;
        INSERT INTO facet_counts (parent, key, value, count, first_id)
        SELECT n.parent, f.key, n.metadata #> f.path, count(*), min(n.id)
        FROM updated_new n JOIN updated_old o ON o.id = n.id CROSS JOIN facet_keys f
        WHERE n.parent IS NOT NULL AND o.metadata IS DISTINCT FROM n.metadata
          AND n.metadata #> f.path IS NOT NULL
        GROUP BY 1, 2, 3
        ON CONFLICT (parent, key, value) DO UPDATE
            SET count = facet_counts.count + excluded.count,
                first_id = least(facet_counts.first_id, excluded.first_id);
        DELETE FROM facet_counts c
        WHERE c.count <= 0 AND c.parent IN (SELECT DISTINCT parent FROM updated_new);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER nodes_facets_insert AFTER INSERT ON nodes
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION facets_inserted();
CREATE TRIGGER nodes_facets_delete AFTER DELETE ON nodes
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION facets_deleted();
CREATE TRIGGER nodes_facets_update AFTER UPDATE ON nodes
    REFERENCING OLD TABLE AS updated_old NEW TABLE AS updated_new
    FOR EACH STATEMENT EXECUTE FUNCTION facets_updated();
