"""The passkey challenge: SHA-256 of the Mobile ID canonical bytes, as docs/passkeys.md gives
it for the Mobile ID test vector's request (so an integrator can check a client's derivation),
computed by the server and, independently, from the reference SDK's bytes."""

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from signet.mobile import protocol
from signet.sam import passkey

DOCS = Path(__file__).resolve().parents[2] / "docs"


def vector(doc: str, name: str) -> str:
    text = (DOCS / doc).read_text()
    match = re.search(rf"<!-- vector:{name} -->\n```\w+\n(.*?)\n```", text, re.S)
    assert match, f"docs/{doc} has no vector:{name}"
    return match.group(1)


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_the_documented_challenge(decision):
    request = json.loads(vector("mobile-id.md", "request"))
    documented = vector("passkeys.md", decision)
    row = type(
        "Row",
        (),
        {
            "id": request["requestID"],
            "credential_id": request["credentialID"],
            "hash_algorithm": request["hashAlgorithmOID"],
            "hashes": "\n".join(request["hashes"]),
            "num_signatures": request["numSignatures"],
            "labels": json.dumps(request["labels"]),
            "description": request["description"],
            "origin": request["origin"],
            "nonce": request["nonce"],
        },
    )
    challenge = passkey.approval_challenge(row, decision)
    assert base64.urlsafe_b64encode(challenge).rstrip(b"=").decode() == documented
    assert challenge == hashlib.sha256(protocol.approval_bytes(request, decision)).digest()
    other = dict(request, hashes=list(reversed(request["hashes"])))
    assert hashlib.sha256(protocol.approval_bytes(other, decision)).digest() != challenge
