#!/usr/bin/env bash
# Benchmark: cairn build against baselines measured in the same run.
#
# The spec has a kernel image with one ~80 MB gzip layer (a 16 MiB kernel plus a
# kernel.tar holding 64 MiB of modules in 1,024 files) and six busybox-like service
# containers.
#
# tar: against the floor any builder must pay at least: decompress every layer once
# (gzip -dc to a file) and write the output once.
# kernel+initrd: cairn's whole build (read and decompress the layers, assemble, write the
# cpio, compress it) against compressing alone, of the same uncompressed initrd (cairn's own
# cpio, decompressed), with `gzip -6` (one core) and `pigz -6` (all cores). With
# LINUXKIT=/path/to/linuxkit also against `linuxkit build --format kernel+initrd` of the same
# spec; the cairn.bench/* images must then already be in linuxkit's cache
# (LINUXKIT_CACHE, default ~/.linuxkit/cache). Without it that column is skipped.
#
# Each figure is the best of 3 runs: wall seconds, CPU seconds (user+sys) and peak RSS.
#
# Usage: bash bench/build.sh [WORKDIR]     (needs python3, gzip, pigz, GNU time)
#        CAIRN=/path/to/cairn bash bench/build.sh    (measures that binary, no cargo build)
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in python3 gzip pigz /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench/build.sh needs $tool (apt-get install ${tool##*/})" >&2; exit 2; }
done
work=${1:-$(mktemp -d /tmp/cairn-bench.XXXXXX)}
mkdir -p "$work"
if [ -n "${CAIRN:-}" ]; then
    cairn=$CAIRN
else
    cargo build --release --locked --quiet
    cairn=$PWD/target/release/cairn
fi
export CAIRN_STORE=$work/store
rm -rf "$CAIRN_STORE" "$work/out" "$work/floor" "$work/lk"

python3 bench/make_images.py "$work/images"
for d in "$work"/images/*/; do "$cairn" import "$d" -q; done
cp bench/bench.yml "$work/bench.yml"
"$cairn" lock "$work/bench.yml" -q

sync
floor_tar() {
    mkdir -p "$work/floor"
    : > "$work/floor/all.tar"
    for l in "$work"/images/*/blobs/sha256/*; do
        if [ "$(head -c2 "$l" | od -An -tx1 | tr -d " ")" = "1f8b" ]; then gzip -dc "$l" >> "$work/floor/all.tar"; fi
    done
}
export -f floor_tar
export work

# best NAME CMD...: runs CMD 3 times (output directories cleared before each run) and
# records the best wall, CPU and RSS as NAME_wall, NAME_cpu, NAME_rss (MiB).
best() {
    local name=$1 w c r bw=1e9 bc=1e9 br=1e9
    shift
    for _ in 1 2 3; do
        rm -rf "$work/out" "$work/floor" "$work/lk"
        mkdir -p "$work/floor"
        /usr/bin/time -f "%e %U %S %M" -o "$work/time.txt" "$@" >/dev/null
        read -r w u s r < "$work/time.txt"
        bw=$(python3 -c "print(min($bw, $w))")
        bc=$(python3 -c "print(min($bc, $u + $s))")
        br=$(python3 -c "print(min($br, $r / 1024))")
    done
    printf -v "${name}_wall" %s "$bw"
    printf -v "${name}_cpu" %s "$bc"
    printf -v "${name}_rss" %s "$br"
}

row() { # label name [baseline_name]
    local label=$1 n=$2 b=${3:-}
    local w=${n}_wall c=${n}_cpu r=${n}_rss
    if [ -n "$b" ]; then
        local bw=${b}_wall bc=${b}_cpu
        python3 -c "print(f'{\"$label\":<24} wall {${!w}:6.2f} s  CPU {${!c}:6.2f} s  RSS {${!r}:6.1f} MiB   cairn/this: wall {$cairn_ki_wall/${!bw}:5.2f}x  CPU {$cairn_ki_cpu/${!bc}:5.2f}x')"
    else
        python3 -c "print(f'{\"$label\":<24} wall {${!w}:6.2f} s  CPU {${!c}:6.2f} s  RSS {${!r}:6.1f} MiB')"
    fi
}

best cairn_tar "$cairn" build "$work/bench.yml" --locked -q -f tar -o "$work/out"
best floor_tar bash -c floor_tar
best cairn_ki "$cairn" build "$work/bench.yml" --locked -q -f kernel+initrd -o "$work/out"
# The same initrd content, uncompressed, for the compressors.
"$cairn" build "$work/bench.yml" --locked -q -f kernel+initrd -o "$work/ref"
gzip -dc "$work/ref/bench-initrd.img" > "$work/initrd.cpio"
best gzip6 bash -c 'gzip -6 -c "$work/initrd.cpio" > "$work/floor/initrd.gz"'
best pigz6 bash -c 'pigz -6 -c "$work/initrd.cpio" > "$work/floor/initrd.gz"'
if [ -n "${LINUXKIT:-}" ]; then
    best linuxkit "$LINUXKIT" build --format kernel+initrd --dir "$work/lk" \
        --cache "${LINUXKIT_CACHE:-$HOME/.linuxkit/cache}" "$work/bench.yml"
fi

echo "cores: $(nproc)   initrd: $(stat -c %s "$work/initrd.cpio") bytes uncompressed, cairn $(stat -c %s "$work/ref/bench-initrd.img"), gzip -6 $(gzip -6 -c "$work/initrd.cpio" | wc -c), pigz -6 $(pigz -6 -c "$work/initrd.cpio" | wc -c)"
row "tar: cairn build" cairn_tar
python3 -c "print(f'{\"tar: floor (gzip -dc)\":<24} wall {$floor_tar_wall:6.2f} s  CPU {$floor_tar_cpu:6.2f} s   cairn/floor: wall {$cairn_tar_wall/$floor_tar_wall:5.2f}x')"
row "kernel+initrd: cairn" cairn_ki
row "gzip -6 of the cpio" gzip6 gzip6
row "pigz -6 of the cpio" pigz6 pigz6
if [ -n "${LINUXKIT:-}" ]; then
    row "linuxkit build" linuxkit linuxkit
else
    echo "linuxkit build           skipped (set LINUXKIT=/path/to/linuxkit)"
fi
