#!/usr/bin/env bash
# Loads N synthetic nodes (default 10,000,000) into tessera's PostgreSQL catalog schema.
#
#   loadtest/catalog/load.sh [N]
#   loadtest/catalog/load.sh restore-p0001   (re-create /proposals/p0001 after a DELETE)
#
# Environment:
#   SCHEMA    schema to create and fill (default tessera_bench); must be absent or empty
#   RESET=1   drop SCHEMA first if it exists (CASCADE)
#   TESSERA   path of the tessera binary; if set, `tessera migrate URI` creates the schema.
#             Otherwise the migrations in migrations/postgres/*.sql are applied with psql
#             exactly as api/src/catalog/migrate.rs does (advisory lock, schema_migrations).
#   PGHOST PGPORT PGUSER PGDATABASE   (default 127.0.0.1 5432 root test)
#
# Prints the load steps with their times, the checks of verify.sql and the schema's size.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
schema=${SCHEMA:-tessera_bench}
if [[ ${1:-} == restore-p0001 ]]; then
  # Re-create /proposals/p0001 (exactly 10,000 nodes) in a loaded schema, e.g. between HTTP
  # DELETE benchmark repetitions: bench_http.py --restore-cmd 'SCHEMA=... load.sh restore-p0001'
  PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-root} PGDATABASE=${PGDATABASE:-test} \
  PGOPTIONS="-c search_path=$schema -c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 \
    -v n=0 -v p0001_only=true -f "$here/load.sql" -c "\\timing off" \
    -c "SELECT count(*) AS p0001_subtree FROM node_closure WHERE ancestor = 4" | grep -v '^Time:'
  exit "${PIPESTATUS[0]}"
fi
n=${1:-${N:-10000000}}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-root} PGDATABASE=${PGDATABASE:-test}
[[ $schema =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "SCHEMA must be a plain lower-case identifier" >&2; exit 2; }

psql_admin() { PGOPTIONS= psql -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_schema() { PGOPTIONS="-c search_path=$schema" psql -X -v ON_ERROR_STOP=1 "$@"; }

t0=$(date +%s.%N)
if [[ ${RESET:-0} == 1 ]]; then
  psql_admin -c "DROP SCHEMA IF EXISTS $schema CASCADE"
fi
psql_admin -c "CREATE SCHEMA IF NOT EXISTS $schema"

# 1. Migrations.
if [[ -n ${TESSERA:-} ]]; then
  echo "== migrate with $TESSERA"
  "$TESSERA" migrate "postgres://$PGUSER@$PGHOST:$PGPORT/$PGDATABASE?options=-csearch_path%3D$schema"
else
  echo "== migrate with psql (migrations/postgres/*.sql, recorded as migrate.rs does)"
  # migrate.rs: pg_advisory_lock(0x0074_6573_7365_7261), CREATE TABLE IF NOT EXISTS
  # schema_migrations, then each migration newer than max(version) in its own transaction
  # together with its INSERT INTO schema_migrations (version, name). Version and name come
  # from the file name: 0001_catalog.sql -> (1, 'catalog'), the entry migrate.rs has for it.
  script=$(mktemp)
  trap 'rm -f "$script" "${sqlcopy:-}"' EXIT
  {
    echo "SELECT pg_advisory_lock(32762643830108769);"
    echo "CREATE TABLE IF NOT EXISTS schema_migrations (
              version    INTEGER PRIMARY KEY,
              name       TEXT NOT NULL,
              applied_at TIMESTAMPTZ NOT NULL DEFAULT now());"
    echo "SELECT coalesce(max(version), 0) AS found FROM schema_migrations \\gset"
    for f in "$repo"/migrations/postgres/[0-9]*.sql; do
      base=$(basename "$f" .sql)
      version=$((10#${base%%_*}))
      name=${base#*_}
      echo "SELECT $version > :found AS pending \\gset"
      echo "\\if :pending"
      echo "BEGIN;"
      echo "\\i $f"
      echo "INSERT INTO schema_migrations (version, name) VALUES ($version, '$name');"
      echo "COMMIT;"
      echo "\\echo applied migration $version $name"
      echo "\\endif"
    done
    echo "SELECT pg_advisory_unlock(32762643830108769);"
  } > "$script"
  psql_schema -q -f "$script" >/dev/null
  psql_schema -Atc "SELECT 'schema_migrations: ' || string_agg(version || ' ' || name, ', ' ORDER BY version) FROM schema_migrations"
fi
t1=$(date +%s.%N)

# 2. Bulk load (indexes and keys dropped around it), 3. VACUUM ANALYZE, 4. checks.
echo "== load $n nodes into schema $schema"
# psql reads its script as it goes: run a private copy so editing load.sql cannot disturb a load.
sqlcopy=$(mktemp --suffix=.sql)
cp "$here/load.sql" "$sqlcopy"
psql_schema -v n="$n" -f "$sqlcopy"
rm -f "$sqlcopy"
t2=$(date +%s.%N)
echo "== VACUUM ANALYZE"
# VACUUM also sets the visibility map (index-only scans, e.g. counts). It can only do so once no
# other session's snapshot predates the load; if one does (a long transaction elsewhere in the
# database), retry for a while and warn.
for t in nodes node_closure data_sources; do
  psql_schema -q -c "\\timing on" -c "VACUUM (ANALYZE) $t"
  for try in $(seq 1 12); do
    ok=$(psql_schema -Atc "SELECT relallvisible >= 0.95 * relpages FROM pg_class
                           WHERE oid = '$schema.$t'::regclass")
    [[ $ok == t ]] && break
    echo "   $t: visibility map not set (an older snapshot is open elsewhere); retrying in 10 s"
    sleep 10
    psql_schema -q -c "VACUUM $t"
  done
  [[ $ok == t ]] || echo "WARNING: $t is not all-visible; run VACUUM $schema.$t later"
done
t3=$(date +%s.%N)
echo "== verify"
psql_schema -v n="$n" -f "$here/verify.sql"
echo "== sizes"
psql_schema -c "
SELECT c.relname AS relation,
       pg_size_pretty(pg_table_size(c.oid)) AS table_incl_toast,
       pg_size_pretty(pg_indexes_size(c.oid)) AS indexes,
       pg_size_pretty(pg_total_relation_size(c.oid)) AS total
FROM pg_class c WHERE c.relnamespace = '$schema'::regnamespace AND c.relkind = 'r'
ORDER BY pg_total_relation_size(c.oid) DESC;" -c "
SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) AS schema_total
FROM pg_class c WHERE c.relnamespace = '$schema'::regnamespace AND c.relkind = 'r';" -c "
SELECT i.relname AS index, pg_size_pretty(pg_relation_size(i.oid)) AS size
FROM pg_class i WHERE i.relnamespace = '$schema'::regnamespace AND i.relkind = 'i'
ORDER BY pg_relation_size(i.oid) DESC;"
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN {
  printf "timing: migrate %.1f s, load+indexes %.1f s, vacuum analyze %.1f s, total %.1f s\n",
         b - a, c - b, d - c, d - a }'
