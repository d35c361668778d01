#!/usr/bin/env bash
# Keeps the kernel from handing the project's fixed listening ports to outgoing connections.
# They sit inside Linux's ephemeral range (32768-60999 by default): a client socket whose local
# port happens to be, say, 54330 (TIME-WAIT lasts a minute) makes a cluster that listens on 54330
# fail to start. Reserved ports are never chosen as ephemeral ports; explicit binds still work.
# Adds to what is already reserved. Needs root; otherwise it says what to run and carries on.
set -euo pipefail

# 54322 development database, 54323 Studio, 54329 tests, 54330 benchmarks, 54331 bench smoke
# test, 55422 the end-to-end platform test's database, 55423 the fault tests' database, 55424 the
# provider sandbox end-to-end test's database.
PROJECT_PORTS="54322-54323,54329-54331,55422-55424"
reserved=/proc/sys/net/ipv4/ip_local_reserved_ports

log() { printf '[ports] %s\n' "$*" >&2; }

if [ ! -w "$reserved" ]; then
  log "cannot reserve ${PROJECT_PORTS} (needs root on Linux): a busy-port start failure can then be an"
  log "outgoing connection's local port; fix with: sudo sysctl -w net.ipv4.ip_local_reserved_ports=${PROJECT_PORTS}"
  exit 0
fi
current=$(cat "$reserved")
if [ -z "$current" ]; then
  echo "$PROJECT_PORTS" > "$reserved"
else
  echo "${current},${PROJECT_PORTS}" > "$reserved"
fi
log "reserved for the project: ${PROJECT_PORTS} (now: $(cat "$reserved"))"
