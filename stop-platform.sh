#!/usr/bin/env bash
# Stops what start-platform.sh started, in reverse order (the worker finishes its running job first),
# and leaves no listener on the platform's ports. Docker mode: docker compose down.
set -euo pipefail
cd "$(dirname "$0")"
if [ "${ARTI_MODE:-}" = docker ] || [ "${1:-}" = --docker ]; then
  exec docker compose down
fi
if [ ! -x .venv/bin/arti ]; then
  echo "nothing to stop: the platform was never started here"
  exit 0
fi
exec .venv/bin/arti platform stop
