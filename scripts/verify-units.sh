#!/usr/bin/env bash
# Checks contrib/systemd's unit files with `systemd-analyze verify`: the
# system template and the user one, each as an instance (kongctl-listen@ci),
# with ExecStart pointed at the kongctl built here (verify wants the binary
# to exist). Any message verify prints fails the check, not only its exit
# code: it reports unknown settings and bad values on stderr and exits 0.
#
#   scripts/verify-units.sh [path/to/kongctl]   (default: target/debug/kongctl)
#
# Without systemd-analyze: installs Debian's systemd package when running as
# root with apt-get, else skips with a message (exit 0).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v systemd-analyze >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "systemd-analyze missing: installing Debian's systemd package"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
    else
        echo "skipped: systemd-analyze is not installed (and not root with apt-get to install it)"
        exit 0
    fi
fi

bin=$(realpath "${1:-target/debug/kongctl}")
[ -x "$bin" ] || { echo "no kongctl binary at $bin (cargo build first)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
check() { # <unit file> <binary path in it> [--user]
    local unit=$1 exe=$2 mode=${3:-}
    local dir="$work/$(basename "$(dirname "$unit")")"
    mkdir -p "$dir" "$work/runtime"
    sed "s|$exe|$bin|g" "$unit" > "$dir/kongctl-listen@.service"
    local out
    if ! out=$(XDG_RUNTIME_DIR="$work/runtime" systemd-analyze $mode verify "$dir/kongctl-listen@ci.service" 2>&1) || [ -n "$out" ]; then
        echo "FAIL $unit${mode:+ ($mode)}:"
        echo "$out"
        failed=1
    else
        echo "ok   $unit${mode:+ ($mode)}"
    fi
}
check contrib/systemd/kongctl-listen@.service /usr/local/bin/kongctl
check contrib/systemd/user/kongctl-listen@.service '%h/.local/bin/kongctl' --user
exit $failed
