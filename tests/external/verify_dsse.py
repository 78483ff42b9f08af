#!/usr/bin/env python3
"""Verify a cairn DSSE envelope with securesystemslib (an independent implementation).

Usage: verify_dsse.py ENVELOPE.json PUBLIC_KEY.pem [KEYID]

ENVELOPE.json holds one DSSE envelope (one line of a .intoto.jsonl file is fine).
PUBLIC_KEY.pem is an SPKI PEM public key (Ed25519 or ECDSA P-256).
KEYID is the key id cairn put in the envelope: base64(sha256(SPKI DER)). When omitted it
is computed here from the PEM, independently of cairn.

securesystemslib matches signatures to keys by keyid, and SSlibKey's default keyid is a
hash of its own canonical form, so the key is built with cairn's key id
(SSlibKey.from_crypto(..., keyid=...), securesystemslib >= 1.0).

Exit status: 0 verified, 1 verification failed, 2 usage or input error.
"""

import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    envelope_path, key_path = sys.argv[1], sys.argv[2]
    try:
        with open(envelope_path, "rb") as f:
            envelope = Envelope.from_dict(json.loads(f.read()))
        with open(key_path, "rb") as f:
            pem = f.read()
        public = serialization.load_pem_public_key(pem)
        spki_der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        keyid = sys.argv[3] if len(sys.argv) == 4 else base64.b64encode(
            hashlib.sha256(spki_der).digest()
        ).decode()
        key = SSlibKey.from_crypto(public, keyid=keyid)
    except Exception as e:  # noqa: BLE001 - any input problem is a usage error here
        print(f"verify_dsse: bad input: {e!r}", file=sys.stderr)
        return 2
    try:
        verified = envelope.verify([key], 1)
    except VerificationError as e:
        print(f"verify_dsse: verification failed: {e}", file=sys.stderr)
        return 1
    print(f"verified by {sorted(verified)} ({key.scheme})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
