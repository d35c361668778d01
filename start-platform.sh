#!/usr/bin/env bash
# Starts the ARTi backend behind one entry point (Caddy on :8080).
#   embedded (default): installs what is missing, then Postgres (127.0.0.1:54322), migrations, handlers,
#                       worker and Caddy as local daemons (pid files and logs under .arti/).
#   cloud:              SUPABASE_DB_URL set: migrations, handlers, worker and Caddy against that project.
#   docker:             only with --docker (or ARTI_MODE=docker) on a host with a Docker engine.
# Re-running is safe: what already runs is left alone. --demo loads supabase/seed.sql (idempotent).
set -euo pipefail
cd "$(dirname "$0")"

mode="${ARTI_MODE:-}"
# The local embedding model (torch, ~1.5 GB) is installed only when it is the configured provider.
venv_extras=()
if [ "${ARTI_EMBEDDING_PROVIDER:-}" = local ] || grep -qsE '^ARTI_EMBEDDING_PROVIDER=local' .env; then
  venv_extras=(local-embeddings)
fi
demo=()
for arg in "$@"; do
  case "$arg" in
    --embedded) mode=embedded ;;
    --cloud) mode=cloud ;;
    --docker) mode=docker ;;
    --demo) demo=(--demo) ;;
    -h|--help) sed -n '2,9p' "$0"; echo "usage: $0 [--embedded|--cloud|--docker] [--demo]"; exit 0 ;;
    *) echo "unknown option: $arg (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$mode" ]; then
  if [ -n "${SUPABASE_DB_URL:-}" ]; then mode=cloud; else mode=embedded; fi
fi

case "$mode" in
  docker)
    if ! docker compose version >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
      echo "docker mode needs a running Docker engine with compose; none answers here. Use embedded mode (default) or cloud mode (SUPABASE_DB_URL)." >&2
      exit 1
    fi
    [ -f .env ] || { echo "docker mode reads .env: cp .env.example .env and fill in the REQUIRED values" >&2; exit 1; }
    exec docker compose up -d --build --wait ;;
  cloud)
    [ -n "${SUPABASE_DB_URL:-}" ] || { echo "cloud mode needs SUPABASE_DB_URL (and SUPABASE_URL + keys)" >&2; exit 1; }
    if [ "$(id -u)" -eq 0 ]; then ./scripts/install-system-deps.sh; ./scripts/reserve-ports.sh; fi
    ./scripts/bootstrap-venv.sh "${venv_extras[@]}" >/dev/null
    unset ARTI_MODE
    exec .venv/bin/arti platform start "${demo[@]}" ;;
  embedded)
    if [ "$(id -u)" -eq 0 ]; then ./scripts/install-system-deps.sh; ./scripts/reserve-ports.sh; fi
    ./scripts/bootstrap-venv.sh "${venv_extras[@]}" >/dev/null
    exec env -u SUPABASE_DB_URL .venv/bin/arti platform start "${demo[@]}" ;;
  *) echo "unknown mode: $mode (embedded, cloud or docker)" >&2; exit 2 ;;
esac
