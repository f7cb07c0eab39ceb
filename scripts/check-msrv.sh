#!/usr/bin/env bash
# Checks the declared MSRV (`rust-version` in Cargo.toml) against what the
# lockfile and the code need, without the old toolchain itself (CI has only
# the current stable Rust, and `cargo +1.88 check` would need to fetch one).
#
#   scripts/check-msrv.sh
#
# Fails if
#   - a package in Cargo.lock (any target platform, dev-dependencies too)
#     declares a `rust-version` above a workspace member's: our MSRV would
#     be a lie for anyone building with --locked;
#   - a workspace member declares less than LANGUAGE_FLOOR below, the newest
#     language feature the code is known to use.
#
# What it does not cover: a dependency that uses a newer Rust without saying
# so in its `rust-version`; a language feature newer than LANGUAGE_FLOOR
# that nobody raised the floor for (clippy's `incompatible_msrv`, run by
# `cargo clippy`, catches std APIs newer than the MSRV, not syntax); and
# compiler behaviour of the old toolchain. Only building with that toolchain
# covers those.
#
# Needs cargo and python3 (no jq).
set -euo pipefail
cd "$(dirname "$0")/.."

# let chains (`if let … && …`), stable since Rust 1.88.
LANGUAGE_FLOOR=1.88

# The check itself; cargo metadata's JSON arrives on stdin.
check=$(
    cat <<'PY'
import json, os, sys

def version(v):
    parts = [int(p) for p in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
floor = os.environ["LANGUAGE_FLOOR"]
failed = False
ours = {}
for p in meta["packages"]:
    if p["id"] not in members:
        continue
    name, declared = p["name"], p.get("rust_version")
    if not declared:
        print(f"{name}: no rust-version declared", file=sys.stderr)
        failed = True
        continue
    ours[name] = declared
    if version(declared) < version(floor):
        print(
            f"{name}: rust-version {declared} is below {floor}, the newest "
            "language feature the code uses (LANGUAGE_FLOOR)",
            file=sys.stderr,
        )
        failed = True
if not ours:
    sys.exit("no workspace member declares a rust-version")
msrv_name, msrv = min(ours.items(), key=lambda kv: version(kv[1]))
deps = [p for p in meta["packages"] if p["id"] not in members]
declaring = [p for p in deps if p.get("rust_version")]
for p in sorted(declaring, key=lambda p: (version(p["rust_version"]), p["name"])):
    if version(p["rust_version"]) > version(msrv):
        print(
            f"{p['name']} {p['version']} needs Rust {p['rust_version']}, "
            f"above {msrv_name}'s rust-version {msrv}",
            file=sys.stderr,
        )
        failed = True
highest = max(declaring, key=lambda p: version(p["rust_version"]), default=None)
print(
    f"rust-version {msrv}; {len(declaring)} of {len(deps)} locked packages declare one"
    + (f", the highest {highest['name']} {highest['rust_version']}" if highest else "")
)
sys.exit(1 if failed else 0)
PY
)

cargo metadata --format-version 1 --locked | LANGUAGE_FLOOR="$LANGUAGE_FLOOR" python3 -c "$check"
