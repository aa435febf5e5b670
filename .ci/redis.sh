#!/usr/bin/env bash
# Make `redis-server` available for tests/integration/test_redis_circuit.py.
#
# Usage: bash .ci/redis.sh
#
# * Idempotent and quick: when `redis-server` is already on PATH it only prints its version.
# * Otherwise installs the distribution package (Debian/Ubuntu: `apt-get update && apt-get
#   install -y redis-server`; about 1.1 MB of .debs). Needs root (CI runs as root); without
#   root it uses sudo when available.
# * It does NOT start a server: each test starts its own `redis-server` on 127.0.0.1 on a free
#   port, with persistence off, and stops it afterwards. The distribution's service may be
#   started by the package's postinst in a full system; on CI containers it is not.
set -euo pipefail

log() { printf '[redis.sh %(%H:%M:%S)T] %s\n' -1 "$*"; }

if command -v redis-server >/dev/null 2>&1; then
  log "already installed: $(redis-server --version | head -n1)"
  exit 0
fi

SUDO=()
if [[ "$(id -u)" != "0" ]]; then
  command -v sudo >/dev/null 2>&1 || { log "WARNING: no root or sudo to apt-get install redis-server; the Redis tests will be skipped" >&2; exit 0; }
  SUDO=(sudo)
fi
command -v apt-get >/dev/null 2>&1 || { log "WARNING: no apt-get here; install redis-server with your package manager (the Redis tests will be skipped)" >&2; exit 0; }

log "installing redis-server with apt-get"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends redis-server >/dev/null
command -v redis-server >/dev/null 2>&1 || { log "ERROR: redis-server still not on PATH after install" >&2; exit 1; }
log "installed: $(redis-server --version | head -n1)"
