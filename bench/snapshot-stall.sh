#!/usr/bin/env bash
# Do snapshots stall requests? Runs a 3-node raftkv cluster (release build) with a state large
# enough for a snapshot to matter and a snapshot threshold small enough that several snapshots
# happen during a steady write load, then compares the latency of the requests that ran while
# some node was taking a snapshot with the latency of those that ran while none was.
#
#   build    raftkv, raftkv-bench (release), unless RAFTKV_BIN is given
#   start    3 nodes: HTTP 127.0.0.1:28101-28103, Raft 29101-29103 (plus PORT_OFFSET), each
#            with --snapshot-threshold-bytes SNAPSHOT_THRESHOLD_BYTES (each node draws its own
#            threshold within ±25% of it)
#   preload  PRELOAD_OPS writes of PRELOAD_VALUE_SIZE bytes over PRELOAD_KEYS keys (prefix
#            "pre-"), 256 clients: the state every snapshot then encodes
#   measure  CLIENTS clients writing VALUE_SIZE bytes over 100,000 keys (prefix "load-") for
#            DURATION, every request's completion time and latency recorded
#            (`raftkv bench --samples`)
#   windows  from each node's log: a snapshot runs from the moment its image is taken
#            ("snapshot taken": image_us + encode_us + hand_over_us before that line) until its
#            file is durable ("snapshot file written", logged by the write-ahead log)
#   report   requests whose [start, end] overlaps some node's snapshot window are "during",
#            the others "outside"; p50, p99, p99.9 and max of each, and the issue's figure,
#            p99.9(during) / p99(outside) (target: at most 2)
#   cleanup  on any exit: stop the nodes (SIGTERM, then SIGKILL after 15 s), remove the data
#            directories unless KEEP_DATA=1
#
# Usage: bench/snapshot-stall.sh   (from anywhere)
#
# Environment:
#   PRELOAD_OPS        writes of the preload (default 1000000)
#   PRELOAD_KEYS       keys they go to, uniformly at random (default 1000000: about 630,000
#                      distinct keys)
#   PRELOAD_VALUE_SIZE bytes per preloaded value (default 32)
#   DURATION           length of the measured run (default 40s)
#   CLIENTS            clients of the measured run (default 64)
#   RATE               pace the measured run at this many writes a second (open loop: latency
#                      counts from each write's intended start, so a stall is charged to every
#                      write queued behind it); default: closed loop, as fast as the clients go
#   VALUE_SIZE         bytes per value of the measured run (default 256)
#   SNAPSHOT_THRESHOLD_BYTES  the nodes' snapshot threshold (default 16777216)
#   RAFTKV_BIN         the raftkv binary to run (default: this checkout's target/release/raftkv,
#                      built first); the load generator is always this checkout's
#   RAFTKV_WORKER_THREADS  async threads per node (default: cores ÷ 3, at least 1)
#   PORT_OFFSET        added to every port (default 0)
#   WORKDIR            data/, logs/, results/ (default target/snapshot-stall)
#   KEEP_DATA          1 keeps the data directories
#   LABEL              a name for this run in the one-line summary (default: the binary's path)
#
# Output: the report on stdout, its last line "RESULT label ratio=... p99.9_during=...
# p99_outside=..." for scripts that alternate builds; WORKDIR/results/samples.csv,
# windows.csv, preload.json, measure.json; WORKDIR/logs/node-<n>.log.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

