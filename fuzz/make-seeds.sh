#!/usr/bin/env bash
# Regenerates the seed corpus fuzz/seeds/TARGET/ from real cairn outputs: builds
# examples/hello.yml with a cairn binary, signs it with throwaway keys (their public halves go
# to fuzz/keys/, the private halves are deleted), and packs small archives, packages and
# package databases. Seeds are small on purpose (a few KB each).
#
#   fuzz/make-seeds.sh [CAIRN_BINARY]     (default: target/debug/cairn, built if missing)
#
# Targets that take a selector byte get it as the first byte of the seed (see each target).
set -euo pipefail
cd "$(dirname "$0")/.."
cairn=$(realpath "${1:-target/debug/cairn}")
[ -x "$cairn" ] || cargo build --quiet --bin cairn
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAIRN_STORE="$work/store"
seeds=fuzz/seeds
rm -rf "$seeds"

# seed TARGET NAME [SELECTOR_HEX] < CONTENT
seed() {
    mkdir -p "$seeds/$1"
    { [ -z "${3:-}" ] || printf "\\x$3"; cat; } >"$seeds/$1/$2"
}

# A real build of the example, signed.
for image in hello-kernel hello-init hello-app; do
    "$cairn" -q import "testdata/images/$image" --name "cairn.example/$image:1"
done
cp -r examples "$work/ex"
(cd "$work" && "$cairn" -q keygen --out ed && "$cairn" -q keygen --out p256 --alg ecdsa-p256)
cp "$work/ed.pub" fuzz/keys/ed25519.pub
cp "$work/p256.pub" fuzz/keys/p256.pub
"$cairn" -q build "$work/ex/hello.yml" --locked --format tar --format oci \
    --sign-key "$work/ed.key" -o "$work/out"
out="$work/out"

# spec: specs (selector 0) and container labels (selector 1).
seed spec hello.yml 00 <examples/hello.yml
seed spec boot.yml 00 <examples/boot/boot.yml
printf '%s' '{"binds":["/dev:/dev"],"capabilities":["all"],"net":"host","pid":"host"}' |
    seed spec label.json 01
printf 'capabilities: [CAP_SYS_ADMIN]\nmounts:\n  - {type: bind, source: /a, destination: /b, options: [rbind, ro]}\n' |
    seed spec label.yml 01

# lock
seed lock hello.yml.lock <examples/hello.yml.lock
seed lock boot.yml.lock <examples/boot/boot.yml.lock

# policy: the examples, and one with inline keys.
seed policy default.yaml <policies/default.yaml
seed policy production.yaml <policies/production.yaml
{
    printf 'keys:\n  - name: ed\n    pem: |\n'
    sed 's/^/      /' fuzz/keys/ed25519.pub
    printf '  - name: p256\n    notBefore: 2026-01-01T00:00:00Z\n    pem: |\n'
    sed 's/^/      /' fuzz/keys/p256.pub
    printf 'require:\n  signatures: {threshold: 2, keys: [ed, p256]}\n'
    printf 'packages:\n  deny:\n    - {name: openssl, versions: "<3.0.7"}\n'
} | seed policy inline-keys.yaml

# oci_json: the selector picks the media type (0 index, 1 manifest, 2 config; 3-5 Docker).
layout="$out/hello.oci"
seed oci_json index.json 00 <"$layout/index.json"
manifest=$(sed 's/.*"digest":"sha256:\([0-9a-f]*\)".*/\1/' "$layout/index.json")
seed oci_json manifest.json 01 <"$layout/blobs/sha256/$manifest"
config=$(sed 's/.*"config":{[^}]*"digest":"sha256:\([0-9a-f]*\)".*/\1/' "$layout/blobs/sha256/$manifest")
seed oci_json config.json 02 <"$layout/blobs/sha256/$config"
seed oci_json docker-config.json 05 <"$layout/blobs/sha256/$config"

# layer: selector 0 plain tar, 1 gzip, 2 zstd.
mkdir -p "$work/rootfs/etc" "$work/rootfs/bin" "$work/rootfs/usr/.wh..wh..opq"
cp testdata/images/hello-init/etc/passwd testdata/images/hello-init/etc/os-release "$work/rootfs/etc/"
ln -s ../etc/passwd "$work/rootfs/bin/link"
ln "$work/rootfs/etc/passwd" "$work/rootfs/etc/hardlink"
: >"$work/rootfs/etc/.wh.shadow"
tar --format=gnu --sort=name --owner=0 --group=0 --mtime=@0 -C "$work/rootfs" -cf "$work/layer.tar" .
tar --format=pax --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime --sort=name --owner=0 --group=0 --mtime=@0 -C "$work/rootfs" -cf "$work/layer-pax.tar" ./etc
seed layer gnu.tar 00 <"$work/layer.tar"
seed layer pax.tar 00 <"$work/layer-pax.tar"
gzip -9n <"$work/layer.tar" | seed layer gnu.tar.gz 01
zstd -q -19 <"$work/layer.tar" | seed layer gnu.tar.zst 02

