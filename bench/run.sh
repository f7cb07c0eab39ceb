#!/usr/bin/env bash
# bench/run.sh [--quick]: kongctl's performance, side by side with the
# baselines, in one run on this machine, with what it measures verified.
#
#   ingest   records/s and p50/p99 latency at 1, 8 and 64 concurrent senders,
#            gzip and plain batches of 50 records (~800 B each), against:
#              kongctl   `kongctl listen` (release build) started as a user
#                        would (default flags), against the bundled Konnect
#                        emulator, which creates the destination and webhook
#                        and delivers a batch through a tunnel mapping to it;
#                        the load then goes to the listen address. Real
#                        files, fsync before 202. Every record is signed as
#                        Konnect signs it, by the emulator's key (its JWKS
#                        serves it), so each costs one real, passing Ed25519
#                        check. After the load, the time until the checker
#                        has checked every stored record (verify.pending 0)
#                        and verify.valid == records stored are verified.
#              kongctl-reject, kongctl-off   the same with --verify reject
#                        and --verify off
#              kongctl-random   default flags on the same bodies with random
#                        sig values (no Ed25519 work: the easier corpus)
#              go-model  the Go model of the original listener in
#                        bench/baseline (its checks, its gzip rule, its
#                        store: one fsync per request under a mutex), built
#                        with go. It decodes only a Content-Encoding that
#                        lists the coding "gzip", as the original did, so
#                        its gzip batches say "gzip" where kongctl's say
#                        "application/gzip" (what Konnect sends).
#              nginx     `return 202` (reads the body, no decoding or storing)
#            plus one core's bare gunzip rate of the same gzip bodies.
#            Targets are interleaved per cell; each cell is repeated.
#   tail     `kongctl tail-file --jq EXPR` (tail's own follow/filter/printer
#            code on a file) against `gojq -c EXPR` on the same corpus,
#            3 expressions, outputs compared.
#   memory   idle RSS, peak RSS (VmHWM) during the ingest runs and under a
#            gzip bomb; startup to listening; release binary size.
#   stored   `kongctl get audit-logs --stored --limit 0 --type authorization
#            -o jsonl --jq EXPR` over a ~1 GB store (gzip'd segments and an
#            active file, written by `kongctl-bench store`) against
#            `zcat segments; cat active | gojq -c 'select(...) | EXPR'`,
#            outputs compared byte for byte; the same query over a store whose
#            active file is ~128 MiB (peak RSS); and `--since 1h` over 365
#            daily segments against the same query over 1 segment.
#   grep     `kongctl get audit-logs --stored --limit 0 -o jsonl --grep PAT`
#            over the ~1 GB store against `{ zcat segments; cat active; } |
#            rg PAT` (both writing to a file), outputs compared byte for
#            byte (the store is in time order, so both print stored order).
#   summary  `kongctl get audit-logs --stored --summary` against `--limit 0
#            -o jsonl` of the same store: a year of daily segments (365 x
#            DAY_RECORDS records, and an active file), runs alternating;
#            the summary's record count checked against the jsonl lines.
#            Not in the default PARTS.
#
# Every acknowledged record must be in the events file (lines >= 2xx x 50,
# each line one JSON object) and tail outputs must match, else the run fails
# (exit 1) after writing its report. The report (markdown) goes to
# bench/results/<timestamp>.md and stdout.
#
# Knobs (env), full / --quick:
#   DURATION=10s / 3s        wrk duration of each ingest cell
#   REPEATS=3 / 1            rounds over all cells (targets interleaved)
#   CONCURRENCY="1 8 64"     ENCODINGS="gzip plain"
#   TARGETS="kongctl kongctl-reject kongctl-off kongctl-random go-model nginx"
#   TAIL_RECORDS=200000 / 50000   TAIL_RUNS=5 / 2   STARTUP_RUNS=21 / 7
#   WRK_THREADS=2            wrk threads for more than one sender
#   PARTS="ingest memory startup tail stored"   what to measure (the report shows
#                            those; `grep` is measured when asked: PARTS="stored tail grep")
#   STORE_SEGMENTS=8 / 2  STORE_SEGMENT_RECORDS=225000  STORE_ACTIVE_RECORDS=100000
#                            the big store (~550 B a record: ~1 GB / ~300 MB)
#   STORED_RUNS=3 / 1        runs of the big stored query per tool
#   STORE_BIG_ACTIVE_RECORDS=225000   records of the big active file (~128 MiB)
#                            of the second stored case (2 segments besides it)
#   GREP_PATTERN='Authz\.(teams|control-planes)'   GREP_RUNS=3 / 1
#   DAY_RECORDS=1000         records per daily segment (365 of them, and 1)
#   SINCE_RUNS=11 / 5        runs of each --since 1h query
#   SUMMARY_RUNS=3 / 5       runs of each command of the summary part
#   STORED_B=                a second kongctl binary to time on the big
#                            stored query (tool kongctl-b), e.g. an older build
#   GUNZIP_SECS=3 / 1        length of each one-core gunzip measurement
#   SIGNED=1                 1: the bodies' records are signed by the
#                            emulator's key (the bench's fixed test key,
#                            installed in the emulator with
#                            POST /_sim/signing-keys/rotate), as Konnect
#                            signs them; 0: random sig values for every
#                            kongctl target (the easier corpus)
#   SIGCHECK_SECS=3 / 1      length of each one-core signature check case
#   GO_MODEL=bench/baseline  the Go model to build: a Go module directory,
#                            or one .go file (built GOPATH-style) taking the
#                            same -addr -path -auth -file flags
#   ADMIN_SCRAPE=0           1 adds target kongctl-admin: the same listener
#                            with --admin-address 127.0.0.1:0, its /metrics
#                            fetched with curl every 100 ms during the load
#                            (every scrape must answer 200), interleaved
#                            with kongctl, and a table of the two
#   KONGCTL_B=               a second kongctl binary (e.g. a baseline commit's
#                            release build): adds targets kongctl-b and
#                            kongctl-reject-b, run as kongctl and
#                            kongctl-reject are, interleaved with them; the
#                            log and the TSV have their rounds
#   GO_MODEL_B=              a second model (same forms) to compare with
#                            GO_MODEL: adds target go-model-b, interleaved
#                            with the others, and a table of the two
#   WORK_DIR=<mktemp -d>     scratch (bodies, corpus, events files; removed)
#   KEEP_WORK=0              1 keeps WORK_DIR for inspection
#   NO_BUILD=0               1 uses the existing target/release binaries
# Needs: cargo, and wrk, gojq, go, nginx, curl (installed with apt-get when
# missing and running as root). Traffic goes to 127.0.0.1 only; every
# process started is stopped by its pid.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=0
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done
if ((QUICK)); then q() { echo "$1"; }; else q() { echo "$2"; }; fi
DURATION=${DURATION:-$(q 3s 10s)}
REPEATS=${REPEATS:-$(q 1 3)}
CONCURRENCY=${CONCURRENCY:-1 8 64}
ENCODINGS=${ENCODINGS:-gzip plain}
TARGETS=${TARGETS:-kongctl kongctl-reject kongctl-off kongctl-random go-model nginx}
TAIL_RECORDS=${TAIL_RECORDS:-$(q 50000 200000)}
TAIL_RUNS=${TAIL_RUNS:-$(q 2 5)}
STARTUP_RUNS=${STARTUP_RUNS:-$(q 7 21)}
WRK_THREADS=${WRK_THREADS:-2}
GUNZIP_SECS=${GUNZIP_SECS:-$(q 1 3)}
SIGNED=${SIGNED:-1}
SIGCHECK_SECS=${SIGCHECK_SECS:-$(q 1 3)}
# The bench's signing key (bench/tools/src/sign.rs): 32 bytes of 7.
SIGNING_SEED=$(printf '\007%.0s' $(seq 32) | base64 | tr '+/' '-_' | tr -d '=\n')
GO_MODEL=${GO_MODEL:-$REPO/bench/baseline}
[[ $GO_MODEL == /* ]] || GO_MODEL=$PWD/$GO_MODEL
GO_MODEL_B=${GO_MODEL_B:-}
ADMIN_SCRAPE=${ADMIN_SCRAPE:-0}
if [[ $ADMIN_SCRAPE == 1 && " $TARGETS " != *" kongctl-admin "* ]]; then
  TARGETS="$TARGETS kongctl-admin"
fi
if [[ -n $GO_MODEL_B ]]; then
  [[ $GO_MODEL_B == /* ]] || GO_MODEL_B=$PWD/$GO_MODEL_B
  [[ " $TARGETS " == *" go-model-b "* ]] || TARGETS="$TARGETS go-model-b"
fi
KONGCTL_B=${KONGCTL_B:-}
if [[ -n $KONGCTL_B ]]; then
  [[ $KONGCTL_B == /* ]] || KONGCTL_B=$PWD/$KONGCTL_B
  [[ -x $KONGCTL_B ]] || { echo "KONGCTL_B=$KONGCTL_B is not an executable" >&2; exit 1; }
  [[ " $TARGETS " == *" kongctl-b "* ]] || TARGETS="$TARGETS kongctl-b"
  [[ " $TARGETS " != *" kongctl-reject "* || " $TARGETS " == *" kongctl-reject-b "* ]] ||
    TARGETS="$TARGETS kongctl-reject-b"
fi
KEEP_WORK=${KEEP_WORK:-0}
NO_BUILD=${NO_BUILD:-0}
PARTS=${PARTS:-ingest memory startup tail stored}
STORE_SEGMENTS=${STORE_SEGMENTS:-$(q 2 8)}
STORE_SEGMENT_RECORDS=${STORE_SEGMENT_RECORDS:-225000}
STORE_ACTIVE_RECORDS=${STORE_ACTIVE_RECORDS:-100000}
STORED_RUNS=${STORED_RUNS:-$(q 1 3)}
STORE_BIG_ACTIVE_RECORDS=${STORE_BIG_ACTIVE_RECORDS:-225000}
GREP_PATTERN=${GREP_PATTERN:-'Authz\.(teams|control-planes)'}
GREP_RUNS=${GREP_RUNS:-$(q 1 3)}
DAY_RECORDS=${DAY_RECORDS:-1000}
SINCE_RUNS=${SINCE_RUNS:-$(q 5 11)}
SUMMARY_RUNS=${SUMMARY_RUNS:-$(q 3 5)}
STORED_B=${STORED_B:-}
STORED_EXPR='{ts: .event_ts, name, principal_id, granted}'
BATCH=50
BODIES=16
AUTH="Bearer kbench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
LISTEN_PATH=/audit-logs
JQ_EXPRS=(
  '.'
  '{ts: .event_ts, name, request: (.request // null)}'
  'select(.request.status_code >= 400) | .event_id'
)

part() { [[ " $PARTS " == *" $1 "* ]]; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
FAILURES=()
fail() { log "FAIL: $*"; FAILURES+=("$*"); }

# ---------------------------------------------------------------- processes
PIDS=()
WORK=""
# stop_pid PID [GRACE_S]: SIGTERM a process we started, SIGKILL after grace.
stop_pid() {
  local pid=$1 grace=${2:-30} t=0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((t < grace * 20)); do sleep 0.05; t=$((t + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid ignored SIGTERM for ${grace}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  local kept=() p
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
  PIDS=("${kept[@]+"${kept[@]}"}")
}
cleanup() {
  local p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$p" 10; done
  if [[ -n $WORK && -d $WORK ]]; then
    if [[ $KEEP_WORK == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ tools
install_missing() {
  local missing=() pkgs=()
  command -v wrk >/dev/null || { missing+=(wrk); pkgs+=(wrk); }
  command -v gojq >/dev/null || { missing+=(gojq); pkgs+=(gojq); }
  command -v go >/dev/null || { missing+=(go); pkgs+=(golang-go); }
  command -v curl >/dev/null || { missing+=(curl); pkgs+=(curl); }
  if part grep; then command -v rg >/dev/null || { missing+=(rg); pkgs+=(ripgrep); }; fi
  [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || { missing+=(nginx); pkgs+=(nginx-light); }
  command -v cargo >/dev/null || die "cargo is required (install Rust: https://rustup.rs)"
  ((${#missing[@]} == 0)) && return 0
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing missing tools (${missing[*]}): apt-get install -y ${pkgs[*]}"
    apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null ||
      die "apt-get install ${pkgs[*]} failed"
  else
    die "missing: ${missing[*]}; install with: sudo apt-get install -y ${pkgs[*]}"
  fi
}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# ------------------------------------------------------------------ stats
# stats N...: "min median max" (median of an even count: mean of the middle two)
stats() {
  printf '%s\n' "$@" | sort -g | awk -v f="${FMT:-%.0f}" '{a[NR] = $1} END {
    if (NR == 0) { print "- - -"; exit }
    m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
    printf f " " f " " f "\n", a[1], m, a[NR] }'
}
# mmm N...: "min / median / max"
mmm() { stats "$@" | awk '{print $1 " / " $2 " / " $3}'; }
med() { stats "$@" | awk '{print $2}'; }
# kv LINE KEY: the value of KEY=... in LINE
kv() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n1; }
# col TSV COLUMN FILTER...: values of COLUMN in rows matching all name=value filters
col() {
  local tsv=$1 c=$2; shift 2
  awk -F'\t' -v c="$c" -v f="$*" '
    NR == 1 { for (i = 1; i <= NF; i++) idx[$i] = i; n = split(f, fs, " "); next }
    { ok = 1; for (j = 1; j <= n; j++) { split(fs[j], kvp, "="); if ($idx[kvp[1]] != kvp[2]) ok = 0 }
      if (ok) print $idx[c] }' "$tsv"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
vm() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# ticks PID: user + system CPU time of a process, in clock ticks
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ------------------------------------------------------------------ setup
# build_go_model SRC OUT: a module directory (its tests run first: a model
# that does not behave like the original would measure something else) or
# a single .go file.
build_go_model() {
  log "building the Go model from $1"
  if [[ -f $1/go.mod ]]; then
    (cd "$1" && go test -count=1 . >&2 && CGO_ENABLED=0 go build -trimpath -o "$2" .) ||
      die "go test or go build of $1 failed"
  elif [[ -f $1 && $1 == *.go ]]; then
    (cd "$WORK" && GO111MODULE=off CGO_ENABLED=0 go build -trimpath -o "$2" "$1") ||
      die "go build of $1 failed"
  else
    die "$1 is neither a Go module directory nor a .go file"
  fi
}

setup() {
  install_missing
  WORK=${WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/kongctl-bench.XXXXXX")}
  mkdir -p "$WORK"
  local avail_kb
  avail_kb=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
  ((avail_kb > 4 * 1024 * 1024)) || die "less than 4 GiB free under $WORK ($(df -h "$WORK" | awk 'NR==2{print $4}'))"
  log "work dir $WORK ($(df -h "$WORK" | awk 'NR==2{print $4}') free)"

  if [[ $NO_BUILD != 1 ]]; then
    log "building kongctl, konnect-sim and kongctl-bench (release)"
    # kongctl on its own, as `cargo install` builds it: built together with
    # the emulator it would get the features the emulator's dependencies
    # turn on (all of regex's Unicode tables, for one), and a larger binary.
    # The linker's map says whether link/listener.order still names this
    # build's functions (scripts/order-file.sh).
    (cd "$REPO" && cargo build --release --locked --quiet -p konnect-sim -p kongctl-bench &&
      KONGCTL_LINK_MAP=$WORK/kongctl.map cargo build --release --locked --quiet -p kongctl)
    if [[ -s $WORK/kongctl.map ]] && command -v python3 >/dev/null; then
      LAYOUT=$(python3 "$REPO/scripts/order-file.py" placed "$REPO/link/listener.order" "$WORK/kongctl.map" 2>&1) || true
    else
      LAYOUT="no map (a linker other than lld, or KONGCTL_NO_ORDER_FILE set?)"
    fi
    log "code layout: $LAYOUT"
  fi
  local rel=${CARGO_TARGET_DIR:-$REPO/target}/release
  KONGCTL=$rel/kongctl SIM=$rel/konnect-sim TOOL=$rel/kongctl-bench
  for b in "$KONGCTL" "$SIM" "$TOOL"; do
    # The emulator is for the listener parts only.
    [[ $b == "$SIM" ]] && ! part ingest && ! part memory && ! part startup && continue
    [[ -x $b ]] || die "missing $b"
  done

  mkdir -p "$WORK/bin"
  if part ingest; then
    build_go_model "$GO_MODEL" "$WORK/bin/go-model"
    [[ -z $GO_MODEL_B ]] || build_go_model "$GO_MODEL_B" "$WORK/bin/go-model-b"
  fi

  log "generating bodies, bomb and a $TAIL_RECORDS-record corpus"
  local signed=()
  [[ $SIGNED == 1 ]] && signed=(--signed)
  BODY_INFO=$("$TOOL" bodies --records $BATCH --bodies $BODIES --seed 42 "${signed[@]+"${signed[@]}"}" --out "$WORK/bodies")
  # The same bodies with random sig values, for kongctl-random.
  "$TOOL" bodies --records $BATCH --bodies $BODIES --seed 42 --out "$WORK/bodies-random" >/dev/null
  if part ingest; then
    log "one core's signature checks (single, batches of 50 and 1024)"
    SIGCHECK=$("$TOOL" sigcheck --list "$WORK/bodies-random/list.plain" --secs "$SIGCHECK_SECS")
  fi
  BOMB_INFO=$("$TOOL" bomb --decoded-mib 64 --out "$WORK/bomb.gz")
  echo "$WORK/bomb.gz" >"$WORK/list.bomb"
  if part tail; then
    CORPUS_INFO=$("$TOOL" corpus --records "$TAIL_RECORDS" --seed 7 --out "$WORK/corpus.jsonl")
  fi

  # Only the listener parts need the emulator.
  part ingest || part memory || part startup || return 0
  log "starting the Konnect emulator"
  "$SIM" --listen 127.0.0.1:0 --retry-wait-ms 50 >"$WORK/sim.env" 2>"$WORK/sim.log" &
  PIDS+=($!)
  local t=0
  until [[ -s $WORK/sim.env ]]; do
    ((t++ < 200)) || die "emulator did not start: $(cat "$WORK/sim.log")"
    sleep 0.05
  done
  SIM_URL=$(sed -n 's/.*KONNECT_BASE_URL=\([^ ]*\).*/\1/p' "$WORK/sim.env")
  SIM_PAT=$(sed -n 's/.*KONNECT_PAT=\([^ ]*\).*/\1/p' "$WORK/sim.env")
  [[ -n $SIM_URL && -n $SIM_PAT ]] || die "cannot read the emulator's address from $WORK/sim.env"
  # Konnect's key is the bench's: the emulator signs with it and serves it
  # in its JWKS, which kongctl fetches at start.
  curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"seed\":\"$SIGNING_SEED\"}" \
    "$SIM_URL/_sim/signing-keys/rotate" >/dev/null || die "cannot set the emulator's signing key"
}

# ------------------------------------------------------------------ targets
# start_target NAME: starts it fresh; sets TPID URL EVENTS RDIR PRE_RECORDS
START_N=0
start_target() {
  START_N=$((START_N + 1))
  RDIR=$WORK/run.$START_N
  mkdir -p "$RDIR"
  PRE_RECORDS=0
  case $1 in
    kongctl | kongctl-random) start_kongctl warn ;;
    kongctl-admin) start_kongctl warn --admin-address 127.0.0.1:0 ;;
    kongctl-reject) start_kongctl reject ;;
    kongctl-off) start_kongctl off ;;
    kongctl-b) KONGCTL_BIN=$KONGCTL_B start_kongctl warn ;;
    kongctl-reject-b) KONGCTL_BIN=$KONGCTL_B start_kongctl reject ;;
    go-model) start_go_model "$WORK/bin/go-model" ;;
    go-model-b) start_go_model "$WORK/bin/go-model-b" ;;
    nginx) start_nginx ;;
    *) die "unknown target $1" ;;
  esac
}

