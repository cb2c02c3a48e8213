#!/usr/bin/env bash
# Runs one scripted etcdctl session against a real etcd and against raftkv, and diffs what
# etcdctl printed: the proof that raftkv answers etcd's v3 API as etcd does, with a client we
# did not write.
#
#   install  etcd-server and etcd-client (apt-get, only if missing and only as root)
#   build    raftkv (cargo build -p raftkv --bin raftkv; RAFTKV_BIN skips it)
#   start    etcd    one member, client 127.0.0.1:26379, peer 26380, data in WORKDIR/etcd/data
#            raftkv  one node, gRPC 127.0.0.1:26383, HTTP 26381, Raft 26382, data in
#                    WORKDIR/raftkv/data; both fresh, waited for (30 s)
#   session  bench/etcd-session/session.sh, sourced once per system: each step runs etcdctl
#            (ETCDCTL_API=3) and keeps its standard output, standard error and exit code in
#            WORKDIR/<system>/steps/<step>.txt
#   compare  every step's text normalized (bench/etcd-session/normalize.sed, and the ids each
#            system handed out replaced by names: lease ids, endpoints),
#            then diffed step by step
#   verdict  steps listed in bench/etcd-session/allowed-differences.txt (with the reason) may
#            differ; any other difference, or a step missing on one side, fails the run
#   cleanup  on exit, Ctrl-C or SIGTERM: both servers stopped (SIGTERM, SIGKILL after 10 s)
#
# Usage: bench/etcd-compare-session.sh        (from anywhere)
# Exit:  0 when only the allowed differences remain, 1 otherwise, 2 when a server did not start
#
# Environment:
#   WORKDIR     where the data, logs and step outputs go (default target/etcd-compare-session)
#   RAFTKV_BIN  a raftkv binary to test (default: target/debug/raftkv, built first)
#   ONLY        "etcd" or "raftkv": runs the session on that system only and compares nothing;
#               "compare": runs nothing, compares the steps the last runs left
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SESSION_DIR=$REPO/bench/etcd-session
WORKDIR=${WORKDIR:-$REPO/target/etcd-compare-session}
ONLY=${ONLY:-}
export ETCDCTL_API=3

ETCD_CLIENT=127.0.0.1:26379
ETCD_PEER=127.0.0.1:26380
RAFTKV_HTTP=127.0.0.1:26381
RAFTKV_RAFT=127.0.0.1:26382
RAFTKV_GRPC=127.0.0.1:26383

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "etcd-compare-session: ${missing[*]} missing, and apt-get cannot install them here" >&2
    exit 2
  fi
fi

if [[ -z ${RAFTKV_BIN:-} ]]; then
  (cd "$REPO" && cargo build -q -p raftkv --bin raftkv)
  RAFTKV_BIN=$REPO/target/debug/raftkv
fi

