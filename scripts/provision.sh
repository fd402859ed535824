#!/usr/bin/env bash
# Provision the real services runtel's tests run: Jaeger v2, a custom OpenTelemetry Collector,
# Prometheus, MLflow (and the wandb Python package), PostgreSQL (a store for MLflow) and headless
# Chromium (for the tests that look at MLflow's UI).
#
#   bash scripts/provision.sh [jaeger|otelcol|prometheus|mlflow|postgres|chromium|all]...   (default: all)
#
# Everything lands in ${RUNTEL_CACHE_DIR:-$HOME/.cache/runtel}, outside the clone, so every
# clone (and every CI run on the same machine) reuses it. Each step writes a stamp file holding
# what it built; a re-run whose stamp matches and whose binary is present does nothing.
# Exits non-zero when any requested service could not be provisioned.
set -euo pipefail

# ---- pinned versions ---------------------------------------------------------------------
JAEGER_MODULE=github.com/jaegertracing/jaeger
JAEGER_MODULE_VERSION=v1.76.0 # the Go module tag; the same commit is released as Jaeger v2.13.0
JAEGER_VERSION=v2.13.0
OTELCOL_VERSION=v0.161.0 # collector core, contrib components and the builder: one release
MLFLOW_VERSION=3.17.2 # with the [auth] extra (basic-auth app, for the credentials tests). 3.18.0 is listed, but its mlflow-skinny==3.18.0 is not served
WANDB_VERSION=0.31.0
PSYCOPG_VERSION=3.3.9 # MLflow's PostgreSQL driver, in the MLflow venv: psycopg 3 is SQLAlchemy 2.1's default for postgresql:// URIs
# -------------------------------------------------------------------------------------------

CACHE="${RUNTEL_CACHE_DIR:-$HOME/.cache/runtel}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$CACHE/bin"
STAMPS="$CACHE/stamps"
LOGS="$CACHE/logs"
PYTHON="${RUNTEL_PYTHON:-python3}"

mkdir -p "$BIN" "$STAMPS" "$LOGS" "$CACHE/build"

# Go settings for both builds: no toolchain downloads, no VCS stamping, static binaries.
export GOTOOLCHAIN=local
export GOFLAGS="-buildvcs=false"
export CGO_ENABLED=0

log() { printf '[provision] %s\n' "$*"; }
fail() {
  printf '[provision] FAILED: %s\n' "$*" >&2
  return 1
}

# Print the tail of a build log and fail.
fail_with_log() {
  local what=$1 logfile=$2
  printf '[provision] FAILED: %s (log: %s), last lines:\n' "$what" "$logfile" >&2
  tail -n 40 "$logfile" >&2 || true
  return 1
}

stamp_matches() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
write_stamp() { printf '%s\n' "$2" >"$STAMPS/$1"; }

elapsed() { echo "$(($(date +%s) - $1))s"; }

require_go() {
  command -v go >/dev/null 2>&1 || fail "go is not on PATH (Go >= 1.24 is needed to build $1)"
}

