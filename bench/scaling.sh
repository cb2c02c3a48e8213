#!/usr/bin/env bash
# Cost as the work grows: throughput and latency of raftkv against clients, value size,
# cluster size, watchers and leases, drawn as SVG plots (`raftkv bench --sweep ... --plot`),
# and what a large store costs (memory per key, snapshot, restart and catch-up time), on this
# machine, against release builds on loopback (fsync on, every node's data on the same disk).
#
#   build    raftkv, raftkv-bench (release)
#   clients  3 nodes; writes of 256 B at CLIENTS_SWEEP clients (HTTP/2, every client a stream
#            of one connection per node)                                    ─► clients.svg
#   values   3 nodes; writes at 64 clients of VALUE_SIZES bytes over 1,000 keys (so the state
#            stays under 64 MiB at 64 KiB and the snapshots' size does not grow with the value
#            size ten thousand-fold), the values' MB/s beside the
#            disk's sequential write bandwidth, measured before and after in the same run by
#            raftkv-bench itself (1 MiB buffered writes of DISK_BYTES, one fdatasync: how the
#            log writes; no dd or fio needed)                               ─► value-size.svg
#   nodes    for N in NODE_COUNTS: a fresh N-node cluster, one run of writes at 64 clients;
#            drawn together with `raftkv bench sweep-plot`                 ─► cluster-size.svg
#   watchers 3 nodes; writes at 16 clients with WATCHERS_SWEEP watches of the written prefix
#            open, spread over the nodes                                    ─► watchers.svg
#   leases   3 nodes; writes at 64 clients with LEASES_SWEEP leases kept alive (TTL 60 s,
#            every one renewed every 2 s in keepalives of 10,000 ids)                      ─► leases.svg
#   keys     for K in STORE_KEYS: a fresh cluster of KEYS_NODES nodes, K keys of
#            KEY_VALUE_SIZE bytes put in transactions of 128 (`raftkv bench fill`); then each
#            node's RSS growth per key, the snapshots the nodes took (their "snapshot taken"
#            log lines: size, encode and hand-over time), the last node stopped and restarted
#            (time until it serves with everything applied, its RSS per key after), and a new
#            member (`serve --join`) until it is a voter with everything applied ─► keys.txt
#   cleanup  on exit, Ctrl-C or SIGTERM: every node started here is stopped (SIGTERM, SIGKILL
#            after 15 s); data directories removed unless KEEP_DATA=1
#
# Usage: bench/scaling.sh   (from anywhere; paths are relative to the repository)
#
# Environment (the defaults run in about 25 minutes on 2 cores):
#   PARTS          which parts, space-separated (default "clients values nodes watchers leases keys")
#   DURATION       measured run per point (default 5s);  WARMUP  before each (default 1s)
#   CLIENTS_SWEEP  default 1,4,16,64,256,1024
#   VALUE_SIZES    default 100,1Ki,4Ki,16Ki,64Ki
#   NODE_COUNTS    default "3 5 7"
#   WATCHERS_SWEEP default 1,10,100,1k,10k
#   LEASES_SWEEP   default 1,100,10k,100k
#   STORE_KEYS     default "1M"; "1M 10M" adds ten million keys (opt-in: about 10 minutes more
#                  and ~6.5 GiB of RAM per node, the new member included)
#   KEYS_NODES     nodes of the keys part's cluster (default 3; 1 for ten million keys on a
#                  machine with less than ~30 GiB: 3 nodes and the new member need 26)
#   KEY_VALUE_SIZE bytes per value of the keys part (default 100)
#   DISK_BYTES     bytes of each disk measurement (default 268435456)
#   PLOTS_DIR      where the SVGs go (default docs/plots)
#   WORKDIR        data/, logs/, results/ (default target/scaling, on the repository's disk,
#                  which is the disk measured)
#   PORT_OFFSET    added to every port (HTTP 18101-18108, Raft 19101-19108; default 0)
#   KEEP_DATA      1 keeps the data directories
#   BUILD          0 uses the release binaries already in target/release as they are
#   RAFTKV_WORKER_THREADS  async threads per node (default: cores ÷ 3, at least 1)
#
# Output: PLOTS_DIR/{clients,value-size,cluster-size,watchers,leases}.svg;
# WORKDIR/results/<part>.json (each a `raftkv bench --sweep --json` object; nodes-<N>.json one
# report each), keys.txt; WORKDIR/logs/<cluster>-<n>.log. A new run replaces data/ and logs/.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

