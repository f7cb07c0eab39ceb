#!/usr/bin/env bash
# Regenerates link/listener.order: the functions a listener runs, in the
# order the release build places them at the start of .text (build.rs
# passes the file to the linker, lld's --symbol-ordering-file).
#
# Why: the kernel maps a binary's pages 64 KiB around each page a process
# touches, so a listener that runs 2 MiB of code spread over the 8.5 MiB
# of .text keeps most of .text resident. Packed together, the code it runs
# is a few MiB of contiguous pages and the idle listener's RSS drops.
# Nothing changes but where functions sit; a name the file lists that a
# build no longer has is skipped (a stale file only loses the packing).
#
# How: the release build of kongctl alone, exactly as `cargo build
# --release -p kongctl` and `cargo install` make it (symbol names carry
# hashes of each crate's profile and features: an unstripped build, or one
# built together with the emulator, has other names), with the linker's map
# beside it, runs under valgrind's callgrind against the bundled emulator,
# in the ways a listener lives:
#   1. `listen`, default flags: start, signed deliveries, idle, SIGINT;
#   2. `tail --jq`: the same, printing;
#   3. `listen --verify reject --admin-address`: checks before the write,
#      /healthz, /readyz and /metrics scraped.
# Every code address callgrind saw run in kongctl is looked up in the map,
# and the functions are listed, scenario 1's first (the default listener
# packs densest), then what the others add. Then kongctl is built again with
# the new file and the script says how many of the listed functions it
# placed. Run it again after changing the Rust toolchain, Cargo.lock, the
# release profile or kongctl's features: names that no longer match only
# lose the packing.
#
# Needs: cargo, valgrind, curl, python3. Traffic stays on 127.0.0.1.
# usage: scripts/order-file.sh   (takes a few minutes: callgrind is slow)
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in valgrind curl python3; do
  command -v "$tool" >/dev/null || { echo "order-file: $tool is required" >&2; exit 1; }
done

WORK=$(mktemp -d)
echo "== building kongctl (release, with the linker's map, no order file) and konnect-sim" >&2
KONGCTL_NO_ORDER_FILE=1 KONGCTL_LINK_MAP=$WORK/kongctl.map cargo build --locked --quiet --release -p kongctl
cp target/release/kongctl "$WORK/kongctl"
cargo build --locked --quiet --release -p konnect-sim
KONGCTL=$WORK/kongctl
SIM=$PWD/target/release/konnect-sim

PIDS=()
finish() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  [[ -n ${KEEP:-} ]] && echo "order-file: kept $WORK" >&2 || rm -rf "$WORK"
}
trap finish EXIT

"$SIM" --listen 127.0.0.1:0 --retry-wait-ms 200 >"$WORK/sim.env" 2>"$WORK/sim.log" &
PIDS+=($!)
for _ in $(seq 100); do [[ -s $WORK/sim.env ]] && break; sleep 0.05; done
eval "$(cat "$WORK/sim.env")"
admin() { curl -fsS -X POST -H 'Content-Type: application/json' -d "$2" "$KONNECT_BASE_URL/_sim/$1" >/dev/null; }

# scenario N COMMAND [FLAG...]: runs kongctl under callgrind, delivers
# batches, scrapes the admin endpoint if one is set, stops it with SIGINT.
scenario() {
  local n=$1 dir=$WORK/s$1 host=order-$1.tunnel.test state addr admin_addr pid t=0
  shift
  state=$dir/config/kongctl/audit-logs/default/listener.json
  mkdir -p "$dir"
  echo "== scenario $n: kongctl $*" >&2
  XDG_CONFIG_HOME=$dir/config KONGCTL_DEFAULT_KONNECT_PAT=$KONNECT_PAT \
    valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$dir/callgrind.out" \
    "$KONGCTL" "$@" --base-url "$KONNECT_BASE_URL" --endpoint "https://$host/audit-logs" \
    --listen-address 127.0.0.1:0 --check off >"$dir/out" 2>"$dir/err" &
  pid=$!
  PIDS+=("$pid")
  until grep -q '"running": true' "$state" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/err" >&2; exit 1; }
    ((t++ < 1200)) || { echo "order-file: kongctl not ready after 120 s" >&2; exit 1; }
    sleep 0.1
  done
  addr=$(sed -n 's/.*"listen_address": "\([^"]*\)".*/\1/p' "$state")
  admin tunnels "{\"host\":\"$host\",\"target\":\"$addr\"}"
  admin trigger '{"count":50}'
  admin trigger '{"count":7}'
  admin_addr=$(sed -n 's/.*"admin_address": "\([^"]*\)".*/\1/p' "$state")
  if [[ -n $admin_addr ]]; then
    for path in healthz readyz metrics; do curl -fsS "http://$admin_addr/$path" >/dev/null || true; done
    curl -fsS -H 'Accept: application/openmetrics-text' "http://$admin_addr/metrics" >/dev/null || true
  fi
  sleep 3
  kill -INT "$pid"
  wait "$pid" || { echo "order-file: scenario $n exited non-zero" >&2; cat "$dir/err" >&2; exit 1; }
}

scenario 1 listen
scenario 2 tail --jq '{ts: .event_ts, event: .name, principal: .principal_id}'
scenario 3 listen --verify reject --admin-address 127.0.0.1:0

mkdir -p link
python3 scripts/order-file.py order "$KONGCTL" "$WORK/kongctl.map" "$WORK"/s{1,2,3}/callgrind.out >link/listener.order
echo "== link/listener.order: $(wc -l <link/listener.order) functions; building kongctl with it" >&2
KONGCTL_LINK_MAP=$WORK/placed.map cargo build --locked --quiet --release -p kongctl
python3 scripts/order-file.py placed link/listener.order "$WORK/placed.map" >&2
