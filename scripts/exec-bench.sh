#!/usr/bin/env bash
# What `--on … --exec …` costs, on this machine only (README, "Acting on
# records"): the same deliveries to a listener without --exec, with
# `--on all --exec true` on every record (how many commands a second), and
# with `--exec 'sleep 1'` on every record (commands far behind the
# deliveries: does a 202 wait for them?). Each delivery is timed by curl;
# the three listeners run one after another in the same run, each in a
# fresh profile, against the bundled Konnect emulator.
#
# Usage: scripts/exec-bench.sh [RECORDS] [PER_DELIVERY]   (default 2000 50)
# Needs: cargo, curl, jq. Traffic stays on 127.0.0.1; everything is written
# to a temporary directory that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
PER=${2:-50}
for tool in cargo curl jq; do
  command -v "$tool" >/dev/null || { echo "exec-bench: $tool is required" >&2; exit 1; }
done

cargo build --locked --quiet -p kongctl -p konnect-sim
BIN=$PWD/target/debug
WORK=$(mktemp -d)
SIM_PID="" LISTENER_PID=""
finish() {
  [[ -n $LISTENER_PID ]] && kill -KILL "$LISTENER_PID" 2>/dev/null
  [[ -n $SIM_PID ]] && kill -TERM "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap finish EXIT

"$BIN/konnect-sim" --listen 127.0.0.1:0 >"$WORK/sim.env" 2>"$WORK/sim.log" &
SIM_PID=$!
for _ in $(seq 200); do [[ -s $WORK/sim.env ]] && break; sleep 0.05; done
eval "$(cat "$WORK/sim.env")"
export KONGCTL_DEFAULT_KONNECT_PAT=$KONNECT_PAT

# N locked-account records (each matches `locked` and `all`), PER a delivery.
mkdir "$WORK/batches"
for ((i = 0; i < N; i++)); do
  printf '{"cef_version":0,"event_class_id":"AUTHENTICATION_TYPE_BASIC","event_product":"Konnect","event_ts":"2026-08-23T14:00:00Z","event_vendor":"KongInc","event_version":"1.0","name":"AUTHENTICATION_OUTCOME_LOCKED","org_id":"b065b594-6afc-4658-9101-5d9cf3f36b7b","principal_id":"87655c36-8d63-48fe-9a1e-53b28dfbc19b","severity":6,"success":"false","sig":"bench-%d"}\n' "$i" \
    >>"$WORK/batches/$(printf %06d $((i / PER)))"
done

# run NAME [kongctl flags…]: one listener, every delivery timed.
run() {
  local name=$1
  shift
  export XDG_CONFIG_HOME=$WORK/$name
  local state=$XDG_CONFIG_HOME/kongctl/audit-logs/default/listener.json
  "$BIN/kongctl" listen --base-url "$KONNECT_BASE_URL" \
    --endpoint "https://$name.tunnel.test/audit-logs" --listen-address 127.0.0.1:0 \
    --check off --backfill off --authorization "Bearer bench" "$@" 2>"$WORK/$name.err" >/dev/null &
  LISTENER_PID=$!
  for _ in $(seq 400); do [[ -s $state ]] && grep -q '"running": true' "$state" && break; sleep 0.05; done
  local addr
  addr=$(jq -r .listen_address "$state")
  local start end
  start=$(date +%s%N)
  for batch in "$WORK"/batches/*; do
    curl -sS -o /dev/null -w '%{http_code} %{time_total}\n' -H 'Authorization: Bearer bench' \
      --data-binary "@$batch" "http://$addr/audit-logs" >>"$WORK/$name.times"
  done
  end=$(date +%s%N)
  local bad
  bad=$(awk '$1 != 202' "$WORK/$name.times" | wc -l)
  local ms
  ms=$(sort -k2 -n "$WORK/$name.times" | awk '{t[NR]=$2} END {printf "median %.1f ms, p99 %.1f ms, max %.1f ms", t[int(NR/2)+1]*1000, t[int(NR*0.99)+1]*1000, t[NR]*1000}')
  printf '%-28s %d deliveries (%d not 202) in %.2f s; 202 latency %s\n' \
    "$name" "$(wc -l <"$WORK/$name.times")" "$bad" "$(echo "($end - $start) / 1000000000" | bc -l)" "$ms"
  if [[ -n ${COUNT_FILE:-} ]]; then
    # Until every command ended (each appends a line to COUNT_FILE).
    until [[ -s $COUNT_FILE && $(wc -l <"$COUNT_FILE") -ge $N ]]; do sleep 0.05; done
    local all_end
    all_end=$(date +%s%N)
    printf '%-28s %d commands ended %.2f s after the first delivery: %.0f commands/s\n' \
      "" "$N" "$(echo "($all_end - $start) / 1000000000" | bc -l)" \
      "$(echo "$N / (($all_end - $start) / 1000000000)" | bc -l)"
  fi
  # Stop: running commands end, queued ones are left to a next start.
  kill -INT "$LISTENER_PID"
  wait "$LISTENER_PID" 2>/dev/null || true
  LISTENER_PID=""
}

echo "exec-bench: $N records, $PER a delivery, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
run baseline
COUNT_FILE=$WORK/ran run exec-echo --on all --exec "echo >> $WORK/ran"
run exec-sleep-1 --on locked --exec 'sleep 1'
