#!/usr/bin/env bash
# What security costs: the same closed-loop workloads from `raftkv bench` against two 3-node
# raftkv clusters on this machine, one plain and one secure (`raftkv dev --secure`: mutual TLS
# between the nodes, HTTPS for clients, a bearer token on every request), alternating run by
# run so that the machine's noise falls on both.
#
#   build    raftkv (release)
#   start    plain  HTTP 127.0.0.1:18101-18103, Raft 19101-19103
#            secure HTTPS 127.0.0.1:18111-18113, Raft 19111-19113 (CA, certificates and
#            tokens made by dev in WORKDIR/secure)
#   run      per workload and round: plain, then secure, each DURATION
#   report   a table: throughput, p50/p99 latency and server CPU per operation of each, and
#            the secure/plain throughput ratio
#   cleanup  on exit, Ctrl-C or SIGTERM: SIGTERM to both dev processes (they stop their nodes)
#
# Usage: bench/compare-secure.sh
#
# Environment:
#   DURATION   length of each run (default 15s)
#   ROUNDS     how many times every workload runs on each cluster (default 2)
#   WORKLOADS  "CLIENTS:READ_RATIO ..." (default "1:0 64:0 256:0 64:0.9"; reads are linearizable)
#   WORKDIR    where data and results go (default target/compare-secure; replaced each run)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
DURATION=${DURATION:-15s}
ROUNDS=${ROUNDS:-2}
WORKLOADS=${WORKLOADS:-"1:0 64:0 256:0 64:0.9"}
WORKDIR=${WORKDIR:-$REPO/target/compare-secure}

cargo build --release --locked -p raftkv -p raftkv-bench
BIN=$REPO/target/release/raftkv
BENCH=$REPO/target/release/raftkv-bench
rm -rf "$WORKDIR"
mkdir -p "$WORKDIR/results"

dev_pids=()
cleanup() {
    if ((${#dev_pids[@]} > 0)); then
        kill -TERM "${dev_pids[@]}" 2>/dev/null || true
        wait "${dev_pids[@]}" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The bench's own settings come from the flags below only.
unset RAFTKV_CA_CERT RAFTKV_TOKEN RAFTKV_CLIENT_CERT RAFTKV_CLIENT_KEY RAFTKV_ENDPOINTS
"$BIN" dev --data-dir "$WORKDIR/plain" --http-port 18101 --raft-port 19101 \
    >"$WORKDIR/plain.out" 2>&1 &
dev_pids+=($!)
"$BIN" dev --secure --data-dir "$WORKDIR/secure" --http-port 18111 --raft-port 19111 \
    >"$WORKDIR/secure.out" 2>&1 &
dev_pids+=($!)
for _ in $(seq 1 200); do
    if grep -q "Ctrl-C stops" "$WORKDIR/plain.out" && grep -q "Ctrl-C stops" "$WORKDIR/secure.out"; then
        break
    fi
    for pid in "${dev_pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || { cat "$WORKDIR"/*.out >&2; echo "a cluster did not start" >&2; exit 1; }
    done
    sleep 0.3
done
token=$(grep -o 'RAFTKV_TOKEN=[^ ]*' "$WORKDIR/secure.out" | cut -d= -f2)
[[ -n $token ]] || { cat "$WORKDIR/secure.out" >&2; echo "the secure cluster printed no token" >&2; exit 1; }
plain_pids=$(pgrep -P "${dev_pids[0]}" | paste -sd,)
secure_pids=$(pgrep -P "${dev_pids[1]}" | paste -sd,)

bench() { # system clients read_ratio round
    local system=$1 clients=$2 ratio=$3 round=$4 endpoints pids
    local args=(--clients "$clients" --read-ratio "$ratio" --duration "$DURATION" --value-size 256 --json)
    if [[ $system == plain ]]; then
        endpoints=127.0.0.1:18101,127.0.0.1:18102,127.0.0.1:18103
        pids=$plain_pids
    else
        endpoints=127.0.0.1:18111,127.0.0.1:18112,127.0.0.1:18113
        pids=$secure_pids
        args+=(--ca-cert "$WORKDIR/secure/certs/ca.pem")
    fi
    echo "round $round: $system, $clients clients, read ratio $ratio" >&2
    if [[ $system == plain ]]; then
        "$BENCH" --endpoints "$endpoints" --server-pids "$pids" "${args[@]}"
    else
        RAFTKV_TOKEN=$token "$BENCH" --endpoints "$endpoints" --server-pids "$pids" "${args[@]}"
    fi >"$WORKDIR/results/$system-$clients-$ratio-$round.json"
}
for round in $(seq 1 "$ROUNDS"); do
    for workload in $WORKLOADS; do
        bench plain "${workload%%:*}" "${workload##*:}" "$round"
        bench secure "${workload%%:*}" "${workload##*:}" "$round"
    done
done

python3 - "$WORKDIR/results" <<'EOF' | tee "$WORKDIR/summary.txt"
import glob, json, os, sys

runs = {}
for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
    system, clients, ratio, round_ = os.path.basename(path)[:-5].split("-")
    with open(path) as file:
        runs[(int(clients), float(ratio), int(round_), system)] = json.load(file)

def figures(run):
    servers = run.get("servers") or {}
    return (run["throughput_ops_per_sec"], run["latency_us"]["p50"] / 1000,
            run["latency_us"]["p99"] / 1000, servers.get("us_per_op", float("nan")),
            run["ops"]["errors"])

print(f"{'clients':>7} {'reads':>5} {'round':>5} | {'plain op/s':>10} {'p50 ms':>6} {'p99 ms':>6} {'µs CPU/op':>9} "
      f"| {'secure op/s':>11} {'p50 ms':>6} {'p99 ms':>6} {'µs CPU/op':>9} | {'ratio':>5} {'errors':>6}")
for (clients, ratio, round_, system) in sorted(runs):
    if system != "plain" or (clients, ratio, round_, "secure") not in runs:
        continue
    plain = figures(runs[(clients, ratio, round_, "plain")])
    secure = figures(runs[(clients, ratio, round_, "secure")])
    print(f"{clients:>7} {ratio:>5.0%} {round_:>5} | {plain[0]:>10.0f} {plain[1]:>6.2f} {plain[2]:>6.2f} {plain[3]:>9.0f} "
          f"| {secure[0]:>11.0f} {secure[1]:>6.2f} {secure[2]:>6.2f} {secure[3]:>9.0f} "
          f"| {secure[0] / plain[0]:>5.2f} {plain[4] + secure[4]:>6}")
EOF