PIDS=()
# stop PID SIGNAL: sends SIGNAL, then SIGKILL if the process is still there 10 s later.
stop() {
  local pid=$1 signal=$2 waited
  kill "-$signal" "$pid" 2>/dev/null || return 0
  for waited in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    stop "$pid" TERM
  done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- what the session file calls -------------------------------------------------------------

# The system under test's endpoint and its peer (Raft) address (set per run).
EP=
PEER=
# The directory of the current run's step outputs.
STEPS=
# Background etcdctl processes: step name → pid.
declare -A BG_PIDS=()
# The signal that stops each.
declare -A BG_SIGNALS=()

# etcdctl against the system under test.
ctl() {
  etcdctl --endpoints="$EP" --command-timeout=10s "$@"
}

# Records a step: its standard output, standard error and exit code, as one text.
record() {
  local name=$1 out=$2 err=$3 code=$4
  if [[ -e $STEPS/$name.txt ]]; then
    echo "etcd-compare-session: the session names step $name twice" >&2
    exit 2
  fi
  {
    cat "$out"
    echo "--- stderr"
    cat "$err"
    echo "--- exit $code"
  } >"$STEPS/$name.txt"
  printf '%s\n' "$name" >>"$STEPS/../order"
}

# step NAME ARGS...: `etcdctl ARGS`, recorded as NAME.
step() {
  local name=$1
  shift
  local code=0
  ctl "$@" >"$STEPS/.out" 2>"$STEPS/.err" </dev/null || code=$?
  record "$name" "$STEPS/.out" "$STEPS/.err" "$code"
}

# step_in NAME INPUT ARGS...: `etcdctl ARGS` with INPUT on its standard input.
step_in() {
  local name=$1 input=$2
  shift 2
  local code=0
  printf '%s' "$input" | ctl "$@" >"$STEPS/.out" 2>"$STEPS/.err" || code=$?
  record "$name" "$STEPS/.out" "$STEPS/.err" "$code"
}

# step_file NAME FILE ARGS...: `etcdctl ARGS` reading FILE on its standard input.
step_file() {
  local name=$1 input=$2
  shift 2
  local code=0
  ctl "$@" <"$input" >"$STEPS/.out" 2>"$STEPS/.err" || code=$?
  record "$name" "$STEPS/.out" "$STEPS/.err" "$code"
}

# The standard output of the last recorded step.
last_output() {
  cat "$STEPS/.out"
}

# json_of ARGS... FILTER: `etcdctl ARGS -w json`, through jq's FILTER (raw output).
json_of() {
  local filter=${*: -1}
  ctl "${@:1:$#-1}" -w json </dev/null | jq -r "$filter"
}

# The store's revision now.
revision_now() {
  json_of get never-written-key '.header.revision'
}

# alias_value VALUE NAME: VALUE in any step's output reads NAME when compared (ids a system
# chose).
alias_value() {
  printf '%s\t%s\n' "$1" "$2" >>"$STEPS/../aliases"
}

# alias_lease HEX NAME: a lease id, as etcdctl prints it (hex, padded or not) and as JSON
# carries it (decimal).
alias_lease() {
  local hex=$1 name=$2
  alias_value "$hex" "$name"
  alias_value "$(printf '%x' "$((16#$hex))")" "$name"
  alias_value "$((16#$hex))" "$name"
}

# lease_of_last: the hex lease id of the last step's "lease ID granted ..." line.
lease_of_last() {
  sed -n 's/^lease \([0-9a-f]*\) granted.*/\1/p' "$STEPS/.out"
}

# bg_start NAME ARGS...: `etcdctl ARGS` in the background (a watch, a lock holder, a
# campaign); what it prints becomes step NAME when bg_until stops it.
bg_start() {
  local name=$1
  shift
  # The file exists before the process opens it, for bg_wait to count its lines at once.
  : >"$STEPS/$name.stream"
  # etcdctl itself, not a subshell running `ctl`, so that the signal reaches it.
  etcdctl --endpoints="$EP" --command-timeout=10s "$@" \
    >"$STEPS/$name.stream" 2>"$STEPS/$name.stream-err" </dev/null &
  BG_PIDS[$name]=$!
  # lock and elect let go of their key on SIGINT only (they ignore SIGTERM); a watch started
  # in the background ignores SIGINT.
  case $1 in
    lock | elect) BG_SIGNALS[$name]=INT ;;
    *) BG_SIGNALS[$name]=TERM ;;
  esac
  PIDS+=("$!")
}

# bg_wait NAME LINES: waits (10 s at most) until the background etcdctl printed LINES lines or
# ended.
bg_wait() {
  local name=$1 lines=$2 pid=${BG_PIDS[$1]} waited
  for waited in $(seq 100); do
    (($(wc -l <"$STEPS/$name.stream") >= lines)) && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

# bg_until NAME LINES: bg_wait, then stops the background etcdctl (a lock holder or a
# campaigner lets go) and records what it printed, with its exit code if it ended by
# itself ("running" if it was stopped).
bg_until() {
  local name=$1 pid=${BG_PIDS[$1]} code=running
  bg_wait "$@"
  if kill -0 "$pid" 2>/dev/null; then
    stop "$pid" "${BG_SIGNALS[$name]}"
  else
    code=0
    wait "$pid" 2>/dev/null || code=$?
  fi
  record "$name" "$STEPS/$name.stream" "$STEPS/$name.stream-err" "$code"
}

# ---- the two systems ---------------------------------------------------------------------------

# wait_up WHAT LOG: waits (30 s) until `etcdctl get` answers on EP.
wait_up() {
  local what=$1 log=$2 waited
  for waited in $(seq 300); do
    ctl --command-timeout=1s get never-written-key >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "etcd-compare-session: $what did not answer etcdctl within 30 s; its log:" >&2
  tail -20 "$log" >&2
  exit 2
}

# run_session SYSTEM: the session against the server EP points at.
run_session() {
  local system=$1
  STEPS=$WORKDIR/$system/steps
  rm -rf "$STEPS" "$WORKDIR/$system/order" "$WORKDIR/$system/aliases"
  mkdir -p "$STEPS"
  : >"$WORKDIR/$system/aliases"
  : >"$WORKDIR/$system/order"
  # The address differs; the cluster and member ids are rewritten by normalize.sed, in the
  # places they appear (as values, small ids like raftkv's would match anything).
  alias_value "$EP" "<ENDPOINT>"
  alias_value "$PEER" "<PEER>"
  alias_value "$STEPS" "<STEPS>"
  # shellcheck source=etcd-session/session.sh
  source "$SESSION_DIR/session.sh"
  rm -f "$STEPS/.out" "$STEPS/.err"
}

start_etcd() {
  local dir=$WORKDIR/etcd
  rm -rf "$dir"
  mkdir -p "$dir"
  etcd --name compare --data-dir "$dir/data" \
    --listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
    --listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
    --initial-cluster "compare=http://$ETCD_PEER" >"$dir/server.log" 2>&1 &
  PIDS+=("$!")
  EP=$ETCD_CLIENT
  PEER=$ETCD_PEER
  wait_up etcd "$dir/server.log"
}

start_raftkv() {
  local dir=$WORKDIR/raftkv
  rm -rf "$dir"
  mkdir -p "$dir"
  "$RAFTKV_BIN" serve --id 1 --data-dir "$dir/data" --http-addr "$RAFTKV_HTTP" \
    --raft-addr "$RAFTKV_RAFT" --grpc-addr "$RAFTKV_GRPC" --peers "1=$RAFTKV_RAFT" \
    >"$dir/server.log" 2>&1 &
  PIDS+=("$!")
  EP=$RAFTKV_GRPC
  PEER=$RAFTKV_RAFT
  wait_up raftkv "$dir/server.log"
}

# ---- the comparison ----------------------------------------------------------------------------

# normalized SYSTEM STEP: the step's text with the system's aliases and the common rules applied.
normalized() {
  local system=$1 name=$2 value alias_name
  local text
  text=$(<"$WORKDIR/$system/steps/$name.txt")
  # Longest values first, so that an id is not replaced inside a longer one.
  while IFS=$'\t' read -r value alias_name; do
    [[ -n $value ]] && text=${text//"$value"/"$alias_name"}
  done < <(awk -F'\t' '{ print length($1) "\t" $0 }' "$WORKDIR/$system/aliases" | sort -rn | cut -f2-)
  printf '%s\n' "$text" | sed -E -f "$SESSION_DIR/normalize.sed"
}

systems=(etcd raftkv)
case $ONLY in
  "") ;;
  compare) systems=() ;;
  *) systems=("$ONLY") ;;