PARTS=${PARTS:-"clients values nodes watchers leases keys"}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CLIENTS_SWEEP=${CLIENTS_SWEEP:-1,4,16,64,256,1024}
VALUE_SIZES=${VALUE_SIZES:-100,1Ki,4Ki,16Ki,64Ki}
NODE_COUNTS=${NODE_COUNTS:-"3 5 7"}
WATCHERS_SWEEP=${WATCHERS_SWEEP:-1,10,100,1k,10k}
LEASES_SWEEP=${LEASES_SWEEP:-1,100,10k,100k}
STORE_KEYS=${STORE_KEYS:-"1M"}
KEYS_NODES=${KEYS_NODES:-3}
KEY_VALUE_SIZE=${KEY_VALUE_SIZE:-100}
DISK_BYTES=${DISK_BYTES:-268435456}
PLOTS_DIR=${PLOTS_DIR:-$REPO/docs/plots}
WORKDIR=${WORKDIR:-$REPO/target/scaling}
PORT_OFFSET=${PORT_OFFSET:-0}
KEEP_DATA=${KEEP_DATA:-0}
BUILD=${BUILD:-1}
RAFTKV_WORKER_THREADS=${RAFTKV_WORKER_THREADS:-$(( $(nproc) / 3 > 0 ? $(nproc) / 3 : 1 ))}

readonly HEALTH_DEADLINE_SECONDS=60
readonly STOP_DEADLINE_SECONDS=15
# How long a restarted node or a new member may take to catch up before the run gives up.
readonly CATCH_UP_DEADLINE_SECONDS=600
readonly NODES_MAX=8
[[ $PORT_OFFSET =~ ^[0-9]+$ ]] && ((PORT_OFFSET <= 40000)) ||
    { printf 'scaling: PORT_OFFSET=%s is not a number up to 40000\n' "$PORT_OFFSET" >&2; exit 1; }
http_port() { printf '%s' $((18100 + $1 + PORT_OFFSET)); }
raft_port() { printf '%s' $((19100 + $1 + PORT_OFFSET)); }

readonly RAFTKV=$REPO/target/release/raftkv
readonly RAFTKV_BENCH=$REPO/target/release/raftkv-bench
DATA_DIR=$WORKDIR/data
LOG_DIR=$WORKDIR/logs
RESULTS_DIR=$WORKDIR/results

# Node id -> pid of the cluster running now; CLUSTER its name (data and log file names).
declare -A PIDS=()
CLUSTER=""

say() { printf '== %s\n' "$*" >&2; }
die() {
    printf 'scaling: %s\n' "$*" >&2
    exit 1
}

stop_node() {
    local id=$1 pid=${PIDS[$1]:-} deadline
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_DEADLINE_SECONDS))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$id]"
}

