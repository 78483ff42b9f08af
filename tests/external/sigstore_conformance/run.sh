#!/usr/bin/env bash
# Runs the offline cases of the Sigstore conformance suite (sigstore/sigstore-conformance:
# test/test_bundle.py::test_verify, one case per test/assets/bundle-verify/* directory, each
# with the artifact given as a path and as a sha256 digest) against `cairn sigstore`.
#
#   [CAIRN_BINARY=path/to/cairn] tests/external/sigstore_conformance/run.sh SUITE_DIR [pytest args...]
#
# (default binary: target/debug/cairn).
# SUITE_DIR is a checkout of the suite (not vendored here; it is not part of CI). Its pinned,
# hash-checked Python requirements are installed into target/sigstore-conformance-venv from
# PyPI on the first run. Nothing else is fetched: the suite's identity-token download is
# refused by offline_plugin.py, and the client runs with an empty cache directory, so keyless
# cases without a trusted_root.json use the public-good snapshot built into cairn.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
suite="$(cd "${1:?usage: run.sh SUITE_DIR [pytest args...]}" && pwd)"
shift
cairn="$(realpath "${CAIRN_BINARY:-$repo/target/debug/cairn}")"
[ -x "$cairn" ] || { echo "no cairn binary at $cairn (cargo build first)" >&2; exit 2; }

venv="$repo/target/sigstore-conformance-venv"
if [ ! -x "$venv/bin/pytest" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
        -r "$suite/requirements.txt"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The conformance CLI protocol's entry point: `ENTRYPOINT verify-bundle ...`.
cat >"$work/cairn-conformance" <<SH
#!/bin/sh
exec "$cairn" sigstore "\$@"
SH
chmod +x "$work/cairn-conformance"
mkdir "$work/cache"

cd "$suite"
XDG_CACHE_HOME="$work/cache" PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" \
    "$venv/bin/pytest" -p offline_plugin -p no:cacheprovider \
    "test/test_bundle.py::test_verify" --entrypoint "$work/cairn-conformance" "$@"
