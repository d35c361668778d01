#!/usr/bin/env bash
# Stops what start-platform.sh started (embedded mode: the local Postgres).
set -euo pipefail
cd "$(dirname "$0")"
if [ -x .venv/bin/arti ]; then
  .venv/bin/arti db stop
else
  echo "nothing to stop: the platform was never started here"
fi
