# Process helpers shared by the bench scripts (sourced, not run). The caller sets
# STOP_DEADLINE_SECONDS and keeps the child it waits for in CHILD_PID (run_child sets it).

# stop_pids PID...: SIGTERM to each, SIGKILL to those still running after
# STOP_DEADLINE_SECONDS; waits for all.
stop_pids() {
    local pids=("$@") pid deadline
    ((${#pids[@]})) || return 0
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + STOP_DEADLINE_SECONDS))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            printf '%s: pid %s did not stop within %s s; killing it\n' \
                "$(basename "$0" .sh)" "$pid" "$STOP_DEADLINE_SECONDS" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

# Runs "$@" in the background and waits for it, so a signal reaches the traps at once rather
# than after the command ends; returns its exit status.
run_child() {
    local status=0
    "$@" &
    CHILD_PID=$!
    wait "$CHILD_PID" || status=$?
    CHILD_PID=""
    return "$status"
}
