-- Proposed catalog migration (NOT in migrations/): what the hot queries of bench_sql.py need
-- beyond 0001/0002. Apply to a loaded schema with
--   PGOPTIONS="-c search_path=tessera_bench" psql -h 127.0.0.1 -U root test -f loadtest/catalog/proposed_indexes.sql
-- Measured effect at 10 M nodes: see loadtest/catalog/README.md.

-- 1. Comparison and sort on a hot metadata key inside a container. tessera compiles
--    Comparison(time >= v) to  jsonb_typeof(n.metadata -> 'time') = jsonb_typeof(v) AND
--    n.metadata -> 'time' >= v  and sort=-time to  ORDER BY n.metadata -> 'time' DESC NULLS FIRST,
--    n.id DESC; both match this index on the jsonb expression (a cast such as
--    ((metadata->>'time')::float) would make inserting a non-numeric "time" fail). With id as
--    the last column a backward scan returns "latest first, ties by id" with no sort.
--    ANALYZE also gathers statistics on the expression, so range estimates become right.
--    One such index per hot key (time, scan_id is served by GIN @>): a deployment setting.
CREATE INDEX IF NOT EXISTS nodes_parent_metadata_time ON nodes (parent, (metadata -> 'time'), id);

-- 2. Without statistics the planner gives  jsonb_typeof(...) = 'number'  a default selectivity
--    of 0.5 %, so every Comparison is estimated ~200x too low (and so is the count tessera reports
--    above its exact limit). Expression statistics (PostgreSQL >= 14) fix it.
CREATE STATISTICS IF NOT EXISTS nodes_metadata_time_type ON (jsonb_typeof(metadata -> 'time')) FROM nodes;

ANALYZE nodes;
