#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 20, what CI runs; use 600 for a
# longer search), starting from the checked-in seeds in fuzz/seeds/TARGET/. Fails when any
# target crashes (a panic, an overflow, a failed assertion), hangs on one input for more
# than 10 s, or uses more than 256 MiB. Inputs found along the way are thrown away; a
# failing input is kept in fuzz/artifacts/TARGET/ (add it as a regression test, then fix).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# FUZZ_JOBS sets how many targets run at once (default: the number of CPUs). Needs
# cargo-fuzz (`cargo install cargo-fuzz --locked`; CI keeps it in target/tools/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
export PATH="$PWD/target/tools/bin:$PATH"
root=$PWD
# One build directory beside the main build's, so `cargo clean` removes it too.
target_dir="$root/target/fuzz"

cd fuzz
# cargo-fuzz's instrumentation flags (sanitizer coverage) are stable rustc options; with
# no sanitizer (`-s none`, cairn has no unsafe code) the stable toolchain builds the targets.
cargo fuzz build -s none --target-dir "$target_dir"
mapfile -t targets < <(if [ $# -gt 0 ]; then printf '%s\n' "$@"; else cargo fuzz list; fi)
bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"

# Scratch for corpus growth and the files the targets write (a tmpfs when there is one:
# the import target's store fsyncs every blob).
scratch_parent=/tmp
[ -w /dev/shm ] && scratch_parent=/dev/shm
scratch=$(mktemp -d "$scratch_parent/cairn-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

run_one() {
    local t=$1
    mkdir -p "$scratch/$t/corpus" "$scratch/$t/tmp" "artifacts/$t"
    # New inputs go to the scratch corpus (first directory); the seeds stay as they are.
    TMPDIR="$scratch/$t/tmp" "$bin_dir/$t" "$scratch/$t/corpus" "seeds/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=256 -malloc_limit_mb=256 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 \
        >"$scratch/$t.log" 2>&1
}

jobs_max="${FUZZ_JOBS:-$(nproc)}"
declare -A pid_of
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
    run_one "$t" &
    pid_of[$t]=$!
done

failed=()
printf '%-14s %10s %8s %8s %8s  %s\n' target runs exec/s cov ft result
for t in "${targets[@]}"; do
    status=ok
    wait "${pid_of[$t]}" || status=FAILED
    log="$scratch/$t.log"
    # The last status line, e.g. `#12345 DONE cov: 812 ft: 2301 corp: 90/41Kb ... exec/s: 617`.
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    runs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    printf '%-14s %10s %8s %8s %8s  %s\n' "$t" "${runs:--}" "${eps:--}" "${cov:--}" "${ft:--}" "$status"
    if [ "$status" != ok ]; then
        failed+=("$t")
        echo "---- $t: last lines of its log ----"
        tail -n 40 "$log"
        echo "----"
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
