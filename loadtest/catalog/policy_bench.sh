#!/usr/bin/env bash
# Search latency under Tiled's tag-based access policy on a large PostgreSQL catalog: a user
# granted 1 of 1,000 proposals beside an admin, the same searches of /raw (bench_http.py).
#
#   loadtest/catalog/policy_bench.sh [N]     (default 1,000,000 nodes)
#
# Environment: SCHEMA (default tessera_policy), KEEP=1 to reuse a schema this script tagged
# before, TESSERA_BIN (default target/release/tessera), REPS (default 200), BUDGET (20 s an
# operation), PG* as load.sh. Loads the tree with load.sh, then tags it: every run of /raw and
# everything under it belongs to proposal_<scan_id mod 1000>; /raw is public, /proposals staff
# only. User u1 reads proposal_1 (about 1/1000 of the runs); root is an admin.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
n=${1:-1000000}
schema=${SCHEMA:-tessera_policy}
bin=${TESSERA_BIN:-$repo/target/release/tessera}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-root} PGDATABASE=${PGDATABASE:-test}
if [[ ${KEEP:-0} != 1 ]]; then
  SCHEMA=$schema RESET=1 "$here/load.sh" "$n" | grep -E '^(==|timing)'
  echo "== tagging: runs by proposal, /raw public, /proposals staff"
  PGOPTIONS="-c search_path=$schema" psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
\timing on
UPDATE nodes SET access_tags = ARRAY['public'] WHERE id = 2;
UPDATE nodes n SET access_tags = ARRAY['staff'] FROM node_closure c
 WHERE c.ancestor = 3 AND n.id = c.descendant;
UPDATE nodes n SET access_tags = ARRAY['proposal_' || ((r.metadata->>'scan_id')::bigint % 1000)]
  FROM nodes r JOIN node_closure c ON c.ancestor = r.id
 WHERE r.parent = 2 AND n.id = c.descendant;
VACUUM (ANALYZE) nodes;
SQL
fi

dir=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
{
  echo "tags:"
  for i in $(seq 0 999); do echo "  proposal_$i: {users: [{name: u$i, role: reader}]}"; done
  echo "  staff: {users: [{name: root, role: reader}]}"
  echo "roles:"
  echo "  reader: {scopes: [read:metadata, read:data]}"
} >"$dir/tags.yml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/config.yml" <<YAML
trees:
  - path: /
    tree: catalog
    args:
      uri: "postgresql://$PGUSER@$PGHOST:$PGPORT/$PGDATABASE?options=-csearch_path%3D$schema"
      top_level_access_tags: [public]
authentication:
  providers:
    - provider: local
      authenticator: tiled.authenticators:DictionaryAuthenticator
      args: {users_to_passwords: {u1: u1-password, root: root-password}}
  tiled_admins: [{provider: local, id: root}]
  secret_keys: [policy-bench-key]
database: {uri: "sqlite:///$dir/auth.db", init_if_not_exists: true}
access_control:
  access_policy: tiled.access_control.access_policies:TagBasedAccessPolicy
  args: {provider: local}
tessera: {access_tag_definitions: "$dir/tags.yml"}
uvicorn: {host: 127.0.0.1, port: $port}
YAML
"$bin" serve config "$dir/config.yml" >"$dir/server.log" 2>&1 &
pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 200); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
key_of() { # USER PASSWORD
  local token
  token=$(curl -sf -d "username=$1&password=$2" "$url/api/v1/auth/provider/local/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{}' \
    "$url/api/v1/auth/apikey" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'
}
ops="page: first 100,count: meta.count,eq scan_id,eq plan_name"
for who in "u1 u1-password" "root root-password"; do
  set -- $who
  echo "== $1"
  "$here/bench_sql.sh" --help >/dev/null 2>&1 || true   # creates the bench venv
  "${BENCH_VENV:-${TMPDIR:-/tmp}/tessera-bench-venv}/bin/python" "$here/bench_http.py" "$url" \
    --api-key "$(key_of "$1" "$2")" --reps "${REPS:-200}" --budget "${BUDGET:-20}" --only "$ops"
done
