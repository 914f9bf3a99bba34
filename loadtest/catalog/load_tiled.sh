#!/usr/bin/env bash
# Fills the real Tiled 0.2.20's PostgreSQL catalog with the same synthetic tree as load.sh, by
# copying a tessera schema loaded by load.sh (same ids minus one: Tiled's root is id 0).
#
#   loadtest/catalog/load_tiled.sh [N]      (default 1,000,000 nodes)
#   loadtest/catalog/load_tiled.sh restore  re-creates /proposals/p0001 (10,000 nodes) after a
#                                           DELETE benchmark removed it
#
# Environment:
#   TILED_DB    database for Tiled (default tiledbench); RESET=1 drops and re-creates it
#   SRC_SCHEMA  tessera schema in PGDATABASE to copy from (default tessera_bench_1m); loaded
#               with load.sh N if it is missing or holds a different number of nodes
#   TILED_VENV  Tiled 0.2.20 virtualenv (default $TMPDIR/tiled-0.2.20; created if missing)
#   PGHOST PGPORT PGUSER PGDATABASE   (default 127.0.0.1 5432 root test)
#
# Tiled's schema (tiled catalog init): nodes (int ids, root 0, enum structure_family, JSONB
# metadata/specs, timestamps without zone), nodes_closure (ancestor, descendant, depth; kept by
# a row trigger on insert, disabled here with session_replication_role=replica and filled
# directly), data_sources (structure_id -> structures, deduplicated by the MD5 of the RFC 8785
# canonical JSON, as tiled.catalog.utils.compute_structure_id), revisions (empty), and
# alembic_version stamped by `tiled catalog init`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-root} PGDATABASE=${PGDATABASE:-test}
db=${TILED_DB:-tiledbench}
src=${SRC_SCHEMA:-tessera_bench_1m}
venv=${TILED_VENV:-${TMPDIR:-/tmp}/tiled-0.2.20}
mode=load
n=1000000
case ${1:-} in
  restore) mode=restore ;;
  "") ;;
  *) n=$1 ;;
esac

src_psql() { PGOPTIONS="-c search_path=$src" psql -X -q -v ON_ERROR_STOP=1 -d "$PGDATABASE" "$@"; }
dst_psql() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }
# COPY into Tiled's tables with triggers off (the closure trigger; FKs are checked afterwards
# when they are re-added, or are valid by construction in restore mode).
dst_copy() { PGOPTIONS="-c session_replication_role=replica" psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

# Tessera -> Tiled row shapes (ids shifted by one; the source root is not copied).
nodes_sql() { # $1: WHERE condition on tessera's nodes n
  echo "COPY (SELECT n.id - 1, n.parent - 1, n.key, n.structure_family, n.metadata, n.specs,
           n.time_created AT TIME ZONE 'UTC', n.time_updated AT TIME ZONE 'UTC'
         FROM nodes n WHERE n.parent IS NOT NULL AND ($1) ORDER BY n.id) TO STDOUT"
}
closure_sql() {
  echo "COPY (SELECT c.ancestor - 1, c.descendant - 1, c.depth FROM node_closure c
         WHERE c.descendant <> 1 AND ($1) ORDER BY c.descendant, c.ancestor) TO STDOUT"
}
sources_sql() {
  echo "COPY (SELECT d.node_id - 1, d.structure, d.mimetype, d.parameters, d.management,
           d.structure_family FROM data_sources d WHERE ($1) ORDER BY d.id) TO STDOUT"
}
NODE_COLS="id, parent, key, structure_family, metadata, specs, time_created, time_updated"

