-- The number of direct children of every node, kept by statement-level triggers in the same
-- transaction as the insert or delete, so the length of a container with millions of children
-- is one row read, never a count.

ALTER TABLE nodes ADD COLUMN child_count BIGINT NOT NULL DEFAULT 0;

UPDATE nodes p SET child_count = c.n
FROM (SELECT parent, count(*) AS n FROM nodes WHERE parent IS NOT NULL GROUP BY parent) c
WHERE p.id = c.parent;

CREATE FUNCTION nodes_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE nodes p SET child_count = p.child_count + c.n
    FROM (SELECT parent, count(*) AS n FROM inserted WHERE parent IS NOT NULL GROUP BY parent) c
    WHERE p.id = c.parent;
    RETURN NULL;
END $$;

CREATE FUNCTION nodes_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Parents deleted in the same statement simply match no row here.
    UPDATE nodes p SET child_count = p.child_count - c.n
    FROM (SELECT parent, count(*) AS n FROM deleted WHERE parent IS NOT NULL GROUP BY parent) c
    WHERE p.id = c.parent;
    RETURN NULL;
END $$;

-- Finer full-text statistics: rare words (scan ids, sample names) get row estimates near the
-- truth, so the planner picks the GIN index for them.
ALTER TABLE nodes ALTER COLUMN metadata_text SET STATISTICS 1000;

CREATE TRIGGER nodes_count_insert AFTER INSERT ON nodes
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION nodes_count_inserted();
CREATE TRIGGER nodes_count_delete AFTER DELETE ON nodes
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION nodes_count_deleted();