PRELOAD_OPS=${PRELOAD_OPS:-1000000}
PRELOAD_KEYS=${PRELOAD_KEYS:-1000000}
PRELOAD_VALUE_SIZE=${PRELOAD_VALUE_SIZE:-32}
DURATION=${DURATION:-40s}
CLIENTS=${CLIENTS:-64}
RATE=${RATE:-}
VALUE_SIZE=${VALUE_SIZE:-256}
SNAPSHOT_THRESHOLD_BYTES=${SNAPSHOT_THRESHOLD_BYTES:-16777216}
PORT_OFFSET=${PORT_OFFSET:-0}
WORKDIR=${WORKDIR:-$REPO/target/snapshot-stall}
KEEP_DATA=${KEEP_DATA:-0}
RAFTKV_WORKER_THREADS=${RAFTKV_WORKER_THREADS:-$(($(nproc) / 3 > 0 ? $(nproc) / 3 : 1))}
RAFTKV_BENCH=$REPO/target/release/raftkv-bench
STOP_DEADLINE_SECONDS=15

say() { printf '== %s\n' "$*" >&2; }
die() {
    printf 'snapshot-stall: %s\n' "$*" >&2
    exit 1
}

if [[ -z ${RAFTKV_BIN:-} ]]; then
    say "building (release)"
    cargo build --release -q -p raftkv -p raftkv-bench
    RAFTKV_BIN=$REPO/target/release/raftkv
elif [[ ! -x $RAFTKV_BENCH ]]; then
    cargo build --release -q -p raftkv-bench
fi
[[ -x $RAFTKV_BIN ]] || die "RAFTKV_BIN=$RAFTKV_BIN is not an executable"
LABEL=${LABEL:-$RAFTKV_BIN}

DATA_DIR=$WORKDIR/data
LOG_DIR=$WORKDIR/logs
RESULTS_DIR=$WORKDIR/results
NODES=(1 2 3)
PIDS=()
CHILD_PID=""

# shellcheck source=lib/processes.sh
source "$REPO/bench/lib/processes.sh"

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $CHILD_PID ]]; then stop_pids "$CHILD_PID"; fi
    stop_pids "${PIDS[@]}"
    if [[ $KEEP_DATA != 1 ]]; then rm -rf "$DATA_DIR"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

HTTP_PORTS=() RAFT_PORTS=()
for n in "${NODES[@]}"; do
    HTTP_PORTS+=($((28100 + n + PORT_OFFSET)))
    RAFT_PORTS+=($((29100 + n + PORT_OFFSET)))
done
for port in "${HTTP_PORTS[@]}" "${RAFT_PORTS[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port on 127.0.0.1 is taken; set PORT_OFFSET"
    fi
done

rm -rf "$DATA_DIR" "$LOG_DIR" "$RESULTS_DIR"
mkdir -p "$DATA_DIR" "$LOG_DIR" "$RESULTS_DIR"

peers="" endpoints=""
for i in "${!NODES[@]}"; do
    peers+="${peers:+,}${NODES[i]}=127.0.0.1:${RAFT_PORTS[i]}"
    endpoints+="${endpoints:+,}127.0.0.1:${HTTP_PORTS[i]}"
done
say "starting 3 nodes of $RAFTKV_BIN (snapshot threshold $SNAPSHOT_THRESHOLD_BYTES bytes)"
for i in "${!NODES[@]}"; do
    n=${NODES[i]}
    "$RAFTKV_BIN" serve --id "$n" \
        --http-addr "127.0.0.1:${HTTP_PORTS[i]}" --raft-addr "127.0.0.1:${RAFT_PORTS[i]}" \
        --peers "$peers" --data-dir "$DATA_DIR/node-$n" --cluster-id snapshot-stall \
        --worker-threads "$RAFTKV_WORKER_THREADS" \
        --snapshot-threshold-bytes "$SNAPSHOT_THRESHOLD_BYTES" \
        >"$LOG_DIR/node-$n.log" 2>&1 &
    PIDS+=($!)
done
server_pids=$(IFS=,; printf '%s' "${PIDS[*]}")

# Whether every node answers /v1/status and all know the one leader and its HTTP address.
cluster_ready() {
    python3 - "$@" <<'PYTHON'
import json, sys, urllib.request

statuses = []
for port in sys.argv[1:]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=1) as answer:
            statuses.append(json.load(answer))
    except Exception:
        sys.exit(1)
