"""The Mobile ID canonical bytes: the device SDK's and the server's implementations both give
the test vector of docs/mobile-id.md, and its signature verifies with its key (so the page is
enough to write a device in another language)."""

import hashlib
import json
import re
from pathlib import Path

from signet.mobile import protocol
from signet.sam import mobile as server

DOC = Path(__file__).resolve().parents[2] / "docs" / "mobile-id.md"


def vector(name: str) -> str:
    match = re.search(rf"<!-- vector:{name} -->\n```\w+\n(.*?)\n```", DOC.read_text(), re.S)
    assert match, f"docs/mobile-id.md has no vector:{name}"
    return match.group(1)


def test_both_implementations_give_the_documented_bytes():
    request = json.loads(vector("request"))
    documented = vector("bytes").encode()
    assert protocol.approval_bytes(request, "approve") == documented
    stored = type(
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
    assert server.canonical(server.request_structure(stored, "approve")) == documented
    text = DOC.read_text()
    assert f"{len(documented)} bytes" in text
    assert hashlib.sha256(documented).hexdigest() in text


def test_the_documented_signature_verifies_and_binds_the_request():
    request = json.loads(vector("request"))
    key = server.load_device_key(vector("key"))
    signature = vector("signature")
    assert server.signature_verifies(key, signature, vector("bytes").encode())
    # the same signature says nothing of other hashes, another decision or another origin
    for changed, decision in (
        (dict(request, hashes=request["hashes"][:1]), "approve"),
        (dict(request, origin="https://evil.example"), "approve"),
        (request, "deny"),
    ):
        assert not server.signature_verifies(
            key, signature, protocol.approval_bytes(changed, decision)
        )


def test_the_fingerprint_is_the_documented_one_and_the_servers():
    from signet.signing.mobile import fingerprint

    hashes = json.loads(vector("request"))["hashes"]
    assert protocol.fingerprint(hashes) == fingerprint(hashes)
    assert f"Fingerprint of its hashes: `{protocol.fingerprint(hashes)}`" in DOC.read_text()
