"""pytest plugin for running sigstore-conformance's offline cases with no network.

The suite's `client` fixture asks for an OIDC identity token, which it downloads even for
verification-only cases (it only reads the email, issuer and expiry out of it). Loaded with
`-p offline_plugin` (before the suite's conftest is imported), this swaps urllib3's
`request` for one that refuses every request but that one, which gets a placeholder
unsigned token, so no case can reach the network and the verification cases run as they are.
"""

import base64
import json

import urllib3


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


# Not a credential: unsigned, and used by no verification case.
_PLACEHOLDER_TOKEN = ".".join(
    [
        _b64({"alg": "none"}),
        _b64({"email": "offline@invalid", "iss": "https://offline.invalid", "exp": 4102444800}),
        "",
    ]
)


class _Placeholder:
    data = _PLACEHOLDER_TOKEN.encode()
    status = 200


def _refuse(method, url, *args, **kwargs):
    if "sigstore-conformance-testing-token" not in url:
        raise RuntimeError(f"offline run: refusing {method} {url}")
    return _Placeholder()


urllib3.request = _refuse
