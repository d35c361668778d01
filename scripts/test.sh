#!/usr/bin/env bash
# The one test command: system packages, virtualenv, project install, the pinned Supabase CLI and
# postgres-meta (tools/), lint, and the test suite (which starts its own embedded Postgres and stops it
# afterwards). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

say "system packages"
./scripts/install-system-deps.sh
./scripts/reserve-ports.sh

say "python environment"
./scripts/bootstrap-venv.sh dev local-embeddings

say "node tools (Supabase CLI, postgres-meta)"
./scripts/install-node-tools.sh
./scripts/install-n8n.sh >/dev/null  # n8n for tests/e2e/test_n8n.py, cached outside the clone

say "lint: ruff"
.venv/bin/ruff check .
say "lint: sqlfluff"
.venv/bin/sqlfluff lint --disable-progress-bar supabase sql_functions arti/sql

say "tests"
set +e
.venv/bin/pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here, not a pass" >&2
  exit 1
fi
exit "$status"
