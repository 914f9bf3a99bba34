-- Checks a loaded catalog: node total, tree shape, closure completeness on a sample, and the
-- p0001 delete subtree. Run by load.sh (search_path set to the schema). Fails on any mismatch.
\set ON_ERROR_STOP 1
\pset footer off
SELECT count(*) AS nodes,
       count(*) FILTER (WHERE structure_family = 'container') AS containers,
       count(*) FILTER (WHERE structure_family = 'array') AS arrays
FROM nodes;
SELECT (SELECT count(*) FROM node_closure) AS closure_rows,
       (SELECT count(*) FROM data_sources) AS data_sources,
       (SELECT count(*) FROM nodes WHERE parent = 2) AS runs_in_raw;
SELECT count(*) = :n AS total_ok FROM nodes \gset
\if :total_ok
\else
  \echo 'node total differs from n'
  SELECT 1/0;
\endif

-- Closure: for a sample of nodes, the ancestors recomputed by walking `parent` recursively must
-- equal the closure rows exactly (same set, same depths), including (n, n, 0).
CREATE TEMP TABLE sample AS
  SELECT DISTINCT n.id FROM generate_series(1, 3000) g
  JOIN nodes n ON n.id = 1 + abs(hashint8extended(g, 7)) % (SELECT max(id) FROM nodes);
INSERT INTO sample VALUES (1), (2), (4);
WITH RECURSIVE walk(node, ancestor, depth) AS (
  SELECT id, id, 0 FROM sample
  UNION ALL
  SELECT w.node, n.parent, w.depth + 1 FROM walk w JOIN nodes n ON n.id = w.ancestor
  WHERE n.parent IS NOT NULL
),
closure AS (
  SELECT c.descendant AS node, c.ancestor, c.depth FROM node_closure c
  WHERE c.descendant IN (SELECT id FROM sample)
),
diff AS (
  (SELECT * FROM walk EXCEPT SELECT * FROM closure)
  UNION ALL
  (SELECT * FROM closure EXCEPT SELECT * FROM walk)
)
SELECT (SELECT count(*) FROM sample) AS sampled_nodes,
       (SELECT count(*) FROM closure) AS their_closure_rows,
       (SELECT count(*) FROM diff) AS mismatches,
       (SELECT count(*) FROM diff) = 0 AS closure_ok \gset
\echo closure check: :sampled_nodes nodes, :their_closure_rows rows, :mismatches mismatches
\if :closure_ok
\else
  SELECT 1/0;
\endif
-- Every node has exactly one (n, n, 0) row and one row per level above it (global, cheap).
SELECT (SELECT count(*) FROM node_closure WHERE depth = 0) = (SELECT count(*) FROM nodes)
   AND (SELECT count(*) FROM node_closure WHERE depth = 1)
       = (SELECT count(*) FROM nodes WHERE parent IS NOT NULL) AS levels_ok \gset
\if :levels_ok
\else
  \echo 'closure self/parent rows do not match nodes'
  SELECT 1/0;
\endif

-- child_count (migration 0002), when present: equal to the real number of children for the
-- sample and their parents.
SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
               AND table_name = 'nodes' AND column_name = 'child_count') AS has_child_count \gset
\if :has_child_count
SELECT count(*) AS checked,
       count(*) FILTER (WHERE p.child_count <> (SELECT count(*) FROM nodes c WHERE c.parent = p.id))
         AS child_count_mismatches
FROM nodes p
WHERE p.id IN (SELECT id FROM sample UNION SELECT parent FROM nodes WHERE id IN (SELECT id FROM sample))
\gset
\echo child_count check: :checked nodes, :child_count_mismatches mismatches
SELECT :child_count_mismatches = 0 AS cc_ok \gset
\if :cc_ok
\else
  SELECT 1/0;
\endif
SELECT sum(child_count) = count(*) - 1 AS cc_sum_ok FROM nodes \gset
\if :cc_sum_ok
\else
  \echo 'sum(child_count) differs from the number of non-root nodes'
  SELECT 1/0;
\endif
\endif

SELECT count(*) AS p0001_subtree FROM node_closure
WHERE ancestor = (SELECT id FROM nodes WHERE parent = 3 AND key = 'p0001');