esac
for system in "${systems[@]}"; do
  "start_$system"
  run_session "$system"
  cleanup
  echo "etcd-compare-session: $system: $(wc -l <"$WORKDIR/$system/order") steps in $WORKDIR/$system/steps"
done
[[ -n $ONLY && $ONLY != compare ]] && exit 0

# The allowed differences: "STEP<tab or spaces>reason", # comments.
declare -A allowed=()
while read -r name reason; do
  [[ -z $name || $name == \#* ]] && continue
  allowed[$name]=$reason
done <"$SESSION_DIR/allowed-differences.txt"

unexpected=0
known=0
same=0
mkdir -p "$WORKDIR/normalized/etcd" "$WORKDIR/normalized/raftkv"
while read -r name; do
  if [[ ! -e $WORKDIR/raftkv/steps/$name.txt ]]; then
    echo "=== $name: raftkv's run has no such step"
    unexpected=$((unexpected + 1))
    continue
  fi
  normalized etcd "$name" >"$WORKDIR/normalized/etcd/$name.txt"
  normalized raftkv "$name" >"$WORKDIR/normalized/raftkv/$name.txt"
  if diff -q "$WORKDIR/normalized/etcd/$name.txt" "$WORKDIR/normalized/raftkv/$name.txt" >/dev/null; then
    same=$((same + 1))
    [[ -n ${allowed[$name]:-} ]] && echo "=== $name: listed as a known difference, but the outputs agree now"
    continue
  fi
  if [[ -n ${allowed[$name]:-} ]]; then
    echo "=== $name: known difference: ${allowed[$name]}"
    known=$((known + 1))
  else
    echo "=== $name: UNEXPECTED difference"
    unexpected=$((unexpected + 1))
  fi
  diff -u --label "etcd/$name" --label "raftkv/$name" \
    "$WORKDIR/normalized/etcd/$name.txt" "$WORKDIR/normalized/raftkv/$name.txt" | sed 1,2d || true
done <"$WORKDIR/etcd/order"

echo "etcd-compare-session: $same steps agree, $known differ as known, $unexpected differ unexpectedly"
((unexpected == 0))
