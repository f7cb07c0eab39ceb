#!/usr/bin/env bash
# The main job, end to end, on this machine only: build kongctl and the
# bundled Konnect emulator, run `kongctl tail --jq` against the emulator,
# have the emulator deliver audit events (gzip'd batches, as Konnect does)
# through its built-in "tunnel" to the listener, watch them stream and get
# stored, then stop with SIGINT and show that Konnect is left as it was.
# Then the same events without any tunnel: `kongctl get audit-logs --since
# 10m -o jsonl` pulls them from the emulator's pull API.
#
# Needs: cargo, curl. Traffic stays on 127.0.0.1. Everything is written to a
# temporary directory that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
need() { command -v "$1" >/dev/null || { echo "demo: $1 is required ($2)" >&2; exit 1; }; }
need cargo "install Rust"
need curl "apt-get install curl"

say "Building kongctl and konnect-sim"
cargo build --locked --quiet -p kongctl -p konnect-sim
BIN=$PWD/target/debug

WORK=$(mktemp -d)
SIM_PID="" TAIL_PID=""
finish() {
  [[ -n $TAIL_PID ]] && kill -TERM "$TAIL_PID" 2>/dev/null && wait "$TAIL_PID" 2>/dev/null
  [[ -n $SIM_PID ]] && kill -TERM "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap finish EXIT

say "Starting the Konnect emulator"
"$BIN/konnect-sim" --listen 127.0.0.1:0 --retry-wait-ms 200 >"$WORK/sim.env" 2>"$WORK/sim.log" &
SIM_PID=$!
for _ in $(seq 100); do [[ -s $WORK/sim.env ]] && break; sleep 0.05; done
# The emulator prints: KONNECT_BASE_URL=http://127.0.0.1:PORT KONNECT_PAT=kpat_...
eval "$(cat "$WORK/sim.env")"
echo "Konnect emulator at $KONNECT_BASE_URL"
api() { curl -fsS -H "Authorization: Bearer $KONNECT_PAT" "$KONNECT_BASE_URL$1"; }
admin() { curl -fsS -X POST -H 'Content-Type: application/json' -d "$2" "$KONNECT_BASE_URL/_sim/$1" >/dev/null; }
echo "Regional webhook before: $(api /v2/audit-log-webhook)"
# The organisation's people: records name them by id, and tables show
# their names (looked up once, then cached per profile).
admin users '{"email":"ada@example.com","full_name":"Ada Lovelace"}'
admin users '{"email":"grace@example.com","full_name":"Grace Hopper"}'
admin system-accounts '{"name":"terraform-ci"}'

export XDG_CONFIG_HOME=$WORK/config
export KONGCTL_DEFAULT_KONNECT_PAT=$KONNECT_PAT   # the PAT never goes on a command line
PUBLIC=demo.tunnel.test
FILTER='{ts: .event_ts, event: .name, principal: .principal_id, trace_id}'

say "kongctl tail --jq '$FILTER'"
# --check off: the emulator's tunnel host exists only inside the emulator,
# so kongctl's own probe through it could not resolve the name.
"$BIN/kongctl" tail --base-url "$KONNECT_BASE_URL" \
  --endpoint "https://$PUBLIC/audit-logs" --listen-address 127.0.0.1:0 --check off \
  --authorization "Bearer demo-$RANDOM$RANDOM" --log-level info \
  --jq "$FILTER" &
TAIL_PID=$!

STATE=$XDG_CONFIG_HOME/kongctl/audit-logs/default/listener.json
for _ in $(seq 200); do [[ -s $STATE ]] && grep -q '"running": true' "$STATE" && break; sleep 0.05; done
ADDR=$(sed -n 's/.*"listen_address": "\([^"]*\)".*/\1/p' "$STATE")
echo "(listening on $ADDR; the emulator plays the tunnel https://$PUBLIC -> $ADDR)" >&2
admin tunnels "{\"host\":\"$PUBLIC\",\"target\":\"$ADDR\"}"
echo "Regional webhook now: $(api /v2/audit-log-webhook)" >&2

say "Konnect delivers 3 batches of audit events"
for n in 4 7 5; do
  admin trigger "{\"count\":$n}"
  sleep 0.5
done

say "Ctrl+C (SIGINT) the tail: it drains, then removes the webhook and the destination"
kill -INT "$TAIL_PID"
wait "$TAIL_PID" && echo "kongctl exited 0"
TAIL_PID=""

say "Afterwards"
EVENTS=$XDG_CONFIG_HOME/kongctl/audit-logs/default/events.jsonl
echo "events.jsonl: $(wc -l <"$EVENTS") records stored ($EVENTS)"
echo "first stored record: $(head -c 160 "$EVENTS")..."
echo "Regional webhook after: $(api /v2/audit-log-webhook)"
echo "Destinations after: $(api /v3/audit-log-destinations)"
grep -o 'Listener stopped[^"]*' "$XDG_CONFIG_HOME/kongctl/logs/kongctl.log" | tail -1 || true

say "Read the store back: kongctl get audit-logs --stored --type authorization --limit 3"
# What the listener stored, queried from its files; only the principals'
# names come from Konnect (the emulator here, hence --base-url: without it
# they would be looked up at the real Konnect, since a token is at hand).
"$BIN/kongctl" get audit-logs --base-url "$KONNECT_BASE_URL" --stored --type authorization --limit 3

say "Without a tunnel: kongctl get audit-logs --since 10m -o jsonl"
# Konnect keeps every event for its pull API: the same 16, no webhook needed.
"$BIN/kongctl" get audit-logs --base-url "$KONNECT_BASE_URL" --since 10m -o jsonl >"$WORK/pulled.jsonl"
echo "pulled $(wc -l <"$WORK/pulled.jsonl") records; the first:"
head -n 1 "$WORK/pulled.jsonl"
say "And the five most recent as a table: kongctl get audit-logs --limit 5"
"$BIN/kongctl" get audit-logs --base-url "$KONNECT_BASE_URL" --limit 5
