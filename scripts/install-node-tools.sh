#!/usr/bin/env bash
# Installs the pinned Supabase toolchain into tools/node_modules with `npm ci` (exact versions from
# tools/package-lock.json): the Supabase CLI 2.117.0 (its Linux binary comes from the optional
# dependency @supabase/cli-linux-x64) and @supabase/postgres-meta 0.99.0, the version that CLI runs for
# `supabase gen types`. Skips the install while tools/node_modules matches the lockfile. Needs Node 20+.
set -euo pipefail
cd "$(dirname "$0")/../tools"

NODE_MAJOR_MIN=20
stamp=node_modules/.arti-lock.sha256

log() { printf '[node-tools] %s\n' "$*" >&2; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "node and npm are missing: install Node.js ${NODE_MAJOR_MIN} or later (with npm), then re-run $0"
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt "$NODE_MAJOR_MIN" ]; then
  log "Node.js $(node --version) is too old: @supabase/postgres-meta needs ${NODE_MAJOR_MIN} or later"
  exit 1
fi

want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x node_modules/.bin/supabase ]; then
  log "present: supabase $(node_modules/.bin/supabase --version), postgres-meta $(node -p 'require("./node_modules/@supabase/postgres-meta/package.json").version')"
  exit 0
fi

# --ignore-scripts: neither package needs an install script (the CLI binary is a registry package), and
# none may fetch anything from outside the registry.
log "npm ci in tools/ (supabase CLI, postgres-meta)"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
if ! node_modules/.bin/supabase --version >/dev/null 2>&1; then
  log "the Supabase CLI does not run: its binary for $(uname -sm) (@supabase/cli-*) was not installed"
  exit 1
fi
echo "$want" > "$stamp"
log "installed: supabase $(node_modules/.bin/supabase --version), postgres-meta $(node -p 'require("./node_modules/@supabase/postgres-meta/package.json").version')"
