#!/usr/bin/env bash
# bench/pull.sh: a pull-API catch-up, measured: records/s and peak RSS of
#
#   kongctl get audit-logs --since 25h --page-size 1000 -o jsonl > <file>
#
# against the bundled Konnect emulator (release builds of both), which holds
# RECORDS records spread over the last 24 hours (seeded through its admin
# API; it makes each page's records from a seed, so it holds them in tens of
# megabytes). The bar (issue 12): a 1,000,000-record catch-up stays under
# 64 MiB peak RSS (VmHWM, read by GNU time as "maximum resident set size").
#
# Every run is verified: exactly RECORDS lines, each one JSON object, no
# signature twice, times in order, nothing on stderr. The emulator's CPU
# time during each run is reported too: it makes the records it serves, on
# the same two cores, so records/s is a floor of what kongctl alone does.
# The report (markdown) goes to bench/results/pull-<timestamp>.md and
# stdout.
#
# Knobs (env):
#   RECORDS=1000000   PAGE_SIZE=1000   RUNS=3
#   WORK_DIR=<mktemp -d>   scratch (config dir, outputs; removed at the end)
#   NO_BUILD=0        1 uses the existing target/release binaries
# Needs: cargo, curl, jq, GNU time (/usr/bin/time). Traffic goes to
# 127.0.0.1 only; the emulator is stopped by its pid.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case ${1:-} in
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "pull.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac
RECORDS=${RECORDS:-1000000}
PAGE_SIZE=${PAGE_SIZE:-1000}
RUNS=${RUNS:-3}
NO_BUILD=${NO_BUILD:-0}
for tool in curl jq /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "pull.sh: $tool is needed" >&2; exit 1; }
done

WORK_DIR=${WORK_DIR:-$(mktemp -d /tmp/kongctl-pull-bench.XXXXXX)}
mkdir -p "$WORK_DIR"
SIM_PID=
cleanup() {
  if [[ -n $SIM_PID ]] && kill -0 "$SIM_PID" 2>/dev/null; then
    kill -TERM "$SIM_PID"
    wait "$SIM_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK_DIR"
}
trap cleanup EXIT
log() { echo "pull.sh: $*" >&2; }

if [[ $NO_BUILD != 1 ]]; then
  log "building release binaries"
  (cd "$REPO" && cargo build --release --locked -p kongctl -p konnect-sim >&2)
fi
KONGCTL=$REPO/target/release/kongctl
SIM=$REPO/target/release/konnect-sim

"$SIM" --listen 127.0.0.1:0 >"$WORK_DIR/sim.env" 2>"$WORK_DIR/sim.log" &
SIM_PID=$!
for _ in $(seq 100); do [[ -s $WORK_DIR/sim.env ]] && break; sleep 0.1; done
eval "$(cat "$WORK_DIR/sim.env")"
log "emulator at $KONNECT_BASE_URL (pid $SIM_PID); seeding $RECORDS records over 24 h"
seed_started=$(date +%s.%N)
curl -sf -X POST "$KONNECT_BASE_URL/_sim/audit-logs" \
  -d "{\"count\": $RECORDS, \"span_seconds\": 86400}" >"$WORK_DIR/seed.json"
seed_secs=$(echo "$(date +%s.%N) - $seed_started" | bc)
sim_rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$SIM_PID/status")

# CPU time (user + system, seconds) of the emulator so far.
sim_cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$SIM_PID/stat"; }

# Read before HOME moves: rustup finds its toolchain through HOME.
RUSTC_VERSION=$(rustc --version 2>/dev/null | cut -d' ' -f1-2 || echo "rustc ?")
export XDG_CONFIG_HOME=$WORK_DIR HOME=$WORK_DIR
export KONGCTL_DEFAULT_KONNECT_PAT=$KONNECT_PAT KONGCTL_DEFAULT_KONNECT_BASE_URL=$KONNECT_BASE_URL
rows=()
fail=0
for run in $(seq "$RUNS"); do
  out=$WORK_DIR/out.jsonl
  cpu_before=$(sim_cpu)
  /usr/bin/time -f '%e %M %U %S' -o "$WORK_DIR/time" \
    "$KONGCTL" get audit-logs --since 25h --page-size "$PAGE_SIZE" -o jsonl >"$out" 2>"$WORK_DIR/stderr"
  cpu_after=$(sim_cpu)
  read -r secs max_kb user sys <"$WORK_DIR/time"
  lines=$(wc -l <"$out")
  # One JSON object a line, no signature twice, times never going back.
  verdict=PASS
  if [[ $lines != "$RECORDS" ]] || [[ -s $WORK_DIR/stderr ]] ||
    ! jq -c 'select(type == "object") | [.signature, .ts]' "$out" >"$WORK_DIR/keys" ||
    [[ $(wc -l <"$WORK_DIR/keys") != "$RECORDS" ]] ||
    [[ $(cut -d'"' -f2 "$WORK_DIR/keys" | sort -u | wc -l) != "$RECORDS" ]] ||
    ! cut -d'"' -f4 "$WORK_DIR/keys" | sort -c; then
    verdict=FAIL
    fail=1
  fi
  rate=$(echo "$RECORDS / $secs" | bc)
  mib=$(echo "scale=1; $max_kb / 1024" | bc)
  sim=$(echo "$cpu_after - $cpu_before" | bc)
  log "run $run: $lines records in ${secs}s ($rate records/s), peak RSS $mib MiB, $verdict"
  rows+=("| $run | $lines | $secs | $rate | $mib | $user + $sys | $sim | $verdict |")
  rm -f "$out" "$WORK_DIR/keys"
done

stamp=$(date -u +%Y%m%d-%H%M%S)
report=$REPO/bench/results/pull-$stamp.md
{
  echo "# kongctl pull catch-up benchmark $stamp"
  echo
  echo "Command: \`bench/pull.sh\` (RECORDS=$RECORDS PAGE_SIZE=$PAGE_SIZE RUNS=$RUNS)"
  echo
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, kernel $(uname -r)"
  echo "- kongctl $(git -C "$REPO" rev-parse --short HEAD), $RUSTC_VERSION"
  echo "- emulator: $RECORDS records over the last 24 h seeded in ${seed_secs}s, its RSS then $((sim_rss_kb / 1024)) MiB"
  echo "- measured: \`kongctl get audit-logs --since 25h --page-size $PAGE_SIZE -o jsonl > file\`, wall time and peak RSS by GNU time"
  echo
  echo "| run | records | seconds | records/s | peak RSS MiB | kongctl CPU s (user + sys) | emulator CPU s | verified |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Verified: exactly $RECORDS lines, each a JSON object, no signature twice, times in order, nothing on stderr. Bar: peak RSS < 64 MiB."
} | tee "$report"
exit $fail
