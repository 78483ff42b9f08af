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
content. Output and exit status: see validator.py.
"""
import json
import re

from validator import missing, run

try:
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
except ImportError as e:
    missing("in-toto-attestation", e)

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


def check(path):
    with open(path, encoding="utf-8") as f:
        docs = documents(f.read())
    for doc in docs:
        check_statement(doc)
    return f"{len(docs)} statement(s)"


run(__doc__, "in-toto-attestation", check)
