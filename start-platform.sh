#!/usr/bin/env bash
# Starts the ARTi backend. Embedded mode (the default here): installs what is missing, starts the
# embedded Postgres on 127.0.0.1:54322, applies migrations and prints how to connect.
# Cloud mode (SUPABASE_DB_URL set): applies migrations to that database.
set -euo pipefail
cd "$(dirname "$0")"

mode="${ARTI_MODE:-}"
demo=0
for arg in "$@"; do
  case "$arg" in
    --embedded) mode=embedded ;;
    --cloud) mode=cloud ;;
    --docker) mode=docker ;;
    --demo) demo=1 ;;
    -h|--help) echo "usage: $0 [--embedded|--cloud|--docker] [--demo]"; exit 0 ;;
    *) echo "unknown option: $arg (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$mode" ]; then
  if [ -n "${SUPABASE_DB_URL:-}" ]; then mode=cloud; else mode=embedded; fi
fi

case "$mode" in
  docker)
    echo "docker mode needs a Docker engine with compose: docker compose up -d (see README, 'Run it')" >&2
    exit 1 ;;
  cloud)
    [ -n "${SUPABASE_DB_URL:-}" ] || { echo "cloud mode needs SUPABASE_DB_URL" >&2; exit 1; }
    ./scripts/bootstrap-venv.sh >/dev/null
    .venv/bin/arti db migrate
    echo "migrated the Supabase project's database" ;;
  embedded)
    if [ "$(id -u)" -eq 0 ]; then ./scripts/install-system-deps.sh; fi
    ./scripts/bootstrap-venv.sh >/dev/null
    .venv/bin/arti db start
    .venv/bin/arti db migrate
    if [ "$demo" -eq 1 ] && [ -f supabase/seed.sql ]; then
      .venv/bin/arti db reset
    fi
    cat <<MSG

ARTi backend (embedded mode) is up.
  database:  postgresql://postgres:postgres@127.0.0.1:${ARTI_DB_PORT:-54322}/postgres
  status:    .venv/bin/arti db status
  stop:      ./stop-platform.sh
MSG
    ;;
  *) echo "unknown mode: $mode (embedded, cloud or docker)" >&2; exit 2 ;;
esac
