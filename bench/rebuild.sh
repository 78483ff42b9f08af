#!/usr/bin/env bash
# Benchmark: a warm rebuild (spec, lock and inputs unchanged; outputs reused from the build
# cache and re-verified) against a cold build (--no-cache) of the same spec, measured in the
# same run. Uses the image of bench/build.sh: a kernel with one ~80 MB gzip layer and six
# busybox-like services.
#
# Reports, per format, the best of three runs: cold (--no-cache), first (a cache miss that
# also files the outputs in the store) and warm (a hit into the same output directory), as
# wall-clock and CPU (user+system) seconds, with the warm/cold ratios. Goal: <= 0.1x.
#
# Usage: bash bench/rebuild.sh [WORKDIR]     (needs python3, GNU time)
#        CAIRN=path/to/cairn bash bench/rebuild.sh   (skips the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/cairn-rebuild.XXXXXX)}
mkdir -p "$work"
if [ -z "${CAIRN:-}" ]; then
    cargo build --release --locked --quiet
    CAIRN=$PWD/target/release/cairn
fi
cairn=$CAIRN
export CAIRN_STORE=$work/store
unset CAIRN_NO_CACHE SOURCE_DATE_EPOCH
rm -rf "$CAIRN_STORE" "$work/out"

timeit() { # prints "wall_seconds cpu_seconds" for a command
    /usr/bin/time -f "%e %U %S" -o "$work/time.txt" "$@" >/dev/null
    read -r e u s < "$work/time.txt"
    python3 -c "print($e, $u + $s)"
}
best() { python3 -c "print(min($1, $2))"; }

cp bench/bench.yml "$work/bench.yml"
python3 bench/make_images.py "$work/images"
for d in "$work"/images/*/; do "$cairn" import "$d" -q; done
"$cairn" lock "$work/bench.yml" -q
sync

report() { # name format
    local name=$1 fmt=$2
    local cw=1e9 cc=1e9 fw=1e9 fc=1e9 ww=1e9 wc=1e9 w c
    local build=("$cairn" build "$work/bench.yml" --locked -q -f "$fmt" -o "$work/out")
    for _ in 1 2 3; do
        rm -rf "$work/out"
        read -r w c < <(timeit "${build[@]}" --no-cache)
        cw=$(best "$cw" "$w"); cc=$(best "$cc" "$c")
        "$cairn" store gc --drop-cache -q >/dev/null
        read -r w c < <(timeit "${build[@]}")
        fw=$(best "$fw" "$w"); fc=$(best "$fc" "$c")
        read -r w c < <(timeit "${build[@]}")
        ww=$(best "$ww" "$w"); wc=$(best "$wc" "$c")
    done
    python3 - "$name" "$cw" "$cc" "$fw" "$fc" "$ww" "$wc" <<'EOF'
import sys
name, cw, cc, fw, fc, ww, wc = sys.argv[1], *map(float, sys.argv[2:])
print(f"{name:<14} cold {cw:5.2f} s wall {cc:5.2f} s cpu | first (miss + filing) {fw:5.2f} s wall "
      f"{fc:5.2f} s cpu | warm {ww:5.2f} s wall {wc:5.2f} s cpu | warm/cold: wall {ww / cw:5.3f}x, "
      f"cpu {wc / max(cc, 0.01):5.3f}x")
EOF
}
report tar tar
report kernel+initrd kernel+initrd
