#!/usr/bin/env bash
# Crash test, long form: kill -9 a listener under load many times.
#
#   scripts/crash-test.sh [KILLS] [SECONDS]        (defaults: 200 kills, 900 s)
#
# Runs tests/crash.rs's `kill_9_under_load_loses_no_acknowledged_record`
# with KILLS rounds, stopping early once SECONDS have passed. Each round puts
# a listener of one profile under load from 8 client threads (gzip and plain
# batches of unique records over keep-alive connections), SIGKILLs it at a
# random moment or in the middle of a write, restarts the profile and checks:
# every record that got a 202 is in events.jsonl exactly once as a whole
# line, a torn final line was repaired and reported, the dead listener's
# destination and webhook were reclaimed; at the end a clean stop leaves the
# emulated Konnect clean. Then the store's own steps:
# `kill_9_under_load_while_rotating_loses_and_duplicates_nothing` (KILLS/4
# rounds, at least 1, within SECONDS: random kills under load while the store
# rotates every 64 KiB and gzips in the background; the whole store must hold
# every acknowledged record exactly once) and
# `kill_9_inside_each_store_step_loses_and_duplicates_nothing` (a kill inside
# each step of rotation, compression and retention deletion; the next start
# must finish or undo it and say so). Everything runs on 127.0.0.1 against the bundled
# emulator, in a temporary directory that is removed afterwards (the events
# file is kept under 64 MiB plus one round).
#
# Environment: KONGCTL_CRASH_SEED=N replays a run (the seed is printed);
# CRASH_PROFILE=release tests the release build (slow to build: LTO).
# Exit status is the test's; the last line is the summary.
set -euo pipefail
cd "$(dirname "$0")/.."

kills="${1:-200}"
seconds="${2:-900}"
case "$kills$seconds" in
*[!0-9]*) echo "usage: $0 [KILLS] [SECONDS]" >&2; exit 2 ;;
esac

profile=()
if [[ "${CRASH_PROFILE:-debug}" == release ]]; then
	profile=(--release)
fi

echo "== building"
cargo test "${profile[@]}" --test crash --no-run

echo "== crash test: up to $kills kills, up to ${seconds}s"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
# The budget stops new rounds; the hard limit also covers the last round and
# the final checks.
rotate_kills=$((kills / 4 > 0 ? kills / 4 : 1))
KONGCTL_CRASH_KILLS="$kills" KONGCTL_CRASH_ROTATE_KILLS="$rotate_kills" \
	KONGCTL_CRASH_SECONDS="$seconds" \
	timeout --signal=INT --kill-after=30 "$((2 * seconds + 300))" \
	cargo test "${profile[@]}" --test crash -- kill_9_under_load kill_9_inside_each_store_step \
	--nocapture --test-threads=1 2>&1 | tee "$log" || status=$?

echo
grep -ho 'crash: kill inside .*' "$log" || true
grep -ho 'crash rotate: round .*' "$log" | tail -n 1 || true
grep -h '^crash summary:' "$log" || echo "no summary: the test failed (status $status)"
exit "$status"