# Both listen commands pass --check off: the emulator's tunnel hosts resolve
# only inside the emulator, and the Go model has no tunnel self-test, so the
# probe (one round trip through the real tunnel, at most 3 s) is not part of
# what is compared.
# start_kongctl VERIFY_MODE [EXTRA_FLAG...]
start_kongctl() {
  # --max-file-size 0: one events file, as the Go model writes, so that
  # verify counts every record (a cell writes more than the default 128 MiB).
  # The state file is refreshed every 100 ms (test-only knob; nothing on
  # the request path) so that verify.pending's drain is timed finely.
  local state=$RDIR/config/kongctl/audit-logs/default/listener.json t=0 host addr report
  STATE=$state
  host=bench-$START_N.tunnel.test
  XDG_CONFIG_HOME=$RDIR/config KONGCTL_DEFAULT_KONNECT_PAT=$SIM_PAT KONGCTL_TEST_STATE_REFRESH=100ms \
    "${KONGCTL_BIN:-$KONGCTL}" listen --base-url "$SIM_URL" --endpoint "https://$host$LISTEN_PATH" \
    --listen-address 127.0.0.1:0 --authorization "$AUTH" --check off --verify "$1" --max-file-size 0 "${@:2}" >"$RDIR/target.log" 2>&1 &
  TPID=$!
  PIDS+=("$TPID")
  until grep -q '"running": true' "$state" 2>/dev/null; do
    kill -0 "$TPID" 2>/dev/null || die "kongctl exited: $(cat "$RDIR/target.log")"
    ((t++ < 400)) || die "kongctl not ready after 20 s: $(cat "$RDIR/target.log")"
    sleep 0.05
  done
  addr=$(sed -n 's/.*"listen_address": "\([^"]*\)".*/\1/p' "$state")
  ADMIN=$(sed -n 's/.*"admin_address": "\([^"]*\)".*/\1/p' "$state")
  URL=http://$addr$LISTEN_PATH
  EVENTS=$RDIR/config/kongctl/audit-logs/default/events.jsonl
  # The tunnel a user would run (https://host -> the listener), then one
  # delivery by the emulator through it: the destination and webhook that
  # kongctl configured work end to end.
  curl -fsS -X POST -H 'Content-Type: application/json' \
    -d "{\"host\":\"$host\",\"target\":\"$addr\"}" "$SIM_URL/_sim/tunnels" >/dev/null
  report=$(curl -fsS -X POST -d "{\"count\":$BATCH}" "$SIM_URL/_sim/trigger")
  grep -q '"not_delivered":null' <<<"$report" && grep -q '"delivered":true' <<<"$report" ||
    die "the emulator could not deliver to kongctl: ${report:0:400}"
  PRE_RECORDS=$BATCH
}

