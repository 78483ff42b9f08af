#!/usr/bin/env python3
"""Validate in-toto Statement v1 JSON files; SLSA Provenance v1 predicates get more checks.

Usage: validate_intoto.py FILE...
Each file holds one statement (a JSON document) or one statement per line. A statement
is parsed into the in-toto-attestation Statement v1 protobuf (unknown fields rejected) and
checked with `Statement.validate()` (PyPI `in-toto-attestation`). Then every subject digest
must be well-formed hex for its algorithm, and a predicate of type
https://slsa.dev/provenance/v1 must parse strictly as the SLSA v1 Provenance protobuf and have
the fields SLSA v1 requires: buildDefinition.buildType, buildDefinition.externalParameters,
runDetails.builder.id, and for each resolvedDependency/byproduct one of uri, digest,
content. Exit 0: all valid; 1: something invalid; 77: in-toto-attestation is not installed.
"""
import json
import re
import sys
from importlib import metadata

try:
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
except ImportError as e:
    print(f"in-toto-attestation is not installed: {e}", file=sys.stderr)
    sys.exit(77)

SLSA_V1 = "https://slsa.dev/provenance/v1"
HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128, "sha1": 40,
           "sha512_256": 64, "sha3_256": 64, "sha3_384": 96, "sha3_512": 128}


def check_digest(where, digest):
    if not isinstance(digest, dict):
        raise ValueError(f"{where}: digest is not an object")
    for alg, value in digest.items():
        n = HEX_LEN.get(alg)
        if n is not None and not re.fullmatch(f"[0-9a-f]{{{n}}}", value or ""):
            raise ValueError(f"{where}: {alg} digest {value!r} is not {n} lowercase hex digits")


def check_descriptor(where, rd):
    if not any(rd.get(k) for k in ("uri", "digest", "content")):
        raise ValueError(f"{where}: a ResourceDescriptor needs one of uri, digest, content")
    if "digest" in rd:
        check_digest(where, rd["digest"])


def check_slsa_v1(pred):
    json_format.ParseDict(pred, provenance_pb2.Provenance())  # strict: unknown fields fail
    bd = pred.get("buildDefinition") or {}
    rd = pred.get("runDetails") or {}
    if not bd.get("buildType"):
        raise ValueError("SLSA v1: buildDefinition.buildType is required")
    if "externalParameters" not in bd or not isinstance(bd["externalParameters"], dict):
        raise ValueError("SLSA v1: buildDefinition.externalParameters (object) is required")
    if not (rd.get("builder") or {}).get("id"):
        raise ValueError("SLSA v1: runDetails.builder.id is required")
    for i, dep in enumerate(bd.get("resolvedDependencies") or []):
        check_descriptor(f"resolvedDependencies[{i}]", dep)
    for i, dep in enumerate(rd.get("byproducts") or []):
        check_descriptor(f"byproducts[{i}]", dep)


def check_statement(doc):
    pb = json_format.ParseDict(doc, statement_pb2.Statement())  # strict
    Statement.copy_from_pb(pb).validate()
    for i, s in enumerate(doc.get("subject") or []):
        check_digest(f"subject[{i}]", s.get("digest"))
    if doc.get("predicateType") == SLSA_V1:
        check_slsa_v1(doc["predicate"])


def documents(text):
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


if len(sys.argv) < 2:
    print(__doc__, file=sys.stderr)
    sys.exit(2)

print(f"in-toto-attestation {metadata.version('in-toto-attestation')}")
status = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        docs = documents(text)
        for doc in docs:
            check_statement(doc)
        print(f"valid {path} ({len(docs)} statement(s))")
    except Exception as e:  # noqa: BLE001 - any failure means invalid
        print(f"INVALID {path}: {type(e).__name__}: {e}")
        status = 1
sys.exit(status)
