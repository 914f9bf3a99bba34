-- The number of direct children of every node, kept by triggers (see the PostgreSQL migration).

ALTER TABLE nodes ADD COLUMN child_count INTEGER NOT NULL DEFAULT 0;

UPDATE nodes SET child_count = (SELECT count(*) FROM nodes c WHERE c.parent = nodes.id);

CREATE TRIGGER nodes_count_insert AFTER INSERT ON nodes WHEN NEW.parent IS NOT NULL
BEGIN
    UPDATE nodes SET child_count = child_count + 1 WHERE id = NEW.parent;
END;

CREATE TRIGGER nodes_count_delete AFTER DELETE ON nodes WHEN OLD.parent IS NOT NULL
BEGIN
    UPDATE nodes SET child_count = child_count - 1 WHERE id = OLD.parent;
END;