stop_cluster() {
    local id
    for id in "${!PIDS[@]}"; do kill -TERM "${PIDS[$id]}" 2>/dev/null || true; done
    for id in "${!PIDS[@]}"; do stop_node "$id"; done
    if [[ -n $CLUSTER && $KEEP_DATA != 1 ]]; then rm -rf "${DATA_DIR:?}/$CLUSTER"-*; fi
    CLUSTER=""
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_cluster
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_node ID [FLAG...]: one node of CLUSTER; --peers or --join among the flags.
start_node() {
    local id=$1
    shift
    "$RAFTKV" serve --id "$id" \
        --http-addr "127.0.0.1:$(http_port "$id")" --raft-addr "127.0.0.1:$(raft_port "$id")" \
        --data-dir "$DATA_DIR/$CLUSTER-$id" --cluster-id "scaling-$CLUSTER" \
        --worker-threads "$RAFTKV_WORKER_THREADS" "$@" \
        >>"$LOG_DIR/$CLUSTER-$id.log" 2>&1 &
    PIDS[$id]=$!
}

# start_cluster NAME N: N fresh nodes, waits until every one knows the leader.
start_cluster() {
    local name=$1 count=$2 id peers=""
    CLUSTER=$name
    rm -rf "${DATA_DIR:?}/$name"-* "$LOG_DIR/$name"-*.log
    for ((id = 1; id <= count; id++)); do
        peers+="${peers:+,}$id=127.0.0.1:$(raft_port "$id")"
    done
    for ((id = 1; id <= count; id++)); do start_node "$id" --peers "$peers"; done
    say "cluster $name: $count nodes ($(endpoints))"
    wait_until "$HEALTH_DEADLINE_SECONDS" "cluster $name to elect a leader known to all" healthy \
        >/dev/null
}

endpoints() {
    local id list=""
    for id in $(printf '%s\n' "${!PIDS[@]}" | sort -n); do
        list+="${list:+,}127.0.0.1:$(http_port "$id")"
    done
    printf '%s' "$list"
}

pids() {
    local id list=""
    for id in $(printf '%s\n' "${!PIDS[@]}" | sort -n); do list+="${list:+,}${PIDS[$id]}"; done
    printf '%s' "$list"
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND until it succeeds; prints the seconds it
# took; fails with the nodes' log tails after SECONDS or when a node exited.
wait_until() {
    local limit=$1 what=$2 started=$EPOCHREALTIME id
    shift 2
    until "$@"; do
        for id in "${!PIDS[@]}"; do
            if ! kill -0 "${PIDS[$id]}" 2>/dev/null; then
                tail -n 20 "$LOG_DIR/$CLUSTER-$id.log" >&2 || true
                die "node $id exited while waiting for $what"
            fi
        done
        if (($(elapsed_ms "$started") > limit * 1000)); then
            for id in "${!PIDS[@]}"; do tail -n 5 "$LOG_DIR/$CLUSTER-$id.log" >&2 || true; done
            die "no $what within $limit s"
        fi
        sleep 0.1
    done
    elapsed_ms "$started"
}

elapsed_ms() {
    python3 -c 'import sys, time; print(int((time.time() - float(sys.argv[1])) * 1000))' "$1"
}

# status PORT...: every node's /v1/status as a JSON list (null for a node that did not answer).
statuses() {
    python3 - "$@" <<'EOF'
import json, sys, urllib.request
out = []
for port in sys.argv[1:]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=2) as answer:
            out.append(json.load(answer))
    except Exception:
        out.append(None)
print(json.dumps(out))
EOF
}

all_ports() {
    local id
    for id in $(printf '%s\n' "${!PIDS[@]}" | sort -n); do printf '%s ' "$(http_port "$id")"; done
}

# Every node answers, one leads, every node knows it and its HTTP address.
healthy() {
    # shellcheck disable=SC2046
    statuses $(all_ports) | python3 -c '
import json, sys
s = json.load(sys.stdin)
leaders = [x["id"] for x in s if x and x.get("role") == "leader"]
ok = all(s) and len(leaders) == 1 and all(x.get("leader") == leaders[0] and x.get("leader_http") for x in s)
sys.exit(0 if ok else 1)'
}

# caught_up ID INDEX: node ID answers, has applied at least INDEX, and node 1's member list
# names it a voter (a joining node is a learner until it promotes itself).
caught_up() {
    python3 - "$(http_port "$1")" "$(http_port 1)" "$1" "$2" <<'EOF'
import json, sys, urllib.request
port, first, node, index = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
        return json.load(answer)
try:
    status = get(port, "/v1/status")
    members = get(first, "/v1/members")["members"]
except Exception:
    sys.exit(1)
voter = any(m["id"] == node and m["role"] == "voter" for m in members)
sys.exit(0 if status["applied_index"] >= index and voter else 1)
EOF
}

# The leader's commit index.
commit_index() {
    # shellcheck disable=SC2046
    statuses $(all_ports) | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(max((x.get("commit_index", 0) for x in s if x), default=0))'
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# sweep NAME ARGS...: one `raftkv bench --sweep` against the running cluster, its JSON to
# results/NAME.json and its plot to PLOTS_DIR/NAME.svg.
sweep() {
    local name=$1
    shift
    say "sweep $name: $*"
    "$RAFTKV_BENCH" --endpoints "$(endpoints)" --server-pids "$(pids)" \
        --duration "$DURATION" --sweep-warmup "$WARMUP" --json \
        --plot "$PLOTS_DIR/$name.svg" "$@" >"$RESULTS_DIR/$name.json"
}

# ---------------------------------------------------------------------------------------------

if [[ $BUILD == 1 ]]; then
    say "building raftkv and raftkv-bench (release)"
    # One package at a time: built together, features unify differently and both are rebuilt.
    cargo build --release --locked -p raftkv >&2
    cargo build --release --locked -p raftkv-bench >&2
fi
[[ -x $RAFTKV && -x $RAFTKV_BENCH ]] || die "no $RAFTKV or $RAFTKV_BENCH: run with BUILD=1"
mkdir -p "$DATA_DIR" "$LOG_DIR" "$RESULTS_DIR" "$PLOTS_DIR"
say "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

for part in $PARTS; do
    case $part in
    clients)
        start_cluster sweep 3
        sweep clients --sweep "clients=$CLIENTS_SWEEP" --http2 --key-prefix clients/
        stop_cluster
        ;;
    values)
        start_cluster sweep 3
        sweep value-size --sweep "value-size=$VALUE_SIZES" --clients 64 --http2 \
            --key-prefix values/ --keys 1000 --disk-dir "$DATA_DIR" --disk-bytes "$DISK_BYTES"
        stop_cluster
        ;;
    nodes)
        points=""
        for count in $NODE_COUNTS; do
            ((count <= NODES_MAX)) || die "NODE_COUNTS: at most $NODES_MAX nodes"
            start_cluster "nodes$count" "$count"
            "$RAFTKV_BENCH" --endpoints "$(endpoints)" --server-pids "$(pids)" \
                --duration "$WARMUP" --clients 64 --http2 --json >/dev/null
            "$RAFTKV_BENCH" --endpoints "$(endpoints)" --server-pids "$(pids)" \
                --duration "$DURATION" --clients 64 --http2 --json \
                >"$RESULTS_DIR/nodes-$count.json"
            points+="${points:+,}$count=$RESULTS_DIR/nodes-$count.json"
            stop_cluster
        done
        "$RAFTKV_BENCH" sweep-plot --point "$points" --x-label "nodes in the cluster" \
            --title "raftkv writes against cluster size" \
            --subtitle "64 clients, 256 B values, $DURATION per point, every node on one machine and disk" \
            --plot "$PLOTS_DIR/cluster-size.svg"
        ;;
    watchers)
        start_cluster sweep 3
        sweep watchers --sweep "watchers=$WATCHERS_SWEEP" --clients 16 --http2 --key-prefix watched/
        stop_cluster
        ;;
    leases)
        start_cluster sweep 3
        sweep leases --sweep "leases=$LEASES_SWEEP" --clients 64 --http2 --key-prefix leased/
        stop_cluster
        ;;
    keys)
        : >"$RESULTS_DIR/keys.txt"
        n=$KEYS_NODES
        joiner=$((n + 1))
        peers=""
        for ((id = 1; id <= n; id++)); do peers+="${peers:+,}$id=127.0.0.1:$(raft_port "$id")"; done
        for keys in $STORE_KEYS; do
            start_cluster "keys$keys" "$n"
            declare -A rss_before=()
            for ((id = 1; id <= n; id++)); do rss_before[$id]=$(rss_kib "${PIDS[$id]}"); done
            count=$(python3 -c 'import sys; s=sys.argv[1]; m={"k":10**3,"M":10**6}; print(int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(s))' "$keys")
            say "keys: filling $count keys of $KEY_VALUE_SIZE B"
            fill=$("$RAFTKV_BENCH" --endpoints "$(endpoints)" fill --keys "$count" \
                --value-size "$KEY_VALUE_SIZE")
            index=$(commit_index)
            for ((id = 1; id <= n; id++)); do wait_until 600 "node $id to apply $index" caught_up "$id" "$index" >/dev/null; done
            {
                printf '## %s keys of %s B (%s nodes, %s)\n%s\n' "$count" "$KEY_VALUE_SIZE" "$n" "$(date -u +%FT%TZ)" "$fill"
                for ((id = 1; id <= n; id++)); do
                    after=$(rss_kib "${PIDS[$id]}")
                    printf 'node %s RSS %s MiB -> %s MiB: %.0f bytes per key\n' "$id" \
                        $((rss_before[$id] / 1024)) $((after / 1024)) \
                        "$(python3 -c "print(($after - ${rss_before[$id]}) * 1024 / $count)")"
                done
                printf 'snapshots taken during the fill (node: bytes, encode ms, hand-over ms):\n'
                for ((id = 1; id <= n; id++)); do
                    grep -a 'snapshot taken' "$LOG_DIR/$CLUSTER-$id.log" |
                        sed -E 's/\x1b\[[0-9;]*m//g' |
                        sed -nE "s/.*bytes=([0-9]+).*encode_us=([0-9]+).*hand_over_us=([0-9]+).*/$id \1 \2 \3/p" |
                        awk '{ printf "  node %s: %s B, %.0f ms, %.0f ms\n", $1, $2, $3 / 1000, $4 / 1000 }' ||
                        true # a node that took none
                done
                # The snapshots above were taken during the fill, of a smaller state: a backup
                # encodes the whole state the same way (an image, then the encoding off the
                # apply path) and sends it.
                backup="$DATA_DIR/keys$keys-backup.snap"
                started=$EPOCHREALTIME
                saved=$("$RAFTKV" snapshot save "$backup" --endpoints "$(endpoints)")
                printf 'the whole state saved (raftkv snapshot save: encode, send, write, fsync) in %s ms: %s\n' \
                    "$(elapsed_ms "$started")" "$saved"
                rm -f "$backup"
            } | tee -a "$RESULTS_DIR/keys.txt" >&2
            say "keys: restarting node $n"
            stop_node "$n"
            start_node "$n" --peers "$peers"
            restart_ms=$(wait_until "$CATCH_UP_DEADLINE_SECONDS" "node $n to serve again" caught_up "$n" "$index")
            restarted_rss=$(rss_kib "${PIDS[$n]}")
            say "keys: node $joiner joins"
            start_node "$joiner" --join "127.0.0.1:$(http_port 1)"
            join_ms=$(wait_until "$CATCH_UP_DEADLINE_SECONDS" "node $joiner to catch up" caught_up "$joiner" "$index")
            {
                printf 'node %s restarted: serving with index %s applied after %s ms; RSS %s MiB, %.0f bytes per key\n' \
                    "$n" "$index" "$restart_ms" $((restarted_rss / 1024)) \
                    "$(python3 -c "print($restarted_rss * 1024 / $count)")"
                printf 'node %s joined (serve --join): a voter with index %s applied after %s ms\n' \
                    "$joiner" "$index" "$join_ms"
                printf 'snapshots node %s received or took:\n' "$joiner"
                grep -a -i 'snapshot' "$LOG_DIR/$CLUSTER-$joiner.log" | sed -E 's/\x1b\[[0-9;]*m//g' | tail -n 5 || true
                printf '\n'
            } | tee -a "$RESULTS_DIR/keys.txt" >&2
            stop_cluster
        done
        ;;
    *) die "unknown part $part (clients values nodes watchers leases keys)" ;;
    esac
done
say "done: plots in $PLOTS_DIR, figures in $RESULTS_DIR"
