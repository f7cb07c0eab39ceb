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
# emulated Konnect clean. Everything runs on 127.0.0.1 against the bundled
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
KONGCTL_CRASH_KILLS="$kills" KONGCTL_CRASH_SECONDS="$seconds" \
	timeout --signal=INT --kill-after=30 "$((seconds + 300))" \
	cargo test "${profile[@]}" --test crash kill_9_under_load -- --nocapture --test-threads=1 \
	2>&1 | tee "$log" || status=$?

echo
grep -h '^crash summary:' "$log" || echo "no summary: the test failed (status $status)"
exit "$status"