# start_go_model BINARY
start_go_model() {
  local port
  port=$("$TOOL" free-port)
  # Where the original keeps the default profile's events.
  EVENTS=$RDIR/config/kongctl/audit-logs/default/events.jsonl
  mkdir -p "$(dirname "$EVENTS")"
  URL=http://127.0.0.1:$port$LISTEN_PATH
  "$1" -addr "127.0.0.1:$port" -path "$LISTEN_PATH" -auth "$AUTH" \
    -file "$EVENTS" >"$RDIR/target.log" 2>&1 &
  TPID=$!
  PIDS+=("$TPID")
  wait_port "$port"
}

start_nginx() {
  local port
  port=$("$TOOL" free-port)
  EVENTS=""
  URL=http://127.0.0.1:$port$LISTEN_PATH
  mkdir -p "$RDIR/body"
  cat >"$RDIR/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $RDIR/nginx.pid;
error_log $RDIR/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_max_body_size 2m;
  client_body_buffer_size 2m;
  client_body_temp_path $RDIR/body;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    location = $LISTEN_PATH { return 202; }
    location / { return 404; }
  }
}
EOF
  "$NGINX" -p "$RDIR" -c "$RDIR/nginx.conf" -e "$RDIR/error.log" >"$RDIR/target.log" 2>&1 &
  TPID=$!
  PIDS+=("$TPID")
  wait_port "$port"
}

wait_port() {
  local t=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    kill -0 "$TPID" 2>/dev/null || die "target exited: $(cat "$RDIR/target.log")"
    ((t++ < 400)) || die "port $1 not accepting after 20 s"
    sleep 0.05
  done
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" || true; }

# start_scraper: fetches $ADMIN/metrics every 100 ms, one line per scrape
# (its status) in $RDIR/scrapes; sets SCRAPER.
start_scraper() {
  [[ -n $ADMIN ]] || die "kongctl-admin: no admin_address in listener.json"
  (while :; do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 "http://$ADMIN/metrics" >>"$RDIR/scrapes" || echo 000 >>"$RDIR/scrapes"
    sleep 0.1
  done) &
  SCRAPER=$!
  PIDS+=("$SCRAPER")
}

# gzip_coding TARGET: the Content-Encoding of gzip batches sent to TARGET.
# Konnect sends "application/gzip"; the original decoded only a listed
# coding "gzip" and would store the compressed bytes as they came, so its
# model is sent what it decodes.
gzip_coding() { if [[ $1 == go-model* ]]; then echo gzip; else echo application/gzip; fi; }
# bodies TARGET: the directory of the bodies TARGET is sent.
bodies() { if [[ $1 == kongctl-random || $SIGNED != 1 ]]; then echo "$WORK/bodies-random"; else echo "$WORK/bodies"; fi; }

# drain: after the load, waits (at most 600 s) until kongctl's checker has
# checked every stored record (listener.json's verify.pending is 0); sets
# DRAIN (seconds, or "-" without a checker) and VALID (verify.valid then).
drain() {
  local s e pending
  DRAIN=-; VALID=-
  s=$(date +%s%N)
  while :; do
    pending=$(sed -n 's/.*"pending": \([0-9]*\).*/\1/p' "$STATE")
    [[ -n $pending ]] || return 0
    [[ $pending == 0 ]] && break
    (( ($(date +%s%N) - s) / 1000000000 < 600 )) || { fail "verify.pending still $pending 600 s after the load"; return 0; }
    sleep 0.05
  done
  e=$(date +%s%N)
  DRAIN=$(awk -v n=$((e - s)) 'BEGIN {printf "%.2f", n / 1e9}')
  VALID=$(sed -n 's/.*"valid": \([0-9]*\).*/\1/p' "$STATE")
}

# preflight: a wrong Authorization gets 401, one gzip batch gets 202.
# Sets PRE_OK (2xx batches sent here).
preflight() {
  local body code
  body=$(head -n1 "$(bodies "$1")/list.gzip")
  code=$(http_code -X POST -H 'Authorization: Bearer wrong' -H "Content-Encoding: $(gzip_coding "$1")" \
    --data-binary @"$body" "$URL")
  [[ $code == 401 || $1 == nginx ]] || fail "$1: wrong Authorization got $code, not 401"
  code=$(http_code -X POST -H "Authorization: $AUTH" -H "Content-Encoding: $(gzip_coding "$1")" \
    --data-binary @"$body" "$URL")
  [[ $code == 202 ]] || die "$1: a valid batch got $code, not 202 (see $RDIR/target.log)"
  PRE_OK=1
}

# load LIST CONTENT_ENCODING CONNS DURATION: runs wrk, prints its RESULT
# line (CONTENT_ENCODING empty: no such header)
load() {
  local threads=$WRK_THREADS out
  (($3 == 1)) && threads=1
  out=$(BENCH_LIST=$1 BENCH_AUTH=$AUTH BENCH_ENCODING=$2 wrk -t"$threads" -c"$3" -d"$4" \
    --timeout 10s -s "$REPO/bench/post.lua" "$URL" 2>&1) || { echo "$out" >&2; return 1; }
  grep '^RESULT' <<<"$out" || { echo "$out" >&2; return 1; }
}

# ------------------------------------------------------------------ ingest
ingest() {
  INGEST=$WORK/ingest.tsv
  GUNZIP=$WORK/gunzip.tsv
  printf 'target\tenc\tconc\trep\tok\tsecs\trecs\tp50\tp99\tnon2xx\tsockerr\tverify\thwm_kib\tcpu\tdrain\tvalid\tstored\n' >"$INGEST"
  printf 'rep\trecs\tmb\n' >"$GUNZIP"
  DISK=$WORK/disk.tsv
  printf 'rep\tgroup\trecs\tmb\n' >"$DISK"
  local rep enc c target res ok secs recs lines hwm v order=($TARGETS) gz t0 t1 cpu
  for rep in $(seq 1 "$REPEATS"); do
    for enc in $ENCODINGS; do
      if [[ $enc == gzip ]]; then
        res=$("$TOOL" gunzip --list "$WORK/bodies/list.gzip" --secs "$GUNZIP_SECS")
        printf '%s\t%s\t%s\n' "$rep" "$(kv "$res" records_per_s)" "$(kv "$res" decoded_mb_per_s)" >>"$GUNZIP"
        log "rep $rep one-core gunzip: $(kv "$res" records_per_s) records/s"
      else
        for g in 8 64; do
          res=$("$TOOL" disk --list "$WORK/bodies/list.plain" --file "$WORK/disk.dat" --group $g --secs "$GUNZIP_SECS")
          printf '%s\t%s\t%s\t%s\n' "$rep" $g "$(kv "$res" records_per_s)" "$(kv "$res" mb_per_s)" >>"$DISK"
          log "rep $rep disk ceiling, $g bodies per fdatasync: $(kv "$res" records_per_s) records/s"
        done
      fi
      for c in $CONCURRENCY; do
        for target in "${order[@]}"; do
          gz=""; [[ $enc == gzip ]] && gz=$(gzip_coding "$target")
          start_target "$target"
          preflight "$target"
          [[ $target == kongctl-admin ]] && start_scraper
          t0=$(ticks "$TPID")
          res=$(load "$(bodies "$target")/list.$enc" "$gz" "$c" "$DURATION") || die "wrk failed against $target"
          t1=$(ticks "$TPID")
          if [[ $target == kongctl-admin ]]; then
            stop_pid "$SCRAPER" 1
            local scrapes bad
            scrapes=$(wc -l <"$RDIR/scrapes")
            bad=$(grep -vc '^200$' "$RDIR/scrapes" || true)
            ((scrapes > 0 && bad == 0)) || fail "kongctl-admin $enc c=$c rep=$rep: $bad of $scrapes scrapes did not get 200"
            log "rep $rep $enc c=$c kongctl-admin: $scrapes scrapes of /metrics during the load, all 200"
          fi
          DRAIN=-; VALID=-
          [[ $target == kongctl* ]] && drain
          hwm=0
          [[ $target == kongctl* || $target == go-model* ]] && hwm=$(vm "$TPID" VmHWM)
          stop_pid "$TPID"
          ok=$(($(kv "$res" requests) - $(kv "$res" non2xx)))
          secs=$(awk -v u="$(kv "$res" duration_us)" 'BEGIN {printf "%.3f", u / 1e6}')
          recs=$(awk -v n="$ok" -v b=$BATCH -v s="$secs" 'BEGIN {printf "%.0f", n * b / s}')
          cpu=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v s="$secs" 'BEGIN {printf "%.0f", t / hz / s * 100}')
          [[ $target == nginx ]] && cpu=-
          v=n/a
          stored=-
          if [[ -n $EVENTS ]]; then
            lines=$(((ok + PRE_OK) * BATCH + PRE_RECORDS))
            [[ $target == kongctl-reject* ]] && lines=$((PRE_RECORDS + (ok + PRE_OK) * BATCH * (SIGNED == 1)))
            v=$("$TOOL" verify "$EVENTS" "$lines") || fail "$target $enc c=$c rep=$rep: $v"
            v=$(kv "$v" verify)
            stored=$(wc -l <"$EVENTS")
          fi
          # Signed corpus, default flags: every stored record checked, each
          # valid.
          if [[ ($target == kongctl || $target == kongctl-b) && $SIGNED == 1 && $VALID != "$stored" ]]; then
            fail "$target $enc c=$c rep=$rep: verify.valid $VALID after the drain, $stored records stored"
          fi
          [[ $(kv "$res" non2xx) == 0 && $(kv "$res" socket_errors) == 0 ]] ||
            log "WARN $target $enc c=$c: non2xx=$(kv "$res" non2xx) socket_errors=$(kv "$res" socket_errors)"
          printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$enc" "$c" "$rep" \
            "$ok" "$secs" "$recs" "$(kv "$res" p50_us)" "$(kv "$res" p99_us)" "$(kv "$res" non2xx)" \
            "$(kv "$res" socket_errors)" "$v" "$hwm" "$cpu" "$DRAIN" "$VALID" "$stored" >>"$INGEST"
          log "rep $rep $enc c=$c $target: $recs records/s p50=$(kv "$res" p50_us)us p99=$(kv "$res" p99_us)us cpu=$cpu% verify=$v drain=${DRAIN}s valid=$VALID stored=$stored"
          rm -rf "$RDIR"
        done
      done
    done
    # Rotate who goes first, so no target always follows the same one.
    order=("${order[@]:1}" "${order[0]}")
  done
}

