#!/usr/bin/env python3
"""Writes the benchmark's component images as OCI image layouts (gzip layers).

kernel: one layer with `kernel` (16 MiB) and `kernel.tar` (1,024 module files, 64 MiB);
busybox: one layer with a 1 MiB binary and 300 applet symlinks; init: a few small files.
Contents come from a seeded PRNG, so every run writes the same bytes.
"""
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

rng = random.Random(20261126)


def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                tf.addfile(ti)
            elif kind == "link":
                ti.type = tarfile.SYMTYPE
                ti.linkname = data
                tf.addfile(ti)
            else:
                ti.size = len(data)
                ti.mode = 0o755
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def write_layout(root, name, layer_tar):
    blobs = os.path.join(root, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(data)
        return "sha256:" + d, len(data)

    gz = gzip.compress(layer_tar, compresslevel=6, mtime=0)
    layer_digest, layer_size = put(gz)
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    cfg_digest, cfg_size = put(json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cfg_digest, "size": cfg_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": layer_size}],
    }
    man_digest, man_size = put(json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": man_digest, "size": man_size,
                       "annotations": {"org.opencontainers.image.ref.name": name}}],
    }
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def main(out):
    modules = [("lib/modules/6.1.0/kernel/", "dir", None)]
    for i in range(1024):
        modules.append((f"lib/modules/6.1.0/kernel/mod{i:04}.ko", "file", rng.randbytes(64 * 1024)))
    kernel_tar = tar_bytes(modules)
    write_layout(os.path.join(out, "kernel"), "cairn.bench/kernel:1",
                 tar_bytes([("kernel", "file", rng.randbytes(16 << 20)),
                            ("kernel.tar", "file", kernel_tar)]))
    applets = [("bin/", "dir", None), ("bin/busybox", "file", rng.randbytes(1 << 20))]
    applets += [(f"bin/applet{i:03}", "link", "busybox") for i in range(300)]
    write_layout(os.path.join(out, "busybox"), "cairn.bench/busybox:1", tar_bytes(applets))
    write_layout(os.path.join(out, "init"), "cairn.bench/init:1",
                 tar_bytes([("etc/", "dir", None), ("etc/os-release", "file", b"ID=bench\n"),
                            ("sbin/", "dir", None), ("sbin/init", "file", b"#!/bin/sh\n")]))


if __name__ == "__main__":
    main(sys.argv[1])
