#!/usr/bin/env bash
# Steady state: a 3-node raftkv cluster under a paced mixed load at a fraction of its peak for
# a long time, reported per interval (issue 29: "p50 and p99 per minute stay within 10% of the
# first minute's; resident memory flat once history retention is reached").
#
#   build    raftkv, raftkv-bench (release); RAFTKV_BIN may name another raftkv binary to run
#   start    raftkv HTTP 127.0.0.1:18001-18003, Raft 19001-19003, each plus PORT_OFFSET
#            (default 600, so it runs beside a compare-etcd.sh on the default ports); the
#            cluster pieces are compare-etcd.sh's (sourced)
#   peak     a closed-loop run of PEAK_DURATION, CLIENTS clients, the same mix: its throughput
#   warm-up  the paced load below for WARMUP on the same connections, not counted
#            (`raftkv bench --warmup`): the first seconds of a run were tens of times slower
#            than any later second, and every interval is compared with the first
#   steady   `raftkv bench --rate (LOAD × peak) --duration DURATION --report-every INTERVAL`
#            (open loop, latency from each operation's intended start), PACED_CLIENTS clients
#   report   per interval: ops/s, p50, p99, p99.9, errors, p50 and p99 over the first
#            interval's, each node's RSS; whether every full interval is within 10% of the
#            first; RSS growth over the second half of the run
#
# Usage: bench/steady.sh   (from anywhere)
#
# Environment:
#   DURATION       length of the paced run (default 30m; any `raftkv bench --duration`)
#   INTERVAL       report interval (default 1m)
#   LOAD           fraction of the peak to pace at (default 0.7)
#   RATE           pace at this many operations a second instead (skips the peak run)
#   PEAK_DURATION  length of the closed-loop peak run (default 20s)
#   WARMUP         length of the paced load before the measured run, not counted (default
#                  30s; 0 for none)
#   CLIENTS        clients of the peak run (default 64; HTTP/2 from RAFTKV_HTTP2_FROM up, as
#                  in compare-etcd.sh)
#   PACED_CLIENTS  clients of the paced run: the most operations it keeps in flight (default
#                  CLIENTS). A paced run is an open loop only while a client is free when an
#                  operation's time comes: 64 clients at 0.7 of their peak queue the schedule
#                  in the load generator when the servers slow down; 256 queue less but raise
#                  the servers' own service time 3× (bench/RESULTS.md, sixth session)
#   READ_RATIO     fraction of reads, linearizable (default 0.5)
#   RAFTKV_BIN     the raftkv binary to run (default: this repo's release build, built here)
#   WORKDIR        data/, logs/, results/ (default target/steady)
#   PORT_OFFSET    added to every port (default 600)
#   KEEP_DATA      1 keeps the data directories
#   SAMPLES        1 records every operation (WORKDIR/results/samples.csv, about 40 bytes
#                  each: 1.3 GB for 30 min at 18,500 ops/s) and lines them up with the nodes'
#                  snapshots and compactions (bench/lib/timeline.py): per interval the p99 of
#                  reads, of writes and of requests overlapping no snapshot encoding, then the
#                  slowest seconds and what overlapped them, with how busy the machine was
#                  and its steal time (/proc/stat each second in cpu.txt; timeline.txt). The
#                  nodes log the
#                  leader's compactions and the consistency checks' hashing for it
#                  (RAFTKV_LOG, unless set)
#   Server settings pass through the environment, e.g. RAFTKV_HISTORY_RETENTION_REVISIONS,
#                  RAFTKV_SNAPSHOT_THRESHOLD_BYTES (the chaos soaks: 0 and 262144).
#
# Output: WORKDIR/results/peak.json and steady.json (`raftkv bench --json`), steady.txt (the
# table printed at the end), WORKDIR/logs/raftkv-<n>.log and bench.log (the live rows); with
# SAMPLES=1 also samples.csv, cpu.txt and timeline.txt.
set -euo pipefail

STEADY_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-30m}
INTERVAL=${INTERVAL:-1m}
LOAD=${LOAD:-0.7}
RATE=${RATE:-}
PEAK_DURATION=${PEAK_DURATION:-20s}
# compare-etcd.sh (sourced below) fixes its own WARMUP.
STEADY_WARMUP=${WARMUP:-30s}
STEADY_CLIENTS=${CLIENTS:-64}
PACED_CLIENTS=${PACED_CLIENTS:-$STEADY_CLIENTS}
READ_RATIO=${READ_RATIO:-0.5}
RAFTKV_BIN=${RAFTKV_BIN:-}
SAMPLES=${SAMPLES:-0}
if [[ $SAMPLES == 1 ]]; then
    SAMPLES_LOG=info,raftkv::server::retention=debug,raftkv::server::state_hashes=debug
    export RAFTKV_LOG=${RAFTKV_LOG:-$SAMPLES_LOG}