# Structures: the distinct structure JSON of the staged data sources -> (md5 id, structure).
structures_from_stage() {
  dst_psql -Atc "COPY (SELECT DISTINCT structure FROM _load_ds WHERE structure IS NOT NULL) TO STDOUT" |
    "$venv/bin/python" -c '
import hashlib, json, sys, canonicaljson
for line in sys.stdin:
    text = line.rstrip("\n").replace("\\\\", "\\")
    s = json.loads(text)
    sid = hashlib.md5(canonicaljson.encode_canonical_json(s)).hexdigest()
    print(sid + "\t" + line.rstrip("\n"))
' | dst_copy -c "COPY _load_structures (id, structure) FROM STDIN"
}
sources_from_stage() {
  dst_psql <<'SQL'
INSERT INTO structures (id, structure)
SELECT DISTINCT ON (id) id, structure FROM _load_structures
ON CONFLICT (id) DO NOTHING;
SET session_replication_role = replica;
INSERT INTO data_sources (node_id, structure_id, mimetype, parameters, properties, management,
                          structure_family)
SELECT d.node_id, s.id, d.mimetype, d.parameters, '{}'::jsonb, d.management::management,
       d.structure_family::structurefamily
FROM _load_ds d LEFT JOIN (SELECT DISTINCT ON (structure) id, structure FROM _load_structures) s
  ON s.structure = d.structure
ORDER BY d.node_id;
SQL
}
stage_tables() {
  dst_psql -c "DROP TABLE IF EXISTS _load_ds, _load_structures;
    CREATE UNLOGGED TABLE _load_ds (node_id int, structure jsonb, mimetype text, parameters jsonb,
                                    management text, structure_family text);
    CREATE UNLOGGED TABLE _load_structures (id text, structure jsonb);"
}