# ------------------------------------------------------------------ memory
memory() {
  local i rss=() body code lines
  for i in 1 2 3; do
    start_target kongctl
    sleep 1
    rss+=("$(vm "$TPID" VmRSS)")
    stop_pid "$TPID"
    rm -rf "$RDIR"
  done
  IDLE_KIB=$(med "${rss[@]}")
  log "idle RSS (kongctl, after the emulator's delivery of one batch): ${rss[*]} KiB"

  # Gzip bomb: ~64 KB that inflate to 64 MiB, from 8 then 64 senders.
  start_target kongctl
  preflight kongctl
  BOMB_RESULTS=()
  for c in 8 64; do
    local res
    res=$(load "$WORK/list.bomb" application/gzip "$c" "$(q 2s 5s)") || die "wrk failed (bomb)"
    BOMB_RESULTS+=("$(kv "$res" requests) bombs from $c senders, $(kv "$res" non2xx) refused")
    [[ $(kv "$res" requests) == "$(kv "$res" non2xx)" ]] || fail "a gzip bomb was accepted: $res"
  done
  code=$(http_code -X POST -H "Authorization: $AUTH" -H 'Content-Encoding: application/gzip' \
    --data-binary @"$WORK/bomb.gz" "$URL")
  [[ $code == 413 ]] || fail "gzip bomb got $code, not 413"
  BOMB_HWM=$(vm "$TPID" VmHWM)
  stop_pid "$TPID"
  lines=$(wc -l <"$EVENTS")
  [[ $lines == $(((PRE_OK) * BATCH + PRE_RECORDS)) ]] || fail "records stored during the bomb: $lines lines"
  rm -rf "$RDIR"
  log "gzip bomb: ${BOMB_RESULTS[*]}; peak RSS $(mib "$BOMB_HWM") MiB"
}

startup() {
  local dir=$WORK/startup port res
  mkdir -p "$dir"
  port=$("$TOOL" free-port)
  res=$(XDG_CONFIG_HOME=$dir/config KONGCTL_DEFAULT_KONNECT_PAT=$SIM_PAT "$TOOL" startup \
    --runs "$STARTUP_RUNS" --port "$port" --log "$dir/startup.log" \
    --state "$dir/config/kongctl/audit-logs/default/listener.json" -- \
    "$KONGCTL" listen --base-url "$SIM_URL" --endpoint "https://startup.tunnel.test$LISTEN_PATH" \
    --listen-address "127.0.0.1:$port" --authorization "$AUTH" --check off) || die "startup measurement failed: $res"
  STARTUP=$(grep '^startup_summary' <<<"$res")
  rm -rf "$dir"
  log "$STARTUP"
}

# ------------------------------------------------------------------ tail
tail_bench() {
  TAILTSV=$WORK/tail.tsv
  printf 'expr\ttool\trun\tsecs\n' >"$TAILTSV"
  local i run tool s e expr
  for i in "${!JQ_EXPRS[@]}"; do
    expr=${JQ_EXPRS[$i]}
    for run in $(seq 1 "$TAIL_RUNS"); do
      local tools=(kongctl gojq)
      ((run % 2 == 0)) && tools=(gojq kongctl)
      for tool in "${tools[@]}"; do
        s=$(date +%s%N)
        case $tool in
          kongctl) "$KONGCTL" tail-file --jq "$expr" "$WORK/corpus.jsonl" >/dev/null ;;
          gojq) gojq -c "$expr" "$WORK/corpus.jsonl" >/dev/null ;;
        esac
        e=$(date +%s%N)
        printf '%s\t%s\t%s\t%s\n' "$i" "$tool" "$run" "$(awk -v n=$((e - s)) 'BEGIN {printf "%.3f", n / 1e9}')" >>"$TAILTSV"
      done
    done
    # Same output? Known differences of the original's tail from `gojq -c`,
    # and only those, are normalised: Go's json.Marshal escapes <, >, &,
    # U+2028, U+2029 (applied to gojq's output), and a record with no result
    # prints `null` (those lines dropped on both sides). kongctl must also
    # print exactly one line per record and no warnings.
    local ours_lines warn same
    ours_lines=$("$KONGCTL" tail-file --jq "$expr" "$WORK/corpus.jsonl" 2>"$WORK/tail.err" | wc -l)
    warn=$(wc -l <"$WORK/tail.err")
    if cmp -s <("$KONGCTL" tail-file --jq "$expr" "$WORK/corpus.jsonl" | grep -vx null) \
      <(gojq -c "$expr" "$WORK/corpus.jsonl" | "$TOOL" go-escape | grep -vx null); then
      same=yes
    else
      same=NO
      fail "tail --jq '$expr': output differs from gojq's"
    fi
    [[ $ours_lines == "$TAIL_RECORDS" ]] || fail "tail --jq '$expr': $ours_lines lines for $TAIL_RECORDS records"
    [[ $warn == 0 ]] || fail "tail --jq '$expr': $warn warnings: $(head -c 300 "$WORK/tail.err")"
    TAIL_SAME[$i]=$same
    log "tail expr #$((i + 1)) '$expr': identical=$same"
  done
}

