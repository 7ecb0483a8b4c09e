#!/usr/bin/env bash
# PostgreSQL's own cost of one spend-log row, in instructions.
#
# Wall-clock CPU on a shared two-core VM moves by 10-40% from one run to the
# next; instruction counts do not. This script copies the gateway's
# `gateway_spend_logs` table (columns and indexes, from a database the gateway
# has migrated) into a throwaway cluster, makes ROWS rows shaped like the
# `keys` benchmark's (time-ordered ids, one key, no team), and counts with
# callgrind what a single-user backend spends on `COPY ... FROM ... BINARY`
# (the spend writer's path) into: the table as migrated, the same columns with
# only the primary key, and the same columns with no index at all.
#
# Usage: benches/pg-row-cost.sh [DATABASE_URL]
#   DATABASE_URL  a database the gateway has migrated; default
#                 postgres://postgres@127.0.0.1:5432/gateway_bench (made by
#                 `gateway-bench --scenario keys --database-url ...`)
#   ROWS=N        rows per COPY (default 100000)
#   PG_BIN=DIR    PostgreSQL's server binaries (default: the newest
#                 /usr/lib/postgresql/*/bin)
# Needs valgrind, pg_dump and psql. Takes about a minute.
set -euo pipefail

from=${1:-postgres://postgres@127.0.0.1:5432/gateway_bench}
rows=${ROWS:-100000}
bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
for tool in valgrind pg_dump psql "$bin/initdb" "$bin/pg_ctl" "$bin/postgres"; do
  command -v "$tool" >/dev/null || { echo "pg-row-cost: $tool not found" >&2; exit 1; }
done

work=$(mktemp -d)
chmod 777 "$work"
# initdb and postgres refuse to run as root.
as_server() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  as_server "$bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

collation=$(psql "$from" -Atc "SELECT datcollate FROM pg_database WHERE datname = current_database()")
pg_dump --schema-only --no-owner --no-privileges -t gateway_spend_logs "$from" >"$work/schema.sql"
grep -q 'CREATE TABLE' "$work/schema.sql" || { echo "pg-row-cost: no gateway_spend_logs in $from" >&2; exit 1; }

as_server "$bin/initdb" -D "$work/data" -U postgres -A trust --locale="$collation" -E UTF8 >/dev/null
as_server "$bin/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
  -o "-k $work -c listen_addresses=''" start >/dev/null

columns="request_id, call_type, api_key, key_alias, model_group, model_id, custom_llm_provider, model,
  prompt_tokens, completion_tokens, cached_tokens, spend_nanos, start_time, end_time, status,
  cache_hit, request_tags, request_duration_ms"
psql -h "$work" -U postgres -d postgres -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
\i $work/schema.sql
SET search_path = public;
CREATE TABLE spend_pk_only (LIKE gateway_spend_logs INCLUDING DEFAULTS);
ALTER TABLE spend_pk_only ADD PRIMARY KEY (request_id);
CREATE TABLE spend_no_index (LIKE gateway_spend_logs INCLUDING DEFAULTS);
-- Ids and times as the gateway makes them: UUIDv7 text, 30 us apart.
COPY (
  SELECT substr(lpad(to_hex(us / 1000), 12, '0'), 1, 8) || '-' || substr(lpad(to_hex(us / 1000), 12, '0'), 9, 4)
           || '-7' || substr(md5(g::text), 1, 3) || '-8' || substr(md5(g::text), 4, 3) || '-' || substr(md5(g::text), 7, 12),
         'acompletion', encode(sha256('sk-bench-key'::bytea), 'hex'), 'bench-key', 'bench-model', 'bench-model-0',
         'openai', 'bench-upstream', 23::bigint, 9::bigint, 0::bigint, 2150::bigint,
         to_timestamp(us / 1e6), to_timestamp(us / 1e6 + 0.0007), 'success', false, '[]'::jsonb, 1::bigint
  FROM generate_series(1, $rows) AS g, LATERAL (SELECT 1700000000000000::bigint + g * 30 AS us) AS t
) TO '$work/rows.bin' BINARY;
SQL
as_server "$bin/pg_ctl" -D "$work/data" -w stop >/dev/null

# Instructions of a single-user backend running $2 (SQL, one statement a line).
count() {
  printf '%s\n' "$2" >"$work/$1.sql"
  as_server valgrind --tool=callgrind --callgrind-out-file="$work/$1.cg" \
    "$bin/postgres" --single -D "$work/data" postgres <"$work/$1.sql" >"$work/$1.log" 2>&1
  # The profile's `summary:` line is the total (first event: instructions).
  awk '/^summary:/ { print $2 }' "$work/$1.cg"
}

printf 'PostgreSQL %s, collation %s, %s rows per COPY, instructions per row:\n' \
  "$("$bin/postgres" --version | awk '{print $3}')" "$collation" "$rows"
for table in gateway_spend_logs spend_pk_only spend_no_index; do
  setup="TRUNCATE $table;"$'\n'"CHECKPOINT;"
  base=$(count "$table.base" "$setup")
  copied=$(count "$table.copy" "$setup"$'\n'"COPY $table (${columns//$'\n'/}) FROM '$work/rows.bin' BINARY;")
  case $table in
    gateway_spend_logs) what="as migrated (every index)" ;;
    spend_pk_only) what="primary key only" ;;
    spend_no_index) what="no index" ;;
  esac
  awk -v c="$copied" -v b="$base" -v n="$rows" -v w="$what" 'BEGIN { printf "  %-28s %6.1fk\n", w, (c - b) / n / 1000 }'
done
