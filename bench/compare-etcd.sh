#!/usr/bin/env bash
# Compares raftkv with etcd on this machine: the same closed-loop workloads from the same load
# generator (`raftkv-bench`, which `raftkv bench` runs), against a 3-member cluster of each on
# loopback, with the disk's floor measured alongside. raftkv is measured twice at every point:
# through its own HTTP API ("raftkv") and through etcd's v3 gRPC API on its --grpc-addr
# ("raftkv-grpc"), driven exactly as etcd is (`raftkv bench --target etcd`, the same flags).
#
#   install  etcd-server, etcd-client, python3 (apt-get, only if missing)
#   build    raftkv, raftkv-bench, raft-bench (release)
#   start    etcd   client 127.0.0.1:23791-23793, peer 23801-23803 (fsync on, the default)
#            raftkv HTTP   127.0.0.1:18001-18003, gRPC 18021-18023, Raft 19001-19003
#            (every port plus PORT_OFFSET)
#            wait for both to be healthy (30 s), record the 6 server pids
#   floor    raft-bench floor --dir WORKDIR --json: 2 × fdatasync p50 + loopback round trip p50
#   run      per mix (writes: --read-ratio 0; reads: --read-ratio 0.9, readonly: --read-ratio 1;
#            linearizable reads; lease-reads: --read-ratio 0.9 with raftkv's HTTP reads served
#            under the leader's lease, the others linearizable) and
#            client count, ROUNDS times: per system, a 2 s warm-up (discarded), then the
#            measured run; the two systems alternate, and which goes first alternates from
#            round to round and point to point
#   memory   MEMORY_WRITES writes of 256 B by 256 clients per system, then each node's RSS
#   report   a table (printed and in results/summary.txt)
#   cleanup  on exit, Ctrl-C or SIGTERM: stop the 6 servers (SIGTERM, SIGKILL after 15 s;
#            etcd takes a few seconds, its leader tries to hand over first), remove the data
#            directories unless KEEP_DATA=1; results/ and logs/ are kept
#
# Usage: bench/compare-etcd.sh   (from anywhere; the paths below are relative to the repo)
#
# Environment:
#   DURATION       length of each measured run (default 10s; any `raftkv bench --duration`)
#   CLIENTS        client counts, space-separated (default "1 16 64 256")
#   MIXES          workloads, space-separated, from "writes reads readonly lease-reads"
#                  (default "writes reads"; reads: 90% linearizable reads, readonly: 100%;
#                  lease-reads: 90% reads, raftkv's HTTP runs with `--consistency lease`, etcd
#                  and raftkv-grpc linearizable, since etcd has no lease reads: the row shows
#                  what a raftkv client gains by choosing them)
#   MEMORY_WRITES  writes of the memory run (default 1000000; 0 skips it)
#   ROUNDS         measured pairs per point (default 1): each round runs both systems back to
#                  back; the table shows the round whose throughput ratio is the median, and a
#                  line per point lists every round's ratio (this machine's noise often moves
#                  one 10 s point by 20%)
#   WORKDIR        where data/, logs/ and results/ go (default target/compare-etcd, on the
#                  repo's disk, which is the disk measured)
#   KEEP_DATA      1 keeps the servers' data directories after the run
#   GRPC           1 (default) measures raftkv through etcd's gRPC API too, as a third system
#                  "raftkv-grpc" (the same cluster as "raftkv"); 0 leaves it out
#   ETCD_CONNECTIONS  gRPC connections per endpoint of the etcd-protocol runs (etcd and
#                  raftkv-grpc alike; default 1, as etcd's Go client keeps)
#   ETCD_TARGET_LEADER  1: the etcd-protocol runs send every request to the leader, as
#                  raftkv's HTTP clients do (`--target-leader`); 0 (default): the clients are
#                  spread over the three endpoints and followers pass writes on
#   SPREAD         1: every system's clients spread evenly over its three nodes, each client
#                  sending every request to its own node and never following the leader (as
#                  behind a load balancer): raftkv's HTTP runs with `raftkv bench --spread`, the
#                  etcd-protocol runs spread over the endpoints (`--spread`; not with
#                  ETCD_TARGET_LEADER=1); followers pass writes on to the leader. 0 (default):
#                  raftkv's HTTP clients follow the leader. The summary says which; each JSON
#                  has it as "placement". Same run length either way: run the script once per
#                  setting (with another WORKDIR to keep both) to compare them
#   PORT_OFFSET    added to every port below (default 0), to run beside other clusters
#   RAFTKV_WORKER_THREADS  async threads per raftkv node (default: cores ÷ 3, at least 1)
#   RAFTKV_HTTP2_FROM  from this many clients up (default 16), the load generator speaks
#                  HTTP/2 (h2c) to raftkv, its clients streams of one connection per node, as
#                  its etcd clients share gRPC (HTTP/2) connections; below, HTTP/1.1 with a
#                  keep-alive connection per client (one client has nothing to multiplex, and
#                  HTTP/1.1 costs it less). 0: HTTP/2 always; a huge number: never
#   GOMAXPROCS     passed to etcd as usual (default: unset, one per core)
#   RAFTKV_BASELINE_BIN  a second raftkv binary (e.g. an older commit's, built in a worktree of
#                  its own) measured in the same run as a third system, "raftkv-base": its own
#                  3-node cluster on 127.0.0.1:18011-18013 (Raft 19011-19013), alternated with
#                  the other two at every point, and a second table, this build ÷ the baseline
#
# Output (system: etcd, raftkv, raftkv-grpc, raftkv-base): WORKDIR/results/<mix>-<clients>-<system>.json (one `raftkv bench --json` object each;
# rounds after the first: <mix>-<clients>-<system>.r<round>.json),
# memory-<system>.json, floor.json, summary.txt; WORKDIR/logs/<system>-<n>.log; WORKDIR/pids.
# A new run starts both clusters empty and replaces data/, logs/ and results/.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-"1 16 64 256"}
MIXES=${MIXES:-"writes reads"}
MEMORY_WRITES=${MEMORY_WRITES:-1000000}
ROUNDS=${ROUNDS:-1}
WORKDIR=${WORKDIR:-$REPO/target/compare-etcd}
KEEP_DATA=${KEEP_DATA:-0}
RAFTKV_HTTP2_FROM=${RAFTKV_HTTP2_FROM:-16}
GRPC=${GRPC:-1}
ETCD_CONNECTIONS=${ETCD_CONNECTIONS:-1}
ETCD_TARGET_LEADER=${ETCD_TARGET_LEADER:-0}
SPREAD=${SPREAD:-0}
PORT_OFFSET=${PORT_OFFSET:-0}
# The three raftkv nodes share the machine's cores, as `raftkv dev` sizes them; etcd keeps its
# default GOMAXPROCS (one per core), which measured faster here than GOMAXPROCS=1.
RAFTKV_WORKER_THREADS=${RAFTKV_WORKER_THREADS:-$(( $(nproc) / 3 > 0 ? $(nproc) / 3 : 1 ))}

