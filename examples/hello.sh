#!/usr/bin/env bash
# Builds examples/hello.yml on the default store (~/.cache/cairn/store, or $CAIRN_STORE):
# imports the example's components from testdata/images/, checks the committed lock is
# current, and writes every output format to out/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
cairn=target/release/cairn
for image in hello-kernel hello-init hello-app; do
    "$cairn" import "testdata/images/$image" --name "cairn.example/$image:1"
done
"$cairn" build examples/hello.yml --locked \
    --format tar --format kernel+initrd --format oci -o out/
