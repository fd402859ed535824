#!/usr/bin/env bash
# Provision the venv that runs examples/python (the scikit-learn grid search logged over OTel):
#
#   bash scripts/provision-example.sh
#
# Creates ${RUNTEL_CACHE_DIR:-$HOME/.cache/runtel}/venv-example from examples/python/requirements.txt
# (every version pinned). Idempotent: a stamp holds the requirements' hash and the Python version;
# a re-run whose stamp matches does nothing. Exits non-zero when the venv cannot be made.
set -euo pipefail

CACHE="${RUNTEL_CACHE_DIR:-$HOME/.cache/runtel}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${RUNTEL_PYTHON:-python3}"
REQS="$REPO_ROOT/examples/python/requirements.txt"
VENV="$CACHE/venv-example"
STAMP="$CACHE/stamps/venv-example"
LOG="$CACHE/logs/venv-example-install.log"

log() { printf '[provision-example] %s\n' "$*"; }

mkdir -p "$CACHE/stamps" "$CACHE/logs"
[[ -f "$REQS" ]] || { log "FAILED: $REQS is missing" >&2; exit 1; }
command -v "$PYTHON" >/dev/null 2>&1 || { log "FAILED: $PYTHON is not on PATH (set RUNTEL_PYTHON)" >&2; exit 1; }

want="requirements $(sha256sum "$REQS" | cut -c1-16) $("$PYTHON" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')"

# One provisioner at a time per cache (parallel CI clones share it).
exec 9>"$CACHE/.provision-example.lock"
flock 9

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$VENV/bin/python" ]]; then
  log "venv-example: already provisioned ($VENV)"
  exit 0
fi

t0=$(date +%s)
log "venv-example: installing examples/python/requirements.txt into $VENV (log: $LOG)"
rm -rf "$VENV"
if ! {
  "$PYTHON" -m venv "$VENV" &&
    "$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQS" &&
    "$VENV/bin/python" -c 'import sklearn, opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http, opentelemetry.exporter.otlp.proto.grpc'
} >"$LOG" 2>&1; then
  printf '[provision-example] FAILED: pip install -r %s (log: %s), last lines:\n' "$REQS" "$LOG" >&2
  tail -n 40 "$LOG" >&2 || true
  exit 1
fi
printf '%s\n' "$want" >"$STAMP"
log "venv-example: ready in $(($(date +%s) - t0))s ($VENV)"
