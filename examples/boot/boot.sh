#!/usr/bin/env bash
# Builds examples/boot/boot.yml on the default store (~/.cache/cairn/store, or $CAIRN_STORE)
# and boots it in QEMU: fetches the pinned Debian kernel and busybox-static .debs (with
# .ci/qemu-setup, which also installs QEMU; run it as root once), imports them, checks the
# committed lock is current, builds kernel+initrd into out/ and runs `cairn run out/boot`.
#
# The lock pins the imported images by digest; tests/boot/versions pins the .debs' sha256.
# When Debian has replaced the kernel (see .ci/qemu-setup's loud note), update both.
set -euo pipefail
cd "$(dirname "$0")/../.."
debs=${CAIRN_BOOT_DEBS:-target/boot-debs}
if ! command -v qemu-system-x86_64 >/dev/null || ! ls "$debs"/kernel/*.deb >/dev/null 2>&1; then
    .ci/qemu-setup
fi
cargo build --release --locked --quiet
cairn=target/release/cairn
"$cairn" import "$debs"/kernel/*.deb
"$cairn" import "$debs"/busybox/*.deb
"$cairn" build examples/boot/boot.yml --locked --format kernel+initrd -o out/
exec "$cairn" run out/boot --timeout 120 "$@"
