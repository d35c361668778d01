#!/usr/bin/env bash
# Installs the pinned n8n (tools/n8n/package.json + package-lock.json: the version docker-compose.yml's
# n8nio/n8n image runs) with `npm ci` into a per-user cache folder OUTSIDE the clone, so later runs, other
# clones and later CI runs on the same machine reuse it (about 1.4 GB, 2,000 packages):
#
#   ${ARTI_N8N_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/arti/n8n-<version>}
#
# Prints that folder on stdout (n8n is <folder>/node_modules/.bin/n8n); everything else goes to stderr.
# Skips the install while the folder's stamp matches the lockfile. A new install is made in a temporary folder
# beside it and moved into place only once n8n runs, under a lock, so an interrupted or concurrent run never
# leaves a half-installed n8n behind. Needs Node 20.19+ (n8n's engines) and npm, and the npm registry only.
#
# --ignore-scripts: no install script runs. None is needed for what the tests use: sqlite3's native binding
# would be downloaded from outside the registry (so n8n runs on Postgres here: DB_TYPE=postgresdb), and the
# others are optional accelerators (msgpackr-extract, cpu-features), prebuilt in registry packages
# (@parcel/watcher) or telemetry (@scarf/scarf).
set -euo pipefail
src="$(cd "$(dirname "$0")/../tools/n8n" && pwd)"

log() { printf '[n8n] %s\n' "$*" >&2; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "node and npm are missing: install Node.js 20.19 or later (with npm), then re-run $0"
  exit 1
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  log "Node.js $(node --version) is too old: n8n needs 20.19 or later (and at most 24.x)"
  exit 1
fi

version=$(node -p 'require(process.argv[1]).dependencies.n8n' "$src/package.json")
dest="${ARTI_N8N_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/arti/n8n-${version}}"
want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)

installed() {
  [ -f "$dest/.arti-lock.sha256" ] && [ "$(cat "$dest/.arti-lock.sha256")" = "$want" ] &&
    [ "$("$dest/node_modules/.bin/n8n" --version 2>/dev/null)" = "$version" ]
}

present() {  # already installed: say where, and stop here
  installed || return 0
  log "present: n8n ${version} in ${dest}"
  echo "$dest"
  exit 0
}

present

mkdir -p "$(dirname "$dest")"
exec 9>"${dest}.lock"
if ! flock -w 900 9; then
  log "another install of n8n ${version} has held ${dest}.lock for 15 minutes: giving up"
  exit 1
fi
present  # installed by the run we waited for

tmp=$(mktemp -d "${dest}.partial.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp "$src/package.json" "$src/package-lock.json" "$tmp/"
log "npm ci: n8n ${version} into ${dest} (first time only: about 2 minutes and 1.4 GB)"
started=$(date +%s)
(cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
got=$("$tmp/node_modules/.bin/n8n" --version 2>/dev/null || true)
if [ "$got" != "$version" ]; then
  log "the installed n8n does not run (n8n --version said: '${got}')"
  exit 1
fi
echo "$want" > "$tmp/.arti-lock.sha256"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
log "installed: n8n ${version} in ${dest} ($(($(date +%s) - started)) s)"
echo "$dest"