# deb: a small package with gzip, xz and zstd members.
mkdir -p "$work/deb/DEBIAN" "$work/deb/usr/share/doc/fuzz"
printf 'Package: fuzz-seed\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: cairn <cairn@example.org>\nDescription: a seed\n multi-line\n' >"$work/deb/DEBIAN/control"
echo hi >"$work/deb/usr/share/doc/fuzz/README"
for z in gzip xz zstd; do
    SOURCE_DATE_EPOCH=0 dpkg-deb --root-owner-group -Z"$z" --build "$work/deb" "$work/fuzz-$z.deb" >/dev/null
    seed deb "fuzz-$z.deb" <"$work/fuzz-$z.deb"
done
seed deb control <"$work/deb/DEBIAN/control"

# dsse: the signed attestations cairn writes.
seed dsse hello.intoto.jsonl <"$out/hello.intoto.jsonl"
seed dsse hello.sigstore.json <"$out/hello.sigstore.json"

# sigstore: one of those bundles (selector 0: Ed25519 key anchor, artifact bytes).
python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)[0]),end="")' \
    <"$out/hello.sigstore.json" | seed sigstore dsse-bundle.json 00
# With an (empty) trusted root before a 0xff byte: selector 4 (key anchor), 12 (keyless).
root='{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[],"certificateAuthorities":[],"ctlogs":[],"timestampAuthorities":[]}'
{ printf '%s\xff' "$root"; tail -c +2 "$seeds/sigstore/dsse-bundle.json"; } | seed sigstore with-root.json 04
{ printf '%s\xff' "$root"; tail -c +2 "$seeds/sigstore/dsse-bundle.json"; } | seed sigstore keyless.json 0c

# packages: selector 0 dpkg status, 1 dpkg status.d, 2 apk installed, 3 os-release.
# Paragraphs of this machine's dpkg database (falling back to a minimal one).
paragraphs() { awk -v from="$1" -v n="$2" 'BEGIN{RS="";ORS="\n\n"} NR>from && NR<=from+n' /var/lib/dpkg/status; }
if [ -r /var/lib/dpkg/status ]; then
    paragraphs 0 3 | seed packages status 00
    paragraphs 3 1 | seed packages status.d 01
else
    printf 'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n' |
        seed packages status 00
    printf 'Package: base-files\nArchitecture: amd64\nVersion: 12.4\n' | seed packages status.d 01
fi
printf 'C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:383152\nI:622592\nT:the musl c library\nU:https://musl.libc.org/\nL:MIT\no:musl\nm:Maintainer <m@example.org>\nt:1700000000\n\nP:busybox\nV:1.36.1-r5\nA:x86_64\nL:GPL-2.0-only\n\n' |
    seed packages installed 02
seed packages os-release 03 <testdata/images/hello-init/etc/os-release

# payload_disk: a payload as the verified-boot build writes it (plain names, ustar).
mkdir -p "$work/payload"
printf 'console=ttyS0\n' >"$work/payload/hello-cmdline"
head -c 600 "$out/hello.intoto.jsonl" >"$work/payload/hello.intoto.jsonl"
tar --format=ustar --owner=0 --group=0 --mtime=@0 -C "$work/payload" -cf - hello-cmdline hello.intoto.jsonl |
    seed payload_disk payload.tar

# import: selector bit 0 passes --name. An OCI archive (plain, gzip, zstd, xz), a `docker
# save` archive (skopeo), a rootfs tar, and a .deb.
tar --format=ustar --sort=name --owner=0 --group=0 --mtime=@0 -C "$layout" -cf "$work/oci.tar" .
seed import oci-archive.tar 00 <"$work/oci.tar"
gzip -9n <"$work/oci.tar" | seed import oci-archive.tar.gz 00
zstd -q -19 <"$work/oci.tar" | seed import oci-archive.tar.zst 00
xz -9 <"$work/oci.tar" | seed import oci-archive.tar.xz 00
skopeo copy --quiet "oci:$layout" "docker-archive:$work/docker.tar:fuzz.example/hello:1"
seed import docker-save.tar 00 <"$work/docker.tar"
seed import rootfs.tar 01 <"$work/layer-pax.tar"
seed import fuzz-xz.deb 00 <"$work/fuzz-xz.deb"

du -sh "$seeds"/*