leaders = [status["id"] for status in statuses if status.get("role") == "leader"]
ready = len(leaders) == 1 and all(
    s.get("leader") == leaders[0] and s.get("leader_http") for s in statuses
)
sys.exit(0 if ready else 1)
PYTHON
}

deadline=$((SECONDS + 30))
until cluster_ready "${HTTP_PORTS[@]}"; do
    ((SECONDS < deadline)) || die "the cluster did not become healthy within 30 s (see $LOG_DIR)"
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "a node exited (see $LOG_DIR)"
    done
    sleep 0.2
done

say "preload: $PRELOAD_OPS writes of $PRELOAD_VALUE_SIZE B over $PRELOAD_KEYS keys"
run_child "$RAFTKV_BENCH" --endpoints "$endpoints" --clients 256 --http2 \
    --ops "$PRELOAD_OPS" --keys "$PRELOAD_KEYS" --value-size "$PRELOAD_VALUE_SIZE" \
    --key-prefix pre- --json >"$RESULTS_DIR/preload.json" ||
    die "the preload failed (see $LOG_DIR)"

pacing=()
if [[ -n $RATE ]]; then
    [[ $RATE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "RATE=$RATE is not a number"
    pacing=(--rate "$RATE")
fi
say "measure: $CLIENTS clients, $VALUE_SIZE B writes, $DURATION${RATE:+ at $RATE writes/s}"
run_child "$RAFTKV_BENCH" --endpoints "$endpoints" --clients "$CLIENTS" "${pacing[@]}" \
    --duration "$DURATION" --keys 100000 --value-size "$VALUE_SIZE" --key-prefix load- \
    --server-pids "$server_pids" --samples "$RESULTS_DIR/samples.csv" \
    --json >"$RESULTS_DIR/measure.json" ||
    die "the measured run failed (see $LOG_DIR)"

python3 - "$RESULTS_DIR" "$LABEL" "$LOG_DIR"/node-*.log <<'PYTHON'
import bisect
import csv
import datetime
import json
import re
import sys

results_dir, label, logs = sys.argv[1], sys.argv[2], sys.argv[3:]
LINE = re.compile(r"^(\S+Z)\s+INFO\s+\S+: (snapshot taken|snapshot file written) (.*)$")
FIELD = re.compile(r"(\w+)=(\S+)")

def unix_micros(stamp):
    moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return round(moment.timestamp() * 1e6)

windows = []
for log in logs:
    taken, written = {}, {}
    for line in open(log, errors="replace"):
        match = LINE.match(line.strip())
        if not match:
            continue
        at = unix_micros(match.group(1))
        fields = dict(FIELD.findall(match.group(3)))
        index = int(fields["index"])
        if match.group(2) == "snapshot taken":
            took = sum(int(fields.get(name, 0)) for name in ("image_us", "encode_us", "hand_over_us"))
            encoded = int(fields.get("image_us", 0)) + int(fields.get("encode_us", 0))
            taken[index] = (at - took, at, int(fields["bytes"]), int(fields.get("image_us", 0)),
                            at - took + encoded)
        else:
            written[index] = (at, int(fields["write_us"]))
    for index, (start, end, size, image_us, encoded_at) in sorted(taken.items()):
        file_end, write_us = written.get(index, (end, 0))
        windows.append((start, max(end, file_end), log, index, size, image_us, write_us,
                        encoded_at))
windows.sort()

samples = []
with open(f"{results_dir}/samples.csv") as handle:
    for row in csv.DictReader(handle):
        end, latency = int(row["completed_unix_micros"]), int(row["latency_micros"])
        samples.append((end - latency, end, latency, row["ok"] == "1"))
run_start, run_end = samples[0][0], samples[-1][1]
windows = [w for w in windows if w[1] >= run_start and w[0] <= run_end]
starts = [w[0] for w in windows]
# Longest window so far, for the overlap test of a request against windows sorted by start.
ends_max, longest = [], 0
for w in windows:
    longest = max(longest, w[1])
    ends_max.append(longest)

def during(start, end):
    last = bisect.bisect_right(starts, end) - 1
    return last >= 0 and ends_max[last] >= start

# A window's two phases: taking the image and encoding it (CPU, memory), then handing it to
# the node (staging the file: disk) until its file is recorded.
encoding = sorted((w[0], w[7]) for w in windows)
handing = sorted((w[7], w[1]) for w in windows)

def overlaps(phases, start, end):
    return any(a <= end and b >= start for a, b in phases)

inside, outside, in_encoding, in_handing = [], [], [], []
for start, end, latency, ok in samples:
    if not during(start, end):
        outside.append(latency)
        continue
    inside.append(latency)
    if overlaps(encoding, start, end):
        in_encoding.append(latency)
    if overlaps(handing, start, end):
        in_handing.append(latency)

def percentile(values, quantile):
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(quantile * len(ordered) + 0.5)) - 1))
    return ordered[rank]

