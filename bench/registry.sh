#!/usr/bin/env bash
# Pull and push of an image with one ~80 MB layer over loopback: cairn vs skopeo.
#
# One image with a single ~80 MB (uncompressed, random) layer, pushed and pulled over
# loopback to Debian's docker-registry (two instances, so neither tool finds the other's
# blobs), each timed against `skopeo copy` of the same image in the same run.
# Run: cargo build --release && bench/registry.sh   (needs docker-registry, skopeo, curl, bc)
set -euo pipefail
C=${CAIRN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/cairn}
B=$(mktemp -d /tmp/cairn-bench.XXXX)
trap 'kill $(cat $B/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf $B' EXIT
start_reg() { # name port
    mkdir -p $B/$1
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' $B/$1 $2 > $B/$1.yml
    docker-registry serve $B/$1.yml >/dev/null 2>&1 & echo $! > $B/$1.pid
    for _ in $(seq 100); do curl -sf http://127.0.0.1:$2/v2/ >/dev/null && return; sleep 0.1; done
}
t() { local s=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc; }
mkdir -p $B/rootfs && head -c 80000000 /dev/urandom > $B/rootfs/blob
export CAIRN_STORE=$B/store
$C -q import $B/rootfs --name bench/big:1
skopeo copy -q oci:$B/store:docker.io/bench/big:1 oci:$B/big.oci:latest
start_reg r1 45301; start_reg r2 45302
echo "push cairn  $(t $C -q push $B/big.oci 127.0.0.1:45301/big:1)"
echo "push skopeo $(t skopeo copy -q --dest-tls-verify=false oci:$B/big.oci:latest docker://127.0.0.1:45302/big:1)"
echo "pull cairn  $(CAIRN_STORE=$B/s2 t $C -q pull 127.0.0.1:45301/big:1)"
echo "pull skopeo $(t skopeo copy -q --src-tls-verify=false docker://127.0.0.1:45302/big:1 oci:$B/pulled.oci:latest)"
