#!/bin/bash
# What the official postgres image's entrypoint does for this project: on an empty data folder,
# initdb with POSTGRES_USER as superuser and POSTGRES_PASSWORD (scram-sha-256 for TCP clients),
# then POSTGRES_DB; then the server, listening on every address.
set -euo pipefail
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [[ "$db" != "postgres" ]]; then
    postgres --single -D "$PGDATA" -j postgres <<<"CREATE DATABASE \"$db\" OWNER \"$user\";" >/dev/null
  fi
  echo "PostgreSQL init process complete; ready for start up."
fi

if [[ "${1:-}" == "postgres" ]]; then
  shift
  exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
