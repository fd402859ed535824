#!/usr/bin/env bash
# Provision the tools test/deploy/compose.test.ts validates the deployment files with:
#
#   bash scripts/provision-deploy-tools.sh
#
#   docker-compose  Debian's package (Compose 1.29, Python): `docker-compose config` checks
#                   docker-compose.yml against the Compose file schema it ships, without a Docker daemon.
#   promtool        from `bash scripts/provision.sh prometheus` (not installed here).
#
# Idempotent: does nothing when docker-compose is already there. Exits non-zero on failure.
set -euo pipefail

log() { printf '[provision-deploy-tools] %s\n' "$*"; }

if command -v docker-compose >/dev/null 2>&1 && docker-compose version >/dev/null 2>&1; then
  log "docker-compose: already installed ($(docker-compose version --short 2>/dev/null || echo '?'))"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || { log "FAILED: docker-compose is missing and apt-get is not available" >&2; exit 1; }

CACHE="${RUNTEL_CACHE_DIR:-$HOME/.cache/runtel}"
mkdir -p "$CACHE/logs"
LOG="$CACHE/logs/deploy-tools-install.log"
t0=$(date +%s)
log "docker-compose: installing the Debian package (log: $LOG)"
# No recommends: the tests need the CLI only, not a Docker engine.
if ! {
  DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose
} >"$LOG" 2>&1; then
  printf '[provision-deploy-tools] FAILED: apt-get install docker-compose (log: %s), last lines:\n' "$LOG" >&2
  tail -n 40 "$LOG" >&2 || true
  exit 1
fi
docker-compose version >/dev/null 2>&1 || { log "FAILED: docker-compose was installed but 'docker-compose version' fails" >&2; exit 1; }
log "docker-compose: installed in $(($(date +%s) - t0))s ($(command -v docker-compose))"