if [[ $mode == restore ]]; then
  p=$(src_psql -Atc "SELECT id FROM nodes WHERE key = 'p0001' AND parent =
        (SELECT id FROM nodes WHERE key = 'proposals' AND parent IS NOT NULL AND parent =
          (SELECT id FROM nodes WHERE parent IS NULL))")
  sub="n.id IN (SELECT descendant FROM node_closure WHERE ancestor = $p)"
  echo "restoring /proposals/p0001 (tessera id $p, Tiled id $((p - 1))) from $src into $db"
  # Remove whatever is left of it (nothing after a recursive DELETE), then copy it back.
  dst_psql -c "DELETE FROM nodes WHERE id IN (SELECT descendant FROM nodes_closure WHERE ancestor = $((p - 1)))"
  src_psql -c "$(nodes_sql "$sub")" | dst_copy -c "COPY nodes ($NODE_COLS) FROM STDIN"
  src_psql -c "$(closure_sql "c.descendant IN (SELECT descendant FROM node_closure WHERE ancestor = $p)")" |
    dst_copy -c "COPY nodes_closure (ancestor, descendant, depth) FROM STDIN"
  stage_tables
  src_psql -c "$(sources_sql "d.node_id IN (SELECT descendant FROM node_closure WHERE ancestor = $p)")" |
    dst_copy -c "COPY _load_ds FROM STDIN"
  structures_from_stage
  sources_from_stage
  dst_psql -c "DROP TABLE _load_ds, _load_structures" \
           -c "SELECT count(*) AS restored_subtree FROM nodes_closure WHERE ancestor = $((p - 1))"
  exit 0
fi

# 1. The source tree in tessera's schema.
have=$(PGOPTIONS= psql -X -Atc "SELECT CASE WHEN to_regclass('$src.nodes') IS NULL THEN -1
         ELSE (SELECT count(*) FROM $src.nodes) END")
if [[ $have != "$n" ]]; then
  echo "== loading source schema $src with $n nodes (load.sh)"
  SCHEMA=$src RESET=1 "$here/load.sh" "$n"
fi

# 2. A fresh Tiled catalog.
[[ -x $venv/bin/tiled ]] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q "tiled[all]==0.2.20"; }
t0=$(date +%s.%N)
if [[ ${RESET:-0} == 1 ]]; then
  dropdb --if-exists "$db"
fi
if ! PGOPTIONS= psql -X -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
  createdb "$db"
fi
uri="postgresql+asyncpg://$PGUSER@$PGHOST:$PGPORT/$db"
"$venv/bin/tiled" catalog init "$uri"
[[ $(dst_psql -Atc "SELECT count(*) FROM nodes") == 1 ]] ||
  { echo "$db already holds nodes; rerun with RESET=1" >&2; exit 1; }

# 3. Drop keys, indexes and FKs of the bulk tables (their DDL is kept in _saved_ddl).
echo "== bulk copy $src -> $db"
dst_psql <<'SQL'
\timing on
DROP TABLE IF EXISTS _saved_ddl;
CREATE TABLE _saved_ddl (ord int, ddl text);
INSERT INTO _saved_ddl
SELECT CASE c.contype WHEN 'f' THEN 3 ELSE 1 END,
       format('ALTER TABLE %I ADD CONSTRAINT %I %s', r.relname, c.conname, pg_get_constraintdef(c.oid))
FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
WHERE r.relnamespace = 'public'::regnamespace
  AND ((c.contype = 'f' AND (c.confrelid::regclass::text IN ('nodes', 'data_sources')
                             OR r.relname IN ('nodes', 'nodes_closure', 'data_sources')))
       OR (c.contype IN ('p', 'u') AND r.relname IN ('nodes', 'nodes_closure', 'data_sources')));
INSERT INTO _saved_ddl
SELECT 2, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class r ON r.oid = i.indrelid
WHERE r.relnamespace = 'public'::regnamespace AND r.relname IN ('nodes', 'nodes_closure', 'data_sources')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', r.relname, c.conname)
FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
WHERE r.relnamespace = 'public'::regnamespace
  AND ((c.contype = 'f' AND (c.confrelid::regclass::text IN ('nodes', 'data_sources')
                             OR r.relname IN ('nodes', 'nodes_closure', 'data_sources')))
       OR (c.contype IN ('p', 'u') AND r.relname IN ('nodes', 'nodes_closure', 'data_sources')))
ORDER BY c.contype = 'f' DESC \gexec
SELECT format('DROP INDEX %I', ic.relname)
FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE t.relnamespace = 'public'::regnamespace AND t.relname IN ('nodes', 'nodes_closure', 'data_sources')
\gexec
SQL

# 4. Copy nodes, closure and data sources (staged, for the structure ids).
ts() { date +%s.%N; }
a=$(ts); src_psql -c "$(nodes_sql true)" | dst_copy -c "COPY nodes ($NODE_COLS) FROM STDIN"
b=$(ts); src_psql -c "$(closure_sql true)" | dst_copy -c "COPY nodes_closure (ancestor, descendant, depth) FROM STDIN"
c=$(ts); stage_tables
src_psql -c "$(sources_sql true)" | dst_copy -c "COPY _load_ds FROM STDIN"
structures_from_stage
sources_from_stage
d=$(ts)
awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" 'BEGIN { printf "copy: nodes %.1f s, closure %.1f s, data sources + structures %.1f s\n", b - a, c - b, d - c }'

# 5. Sequences, keys/indexes/FKs back (FKs validated), statistics.
dst_psql <<'SQL'
\timing on
DROP TABLE _load_ds, _load_structures;
SELECT setval('nodes_id_seq', (SELECT max(id) FROM nodes));
SELECT setval('data_sources_id_seq', (SELECT max(id) FROM data_sources));
SELECT ddl FROM _saved_ddl ORDER BY ord, ddl \gexec
DROP TABLE _saved_ddl;
VACUUM (ANALYZE) nodes;
VACUUM (ANALYZE) nodes_closure;
VACUUM (ANALYZE) data_sources;
VACUUM (ANALYZE) structures;
SQL
t1=$(date +%s.%N)
dst_psql -c "SELECT (SELECT count(*) FROM nodes) AS nodes, (SELECT count(*) FROM nodes_closure) AS closure,
                    (SELECT count(*) FROM data_sources) AS data_sources, (SELECT count(*) FROM structures) AS structures,
                    pg_size_pretty(pg_database_size(current_database())) AS db_size"
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "Tiled catalog loaded in %.1f s\n", b - a }'
echo "serve it with: $venv/bin/tiled serve catalog $uri --public --api-key secret --port 8001"
