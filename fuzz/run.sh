#!/usr/bin/env bash
# Long fuzzing runs with libFuzzer (nightly Rust, cargo-fuzz):
#
#   fuzz/run.sh TARGET [SECONDS]     one target (default 300 seconds)
#   fuzz/run.sh all [SECONDS]        every target in turn, SECONDS each
#   fuzz/run.sh list                 the targets
#
# New interesting inputs go to fuzz/work/TARGET (not committed); fuzz/corpus/TARGET (the
# seeds) and fuzz/regressions/TARGET (crash inputs found before) are read only. A crash stops
# the run with its input in fuzz/artifacts/TARGET/: fix it, then copy the input to
# fuzz/regressions/TARGET/, where `cargo test -p fuzz-targets` replays it from then on.
#
# Environment: FUZZ_SANITIZER (address, the default, or none: about twice as fast),
# FUZZ_JOBS (parallel fuzzing processes per target, default 1), FUZZ_ARGS (more libFuzzer
# options). Allocations over 128 MiB are crashes (-malloc_limit_mb): no decoder needs one for
# an input of at most 4 KiB (-max_len), so such an allocation trusted a length field.
set -euo pipefail

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$fuzz_dir")
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$fuzz_dir/Cargo.toml" | grep -v '^raftkv-fuzz$')

usage() {
    echo "usage: $0 TARGET|all|list [SECONDS]" >&2
    echo "targets: $(echo $targets)" >&2
    exit 2
}

[ $# -ge 1 ] || usage
what=$1
seconds=${2:-300}
case $seconds in '' | *[!0-9]*) usage ;; esac

if [ "$what" = list ]; then
    echo "$targets"
    exit 0
fi
if [ "$what" = all ]; then
    selected=$targets
elif echo "$targets" | grep -qx "$what"; then
    selected=$what
else
    usage
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi

options=(-max_len=4096 -malloc_limit_mb=128 -timeout=30 -print_final_stats=1)
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then
    options+=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
fi
# shellcheck disable=SC2206 # FUZZ_ARGS is a list of options.
options+=(${FUZZ_ARGS:-})

cd "$root"
for target in $selected; do
    mkdir -p "fuzz/work/$target" "fuzz/corpus/$target" "fuzz/regressions/$target"
    echo "=== $target: ${seconds}s" >&2
    cargo +nightly fuzz run --fuzz-dir fuzz --sanitizer "${FUZZ_SANITIZER:-address}" "$target" \
        "fuzz/work/$target" "fuzz/corpus/$target" "fuzz/regressions/$target" -- \
        -max_total_time="$seconds" "${options[@]}"
done
