#!/bin/sh
# Times `cairn verify` against `sha256sum` of the same artifacts (best of 3 each, same run)
# on a ~512 MiB image, and prints the ratio. Target: verify <= 1.1x sha256sum.
#
#   bench/verify.sh            # SIZE_MIB=512 by default
#
# Builds cairn in release mode (honours CARGO_TARGET_DIR). Needs ~1.5 GiB in $TMPDIR.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
size=${SIZE_MIB:-512}
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
cairn="${CARGO_TARGET_DIR:-$here/target}/release/cairn"
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-verify.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export CAIRN_STORE="$work/store"
head -c "$((size * 1024 * 1024))" /dev/urandom > payload.bin
cat > big.yml <<'YML'
files:
  - path: var/lib/big/payload.bin
    source: payload.bin
    mode: "0644"
YML
"$cairn" keygen --out release >/dev/null 2>&1
"$cairn" lock big.yml -q
"$cairn" build big.yml -f tar -o out --sign-key release.key -q
ls -l out/big.tar | awk '{printf "artifact: out/big.tar, %d MiB\n", $5 / 1048576}'

now() { date +%s.%N; }
best() { # best wall time of 3 runs of "$@"
  b=
  for _ in 1 2 3; do
    t0=$(now); "$@" >/dev/null; t1=$(now)
    t=$(echo "$t1 - $t0" | bc)
    if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
  done
  echo "$b"
}
cat out/big.tar > /dev/null  # warm the page cache for both
v=$(best "$cairn" verify out --key release.pub)
s=$(best sha256sum out/big.tar)
printf 'cairn verify: %.3f s\nsha256sum:    %.3f s\nratio:        %.2fx\n' "$v" "$s" "$(echo "$v / $s" | bc -l)"
# Debian 12's sha256sum (coreutils 9.1) has no SHA-NI path; openssl's does, so show it too.
if command -v openssl >/dev/null 2>&1; then
  o=$(best openssl dgst -sha256 out/big.tar)
  printf 'openssl dgst: %.3f s (verify/openssl %.2fx)\n' "$o" "$(echo "$v / $o" | bc -l)"
fi
