-- Facet counts are kept only in PostgreSQL catalogs (large, multi-user). An embedded SQLite
-- catalog answers `distinct` with one GROUP BY; this migration only keeps the numbering of
-- both backends in step.
CREATE TABLE IF NOT EXISTS facet_keys (key TEXT PRIMARY KEY);