fi
export WORKDIR=${WORKDIR:-$STEADY_REPO/target/steady}
export PORT_OFFSET=${PORT_OFFSET:-600}
# compare-etcd.sh's pieces, for raftkv only.
export GRPC=0 CLIENTS=$STEADY_CLIENTS
# shellcheck source=compare-etcd.sh
source "$STEADY_REPO/bench/compare-etcd.sh"

steady_main() {
    [[ $STEADY_CLIENTS =~ ^[1-9][0-9]*$ ]] || die "CLIENTS=$STEADY_CLIENTS is not a positive count"
    [[ $PACED_CLIENTS =~ ^[1-9][0-9]*$ ]] ||
        die "PACED_CLIENTS=$PACED_CLIENTS is not a positive count"
    [[ $LOAD =~ ^(0?\.[0-9]+|1(\.0*)?)$ ]] || die "LOAD=$LOAD is not a fraction in (0, 1]"
    [[ -z $RATE || $RATE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "RATE=$RATE is not a number"
    [[ $SAMPLES == [01] ]] || die "SAMPLES=$SAMPLES is neither 0 nor 1"
    local interval_seconds
    interval_seconds=$(seconds_of "$INTERVAL") || die "INTERVAL=$INTERVAL is not a duration"
    seconds_of "$STEADY_WARMUP" >/dev/null || die "WARMUP=$STEADY_WARMUP is not a duration"
    install_missing
    local port
    for port in "${RAFTKV_HTTP_PORTS[@]}" "${RAFTKV_RAFT_PORTS[@]}"; do
        if port_in_use "$port"; then
            die "port $port on 127.0.0.1 is taken; stop what uses it or set PORT_OFFSET"
        fi
    done
    local binary=$RAFTKV
    if [[ -n $RAFTKV_BIN ]]; then
        [[ -x $RAFTKV_BIN ]] || die "RAFTKV_BIN=$RAFTKV_BIN is not an executable file"
        binary=$RAFTKV_BIN
    fi
    # Both, even with RAFTKV_BIN: built alone, raftkv-bench unifies its dependencies'
    # features differently and rebuilds them.
    say "building raftkv and raftkv-bench"
    cargo build --release -p raftkv -p raftkv-bench

    rm -rf "$DATA_DIR" "$RESULTS_DIR" "$LOG_DIR"
    mkdir -p "$DATA_DIR" "$LOG_DIR" "$RESULTS_DIR"
    DATA_CREATED=1
    say "work directory $WORKDIR"
    start_raftkv raftkv "$binary" RAFTKV_HTTP_PORTS RAFTKV_RAFT_PORTS RAFTKV_PIDS
    wait_raftkv_healthy raftkv RAFTKV_HTTP_PORTS RAFTKV_PIDS $((SECONDS + HEALTH_DEADLINE_SECONDS))
    say "raftkv pids ${RAFTKV_PIDS[*]}"

    local common=(--keys "$KEYS" --read-ratio "$READ_RATIO" --consistency linearizable)
    local rate=$RATE
    if [[ -z $rate ]]; then
        say "peak: closed loop for $PEAK_DURATION"
        bench raftkv "${common[@]}" --clients "$STEADY_CLIENTS" --duration "$PEAK_DURATION" \
            >"$RESULTS_DIR/peak.json" ||
            die "the peak run failed"
        rate=$(python3 -c '
import json, sys
peak = json.load(open(sys.argv[1]))["throughput_ops_per_sec"]
print(f"{peak * float(sys.argv[2]):.0f}")' "$RESULTS_DIR/peak.json" "$LOAD")
        say "peak $(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["throughput_ops_per_sec"]))' \
            "$RESULTS_DIR/peak.json") ops/s; pacing at $LOAD of it: $rate ops/s"
    fi
    local samples=()
    if [[ $SAMPLES == 1 ]]; then
        samples=(--samples "$RESULTS_DIR/samples.csv")
        record_cpu "$RESULTS_DIR/cpu.txt" &
    fi
    say "steady: $rate ops/s from $PACED_CLIENTS clients for $DURATION after $STEADY_WARMUP of" \
        "warm-up, a row every $INTERVAL (live in $LOG_DIR/bench.log)"
    bench raftkv "${common[@]}" --clients "$PACED_CLIENTS" --rate "$rate" \
        --warmup "$STEADY_WARMUP" --duration "$DURATION" --report-every "$INTERVAL" "${samples[@]}" \
        >"$RESULTS_DIR/steady.json" \
        2> >(tee "$LOG_DIR/bench.log" >&2) ||
        die "the steady run failed"
    steady_table "$RESULTS_DIR/steady.json" | tee "$RESULTS_DIR/steady.txt"
    if [[ $SAMPLES == 1 ]]; then
        python3 "$STEADY_REPO/bench/lib/timeline.py" "$RESULTS_DIR/samples.csv" \
            "$interval_seconds" --cpu "$RESULTS_DIR/cpu.txt" "$LOG_DIR"/raftkv-*.log | tee "$RESULTS_DIR/timeline.txt"
    fi
}

# record_cpu FILE: the machine's /proc/stat `cpu` line about once a second, after the Unix time,
# until this script ends (bash builtins only, so that it costs the run nothing measurable).
record_cpu() {
    local line parent=$$
    while kill -0 "$parent" 2>/dev/null; do
        read -r line </proc/stat
        printf '%s %s\n' "$EPOCHREALTIME" "$line"
        sleep 1
    done >"$1"
}

# seconds_of DURATION: a `raftkv bench --duration` text (90s, 1m, 1.5h, 200ms) in seconds.
seconds_of() {
    python3 - "$1" <<'EOF'
import re, sys
match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|min|m|h)?", sys.argv[1].strip())
if not match:
    sys.exit(1)
unit = {"ms": 0.001, "s": 1, "": 1, "min": 60, "m": 60, "h": 3600}[match.group(2) or ""]
print(float(match.group(1)) * unit)
EOF
}

# steady_table JSON: the per-interval table, the verdict and the memory trend.
steady_table() {
    python3 - "$1" <<'EOF'
import json, sys

report = json.load(open(sys.argv[1]))
rows = report.get("intervals") or []
mib = lambda b: b / (1024 * 1024)
ms = lambda us: us / 1000
print(f"raftkv steady state: {report['clients']} clients, {report['read_ratio']:.0%} reads, "
      f"paced at {report['rate_ops_per_sec']:.0f} ops/s (latency from the intended start), "
      f"{report['elapsed_secs'] / 60:.1f} min")
print(f"{'min':>4} {'ops/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8} {'errors':>6} "
      f"{'p50÷1st':>7} {'p99÷1st':>7} {'RSS MiB per node':>22} {'CPU':>5}")
for row in rows:
    latency = row.get("latency_us") or {}
    rss = row.get("server_rss_bytes") or []
    ratio = lambda key: f"{row[key]:.2f}" if row.get(key) is not None else "-"
    print(f"{row['number']:>4} {row['throughput_ops_per_sec']:>7.0f} "
          f"{ms(latency.get('p50', 0)):>7.2f} {ms(latency.get('p99', 0)):>7.2f} "
          f"{ms(latency.get('p999', 0)):>8.2f} {row['errors']:>6} {ratio('p50_vs_first'):>7} "
          f"{ratio('p99_vs_first'):>7} {' '.join(f'{mib(b):6.1f}' for b in rss):>22} "
          f"{row.get('server_cores') or 0:>5.2f}"
          + ("  (partial)" if row["partial"] else ""))
steady = report.get("steadiness")
if steady:
    verdict = "within" if steady["within"] else "NOT within"
    print(f"p50 {steady['p50_min_vs_first']:.2f}-{steady['p50_max_vs_first']:.2f}x and p99 "
          f"{steady['p99_min_vs_first']:.2f}-{steady['p99_max_vs_first']:.2f}x the first "
          f"interval's over {steady['intervals']} intervals: {verdict} ±{steady['tolerance']:.0%}")
full = [row for row in rows if not row["partial"] and row.get("server_rss_bytes")]
if len(full) >= 4:
    middle, last = full[len(full) // 2], full[-1]
    growth = [mib(b - a) for a, b in zip(middle["server_rss_bytes"], last["server_rss_bytes"])]
    span = (last["start_secs"] - middle["start_secs"]) / 60
    print(f"RSS growth over the second half ({span:.0f} min, interval {middle['number']} to "
          f"{last['number']}): " + ", ".join(f"{g:+.1f} MiB" for g in growth) + " per node")
EOF
}

steady_main "$@"