# Fixed settings of every run.
readonly WARMUP=2s
readonly VALUE_SIZE=256
readonly KEYS=100000
readonly MEMORY_CLIENTS=256
readonly HEALTH_DEADLINE_SECONDS=30
readonly STOP_DEADLINE_SECONDS=15
# Large enough for 1M writes of 256 B with every revision kept (no compaction by default).
readonly ETCD_QUOTA_BACKEND_BYTES=$((8 * 1024 * 1024 * 1024))

readonly NODES=(1 2 3)
# ports BASE...: each BASE plus PORT_OFFSET.
ports() {
    local port
    for port in "$@"; do printf '%s ' $((port + PORT_OFFSET)); done
}
[[ $PORT_OFFSET =~ ^[0-9]+$ ]] && ((PORT_OFFSET <= 40000)) ||
    { printf 'compare-etcd: PORT_OFFSET=%s is not a number up to 40000\n' "$PORT_OFFSET" >&2; exit 1; }
read -ra ETCD_CLIENT_PORTS <<<"$(ports 23791 23792 23793)"
read -ra ETCD_PEER_PORTS <<<"$(ports 23801 23802 23803)"
read -ra RAFTKV_HTTP_PORTS <<<"$(ports 18001 18002 18003)"
read -ra RAFTKV_GRPC_PORTS <<<"$(ports 18021 18022 18023)"
read -ra RAFTKV_RAFT_PORTS <<<"$(ports 19001 19002 19003)"
read -ra BASE_HTTP_PORTS <<<"$(ports 18011 18012 18013)"
read -ra BASE_RAFT_PORTS <<<"$(ports 19011 19012 19013)"
readonly ETCD_CLIENT_PORTS ETCD_PEER_PORTS RAFTKV_HTTP_PORTS RAFTKV_GRPC_PORTS RAFTKV_RAFT_PORTS \
    BASE_HTTP_PORTS BASE_RAFT_PORTS
RAFTKV_BASELINE_BIN=${RAFTKV_BASELINE_BIN:-}
# The systems measured, in their first order.
SYSTEMS=(etcd raftkv)
if [[ $GRPC == 1 ]]; then SYSTEMS+=(raftkv-grpc); fi
if [[ -n $RAFTKV_BASELINE_BIN ]]; then SYSTEMS+=(raftkv-base); fi

readonly RAFTKV=$REPO/target/release/raftkv
readonly RAFT_BENCH=$REPO/target/release/raft-bench
readonly RAFTKV_BENCH=$REPO/target/release/raftkv-bench

DATA_DIR=$WORKDIR/data
LOG_DIR=$WORKDIR/logs
RESULTS_DIR=$WORKDIR/results

