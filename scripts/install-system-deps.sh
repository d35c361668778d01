#!/usr/bin/env bash
# Installs the Debian packages the embedded mode needs (Postgres 15 + pg_cron + pgTAP + headers,
# pgvector built from Debian's source package, Caddy) and the ones the Supabase toolchain tests run
# (plpgsql_check for `supabase db lint`, pg_prove for the pgTAP files), idempotently. Skips what is present;
# where it cannot install (not root, not Debian) it says what is missing and how to install it.
set -euo pipefail

PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config
PACKAGES=(postgresql-${PG_MAJOR} postgresql-server-dev-${PG_MAJOR} postgresql-${PG_MAJOR}-cron
          postgresql-${PG_MAJOR}-pgtap postgresql-contrib caddy dpkg-dev make gcc
          postgresql-${PG_MAJOR}-plpgsql-check libtap-parser-sourcehandler-pgtap-perl)

log() { printf '[install] %s\n' "$*" >&2; }

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
vector_control="/usr/share/postgresql/${PG_MAJOR}/extension/vector.control"
need_vector=0
if [ ! -f "$vector_control" ] || ! grep -qE "default_version = '0\.(8|9)|default_version = '[1-9]" "$vector_control"; then
  need_vector=1
fi

if [ ${#missing[@]} -eq 0 ] && [ $need_vector -eq 0 ]; then
  log "system packages present (postgresql-${PG_MAJOR}, pg_cron, pgtap, plpgsql_check, pg_prove, pgvector, caddy)"
  exit 0
fi

if [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null; then
  log "missing: ${missing[*]:-} $( [ $need_vector -eq 1 ] && echo pgvector>=0.8)"
  log "this is not a Debian system: install PostgreSQL ${PG_MAJOR} with pg_cron, pgTAP, plpgsql_check and pgvector >= 0.8, pg_prove, and Caddy, with your package manager"
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  log "missing: ${missing[*]:-} $( [ $need_vector -eq 1 ] && echo 'pgvector>=0.8')"
  log "run as root: sudo $0   (or: sudo apt-get install ${missing[*]:-postgresql-server-dev-${PG_MAJOR}})"
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d keeps package postinst scripts from starting services (postgres, caddy) we manage ourselves.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
fi
cleanup() { [ $created_policy -eq 1 ] && rm -f "$policy"; return 0; }
trap cleanup EXIT

if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ $need_vector -eq 1 ]; then
  # pgvector is not packaged for bookworm's Postgres 15; Debian's trixie source package builds against it.
  src_list=/etc/apt/sources.list.d/arti-pgvector-src.sources
  if [ ! -f "$src_list" ]; then
    cat > "$src_list" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
  fi
  build=$(mktemp -d)
  log "building pgvector from Debian source in $build"
  (cd "$build" && apt-get source -qq pgvector >/dev/null 2>&1 || apt-get source pgvector)
  dir=$(find "$build" -maxdepth 1 -type d -name 'pgvector-*' | head -n1)
  make -s -C "$dir" PG_CONFIG="$PG_CONFIG" >/dev/null
  make -s -C "$dir" PG_CONFIG="$PG_CONFIG" install >/dev/null
  rm -rf "$build"
  log "pgvector $(grep default_version "$vector_control" | cut -d"'" -f2) installed"
fi
log "system packages ready"