# ---- Jaeger v2 -----------------------------------------------------------------------------
# `go install .../cmd/jaeger@v1.76.0` is refused because jaeger's go.mod has replace directives.
# So build from a throwaway module that requires jaeger and carries over those directives.
provision_jaeger() {
  local want="jaeger $JAEGER_VERSION module $JAEGER_MODULE_VERSION $(go env GOVERSION 2>/dev/null || echo nogo)"
  if stamp_matches jaeger "$want" && [[ -x "$BIN/jaeger" ]]; then
    log "jaeger: $JAEGER_VERSION already built ($BIN/jaeger)"
    return 0
  fi
  require_go jaeger || return 1
  local t0 logfile dir info upstream_mod modtime edits_text
  t0=$(date +%s)
  logfile="$LOGS/jaeger-build.log"
  dir="$CACHE/build/jaeger"
  log "jaeger: building $JAEGER_VERSION from $JAEGER_MODULE@$JAEGER_MODULE_VERSION (a cold build takes 10+ minutes; log: $logfile)"
  : >"$logfile"
  rm -rf "$dir"
  mkdir -p "$dir"

  info=$(go mod download -json "$JAEGER_MODULE@$JAEGER_MODULE_VERSION" 2>>"$logfile") ||
    { fail_with_log "jaeger: go mod download" "$logfile"; return 1; }
  upstream_mod=$(printf '%s' "$info" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  modtime=$(printf '%s' "$info" | "$PYTHON" -c '
import json,sys,os
d=json.load(sys.stdin)
print(json.load(open(d["Info"])).get("Time",""))')

  # Turn the upstream go.mod's replace (and exclude) directives into `go mod edit` flags.
  edits_text=$(go mod edit -json "$upstream_mod" | "$PYTHON" -c '
import json, sys
m = json.load(sys.stdin)
def mod(v):
    return v["Path"] + ("@" + v["Version"] if v.get("Version") else "")
for r in m.get("Replace") or []:
    new = r["New"]
    if not new.get("Version"):
        sys.exit("replace with a local path cannot be carried over: " + json.dumps(r))
    print("-replace=" + mod(r["Old"]) + "=" + mod(new))
for e in m.get("Exclude") or []:
    print("-exclude=" + mod(e))
print("-go=" + m["Go"]["Version"] if isinstance(m.get("Go"), dict) else "-go=" + m["Go"])
') || { fail "jaeger: could not read the directives of $upstream_mod"; return 1; }
  local -a edits=()
  mapfile -t edits <<<"$edits_text"

  (
    # (set -e does not apply inside a `( ) || ...` list, hence the && chain)
    cd "$dir" &&
      go mod init runtel.local/jaeger-build &&
      go mod edit "${edits[@]}" &&
      printf 'carried over from %s: %s\n' "$upstream_mod" "${edits[*]}" &&
      nice -n 10 go get -tool "$JAEGER_MODULE/cmd/jaeger@$JAEGER_MODULE_VERSION" &&
      nice -n 10 go build -trimpath \
      -ldflags "-s -w -X $JAEGER_MODULE/internal/version.latestVersion=$JAEGER_VERSION -X $JAEGER_MODULE/internal/version.date=$modtime" \
      -o "$BIN/jaeger.tmp" "$JAEGER_MODULE/cmd/jaeger"
  ) >>"$logfile" 2>&1 || { fail_with_log "jaeger: build" "$logfile"; return 1; }

  mv -f "$BIN/jaeger.tmp" "$BIN/jaeger" || return 1
  local ver
  ver=$("$BIN/jaeger" version 2>&1) || { fail "jaeger: '$BIN/jaeger version' failed: $ver"; return 1; }
  grep -q "$JAEGER_VERSION" <<<"$ver" || { fail "jaeger: unexpected version output: $ver"; return 1; }
  write_stamp jaeger "$want"
  log "jaeger: built $JAEGER_VERSION in $(elapsed "$t0") ($BIN/jaeger)"
}

# ---- OpenTelemetry Collector (custom build) -------------------------------------------------
provision_otelcol() {
  local manifest="$REPO_ROOT/collector-config/builder-config.yaml"
  [[ -f "$manifest" ]] || { fail "otelcol: $manifest is missing"; return 1; }
  local manifest_hash want
  manifest_hash=$(sha256sum "$manifest" | cut -c1-16)
  want="otelcol builder $OTELCOL_VERSION manifest $manifest_hash $(go env GOVERSION 2>/dev/null || echo nogo)"
  if stamp_matches otelcol "$want" && [[ -x "$BIN/otelcol-runtel" ]]; then
    log "otelcol: otelcol-runtel ($OTELCOL_VERSION) already built ($BIN/otelcol-runtel)"
    return 0
  fi
  require_go otelcol || return 1
  local t0 logfile dir builder
  t0=$(date +%s)
  logfile="$LOGS/otelcol-build.log"
  dir="$CACHE/build/otelcol"
  builder="$CACHE/tools/builder-$OTELCOL_VERSION"
  log "otelcol: building otelcol-runtel with the collector builder $OTELCOL_VERSION (log: $logfile)"
  : >"$logfile"

  if [[ ! -x "$builder" ]]; then
    mkdir -p "$CACHE/tools/gobin"
    GOBIN="$CACHE/tools/gobin" nice -n 10 go install "go.opentelemetry.io/collector/cmd/builder@$OTELCOL_VERSION" >>"$logfile" 2>&1 ||
      { fail_with_log "otelcol: go install builder@$OTELCOL_VERSION" "$logfile"; return 1; }
    mv -f "$CACHE/tools/gobin/builder" "$builder" || return 1
  fi

  # The committed manifest's output_path is a placeholder: point it into the cache.
  rm -rf "$dir"
  mkdir -p "$dir"
  sed -E "s|^([[:space:]]*output_path:).*|\1 $dir/src|" "$manifest" >"$dir/builder-config.yaml"
  grep -q "output_path: $dir/src" "$dir/builder-config.yaml" || { fail "otelcol: could not set output_path"; return 1; }

  (cd "$dir" && nice -n 10 "$builder" --config="$dir/builder-config.yaml") >>"$logfile" 2>&1 ||
    { fail_with_log "otelcol: builder" "$logfile"; return 1; }
  mv -f "$dir/src/otelcol-runtel" "$BIN/otelcol-runtel" || return 1

  local comps
  comps=$("$BIN/otelcol-runtel" components 2>&1) || { fail "otelcol: 'otelcol-runtel components' failed: $comps"; return 1; }
  local c
  for c in otlp batch memory_limiter otlp_grpc otlp_http debug prometheus load_balancing file_storage health_check; do
    grep -qE "name: $c\$" <<<"$comps" || { fail "otelcol: component $c missing from the build"; return 1; }
  done
  write_stamp otelcol "$want"
  log "otelcol: built otelcol-runtel $OTELCOL_VERSION in $(elapsed "$t0") ($BIN/otelcol-runtel)"
}

# ---- Prometheus (Debian package; tests start it with their own config) -----------------------
APT_UPDATED=0
apt_install() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# Stop a prometheus that the package's init script may have started (it would hold :9090).
stop_debian_prometheus() {
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  if [[ -x /etc/init.d/prometheus ]]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
  local pid
  for pid in $(pgrep -x prometheus 2>/dev/null || true); do
    # Only the package's service runs with its config file; never touch a test's own instance.
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- '/etc/prometheus/prometheus.yml\|^/usr/bin/prometheus *$'; then
      kill "$pid" 2>/dev/null || true
    fi
  done
}

provision_prometheus() {
  local t0 logfile state="already installed"
  t0=$(date +%s)
  logfile="$LOGS/prometheus-install.log"
  if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || { fail "prometheus: not installed and apt-get is not available"; return 1; }
    log "prometheus: installing the Debian package (log: $logfile)"
    # Keep the package's init script from starting a service: tests start their own instances.
    local added_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      added_policy=1
    fi
    local rc=0
    apt_install prometheus >"$logfile" 2>&1 || rc=$?
    [[ $added_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
    [[ $rc -eq 0 ]] || { fail_with_log "prometheus: apt-get install prometheus" "$logfile"; return 1; }
    state="installed in $(elapsed "$t0")"
  fi
  stop_debian_prometheus
  local prom promtool ver
  prom=$(command -v prometheus)
  promtool=$(command -v promtool)
  ln -sfn "$prom" "$BIN/prometheus"
  ln -sfn "$promtool" "$BIN/promtool"
  ver=$("$BIN/prometheus" --version 2>&1 | head -n 1) || { fail "prometheus: '$prom --version' failed"; return 1; }
  write_stamp prometheus "$ver"
  log "prometheus: $state ($ver; $BIN/prometheus -> $prom)"
}

# ---- MLflow and wandb (Python venvs) --------------------------------------------------------
venv_want() { echo "$1==$2 $("$PYTHON" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')"; }

# venv_current NAME PKG VERSION: the venv exists and its stamp names this package version.
venv_current() {
  stamp_matches "venv-$1" "$(venv_want "$2" "$3")" && [[ -x "$CACHE/venv-$1/bin/python" ]]
}

make_venv() {
  local name=$1 pkg=$2 version=$3 logfile=$4
  local venv="$CACHE/venv-$name"
  local want
  want=$(venv_want "$pkg" "$version")
  if venv_current "$name" "$pkg" "$version"; then
    log "$name: $pkg $version already installed ($venv)"
    return 0
  fi
  local t0
  t0=$(date +%s)
  log "$name: installing $pkg==$version into $venv (log: $logfile)"
  rm -rf "$venv"
  {
    "$PYTHON" -m venv "$venv" &&
      "$venv/bin/pip" install --disable-pip-version-check -q "$pkg==$version"
  } >"$logfile" 2>&1 || { fail_with_log "$name: pip install $pkg==$version" "$logfile"; return 1; }
  write_stamp "venv-$name" "$want"
  log "$name: installed $pkg $version in $(elapsed "$t0")"
}

# The PostgreSQL driver goes into the MLflow venv on top of MLflow: added to a venv that is
# already there (never a rebuild of it, which other clones' running tests may be using).
mlflow_driver_current() {
  # (psycopg.pq.__impl__: "binary" is the wheel's bundled libpq build)
  [[ "$("$CACHE/venv-mlflow/bin/python" -c 'import psycopg; print(psycopg.__version__, psycopg.pq.__impl__)' 2>/dev/null)" == "$PSYCOPG_VERSION binary" ]]
}

provision_mlflow_driver() {
  if mlflow_driver_current; then
    log "mlflow: PostgreSQL driver psycopg[binary] $PSYCOPG_VERSION already installed"
    return 0
  fi
  local t0 logfile="$LOGS/mlflow-driver-install.log"
  t0=$(date +%s)
  log "mlflow: installing the PostgreSQL driver psycopg[binary]==$PSYCOPG_VERSION into $CACHE/venv-mlflow (log: $logfile)"
  "$CACHE/venv-mlflow/bin/pip" install --disable-pip-version-check -q "psycopg[binary]==$PSYCOPG_VERSION" >"$logfile" 2>&1 ||
    { fail_with_log "mlflow: pip install psycopg[binary]==$PSYCOPG_VERSION" "$logfile"; return 1; }
  mlflow_driver_current || { fail "mlflow: psycopg $PSYCOPG_VERSION (binary) does not import after the install"; return 1; }
  log "mlflow: PostgreSQL driver installed in $(elapsed "$t0")"
}

provision_mlflow() {
  if venv_current mlflow "mlflow[auth]" "$MLFLOW_VERSION" && venv_current wandb wandb "$WANDB_VERSION" && [[ -x "$BIN/mlflow" ]]; then
    log "mlflow: mlflow $MLFLOW_VERSION already installed ($CACHE/venv-mlflow, $BIN/mlflow)"
    log "wandb: wandb $WANDB_VERSION already installed ($CACHE/venv-wandb)"
    provision_mlflow_driver
    return
  fi
  make_venv mlflow "mlflow[auth]" "$MLFLOW_VERSION" "$LOGS/mlflow-install.log" || return 1
  local ver
  ver=$("$CACHE/venv-mlflow/bin/mlflow" --version 2>&1) || { fail "mlflow: 'mlflow --version' failed: $ver"; return 1; }
  grep -q "$MLFLOW_VERSION" <<<"$ver" || { fail "mlflow: unexpected version: $ver"; return 1; }
  ln -sfn "$CACHE/venv-mlflow/bin/mlflow" "$BIN/mlflow"
  log "mlflow: $ver ($BIN/mlflow)"
  provision_mlflow_driver || return 1

  make_venv wandb wandb "$WANDB_VERSION" "$LOGS/wandb-install.log" || return 1
  ver=$("$CACHE/venv-wandb/bin/python" -c 'import wandb; print(wandb.__version__)' 2>&1) ||
    { fail "wandb: import wandb failed: $ver"; return 1; }
  [[ "$ver" == "$WANDB_VERSION" ]] || { fail "wandb: unexpected version: $ver"; return 1; }
  log "wandb: wandb $ver ($CACHE/venv-wandb/bin/python)"
}

# ---- PostgreSQL (Debian package; tests start throwaway clusters of their own) ---------------
# The package's own cluster is not started (policy-rc.d), and the tests never use it: each test
# store is a fresh `initdb` on a free loopback port, run as an unprivileged user.
postgres_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/postgres" ]] && echo "$dir"
}

# Run a command with a policy-rc.d that keeps package scripts from starting services.
without_service_starts() {
  local added_policy=0 rc=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  "$@" || rc=$?
  [[ $added_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
  return $rc
}

provision_postgres() {
  local t0 logfile state="already installed" dir
  t0=$(date +%s)
  logfile="$LOGS/postgres-install.log"
  if ! dir=$(postgres_bindir) || ! command -v psql >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || { fail "postgres: not installed and apt-get is not available"; return 1; }
    log "postgres: installing the Debian package (log: $logfile)"
    without_service_starts apt_install postgresql postgresql-client >"$logfile" 2>&1 ||
      { fail_with_log "postgres: apt-get install postgresql" "$logfile"; return 1; }
    dir=$(postgres_bindir) || { fail "postgres: installed, but no /usr/lib/postgresql/*/bin/initdb"; return 1; }
    state="installed in $(elapsed "$t0")"
  fi
  local tool
  for tool in initdb postgres pg_isready; do ln -sfn "$dir/$tool" "$BIN/$tool"; done
  ln -sfn "$(command -v psql)" "$BIN/psql"
  # PostgreSQL refuses to run as root: the tests run it as this user when they are root.
  if [[ $(id -u) -eq 0 ]] && ! id -u postgres >/dev/null 2>&1; then
    fail "postgres: the package's 'postgres' user is missing (tests running as root start clusters as it)"
    return 1
  fi
  local ver
  ver=$("$BIN/postgres" --version 2>&1) || { fail "postgres: '$BIN/postgres --version' failed: $ver"; return 1; }
  write_stamp postgres "$ver"
  log "postgres: $state ($ver; $BIN/postgres -> $dir/postgres)"
  # And MLflow's driver for it, when the MLflow venv is there (the mlflow target installs it too).
  if [[ -x "$CACHE/venv-mlflow/bin/python" ]]; then provision_mlflow_driver || return 1; fi
}

# ---- Chromium (Debian package; the tests drive it headless with playwright-core) -------------
provision_chromium() {
  local t0 logfile state="already installed"
  t0=$(date +%s)
  logfile="$LOGS/chromium-install.log"
  if [[ ! -x /usr/bin/chromium ]]; then
    command -v apt-get >/dev/null 2>&1 || { fail "chromium: not installed and apt-get is not available"; return 1; }
    log "chromium: installing the Debian package (log: $logfile)"
    # fonts-liberation: legible screenshots (chromium only recommends a font).
    apt_install chromium fonts-liberation >"$logfile" 2>&1 || { fail_with_log "chromium: apt-get install chromium" "$logfile"; return 1; }
    state="installed in $(elapsed "$t0")"
  fi
  local ver
  ver=$(/usr/bin/chromium --version 2>&1 | tail -n 1) || { fail "chromium: '/usr/bin/chromium --version' failed: $ver"; return 1; }
  grep -q '^Chromium ' <<<"$ver" || { fail "chromium: unexpected version output: $ver"; return 1; }
  ln -sfn /usr/bin/chromium "$BIN/chromium"
  write_stamp chromium "$ver"
  log "chromium: $state ($ver; /usr/bin/chromium)"
}

# ---- main -----------------------------------------------------------------------------------
main() {
  local -a targets=("$@")
  [[ ${#targets[@]} -eq 0 ]] && targets=(all)
  local -a services=()
  local t
  for t in "${targets[@]}"; do
    case "$t" in
      all) services+=(jaeger otelcol prometheus mlflow postgres chromium) ;;
      jaeger | otelcol | prometheus | mlflow | postgres | chromium) services+=("$t") ;;
      -h | --help)
        sed -n '2,11p' "${BASH_SOURCE[0]}"
        return 0
        ;;
      *)
        echo "usage: $0 [jaeger|otelcol|prometheus|mlflow|postgres|chromium|all]..." >&2
        return 2
        ;;
    esac
  done

  # One provisioner at a time per cache (parallel CI clones share it).
  exec 9>"$CACHE/.provision.lock"
  if ! flock -n 9; then
    log "waiting for another provision.sh run to finish (lock $CACHE/.provision.lock)"
    flock 9
  fi

  local t0 failed=()
  t0=$(date +%s)
  for t in "${services[@]}"; do
    "provision_$t" || failed+=("$t")
  done
  if [[ ${#failed[@]} -gt 0 ]]; then
    printf '[provision] FAILED: %s (cache %s)\n' "${failed[*]}" "$CACHE" >&2
    return 1
  fi
  log "all requested services ready in $CACHE (took $(elapsed "$t0"))"
}

main "$@"
