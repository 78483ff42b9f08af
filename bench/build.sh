#!/usr/bin/env bash
# Benchmark: cairn build against the floor measured in the same run.
#
# The spec has a kernel image with one ~80 MB gzip layer (a 16 MiB kernel plus a
# kernel.tar holding 64 MiB of modules in 1,024 files) and six busybox-like service
# containers. The floor is what any builder must do at least: decompress every layer once
# (gzip -dc to a file) and write the output once; for kernel+initrd also compress the
# initrd once with the same codec (gzip -6).
#
# Usage: bash bench/build.sh [WORKDIR]     (needs python3, gzip, GNU time)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/cairn-bench.XXXXXX)}
mkdir -p "$work"
cargo build --release --locked --quiet
cairn=$PWD/target/release/cairn
export CAIRN_STORE=$work/store
rm -rf "$CAIRN_STORE" "$work/out" "$work/floor"

python3 bench/make_images.py "$work/images"
for d in "$work"/images/*/; do "$cairn" import "$d" -q; done
cp bench/bench.yml "$work/bench.yml"
"$cairn" lock "$work/bench.yml" -q

timeit() { # prints "seconds peak_rss_kib" for a command
    /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" >/dev/null
    cat "$work/time.txt"
}
sync
floor_tar() {
    mkdir -p "$work/floor"
    : > "$work/floor/all.tar"
    for l in "$work"/images/*/blobs/sha256/*; do
        if [ "$(head -c2 "$l" | od -An -tx1 | tr -d " ")" = "1f8b" ]; then gzip -dc "$l" >> "$work/floor/all.tar"; fi
    done
}
floor_initrd() {
    floor_tar
    gzip -6 -c "$work/floor/all.tar" > "$work/floor/all.tar.gz"
}
export -f floor_tar floor_initrd
export work

report() { # name cairn_args floor_fn
    local name=$1 fmt=$2 floor=$3 best_c=999999 best_f=999999 rss=0
    for _ in 1 2 3; do
        rm -rf "$work/out" "$work/floor"
        read -r c r < <(timeit "$cairn" build "$work/bench.yml" --locked -q -f "$fmt" -o "$work/out")
        rm -rf "$work/floor"
        read -r f _ < <(timeit bash -c "$floor")
        best_c=$(python3 -c "print(min($best_c, $c))")
        best_f=$(python3 -c "print(min($best_f, $f))")
        rss=$r
    done
    python3 -c "print(f'{\"$name\":<16} cairn {$best_c:6.2f} s   floor {$best_f:6.2f} s   ratio {$best_c/$best_f:5.2f}x   peak RSS {$rss/1024:6.1f} MiB')"
}
report tar tar floor_tar
report kernel+initrd kernel+initrd floor_initrd