# ------------------------------------------------------------------ stored
# stored_cmd TOOL CONFIG: sets CMD to the stored query's command line
stored_cmd() {
  local bin=$KONGCTL
  [[ $1 == kongctl-b ]] && bin=$STORED_B
  CMD=(env XDG_CONFIG_HOME="$2" "$bin" get audit-logs --stored)
}
# timed TSV LABEL CMD...: appends LABEL, seconds and peak RSS (KiB) of CMD
# (output discarded) to TSV
timed() {
  local tsv=$1 label=$2 s e; shift 2
  s=$(date +%s%N)
  /usr/bin/time -f %M -o "$WORK/time.out" "$@" >/dev/null || fail "$label: exit $?"
  e=$(date +%s%N)
  printf '%s\t%s\t%s\n' "$label" "$(awk -v n=$((e - s)) 'BEGIN {printf "%.3f", n / 1e9}')" \
    "$(tail -n1 "$WORK/time.out")" >>"$tsv"
}
# timed_to TSV LABEL OUT CMD...: as timed, CMD's output written to OUT (for
# tools that stop early when their output is /dev/null, as rg does)
timed_to() {
  local tsv=$1 label=$2 out=$3 s e; shift 3
  s=$(date +%s%N)
  /usr/bin/time -f %M -o "$WORK/time.out" "$@" >"$out" || fail "$label: exit $?"
  e=$(date +%s%N)
  printf '%s\t%s\t%s\n' "$label" "$(awk -v n=$((e - s)) 'BEGIN {printf "%.3f", n / 1e9}')" \
    "$(tail -n1 "$WORK/time.out")" >>"$tsv"
}
# big_store: the ~1 GB store that the stored and grep parts query (written once).
big_store() {
  BIG=$WORK/store-big
  [[ -d $BIG ]] && return 0
  log "writing a store of $STORE_SEGMENTS x $STORE_SEGMENT_RECORDS + $STORE_ACTIVE_RECORDS records"
  STORE_INFO=$("$TOOL" store --segments "$STORE_SEGMENTS" --segment-records "$STORE_SEGMENT_RECORDS" \
    --active-records "$STORE_ACTIVE_RECORDS" --out "$BIG")
}
stored_bench() {
  STOREDTSV=$WORK/stored.tsv
  printf 'tool\trun\tsecs\tkib\n' >"$STOREDTSV"
  local big run tool tools n end
  big_store
  big=$BIG
  local q=(--limit 0 --type authorization -o jsonl --jq "$STORED_EXPR")
  # The baseline: the segments in stored order, then the active file, through
  # gojq with the --type as a select.
  local dir=$big/kongctl/audit-logs/default
  cat >"$WORK/gojq-store.sh" <<EOF
{ zcat "$dir"/events-*.jsonl.gz; cat "$dir/events.jsonl"; } |
  gojq -c 'select(.event_class_id == "konnect") | $STORED_EXPR'
EOF
  tools=(kongctl gojq)
  [[ -z $STORED_B ]] || tools+=(kongctl-b)
  for run in $(seq 1 "$STORED_RUNS"); do
    # Rotate which tool goes first.
    for n in $(seq 0 $((${#tools[@]} - 1))); do
      tool=${tools[$(((n + run - 1) % ${#tools[@]}))]}
      case $tool in
        gojq) timed "$STOREDTSV" "gojq	$run" bash "$WORK/gojq-store.sh" ;;
        *) stored_cmd "$tool" "$big" && timed "$STOREDTSV" "$tool	$run" "${CMD[@]}" "${q[@]}" ;;
      esac
      log "stored: $tool run $run: $(tail -n1 "$STOREDTSV" | cut -f3)s"
    done
  done
  # Same output, byte for byte (the records are in time order as stored,
  # and Kong's records have no character Go and jaq escape differently).
  stored_cmd kongctl "$big"
  "${CMD[@]}" "${q[@]}" >"$WORK/stored.ours" 2>"$WORK/stored.err" || fail "stored query: exit $?"
  STORED_LINES=$(wc -l <"$WORK/stored.ours")
  bash "$WORK/gojq-store.sh" >"$WORK/stored.gojq"
  if [[ $STORED_LINES -gt 0 ]] && cmp -s "$WORK/stored.ours" "$WORK/stored.gojq"; then STORED_SAME=yes; else
    STORED_SAME=NO
    fail "stored query: output differs from gojq's ($(wc -l <"$WORK/stored.gojq") lines from gojq, $STORED_LINES from kongctl)"
  fi
  [[ ! -s $WORK/stored.err ]] || fail "stored query warned: $(head -c 300 "$WORK/stored.err")"
  if [[ -n $STORED_B ]]; then
    stored_cmd kongctl-b "$big"
    cmp -s "$WORK/stored.ours" <("${CMD[@]}" "${q[@]}") || fail "stored query: kongctl-b's output differs"
  fi
  rm -f "$WORK/stored.ours" "$WORK/stored.gojq"
  log "stored: $STORED_LINES lines, identical=$STORED_SAME"

  # The same query over a store whose active file is ~128 MiB: the active
  # file is read in place, not held.
  local active=$WORK/store-active adir
  log "stored: writing 2 segments of $STORE_SEGMENT_RECORDS and an active file of $STORE_BIG_ACTIVE_RECORDS records"
  ACTIVE_INFO=$("$TOOL" store --segments 2 --segment-records "$STORE_SEGMENT_RECORDS" \
    --active-records "$STORE_BIG_ACTIVE_RECORDS" --out "$active")
  adir=$active/kongctl/audit-logs/default
  ACTIVE_MIB=$(awk -v b="$(stat -c %s "$adir/events.jsonl")" 'BEGIN {printf "%.0f", b / 1048576}')
  for run in $(seq 1 "$STORED_RUNS"); do
    stored_cmd kongctl "$active" && timed "$STOREDTSV" "kongctl-active	$run" "${CMD[@]}" "${q[@]}"
    log "stored: big active file run $run: $(tail -n1 "$STOREDTSV" | cut -f3)s $(tail -n1 "$STOREDTSV" | cut -f4) KiB"
  done
  stored_cmd kongctl "$active"
  "${CMD[@]}" "${q[@]}" >"$WORK/active.ours" 2>"$WORK/active.err" || fail "stored query (big active file): exit $?"
  { zcat "$adir"/events-*.jsonl.gz; cat "$adir/events.jsonl"; } |
    gojq -c "select(.event_class_id == \"konnect\") | $STORED_EXPR" >"$WORK/active.gojq"
  ACTIVE_LINES=$(wc -l <"$WORK/active.ours")
  if [[ $ACTIVE_LINES -gt 0 ]] && cmp -s "$WORK/active.ours" "$WORK/active.gojq"; then ACTIVE_SAME=yes; else
    ACTIVE_SAME=NO
    fail "stored query (big active file): output differs from gojq's"
  fi
  [[ ! -s $WORK/active.err ]] || fail "stored query (big active file) warned: $(head -c 300 "$WORK/active.err")"
  rm -rf "$active" "$WORK/active.ours" "$WORK/active.gojq"

  # --since 1h: 365 daily segments against 1, both ending at the same time,
  # so that both have as many records in the last hour.
  SINCETSV=$WORK/since.tsv
  printf 'tool\trun\tsecs\tkib\n' >"$SINCETSV"
  end=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  log "stored: writing 365 daily segments of $DAY_RECORDS records, and 1"
  DAYS_INFO=$("$TOOL" store --segments 365 --segment-records "$DAY_RECORDS" --active-records "$DAY_RECORDS" --end "$end" --out "$WORK/store-365")
  "$TOOL" store --segments 1 --segment-records "$DAY_RECORDS" --active-records "$DAY_RECORDS" --end "$end" --out "$WORK/store-1" >/dev/null
  for run in $(seq 1 "$SINCE_RUNS"); do
    tools=(365 1)
    ((run % 2 == 0)) && tools=(1 365)
    for n in "${tools[@]}"; do
      stored_cmd kongctl "$WORK/store-$n" && timed "$SINCETSV" "$n	$run" "${CMD[@]}" --since 1h -o jsonl --limit 0
    done
  done
  SINCE_LINES=()
  for n in 365 1; do
    stored_cmd kongctl "$WORK/store-$n"
    SINCE_LINES+=("$("${CMD[@]}" --since 1h -o jsonl --limit 0 | wc -l)")
  done
  [[ ${SINCE_LINES[0]} -gt 0 && ${SINCE_LINES[0]} == "${SINCE_LINES[1]}" ]] ||
    fail "--since 1h: ${SINCE_LINES[0]} lines over 365 segments, ${SINCE_LINES[1]} over 1"
  rm -rf "$WORK/store-365" "$WORK/store-1"
  log "stored: --since 1h: ${SINCE_LINES[0]} lines"
}
# ------------------------------------------------------------------ grep
grep_bench() {
  GREPTSV=$WORK/grep.tsv
  printf 'tool\trun\tsecs\tkib\n' >"$GREPTSV"
  local run tool tools n dir
  big_store
  dir=$BIG/kongctl/audit-logs/default
  # The baseline: the segments in stored order, then the active file,
  # through rg (which reads stdin when it is not a terminal).
  cat >"$WORK/rg-store.sh" <<EOF
{ zcat "$dir"/events-*.jsonl.gz; cat "$dir/events.jsonl"; } | rg -- '$GREP_PATTERN'
EOF
  tools=(kongctl rg)
  for run in $(seq 1 "$GREP_RUNS"); do
    for n in 0 1; do
      tool=${tools[$(((n + run - 1) % 2))]}
      case $tool in
        rg) timed_to "$GREPTSV" "rg	$run" "$WORK/grep.rg" bash "$WORK/rg-store.sh" ;;
        kongctl)
          stored_cmd kongctl "$BIG"
          timed_to "$GREPTSV" "kongctl	$run" "$WORK/grep.ours" "${CMD[@]}" --limit 0 -o jsonl --grep "$GREP_PATTERN"
          ;;
      esac
      log "grep: $tool run $run: $(tail -n1 "$GREPTSV" | cut -f3)s"
    done
  done
  GREP_LINES=$(wc -l <"$WORK/grep.ours")
  if [[ $GREP_LINES -gt 0 ]] && cmp -s "$WORK/grep.ours" "$WORK/grep.rg"; then GREP_SAME=yes; else
    GREP_SAME=NO
    fail "grep: output differs from zcat | rg ($(wc -l <"$WORK/grep.rg") lines from rg, $GREP_LINES from kongctl)"
  fi
  rm -f "$WORK/grep.ours" "$WORK/grep.rg"
  log "grep: $GREP_LINES lines, identical=$GREP_SAME"
}

report_grep() {
  local t secs kib name
  echo "## get audit-logs --stored --grep"
  echo
  echo "The store of the stored query ($(kv "$STORE_INFO" raw_bytes) B of records, $(kv "$STORE_INFO" gz_bytes) B gzip'd); both write their output to a file (rg stops at its first match when its output is /dev/null). Seconds and peak RSS: min / median / max of $GREP_RUNS runs, alternating which goes first."
  echo
  echo "| command | seconds | MB/s of records (median) | peak RSS MiB | output identical |"
  echo "| --- | ---: | ---: | ---: | --- |"
  for t in kongctl rg; do
    mapfile -t secs < <(col "$GREPTSV" secs tool=$t)
    mapfile -t kib < <(col "$GREPTSV" kib tool=$t)
    case $t in
      kongctl) name="kongctl get audit-logs --stored --limit 0 -o jsonl --grep '$GREP_PATTERN'" ;;
      rg) name="{ zcat events-*.jsonl.gz; cat events.jsonl; } | rg '$GREP_PATTERN'" ;;
    esac
    echo "| \`${name//|/\\|}\` | $(FMT=%.2f mmm "${secs[@]}") | $(awk -v b="$(kv "$STORE_INFO" raw_bytes)" -v s="$(stored_secs "$GREPTSV" "$t")" 'BEGIN {printf "%.0f", b / s / 1e6}') | $(FMT=%.1f mmm $(for k in "${kib[@]}"; do mib "$k"; echo; done)) | $([[ $t == rg ]] && echo - || echo "${GREP_SAME:-?} ($GREP_LINES lines)") |"
  done
  echo
}

# ----------------------------------------------------------------- summary
# loadavg: the 1-minute load average (other work on the machine), for the report
loadavg() { cut -d' ' -f1 /proc/loadavg; }
summary_bench() {
  SUMMARYTSV=$WORK/summary.tsv
  printf 'tool\trun\tsecs\tkib\n' >"$SUMMARYTSV"
  local store=$WORK/store-year run n tools
  log "summary: writing 365 daily segments of $DAY_RECORDS records"
  YEAR_INFO=$("$TOOL" store --segments 365 --segment-records "$DAY_RECORDS" --active-records "$DAY_RECORDS" --out "$store")
  SUMMARY_LOAD=("$(loadavg)")
  for run in $(seq 1 "$SUMMARY_RUNS"); do
    tools=(jsonl summary)
    ((run % 2 == 0)) && tools=(summary jsonl)
    for n in "${tools[@]}"; do
      stored_cmd kongctl "$store"
      case $n in
        jsonl) timed "$SUMMARYTSV" "jsonl	$run" "${CMD[@]}" --limit 0 -o jsonl ;;
        summary) timed "$SUMMARYTSV" "summary	$run" env COLUMNS=100 "${CMD[@]}" --summary ;;
      esac
      log "summary: $n run $run: $(tail -n1 "$SUMMARYTSV" | cut -f3)s"
    done
  done
  SUMMARY_LOAD+=("$(loadavg)")
  # The summary counts what the jsonl query prints.
  stored_cmd kongctl "$store"
  SUMMARY_LINES=$("${CMD[@]}" --limit 0 -o jsonl | wc -l)
  SUMMARY_COUNT=$("${CMD[@]}" --summary -o json | gojq '.records')
  [[ $SUMMARY_LINES -gt 0 && $SUMMARY_LINES == "$SUMMARY_COUNT" ]] ||
    fail "summary: counted $SUMMARY_COUNT records, the jsonl query printed $SUMMARY_LINES"
  rm -rf "$store"
  log "summary: $SUMMARY_COUNT records"
}

report_summary() {
  local t secs kib
  echo "## get audit-logs --summary"
  echo
  echo "A year of daily segments (\`kongctl-bench store --segments 365 --segment-records $DAY_RECORDS --active-records $DAY_RECORDS\`): $(kv "$YEAR_INFO" records) records, $(kv "$YEAR_INFO" gz_bytes) B gzip'd. Seconds and peak RSS: min / median / max of $SUMMARY_RUNS runs, alternating which goes first; load average ${SUMMARY_LOAD[0]:-?} at the start, ${SUMMARY_LOAD[1]:-?} at the end. The summary counted ${SUMMARY_COUNT:-?} records, the jsonl query printed ${SUMMARY_LINES:-?}."
  echo
  echo "| command | seconds | peak RSS MiB |"
  echo "| --- | ---: | ---: |"
  for t in jsonl summary; do
    mapfile -t secs < <(col "$SUMMARYTSV" secs tool=$t)
    mapfile -t kib < <(col "$SUMMARYTSV" kib tool=$t)
    local name="kongctl get audit-logs --stored --limit 0 -o jsonl"
    [[ $t == summary ]] && name="kongctl get audit-logs --stored --summary"
    echo "| \`$name\` | $(FMT=%.2f mmm "${secs[@]}") | $(FMT=%.1f mmm $(for k in "${kib[@]}"; do mib "$k"; echo; done)) |"
  done
  echo
}

# ------------------------------------------------------------------ report
machine() {
  local cpu fs
  cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)
  fs=$(findmnt -n -o FSTYPE,SOURCE -T "$WORK" 2>/dev/null | tr -s ' ')
  echo "- machine: $(nproc) CPUs (${cpu:-unknown CPU}), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  echo "- disk: events files on ${fs:-?} (\`$WORK\`), fsync'd"
  echo "- Go model: built from \`${GO_MODEL#"$REPO"/}\`$([[ -z $GO_MODEL_B ]] || echo "; go-model-b from \`$GO_MODEL_B\`")"
  echo "- kongctl $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'), $(rustc --version 2>/dev/null | cut -d' ' -f1-2); $(go version | cut -d' ' -f3); $(gojq --version 2>&1 | head -n1); nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'); $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
}

bar() { if awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { exit !((op == ">=") ? a >= b : a < b) }'; then echo met; else echo "**NOT met**"; fi; }

# lat TARGET ENC CONC: "median p50 / median p99" in ms
lat() {
  local p50 p99
  mapfile -t p50 < <(col "$INGEST" p50 target=$1 enc=$2 conc=$3)
  mapfile -t p99 < <(col "$INGEST" p99 target=$1 enc=$2 conc=$3)
  ((${#p50[@]})) || { echo -; return; }
  awk -v a="$(med "${p50[@]}")" -v b="$(med "${p99[@]}")" 'BEGIN {printf "%.2f / %.2f", a / 1000, b / 1000}'
}

# ingest_ratios ENC CONC [A B]: per-round A / B ratios (default kongctl / go-model)
ingest_ratios() {
  local rep o g
  for rep in $(seq 1 "$REPEATS"); do
    o=$(col "$INGEST" recs target="${3:-kongctl}" enc=$1 conc=$2 rep=$rep)
    g=$(col "$INGEST" recs target="${4:-go-model}" enc=$1 conc=$2 rep=$rep)
    [[ -n $o && -n $g ]] && ratio "$o" "$g" && echo
  done
}
# gunzip_ratios: per-round kongctl gzip@64 / one-core gunzip ratios
gunzip_ratios() {
  local rep o g
  for rep in $(seq 1 "$REPEATS"); do
    o=$(col "$INGEST" recs target=kongctl enc=gzip conc=64 rep=$rep)
    g=$(col "$GUNZIP" recs rep=$rep)
    [[ -n $o && -n $g ]] && ratio "$o" "$g" && echo
  done
}
# tail_secs EXPR_INDEX TOOL: median seconds
tail_secs() { FMT=%.3f med $(col "$TAILTSV" secs expr=$1 tool=$2); }

report_ingest() {
  local enc c t vals ratios rr
  echo "## Ingest"
  echo
  echo "Records/s: min / median / max of $REPEATS rounds. Latency: median of the rounds' p50 / p99, in ms. CPU: median share of one core used by the listener process during the load (wrk runs on the same 2 cores)."
  echo
  echo "kongctl listen: default flags, records $(corpus kongctl)."
  echo
  echo "| batch | senders | kongctl listen | Go model | nginx return 202 | kongctl / Go model (per round) | kongctl p50 / p99 | Go model p50 / p99 | CPU % kongctl / Go |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for enc in $ENCODINGS; do
    for c in $CONCURRENCY; do
      local cells=()
      for t in kongctl go-model nginx; do
        mapfile -t vals < <(col "$INGEST" recs target=$t enc=$enc conc=$c)
        if ((${#vals[@]})); then cells+=("$(mmm "${vals[@]}")"); else cells+=("-"); fi
      done
      mapfile -t ratios < <(ingest_ratios "$enc" "$c")
      rr=-; ((${#ratios[@]})) && rr="$(FMT=%.1fx mmm "${ratios[@]}")"
      echo "| $enc | $c | ${cells[0]} | ${cells[1]} | ${cells[2]} | $rr | $(lat kongctl "$enc" "$c") | $(lat go-model "$enc" "$c") | $(med $(col "$INGEST" cpu target=kongctl enc=$enc conc=$c)) / $(med $(col "$INGEST" cpu target=go-model enc=$enc conc=$c)) |"
    done
  done
  [[ -n $GO_MODEL_B ]] && report_model_b
  [[ " $TARGETS " == *" kongctl-admin "* ]] && report_admin
  mapfile -t vals < <(col "$GUNZIP" recs)
  if ((${#vals[@]})); then
    echo
    echo "One core merely gunzipping the same gzip bodies (\`kongctl-bench gunzip\`: the listener's own gunzip routine, zlib-rs, into a reused buffer; measured at the start of each round): $(mmm "${vals[@]}") records/s ($(med $(col "$GUNZIP" mb)) MB/s decoded, median)."
  fi
  mapfile -t vals < <(col "$DISK" recs group=8)
  if ((${#vals[@]})); then
    echo
    echo "This disk's ceiling for any durable listener (\`kongctl-bench disk\`: the plain bodies appended and fdatasync'd in groups, no HTTP, no decoding; measured in each round): $(mmm "${vals[@]}") records/s in groups of 8 bodies, $(mmm $(col "$DISK" recs group=64)) in groups of 64 ($(med $(col "$DISK" mb group=64)) MB/s)."
  fi
  echo
  echo "Verified after every kongctl and Go model run: each line of the events file is one JSON object, and lines >= (2xx responses x $BATCH) + the preflight's: $(awk -F'\t' 'NR > 1 && $12 != "n/a" {n++; if ($12 == "PASS") p++} END {printf "%d of %d PASS", p, n}' "$INGEST")."
  echo
}

# report_admin: kongctl with its admin endpoint scraped every 100 ms against
# kongctl without one, same rounds.
report_admin() {
  local enc c t cells ratios vals
  echo
  echo "kongctl with \`--admin-address\` and its /metrics scraped every 100 ms during the load (kongctl-admin) against kongctl without it, records/s: min / median / max of $REPEATS rounds."
  echo
  echo "| batch | senders | kongctl | kongctl-admin | kongctl-admin / kongctl (per round) | p50 / p99 kongctl | p50 / p99 kongctl-admin | CPU % kongctl / kongctl-admin |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for enc in $ENCODINGS; do
    for c in $CONCURRENCY; do
      cells=()
      for t in kongctl kongctl-admin; do
        mapfile -t vals < <(col "$INGEST" recs target=$t enc=$enc conc=$c)
        if ((${#vals[@]})); then cells+=("$(mmm "${vals[@]}")"); else cells+=("-"); fi
      done
      mapfile -t ratios < <(ingest_ratios "$enc" "$c" kongctl-admin kongctl)
      echo "| $enc | $c | ${cells[0]} | ${cells[1]} | $( ((${#ratios[@]})) && FMT=%.3f mmm "${ratios[@]}" || echo -) | $(lat kongctl "$enc" "$c") | $(lat kongctl-admin "$enc" "$c") | $(med $(col "$INGEST" cpu target=kongctl enc=$enc conc=$c)) / $(med $(col "$INGEST" cpu target=kongctl-admin enc=$enc conc=$c)) |"
    done
  done
}

# report_model_b: the Go model against GO_MODEL_B, same rounds.
report_model_b() {
  local enc c t cells ratios vals
  echo
  echo "Go model (\`${GO_MODEL#"$REPO"/}\`) against go-model-b (\`$GO_MODEL_B\`), records/s: min / median / max of $REPEATS rounds."
  echo
  echo "| batch | senders | Go model | go-model-b | Go model / go-model-b (per round) | p50 / p99 Go model | p50 / p99 go-model-b |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  for enc in $ENCODINGS; do
    for c in $CONCURRENCY; do
      cells=()
      for t in go-model go-model-b; do
        mapfile -t vals < <(col "$INGEST" recs target=$t enc=$enc conc=$c)
        if ((${#vals[@]})); then cells+=("$(mmm "${vals[@]}")"); else cells+=("-"); fi
      done
      mapfile -t ratios < <(ingest_ratios "$enc" "$c" go-model go-model-b)
      echo "| $enc | $c | ${cells[0]} | ${cells[1]} | $( ((${#ratios[@]})) && FMT=%.2f mmm "${ratios[@]}" || echo -) | $(lat go-model "$enc" "$c") | $(lat go-model-b "$enc" "$c") |"
    done
  done
}

report_tail() {
  local i t secs s rk rg
  echo "## tail --jq"
  echo
  echo "$TAIL_RECORDS records ($(kv "$CORPUS_INFO" avg_record_bytes) B on average), records/s: min / median / max of $TAIL_RUNS runs, alternating which tool goes first."
  echo
  echo "| expression | kongctl tail | gojq -c | kongctl / gojq (median) | output identical |"
  echo "| --- | ---: | ---: | ---: | --- |"
  for i in "${!JQ_EXPRS[@]}"; do
    local r=()
    for t in kongctl gojq; do
      mapfile -t secs < <(col "$TAILTSV" secs expr=$i tool=$t)
      local rates=()
      for s in "${secs[@]}"; do rates+=("$(awk -v n="$TAIL_RECORDS" -v s="$s" 'BEGIN {printf "%.0f", n / s}')"); done
      r+=("$(mmm "${rates[@]}")")
    done
    echo "| \`${JQ_EXPRS[$i]//|/\\|}\` | ${r[0]} | ${r[1]} | $(ratio "$(tail_secs "$i" gojq)" "$(tail_secs "$i" kongctl)")x | ${TAIL_SAME[$i]:-?} |"
  done
  echo
  echo "kongctl runs as \`kongctl tail-file --jq EXPR FILE\`, a hidden command that runs tail's own follow, jq filter and printer over a file. Outputs are compared after normalising only the original's documented differences from \`gojq -c\`: Go's \`json.Marshal\` escaping of \`<\`, \`>\`, \`&\`, U+2028 and U+2029 (applied to gojq's output), and \`null\` for a record with no result (\`null\` lines dropped on both sides); kongctl must also print exactly one line per record and no warning."
  echo
}

# stored_secs TSV TOOL: median seconds
stored_secs() { FMT=%.3f med $(col "$1" secs tool=$2); }

report_stored() {
  local t secs kib tools=(kongctl gojq)
  [[ -z $STORED_B ]] || tools+=(kongctl-b)
  echo "## get audit-logs --stored"
  echo
  echo "A store of $STORE_SEGMENTS gzip'd segments of $STORE_SEGMENT_RECORDS records and an active file of $STORE_ACTIVE_RECORDS (\`kongctl-bench store\`): $(kv "$STORE_INFO" records) Konnect webhook records, $(kv "$STORE_INFO" raw_bytes) B ($(kv "$STORE_INFO" avg_record_bytes) B a record), $(kv "$STORE_INFO" gz_bytes) B gzip'd. Seconds and peak RSS: min / median / max of $STORED_RUNS runs, rotating which tool goes first."
  echo
  echo "| command | seconds | MB/s of records (median) | peak RSS MiB | output identical |"
  echo "| --- | ---: | ---: | ---: | --- |"
  for t in "${tools[@]}"; do
    mapfile -t secs < <(col "$STOREDTSV" secs tool=$t)
    mapfile -t kib < <(col "$STOREDTSV" kib tool=$t)
    local name="kongctl get audit-logs --stored --limit 0 --type authorization -o jsonl --jq '$STORED_EXPR'"
    case $t in
      gojq) name="{ zcat events-*.jsonl.gz; cat events.jsonl; } \\| gojq -c 'select(.event_class_id == \"konnect\") \\| $STORED_EXPR'" ;;
      kongctl-b) name="kongctl-b (\`$STORED_B\`), the same" ;;
    esac
    echo "| \`${name}\` | $(FMT=%.2f mmm "${secs[@]}") | $(awk -v b="$(kv "$STORE_INFO" raw_bytes)" -v s="$(stored_secs "$STOREDTSV" "$t")" 'BEGIN {printf "%.0f", b / s / 1e6}') | $(FMT=%.1f mmm $(for k in "${kib[@]}"; do mib "$k"; echo; done)) | $([[ $t == gojq ]] && echo - || echo "${STORED_SAME:-?} ($STORED_LINES lines)") |"
  done
  mapfile -t secs < <(col "$STOREDTSV" secs tool=kongctl-active)
  mapfile -t kib < <(col "$STOREDTSV" kib tool=kongctl-active)
  if ((${#secs[@]})); then
    echo "| the same over 2 segments and an active file of $STORE_BIG_ACTIVE_RECORDS records (${ACTIVE_MIB:-?} MiB) | $(FMT=%.2f mmm "${secs[@]}") | $(awk -v b="$(kv "$ACTIVE_INFO" raw_bytes)" -v s="$(stored_secs "$STOREDTSV" kongctl-active)" 'BEGIN {printf "%.0f", b / s / 1e6}') | $(FMT=%.1f mmm $(for k in "${kib[@]}"; do mib "$k"; echo; done)) | ${ACTIVE_SAME:-?} (${ACTIVE_LINES:-?} lines, against gojq) |"
  fi
  echo
  echo "\`--since 1h -o jsonl --limit 0\` over 365 daily segments of $DAY_RECORDS records against the same over 1 segment (each store with an active file of $DAY_RECORDS records over the last 30 minutes, ending at the same time; ${SINCE_LINES[0]:-?} and ${SINCE_LINES[1]:-?} records printed); seconds, min / median / max of $SINCE_RUNS runs, alternating:"
  echo
  echo "| store | seconds | peak RSS MiB |"
  echo "| --- | ---: | ---: |"
  for t in 365 1; do
    mapfile -t secs < <(col "$SINCETSV" secs tool=$t)
    mapfile -t kib < <(col "$SINCETSV" kib tool=$t)
    echo "| $t segment$([[ $t == 1 ]] || echo s) | $(FMT=%.3f mmm "${secs[@]}") | $(FMT=%.1f mmm $(for k in "${kib[@]}"; do mib "$k"; echo; done)) |"
  done
  echo
}

report_memory() {
  local vals peak_go rmin rmed rmax pmed
  echo "## Memory, startup, size"
  echo
  echo "| measure | kongctl | bar | |"
  echo "| --- | ---: | ---: | --- |"
  if part memory; then
    echo "| idle RSS (VmRSS 1 s after ready and one delivered batch; median of 3 starts) | $(mib "$IDLE_KIB") MiB | < 10 MiB | $(bar "$IDLE_KIB" "<" 10240) |"
  fi
  if part ingest; then
    mapfile -t vals < <(col "$INGEST" hwm_kib target=go-model)
    peak_go=$(stats "${vals[@]}" | awk '{print $3}')
    echo "| peak RSS during the ingest runs (max VmHWM; Go model: $(mib "$peak_go") MiB) | $(mib "$PEAK_INGEST") MiB | < 64 MiB | $(bar "$PEAK_INGEST" "<" 65536) |"
  fi
  if part memory; then
    echo "| peak RSS under a gzip bomb ($(kv "$BOMB_INFO" bytes) B inflating to 64 MiB; ${BOMB_RESULTS[0]:-}, ${BOMB_RESULTS[1]:-}; all 413, nothing stored) | $(mib "$BOMB_HWM") MiB | < 64 MiB | $(bar "$BOMB_HWM" "<" 65536) |"
  fi
  if part startup; then
    read -r rmin rmed rmax <<<"$(kv "$STARTUP" ready_ms | tr / ' ')"
    pmed=$(kv "$STARTUP" port_accepting_ms | cut -d/ -f2)
    echo "| start to listening against the emulator: exec to listener.json written, Konnect configured (min / median / max of $STARTUP_RUNS; port accepting: $pmed ms median) | $rmin / $rmed / $rmax ms | < 50 ms | $(bar "$rmed" "<" 50) |"
  fi
  echo "| release binary | $(awk -v s="$SIZE" 'BEGIN {printf "%.1f", s / 1048576}') MiB | < 12 MiB | $(bar "$SIZE" "<" $((12 * 1048576))) |"
  echo "| code layout (\`link/listener.order\`, from the linker's map) | ${LAYOUT:-not known (NO_BUILD=1)} | | |"
  echo
}

# corpus TARGET: which records TARGET was sent, for labels.
corpus() {
  if [[ $1 == kongctl-random || $SIGNED != 1 ]]; then echo "random sig values (no valid signature)"; else echo "signed by the emulator's key"; fi
}

report_signatures() {
  local enc c t cells ratios vals drains
  echo "## Ingest on real traffic: signature checks"
  echo
  echo "kongctl against the Go model in the same rounds (records/s ratio per round: min / median / max). \`kongctl\` is default flags (\`--verify warn\`: checked after storing, off the acknowledgement path) on records $(corpus kongctl); \`reject\` and \`off\` are \`--verify reject|off\` on the same records; \`random\` is default flags on the same bodies with random \`sig\` values ($(corpus kongctl-random): no Ed25519 work, the easier corpus). Drain: seconds from the end of the load until \`verify.pending\` is 0 (median); every record stored was then checked and \`verify.valid\` equals the records stored: $(awk -F'\t' 'NR > 1 && $1 == "kongctl" && $15 != "-" {n++; if ($16 == $17) p++} END {printf "%d of %d runs", p, n}' "$INGEST")."
  echo
  echo "| batch | senders | kongctl / Go | reject / Go | off / Go | random / Go | kongctl records/s | drain s (kongctl) | drain s (random) |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for enc in $ENCODINGS; do
    for c in $CONCURRENCY; do
      cells=()
      for t in kongctl kongctl-reject kongctl-off kongctl-random; do
        mapfile -t ratios < <(ingest_ratios "$enc" "$c" "$t")
        if ((${#ratios[@]})); then cells+=("$(FMT=%.2fx mmm "${ratios[@]}")"); else cells+=("-"); fi
      done
      mapfile -t vals < <(col "$INGEST" recs target=kongctl enc=$enc conc=$c)
      local recs=-; ((${#vals[@]})) && recs=$(med "${vals[@]}")
      drains=()
      for t in kongctl kongctl-random; do
        mapfile -t vals < <(col "$INGEST" drain target=$t enc=$enc conc=$c | grep -v '^-$')
        if ((${#vals[@]})); then drains+=("$(FMT=%.2f med "${vals[@]}")"); else drains+=("-"); fi
      done
      echo "| $enc | $c | ${cells[0]} | ${cells[1]} | ${cells[2]} | ${cells[3]} | $recs | ${drains[0]} | ${drains[1]} |"
    done
  done
  if [[ -n ${SIGCHECK:-} ]]; then
    echo
    echo "The check itself on one core (\`kongctl-bench sigcheck\`, $(kv "$SIGCHECK" records) records of the bodies signed by the same key; records/s): one at a time (single verification) $(kv "$SIGCHECK" signed_records_per_s), in groups of 50 (a request under \`--verify reject\`; groups under 256 are checked one by one) $(kv "$SIGCHECK" signed_batch50_records_per_s), in batches of up to 1024 (all $(kv "$SIGCHECK" records) at once here: the \`warn\` checker's share of a batch per core, \`R\`s' torsion checked together) $(kv "$SIGCHECK" signed_batch1024_records_per_s); random \`sig\` values $(kv "$SIGCHECK" as_is_records_per_s)."
  fi
  echo
}

report_bars() {
  local enc c i ratios m t
  echo "## SPEC §11 bars"
  echo
  if part ingest; then
    for enc in $ENCODINGS; do
      for c in 8 64; do
        for t in kongctl kongctl-reject kongctl-random; do
          mapfile -t ratios < <(ingest_ratios "$enc" "$c" "$t")
          ((${#ratios[@]})) || continue
          m=$(FMT=%.2f med "${ratios[@]}")
          local want=5 what="default flags"
          [[ $t == kongctl && $SIGNED == 1 ]] && want=4
          [[ $t == kongctl-reject ]] && { want=0.8; what="--verify reject"; }
          [[ $t == kongctl-reject && $SIGNED != 1 ]] && continue
          echo "- ingest $enc, $c senders, $what, records $(corpus "$t"), >= ${want}x the Go model: ${m}x (median of rounds): $(bar "$m" ">=" "$want")"
        done
      done
    done
    mapfile -t ratios < <(gunzip_ratios)
    if ((${#ratios[@]})); then
      m=$(FMT=%.3f med "${ratios[@]}")
      echo "- ingest gzip, 64 senders, >= 60% of one core's bare gunzip rate: $(awk -v r="$m" 'BEGIN {printf "%.0f", r * 100}')% (median of rounds): $(bar "$m" ">=" 0.6)"
    fi
    echo "- peak RSS during ingest < 64 MiB: $(bar "$PEAK_INGEST" "<" 65536)"
  fi
  if part tail; then
    for i in "${!JQ_EXPRS[@]}"; do
      m=$(ratio "$(tail_secs "$i" gojq)" "$(tail_secs "$i" kongctl)")
      echo "- tail --jq \`${JQ_EXPRS[$i]}\` >= 3x gojq, output identical: ${m}x, identical=${TAIL_SAME[$i]:-?}: $([[ ${TAIL_SAME[$i]:-} == yes ]] && bar "$m" ">=" 3 || echo "**NOT met**")"
    done
  fi
  if part stored; then
    m=$(ratio "$(stored_secs "$STOREDTSV" gojq)" "$(stored_secs "$STOREDTSV" kongctl)")
    echo "- stored query over ~1 GB with --type and --jq >= 5x \`zcat | gojq\`, output identical: ${m}x, identical=${STORED_SAME:-?}: $([[ ${STORED_SAME:-} == yes ]] && bar "$m" ">=" 5 || echo "**NOT met**")"
    local peak
    peak=$(stats $(col "$STOREDTSV" kib tool=kongctl) | awk '{print $3}')
    echo "- its peak RSS <= 32 MiB: $(mib "$peak") MiB (max of runs): $(bar "$peak" "<" 32769)"
    peak=$(stats $(col "$STOREDTSV" kib tool=kongctl-active) | awk '{print $3}')
    echo "- its peak RSS with a ${ACTIVE_MIB:-?} MiB active file <= 32 MiB: $(mib "$peak") MiB (max of runs), output identical=${ACTIVE_SAME:-?}: $([[ ${ACTIVE_SAME:-} == yes ]] && bar "$peak" "<" 32769 || echo "**NOT met**")"
    m=$(ratio "$(stored_secs "$SINCETSV" 365)" "$(stored_secs "$SINCETSV" 1)")
    echo "- \`--since 1h\` over 365 daily segments within 2x of 1 segment: ${m}x: $(bar "$m" "<" 2)"
  fi
  if part grep; then
    m=$(ratio "$(stored_secs "$GREPTSV" rg)" "$(stored_secs "$GREPTSV" kongctl)")
    echo "- \`--grep\` over ~1 GB at least as fast as \`zcat | rg\`, output identical: ${m}x, identical=${GREP_SAME:-?}: $([[ ${GREP_SAME:-} == yes ]] && bar "$m" ">=" 1 || echo "**NOT met**")"
  fi
  if part summary; then
    m=$(ratio "$(stored_secs "$SUMMARYTSV" summary)" "$(stored_secs "$SUMMARYTSV" jsonl)")
    echo "- \`--summary\` over a year of daily segments under 2x of \`--limit 0 -o jsonl\` (load average ${SUMMARY_LOAD[0]:-?}-${SUMMARY_LOAD[1]:-?}): ${m}x: $(bar "$m" "<" 2)"
  fi
  if part memory; then
    echo "- idle RSS < 10 MiB: $(bar "$IDLE_KIB" "<" 10240); peak RSS under a gzip bomb < 64 MiB: $(bar "$BOMB_HWM" "<" 65536)"
  fi
  if part startup; then
    echo "- start to listening < 50 ms: $(bar "$(kv "$STARTUP" ready_ms | cut -d/ -f2)" "<" 50)"
  fi
  echo "- release binary < 12 MiB: $(bar "$SIZE" "<" $((12 * 1048576)))"
}

report() {
  echo "# kongctl benchmark $1"
  echo
  echo "Command: \`bench/run.sh$( ((QUICK)) && echo ' --quick')\` (DURATION=$DURATION REPEATS=$REPEATS WRK_THREADS=$WRK_THREADS PARTS=\"$PARTS\" SIGNED=$SIGNED ADMIN_SCRAPE=$ADMIN_SCRAPE TARGETS=\"$TARGETS\"; targets interleaved within each cell, their order rotated every round)"
  echo
  machine
  echo "- machine load (uptime) at the start: $LOAD_START; at the end: $(uptime | sed 's/.*load average: //'). Other work on the machine slows every target; compare ratios within a round."
  echo "- load: wrk with bench/post.lua, batches of $BATCH records ($(kv "$BODY_INFO" avg_plain_bytes) B plain, $(kv "$BODY_INFO" avg_gzip_bytes) B gzip on average, $BODIES different bodies; gzip ones with Content-Encoding: application/gzip as Konnect sends, \`gzip\` to the Go model, which like the original decodes only that), keep-alive, $WRK_THREADS wrk threads (1 for 1 sender)"
  echo
  SIZE=$(stat -c %s "$KONGCTL")
  if part ingest; then
    local vals
    mapfile -t vals < <(col "$INGEST" hwm_kib target=kongctl)
    PEAK_INGEST=$(stats "${vals[@]}" | awk '{print $3}')
    report_ingest
    report_signatures
  fi
  part tail && report_tail
  part stored && report_stored
  part grep && report_grep
  part summary && report_summary
  report_memory
  report_bars
  if ((${#FAILURES[@]})); then
    echo
    echo "## VERIFICATION FAILED"
    echo
    printf -- '- %s\n' "${FAILURES[@]}"
  fi
  return 0
}

# ------------------------------------------------------------------ main
declare -a TAIL_SAME=()
STAMP=$(date -u +%Y%m%d-%H%M%S)
LOAD_START=$(uptime | sed 's/.*load average: //')
setup
log "ingest: targets [$TARGETS] encodings [$ENCODINGS] senders [$CONCURRENCY] $DURATION x $REPEATS rounds"
if part ingest; then ingest; fi
if part memory; then memory; fi
if part startup; then startup; fi
if part tail; then tail_bench; fi
if part stored; then stored_bench; fi
if part grep; then grep_bench; fi
rm -rf "$WORK/store-big"
if part summary; then summary_bench; fi
SUFFIX=""; ((QUICK)) && SUFFIX=-quick
OUT=$REPO/bench/results/$STAMP$SUFFIX.md
mkdir -p "$(dirname "$OUT")"
report "$STAMP" | tee "$OUT"
log "report: $OUT"
((${#FAILURES[@]} == 0)) || { log "verification failed: ${#FAILURES[@]} problem(s)"; exit 1; }