def summary(values):
    return {
        "requests": len(values),
        "p50_ms": percentile(values, 0.5) / 1000,
        "p99_ms": percentile(values, 0.99) / 1000,
        "p99.9_ms": percentile(values, 0.999) / 1000,
        "max_ms": max(values, default=float("nan")) / 1000,
    }

with open(f"{results_dir}/windows.csv", "w") as handle:
    handle.write("start_unix_micros,end_unix_micros,log,index,bytes,image_us,write_us,"
                 "encoded_unix_micros\n")
    for w in windows:
        handle.write(",".join(str(x) for x in w) + "\n")
measure = json.load(open(f"{results_dir}/measure.json"))
stats = {"during": summary(inside), "outside": summary(outside)}
phases = {"encoding": summary(in_encoding), "handing over": summary(in_handing)}
ratio = stats["during"]["p99.9_ms"] / stats["outside"]["p99_ms"] if outside else float("nan")
covered = sum(min(w[1], run_end) - max(w[0], run_start) for w in windows) / (run_end - run_start)
print(f"snapshots in the run: {len(windows)} "
      f"(of {max((w[4] for w in windows), default=0) / 1e6:.1f} MB at most; "
      f"{covered:.0%} of the run inside a window, counting overlaps twice)")
for w in windows:
    print(f"  {w[2].rsplit('/', 1)[-1]} index {w[3]}: {(w[1] - w[0]) / 1000:.0f} ms "
          f"(image {w[5] / 1000:.1f} ms, image and encoding {(w[7] - w[0]) / 1000:.0f} ms, "
          f"file recorded {w[6] / 1000:.0f} ms), {w[4] / 1e6:.1f} MB")
print(f"throughput: {measure['throughput_ops_per_sec']:.0f} ops/s, "
      f"{measure['ops']['errors']} failed (timed out or refused; counted at their latency)")
for name, figures in stats.items():
    print(f"{name:>8}: " + ", ".join(f"{key} {value:.2f}" if isinstance(value, float)
                                     else f"{key} {value}" for key, value in figures.items()))
for name, figures in phases.items():
    print(f"  of which {name}: " + ", ".join(f"{key} {value:.2f}" if isinstance(value, float)
                                       else f"{key} {value}" for key, value in figures.items()))
print(f"p99.9(during) / p99(outside) = {ratio:.2f} (target: at most 2)")
json.dump({"label": label, "ratio": ratio, "snapshots": len(windows), **stats, **phases},
          open(f"{results_dir}/stall.json", "w"), indent=1)
print(f"RESULT {label} ratio={ratio:.2f} p99.9_during={stats['during']['p99.9_ms']:.2f} "
      f"p99_outside={stats['outside']['p99_ms']:.2f} p50_outside={stats['outside']['p50_ms']:.2f} "
      f"snapshots={len(windows)}")
PYTHON