ETCD_PIDS=()
RAFTKV_PIDS=()
BASE_PIDS=()
# The load generator or floor run in progress, stopped by the cleanup too.
CHILD_PID=""
# Whether this run made DATA_DIR (so the cleanup never removes a kept one it did not start).
DATA_CREATED=0

say() { printf '== %s\n' "$*" >&2; }
die() {
    printf 'compare-etcd: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Cleanup: everything started here is stopped on any exit.

# shellcheck source=lib/processes.sh
source "$REPO/bench/lib/processes.sh"

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $CHILD_PID ]]; then stop_pids "$CHILD_PID"; fi
    stop_pids "${ETCD_PIDS[@]}" "${RAFTKV_PIDS[@]}" "${BASE_PIDS[@]}"
    if ((DATA_CREATED)); then
        if [[ $KEEP_DATA == 1 ]]; then
            say "data kept in $DATA_DIR"
        else
            rm -rf "$DATA_DIR"
        fi
    fi
    exit "$status"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# 1. Tools.

install_missing() {
    local packages=()
    command -v etcd >/dev/null || packages+=(etcd-server)
    command -v etcdctl >/dev/null || packages+=(etcd-client)
    command -v python3 >/dev/null || packages+=(python3)
    ((${#packages[@]})) || return 0
    local sudo=()
    if ((EUID != 0)); then sudo=(sudo); fi
    say "installing ${packages[*]}"
    "${sudo[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${packages[@]}"
}

# ---------------------------------------------------------------------------------------------
# 3. Clusters.

# Whether something listens on 127.0.0.1:$1.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

check_ports_free() {
    local port
    for port in "${ETCD_CLIENT_PORTS[@]}" "${ETCD_PEER_PORTS[@]}" \
        "${RAFTKV_HTTP_PORTS[@]}" "${RAFTKV_GRPC_PORTS[@]}" "${RAFTKV_RAFT_PORTS[@]}" \
        "${BASE_HTTP_PORTS[@]}" "${BASE_RAFT_PORTS[@]}"; do
        if port_in_use "$port"; then
            die "port $port on 127.0.0.1 is taken (see: ss -ltnp 'sport = :$port'); stop what uses it"
        fi
    done
}

# Prints the end of a server's log, for a failure message.
show_log() {
    printf -- '--- last lines of %s ---\n' "$1" >&2
    tail -n 30 "$1" >&2 || true
}

etcd_endpoints() {
    local IFS=,
    local endpoints=() port
    for port in "${ETCD_CLIENT_PORTS[@]}"; do endpoints+=("127.0.0.1:$port"); done
    printf '%s' "${endpoints[*]}"
}

# raftkv_endpoints [PORT...]: the HTTP endpoints of this build's nodes (or of PORTs: also
# their gRPC ones).
raftkv_endpoints() {
    local IFS=,
    local endpoints=() port ports=("$@")
    ((${#ports[@]})) || ports=("${RAFTKV_HTTP_PORTS[@]}")
    for port in "${ports[@]}"; do endpoints+=("127.0.0.1:$port"); done
    printf '%s' "${endpoints[*]}"
}

start_etcd() {
    local initial_cluster="" i
    for i in "${!NODES[@]}"; do
        initial_cluster+="${initial_cluster:+,}etcd-${NODES[i]}=http://127.0.0.1:${ETCD_PEER_PORTS[i]}"
    done
    for i in "${!NODES[@]}"; do
        local n=${NODES[i]}
        local client_url=http://127.0.0.1:${ETCD_CLIENT_PORTS[i]}
        local peer_url=http://127.0.0.1:${ETCD_PEER_PORTS[i]}
        etcd --name "etcd-$n" --data-dir "$DATA_DIR/etcd-$n" \
            --listen-client-urls "$client_url" --advertise-client-urls "$client_url" \
            --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
            --initial-cluster "$initial_cluster" --initial-cluster-state new \
            --initial-cluster-token compare-etcd \
            --quota-backend-bytes "$ETCD_QUOTA_BACKEND_BYTES" \
            --logger zap --log-outputs stderr \
            >"$LOG_DIR/etcd-$n.log" 2>&1 &
        ETCD_PIDS+=($!)
    done
}

# start_raftkv NAME BINARY HTTP_PORTS_VAR RAFT_PORTS_VAR PIDS_VAR [GRPC_PORTS_VAR]: a 3-node
# cluster of BINARY, its data and logs named NAME-<n>, its pids appended to the array PIDS_VAR,
# serving etcd's gRPC API on GRPC_PORTS_VAR's ports if given.
start_raftkv() {
    local name=$1 binary=$2
    local -n http_ports=$3 raft_ports=$4 started=$5
    local grpc_ports_var=${6:-}
    local peers="" i
    for i in "${!NODES[@]}"; do
        peers+="${peers:+,}${NODES[i]}=127.0.0.1:${raft_ports[i]}"
    done
    for i in "${!NODES[@]}"; do
        local n=${NODES[i]} grpc=()
        if [[ -n $grpc_ports_var ]]; then
            local -n grpc_ports=$grpc_ports_var
            grpc=(--grpc-addr "127.0.0.1:${grpc_ports[i]}")
        fi
        "$binary" serve --id "$n" \
            --http-addr "127.0.0.1:${http_ports[i]}" "${grpc[@]}" \
            --raft-addr "127.0.0.1:${raft_ports[i]}" \
            --peers "$peers" --data-dir "$DATA_DIR/$name-$n" --cluster-id "compare-$name" \
            --worker-threads "$RAFTKV_WORKER_THREADS" \
            >"$LOG_DIR/$name-$n.log" 2>&1 &
        started+=($!)
    done
}

# check_alive SYSTEM PID...: fails with the log of a server of SYSTEM (etcd or raftkv) that
# has exited; the pids are in the order of NODES.
check_alive() {
    local system=$1 i
    shift
    local pids=("$@")
    for i in "${!pids[@]}"; do
        if ! kill -0 "${pids[i]}" 2>/dev/null; then
            show_log "$LOG_DIR/$system-${NODES[i]}.log"
            die "$system node ${NODES[i]} (pid ${pids[i]}) exited during start-up"
        fi
    done
}

etcd_member_healthy() {
    ETCDCTL_API=3 etcdctl --endpoints="$1" --command-timeout=2s endpoint health >/dev/null 2>&1
}

# Whether every raftkv node answers /v1/status, exactly one says it leads, and every node
# knows that leader and its HTTP address (so forwarded requests work from the start).
# Prints the nodes that did not answer, for a failure message.
raftkv_healthy() {
    python3 - "$@" <<'EOF'
import json, sys, urllib.request

statuses, silent = [], []
for port in sys.argv[1:]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=1) as answer:
            statuses.append(json.load(answer))
    except Exception:
        silent.append(port)
print(" ".join(silent))
leaders = [status["id"] for status in statuses if status.get("role") == "leader"]
ready = (
    not silent
    and len(leaders) == 1
    and all(s.get("leader") == leaders[0] and s.get("leader_http") for s in statuses)
)
sys.exit(0 if ready else 1)
EOF
}

wait_healthy() {
    local deadline=$((SECONDS + HEALTH_DEADLINE_SECONDS)) i silent
    say "waiting for etcd ($(etcd_endpoints))"
    until etcd_member_healthy "$(etcd_endpoints)"; do
        check_alive etcd "${ETCD_PIDS[@]}"
        if ((SECONDS >= deadline)); then
            for i in "${!NODES[@]}"; do
                if ! etcd_member_healthy "127.0.0.1:${ETCD_CLIENT_PORTS[i]}"; then
                    show_log "$LOG_DIR/etcd-${NODES[i]}.log"
                fi
            done
            die "etcd did not become healthy within ${HEALTH_DEADLINE_SECONDS} s"
        fi
        sleep 0.2
    done
    wait_raftkv_healthy raftkv RAFTKV_HTTP_PORTS RAFTKV_PIDS "$deadline"
    if [[ $GRPC == 1 ]]; then
        # The gRPC listener is bound before the node serves HTTP; this only catches a node
        # that was started without it.
        for i in "${!NODES[@]}"; do
            port_in_use "${RAFTKV_GRPC_PORTS[i]}" ||
                die "raftkv node ${NODES[i]} does not listen on its gRPC port ${RAFTKV_GRPC_PORTS[i]}"
        done
    fi
    if [[ -n $RAFTKV_BASELINE_BIN ]]; then
        wait_raftkv_healthy raftkv-base BASE_HTTP_PORTS BASE_PIDS "$deadline"
    fi
}

# wait_raftkv_healthy NAME HTTP_PORTS_VAR PIDS_VAR DEADLINE
wait_raftkv_healthy() {
    local name=$1 deadline=$4 i silent
    local -n http_ports=$2 pids=$3
    say "waiting for $name ($(raftkv_endpoints "${http_ports[@]}"))"
    until silent=$(raftkv_healthy "${http_ports[@]}"); do
        check_alive "$name" "${pids[@]}"
        if ((SECONDS >= deadline)); then
            for i in "${!NODES[@]}"; do
                # A node that answers but knows no leader is as suspect as a silent one when
                # none answers; show every log unless some nodes are silent.
                if [[ -z $silent || " $silent " == *" ${http_ports[i]} "* ]]; then
                    show_log "$LOG_DIR/$name-${NODES[i]}.log"
                fi
            done
            die "$name has no leader known to every node within ${HEALTH_DEADLINE_SECONDS} s" \
                "${silent:+(not answering: ports $silent)}"
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------------------------
# 5-6. Workloads.

# bench SYSTEM ARGS...: one `raftkv bench --json` run against SYSTEM (etcd, raftkv,
# raftkv-grpc or raftkv-base), with its servers' pids; the JSON goes to stdout. etcd and
# raftkv-grpc are driven alike, through etcd's gRPC API.
bench() {
    local system=$1
    shift
    local endpoints pids protocol=() argument clients=0 previous= target=raftkv
    local grpc_options=(--connections "$ETCD_CONNECTIONS")
    if [[ $ETCD_TARGET_LEADER == 1 ]]; then grpc_options+=(--target-leader); fi
    if [[ $SPREAD == 1 ]]; then grpc_options+=(--spread); fi
    if [[ $system == etcd ]]; then
        target=etcd
        endpoints=$(etcd_endpoints)
        pids=$(IFS=,; printf '%s' "${ETCD_PIDS[*]}")
        protocol=("${grpc_options[@]}")
    elif [[ $system == raftkv-grpc ]]; then
        target=etcd
        endpoints=$(raftkv_endpoints "${RAFTKV_GRPC_PORTS[@]}")
        pids=$(IFS=,; printf '%s' "${RAFTKV_PIDS[*]}")
        protocol=("${grpc_options[@]}")
    else
        if [[ $system == raftkv-base ]]; then
            endpoints=$(raftkv_endpoints "${BASE_HTTP_PORTS[@]}")
            pids=$(IFS=,; printf '%s' "${BASE_PIDS[*]}")
        else
            endpoints=$(raftkv_endpoints)
            pids=$(IFS=,; printf '%s' "${RAFTKV_PIDS[*]}")
        fi
        for argument in "$@"; do
            [[ $previous == --clients ]] && clients=$argument
            previous=$argument
        done
        if ((clients >= RAFTKV_HTTP2_FROM)); then
            protocol=(--http2)
        fi
        if [[ $SPREAD == 1 ]]; then protocol+=(--spread); fi
    fi
    run_child "$RAFTKV_BENCH" --target "$target" --endpoints "$endpoints" \
        --value-size "$VALUE_SIZE" --json --server-pids "$pids" "${protocol[@]}" "$@"
}

read_ratio_of() {
    case $1 in
    writes) printf '0' ;;
    reads) printf '0.9' ;;
    readonly) printf '1' ;;
    lease-reads) printf '0.9' ;;
    *) die "unknown mix \"$1\" in MIXES (expected writes, reads, readonly or lease-reads)" ;;
    esac
}

# result_file MIX CLIENTS SYSTEM ROUND: where one measured run's JSON goes.
result_file() {
    if (($4 == 1)); then
        printf '%s/%s-%s-%s.json' "$RESULTS_DIR" "$1" "$2" "$3"
    else
        printf '%s/%s-%s-%s.r%s.json' "$RESULTS_DIR" "$1" "$2" "$3" "$4"
    fi
}

run_workloads() {
    local mix clients system ratio round pair=0 order
    for mix in $MIXES; do
        ratio=$(read_ratio_of "$mix")
        for clients in $CLIENTS; do
            local common=(--clients "$clients" --keys "$KEYS" --read-ratio "$ratio")
            for round in $(seq 1 "$ROUNDS"); do
                # The system measured first rotates, so a drift of the disk or of the other
                # load on the machine does not always favour the same one.
                order=""
                local k count=${#SYSTEMS[@]}
                for ((k = 0; k < count; k++)); do
                    if ((count == 2 && pair % 2 == 1)); then
                        order+=" ${SYSTEMS[count - 1 - k]}"
                    else
                        order+=" ${SYSTEMS[(k + pair) % count]}"
                    fi
                done
                pair=$((pair + 1))
                for system in $order; do
                    local result
                    result=$(result_file "$mix" "$clients" "$system" "$round")
                    say "$mix, $clients clients, $system, round $round of $ROUNDS:" \
                        "warm-up $WARMUP, then $DURATION"
                    local consistency=linearizable
                    if [[ $mix == lease-reads && ($system == raftkv || $system == raftkv-base) ]]; then
                        consistency=lease
                    fi
                    bench "$system" "${common[@]}" --consistency "$consistency" \
                        --duration "$WARMUP" >/dev/null ||
                        die "warm-up failed: $mix, $clients clients, $system"
                    bench "$system" "${common[@]}" --consistency "$consistency" \
                        --duration "$DURATION" >"$result" ||
                        die "run failed: $mix, $clients clients, $system (see $result)"
                done
            done
        done
    done
}

run_memory() {
    local system
    # raftkv-grpc is the raftkv cluster again: its memory is raftkv's.
    for system in etcd raftkv ${RAFTKV_BASELINE_BIN:+raftkv-base}; do
        say "memory: $MEMORY_WRITES writes by $MEMORY_CLIENTS clients, $system"
        bench "$system" --ops "$MEMORY_WRITES" --clients "$MEMORY_CLIENTS" --keys "$KEYS" \
            --read-ratio 0 >"$RESULTS_DIR/memory-$system.json" ||
            die "memory run failed: $system"
    done
}

# ---------------------------------------------------------------------------------------------
# 7. Report.

summarize() {
    python3 - "$RESULTS_DIR" "$MIXES" "$CLIENTS" "$MEMORY_WRITES" "$ROUNDS" "$RAFTKV_HTTP2_FROM" \
        "${SYSTEMS[*]}" "$SPREAD" <<'EOF'
import json, os, sys

results, mixes, clients_list, memory_writes = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4])
rounds = int(sys.argv[5])
http2_from = int(sys.argv[6])
systems = tuple(sys.argv[7].split())
spread = sys.argv[8] == "1"
baseline = "raftkv-base" in systems
grpc = "raftkv-grpc" in systems

def load(name):
    with open(os.path.join(results, name)) as file:
        return json.load(file)

def throughput_ratio(runs, system="raftkv"):
    etcd = runs["etcd"]["throughput_ops_per_sec"]
    return runs[system]["throughput_ops_per_sec"] / etcd if etcd else 0.0

def point(mix, clients):
    """Every round's runs of a point (a dict per round), and the round with the median
    throughput ratio (the lower middle one of an even count)."""
    per_round = []
    for round_ in range(1, rounds + 1):
        suffix = "" if round_ == 1 else f".r{round_}"
        per_round.append({system: load(f"{mix}-{clients}-{system}{suffix}.json") for system in systems})
    ordered = sorted(per_round, key=throughput_ratio)
    return per_round, ordered[(len(ordered) - 1) // 2]

def ratio(numerator, denominator):
    return f"{numerator / denominator:.2f}" if numerator and denominator else "-"

def cpu(run, part):
    figures = run.get(part)
    return f"{figures['us_per_op']:.0f}" if figures and figures.get("us_per_op") is not None else "-"

# Column groups: a title over (header, width) columns; the first column is left-aligned.
# raftkv's HTTP API is "raftkv" in the table, its gRPC API "gRPC".
shown = ["etcd", "raftkv"] + (["raftkv-grpc"] if grpc else [])
label = {"etcd": "etcd", "raftkv": "raftkv", "raftkv-grpc": "gRPC"}
groups = [("", [("mix", max(8, *(len(mix) for mix in mixes))), ("clients", 7)])]
groups += [(f"{label[system]}" if system != "raftkv-grpc" else "raftkv via gRPC",
            [("ops/s", 8), ("p50 µs", 7), ("p99 µs", 7)]) for system in shown]
groups += [("raftkv ÷ etcd", [("ops/s", 5), ("p50", 5), ("p99", 5)])]
if grpc:
    groups += [("gRPC ÷ etcd", [("ops/s", 5), ("p50", 5), ("p99", 5)])]
groups += [("server CPU µs/op", [(label[system], 7) for system in shown]),
           ("client CPU µs/op", [(label[system], 7) for system in shown])]

def render(cells):
    """One line of the table from one list of texts per group."""
    parts = []
    for (_, columns), texts in zip(groups, cells):
        parts.append(" ".join(
            f"{text:<{width}}" if (not parts and index == 0) else f"{text:>{width}}"
            for index, ((_, width), text) in enumerate(zip(columns, texts))))
    return " | ".join(parts).rstrip()

def group_width(columns):
    return sum(width for _, width in columns) + len(columns) - 1

lines = []
lines.append("clients: " + ("spread evenly over every node of each system, leader hints ignored "
                            "(SPREAD=1; followers pass writes on to the leader)" if spread else
                            "raftkv's HTTP clients follow the leader (SPREAD=0)"))
lines.append(" | ".join(f"{title:^{group_width(columns)}}" for title, columns in groups).rstrip())
lines.append(render([[name for name, _ in columns] for _, columns in groups]))
lines.append("-" * len(lines[-1]))
errors = []
spreads = []
medians = {}
for mix in mixes:
    for clients in clients_list:
        per_round, runs = point(mix, clients)
        medians[(mix, clients)] = runs
        if rounds > 1:
            spreads.append(f"  {mix} {clients:>4} clients: "
                           + " ".join(f"{throughput_ratio(each):.2f}" for each in per_round)
                           + ("; gRPC: " + " ".join(f"{throughput_ratio(each, 'raftkv-grpc'):.2f}"
                                                    for each in per_round) if grpc else ""))
        e = runs["etcd"]
        el, et = e["latency_us"], e["throughput_ops_per_sec"]
        cells = [[mix, clients]]
        for system in shown:
            run = runs[system]
            cells.append([f"{run['throughput_ops_per_sec']:.0f}", str(run["latency_us"]["p50"]),
                          str(run["latency_us"]["p99"])])
        for system in shown[1:]:
            run = runs[system]
            rl, rt = run["latency_us"], run["throughput_ops_per_sec"]
            cells.append([ratio(rt, et), ratio(rl["p50"], el["p50"]), ratio(rl["p99"], el["p99"])])
        cells.append([cpu(runs[system], "servers") for system in shown])
        cells.append([cpu(runs[system], "client_cpu") for system in shown])
        lines.append(render(cells))
        for round_, each in enumerate(per_round, start=1):
            for system, run in each.items():
                if run["ops"]["errors"]:
                    errors.append(f"  {mix}, {clients} clients, {system}, round {round_}: "
                                  f"{run['ops']['errors']} errors of {run['ops']['total']}; "
                                  f"first: {run.get('first_error')}")
lines.append("p50, p99: latency of every operation (reads and writes together); server CPU: the "
             "three nodes' CPU time together per operation; client CPU: the load generator's")
if "lease-reads" in mixes:
    lines.append("lease-reads: raftkv's HTTP reads served by the leader under its lease (--consistency "
                 "lease); etcd has no lease reads, so etcd and raftkv-grpc read linearizably there")
lines.append(f"raftkv's load generator speaks HTTP/1.1 below {http2_from} clients (a connection "
             f"per client), HTTP/2 (h2c, a stream per client) from {http2_from}; etcd's, gRPC")
if grpc:
    lines.append("gRPC: the same raftkv cluster through etcd's v3 API on its --grpc-addr, driven as "
                 "etcd is (raftkv bench --target etcd, the same options)")
if rounds > 1:
    lines.append(f"each row: the median of {rounds} rounds by raftkv ÷ etcd throughput; every "
                 "round's raftkv ÷ etcd throughput"
                 + (" (and raftkv via gRPC ÷ etcd)" if grpc else "") + ", in order:")
    lines.extend(spreads)
if errors:
    lines.append("errors:")
    lines.extend(errors)

if baseline:
    # This build against the baseline build, same run: the cost of what changed between them.
    lines.append("")
    lines.append("raftkv (this build) against raftkv-base (RAFTKV_BASELINE_BIN), same run, same rounds:")
    lines.append(f"{'mix':<7} {'clients':>7} | {'base ops/s':>10} {'p50 µs':>7} {'p99 µs':>7} | "
                 f"{'this ops/s':>10} {'p50 µs':>7} {'p99 µs':>7} | {'÷base ops/s':>11} {'p50':>5} {'p99':>5} | "
                 f"{'base÷etcd':>9} {'this÷etcd':>9}")
    lines.append("-" * len(lines[-1]))
    for mix in mixes:
        for clients in clients_list:
            runs = medians[(mix, clients)]
            b, r, e = runs["raftkv-base"], runs["raftkv"], runs["etcd"]
            bl, rl = b["latency_us"], r["latency_us"]
            bt, rt, et = (b["throughput_ops_per_sec"], r["throughput_ops_per_sec"],
                          e["throughput_ops_per_sec"])
            lines.append(f"{mix:<7} {clients:>7} | {bt:>10.0f} {bl['p50']:>7} {bl['p99']:>7} | "
                         f"{rt:>10.0f} {rl['p50']:>7} {rl['p99']:>7} | {ratio(rt, bt):>11} "
                         f"{ratio(rl['p50'], bl['p50']):>5} {ratio(rl['p99'], bl['p99']):>5} | "
                         f"{ratio(bt, et):>9} {ratio(rt, et):>9}")
    if rounds > 1:
        lines.append("every round's raftkv ÷ raftkv-base throughput, in order:")
        for mix in mixes:
            for clients in clients_list:
                per_round, _ = point(mix, clients)
                lines.append(f"  {mix} {clients:>4} clients: " + " ".join(
                    ratio(each["raftkv"]["throughput_ops_per_sec"],
                          each["raftkv-base"]["throughput_ops_per_sec"]) for each in per_round))

floor = load("floor.json")
lines.append("")
lines.append(
    f"floor (raft-bench floor): fdatasync of 4 KiB p50 {floor['fdatasync_us_p50']:.0f} µs "
    f"(p90 {floor['fdatasync_us_p90']:.0f}), with 3 files syncing at once p50 "
    f"{floor['shared_fdatasync_us_p50']:.0f} µs, loopback round trip p50 "
    f"{floor['round_trip_us_p50']:.0f} µs")
lines.append(
    f"one replicated write = 2 × fdatasync + round trip: {floor['floor_us']:.0f} µs; "
    f"shared-disk: {floor['shared_floor_us']:.0f} µs")
if "writes" in mixes and "1" in clients_list:
    for system in systems:
        p50 = medians[("writes", "1")][system]["latency_us"]["p50"]
        lines.append(
            f"{system:>11} 1-client write p50 {p50} µs = {p50 / floor['floor_us']:.2f} × floor, "
            f"{p50 / floor['shared_floor_us']:.2f} × shared-disk floor")
else:
    lines.append("(no 1-client write run, so no latency ÷ floor)")

if memory_writes > 0:
    lines.append("")
    for system in (system for system in systems if system != "raftkv-grpc"):
        run = load(f"memory-{system}.json")
        servers = run.get("servers") or {}
        rss = servers.get("rss_bytes") or []
        per_node = " / ".join(f"{value / 2**20:.0f}" for value in rss) or "-"
        lines.append(
            f"memory after {run['ops']['ok']} of {memory_writes} writes of {run['value_size']} B "
            f"over {run['keys']} keys, {system:>6}: resident MiB per node {per_node} "
            f"({run['throughput_ops_per_sec']:.0f} writes/s, {run['ops']['errors']} errors)")

text = "\n".join(lines) + "\n"
with open(os.path.join(results, "summary.txt"), "w") as file:
    file.write(text)
sys.stdout.write(text)
EOF
}

# ---------------------------------------------------------------------------------------------

main() {
    [[ $MEMORY_WRITES =~ ^[0-9]+$ ]] || die "MEMORY_WRITES=$MEMORY_WRITES is not a count"
    [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS=$ROUNDS is not a positive count"
    [[ $GRPC == 0 || $GRPC == 1 ]] || die "GRPC=$GRPC is neither 0 nor 1"
    [[ $ETCD_TARGET_LEADER == 0 || $ETCD_TARGET_LEADER == 1 ]] ||
        die "ETCD_TARGET_LEADER=$ETCD_TARGET_LEADER is neither 0 nor 1"
    [[ $SPREAD == 0 || $SPREAD == 1 ]] || die "SPREAD=$SPREAD is neither 0 nor 1"
    if [[ $SPREAD == 1 && $ETCD_TARGET_LEADER == 1 ]]; then
        die "SPREAD=1 spreads every system's clients; ETCD_TARGET_LEADER=1 contradicts it"
    fi
    [[ $ETCD_CONNECTIONS =~ ^[1-9][0-9]*$ ]] ||
        die "ETCD_CONNECTIONS=$ETCD_CONNECTIONS is not a positive count"
    if [[ -n $RAFTKV_BASELINE_BIN && ! -x $RAFTKV_BASELINE_BIN ]]; then
        die "RAFTKV_BASELINE_BIN=$RAFTKV_BASELINE_BIN is not an executable file"
    fi
    local mix clients
    for mix in $MIXES; do read_ratio_of "$mix" >/dev/null; done
    for clients in $CLIENTS; do
        [[ $clients =~ ^[1-9][0-9]*$ ]] || die "CLIENTS holds \"$clients\", not a count"
    done

    install_missing
    # Before the build, to fail fast; a port taken during the build shows as a server that
    # exits at start-up, with its log.
    check_ports_free

    say "building raftkv, raftkv-bench and raft-bench"
    cargo build --release -p raftkv -p raftkv-bench -p raft-bench

    rm -rf "$DATA_DIR" "$RESULTS_DIR" "$WORKDIR/pids"
    mkdir -p "$DATA_DIR" "$LOG_DIR" "$RESULTS_DIR"
    DATA_CREATED=1
    say "work directory $WORKDIR"

    start_etcd
    if [[ $GRPC == 1 ]]; then
        start_raftkv raftkv "$RAFTKV" RAFTKV_HTTP_PORTS RAFTKV_RAFT_PORTS RAFTKV_PIDS RAFTKV_GRPC_PORTS
    else
        start_raftkv raftkv "$RAFTKV" RAFTKV_HTTP_PORTS RAFTKV_RAFT_PORTS RAFTKV_PIDS
    fi
    if [[ -n $RAFTKV_BASELINE_BIN ]]; then
        start_raftkv raftkv-base "$RAFTKV_BASELINE_BIN" BASE_HTTP_PORTS BASE_RAFT_PORTS BASE_PIDS
    fi
    wait_healthy
    say "etcd pids ${ETCD_PIDS[*]}; raftkv pids ${RAFTKV_PIDS[*]}; raftkv-base pids ${BASE_PIDS[*]:-}"
    printf 'etcd %s\nraftkv %s\nraftkv-base %s\n' "${ETCD_PIDS[*]}" "${RAFTKV_PIDS[*]}" \
        "${BASE_PIDS[*]:-}" >"$WORKDIR/pids"

    say "floor: $RAFT_BENCH floor --dir $WORKDIR --json"
    run_child "$RAFT_BENCH" floor --dir "$WORKDIR" --json >"$RESULTS_DIR/floor.json" ||
        die "raft-bench floor failed"

    run_workloads
    if ((MEMORY_WRITES > 0)); then run_memory; fi

    say "summary (also in $RESULTS_DIR/summary.txt)"
    summarize
}

# bench/steady.sh sources this file for its cluster pieces, without running it.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
