#!/usr/bin/env bash
# Creates .venv with Python >= 3.11 and installs the project with the extras named as arguments
# (`./scripts/bootstrap-venv.sh dev local-embeddings`); re-installs only when pyproject.toml or the extras
# changed since the last install. No argument: the runtime alone (what start-platform.sh needs).
set -euo pipefail
cd "$(dirname "$0")/.."

extras=$(printf '%s\n' "$@" | sort -u | paste -sd, -)
python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  # stderr silenced: a pyenv shim for a version that is not selected prints a page of advice on every start.
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python=$(command -v "$candidate"); break
  fi
done
if [ -z "$python" ]; then
  echo "Python >= 3.11 is required; install it (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.arti-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1) [${extras}]"
# The same install, or one with more extras (start after test), serves this caller: keep it.
if [ -f "$stamp" ]; then
  have=$(cat "$stamp")
  have_hash=${have%% *}; have_extras=${have#* [}; have_extras=${have_extras%]}
  if [ "$have_hash" = "${want%% *}" ]; then
    covered=1
    for extra in "$@"; do
      case ",$have_extras," in *",$extra,"*) ;; *) covered=0 ;; esac
    done
    if [ $covered -eq 1 ]; then
      echo "virtualenv ready: .venv ($(.venv/bin/python --version), extras: ${have_extras:-none})"; exit 0
    fi
  fi
fi
target="."
[ -n "$extras" ] && target=".[${extras}]"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$target"
echo "$want" > "$stamp"
echo "virtualenv ready: .venv ($(.venv/bin/python --version), extras: ${extras:-none})"
