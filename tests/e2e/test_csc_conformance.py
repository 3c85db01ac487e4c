"""What an independent CSC v1 test client (csctester, docs/csc.md "Independent conformance
check") found Signet doing against the specification, asked again over HTTP under gunicorn."""

import base64
import hashlib
import struct

import pytest
import requests

from tests.e2e.conftest import create_credential

PIN = "135790"
RSA_SHA256 = "1.2.840.113549.1.1.11"
SHA256 = "2.16.840.1.101.3.4.2.1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def pin_credential(server):
    return create_credential(
        server, "alice", "rsa-2048", "--activation", "pin", "--policy", "basic", pin=PIN
    )


def test_v1_credentials_info_describes_the_factors_only_when_asked(server, pin_credential):
    # CSC 1.0.4 credentials/info: authInfo defaults to false, and then no PIN or OTP group is
    # returned; authMode is returned always.
    session = server.login("alice", "v1")
    url = f"{server.url}/csc/v1/credentials/info"
    plain = session.post(url, json={"credentialID": pin_credential}, timeout=30)
    assert plain.status_code == 200, plain.text
    assert plain.json()["authMode"] == "explicit"
    assert "PIN" not in plain.json() and "OTP" not in plain.json()
    assert (
        "PIN"
        not in session.post(
            url, json={"credentialID": pin_credential, "authInfo": False}, timeout=30
        ).json()
    )

    asked = session.post(url, json={"credentialID": pin_credential, "authInfo": True}, timeout=30)
    assert asked.json()["authMode"] == "explicit"
    assert asked.json()["PIN"]["presence"] == "true"
    assert asked.json()["OTP"]["presence"] == "false"

    wrong = session.post(url, json={"credentialID": pin_credential, "authInfo": "yes"}, timeout=30)
    assert wrong.status_code == 400
    assert wrong.json() == {
        "error": "invalid_request",
        "error_description": "Invalid type for boolean parameter authInfo",
    }


def test_v1_refusals_name_the_v1_parameters(server, pin_credential):
    session = server.login("alice", "v1")
    digest = hashlib.sha256(b"v1 names").digest()
    no_hash = session.post(
        f"{server.url}/csc/v1/credentials/authorize",
        json={"credentialID": pin_credential, "numSignatures": 1, "PIN": PIN},
        timeout=30,
    )
    assert no_hash.status_code == 400
    assert no_hash.json()["error_description"].startswith("Missing parameter hash: ")
    assert "hashes" not in no_hash.json()["error_description"].split(":")[0]

    sad = session.post(
        f"{server.url}/csc/v1/credentials/authorize",
        json={
            "credentialID": pin_credential,
            "numSignatures": 1,
            "hash": [b64(digest)],
            "PIN": PIN,
        },
        timeout=30,
    ).json()["SAD"]
    extended = session.post(
        f"{server.url}/csc/v1/credentials/extendTransaction",
        json={"credentialID": pin_credential, "SAD": sad},
        timeout=30,
    )
    assert extended.status_code == 400
    assert extended.json()["error_description"].startswith("Missing parameter hash: ")

    other_hash = session.post(
        f"{server.url}/csc/v1/signatures/signHash",
        json={
            "credentialID": pin_credential,
            "SAD": sad,
            "hash": [b64(digest)],
            "signAlgo": RSA_SHA256,
            "hashAlgo": "2.16.840.1.101.3.4.2.3",
        },
        timeout=30,
    )
    assert other_hash.status_code == 400
    assert "parameter hashAlgo:" in other_hash.json()["error_description"]
    assert "hashAlgorithmOID" not in other_hash.json()["error_description"]

    # the same refusal in v2 keeps v2's names
    v2 = server.login("alice").post(
        f"{server.url}/csc/v2/credentials/authorize",
        json={
            "credentialID": pin_credential,
            "numSignatures": 1,
            "authData": [{"id": "PIN", "value": PIN}],
        },
        timeout=30,
    )
    assert v2.json()["error_description"].startswith("Missing parameter hashes: ")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_hash_of_the_wrong_length_is_an_invalid_digest_value_length(
    server, pin_credential, version
):
    # the wording of the specification's signHash error table, then what was wrong
    session = server.login("alice", version)
    digest = hashlib.sha256(f"length {version}".encode()).digest()
    hashes, factor = ("hash", {"PIN": PIN}) if version == "v1" else ("hashes", {})
    if version == "v2":
        factor = {"authData": [{"id": "PIN", "value": PIN}], "hashAlgorithmOID": SHA256}
    sad = session.post(
        f"{server.url}/csc/{version}/credentials/authorize",
        json={"credentialID": pin_credential, "numSignatures": 1, hashes: [b64(digest)], **factor},
        timeout=30,
    ).json()["SAD"]
    short = session.post(
        f"{server.url}/csc/{version}/signatures/signHash",
        json={"credentialID": pin_credential, "SAD": sad, hashes: ["AAAA"], "signAlgo": RSA_SHA256},
        timeout=30,
    )
    assert short.status_code == 400
    assert short.json()["error"] == "invalid_request"
    assert short.json()["error_description"] == (
        "Invalid digest value length: hash 'AAAA' has 3 bytes, where a sha256 hash has 32 bytes"
    )
    # nothing was spent: the SAD still signs its hash
    signed = session.post(
        f"{server.url}/csc/{version}/signatures/signHash",
        json={
            "credentialID": pin_credential,
            "SAD": sad,
            hashes: [b64(digest)],
            "signAlgo": RSA_SHA256,
        },
        timeout=30,
    )
    assert signed.status_code == 200, signed.text

    at_authorize = session.post(
        f"{server.url}/csc/{version}/credentials/authorize",
        json={"credentialID": pin_credential, "numSignatures": 1, hashes: ["AAAA"], **factor},
        timeout=30,
    )
    assert at_authorize.status_code == 400
    assert at_authorize.json()["error_description"].startswith(
        "Invalid digest value length: hash 'AAAA' has 3 bytes, where "
    )


@pytest.mark.parametrize("path", ["/csc/v1/info", "/csc/v2/info", "/csc/v1/auth/login"])
def test_get_is_405_with_allow_and_csc_error_json(server, path):
    # every CSC method is POST; HTTP requires a 405 to say what is allowed (RFC 9110 15.5.6)
    response = requests.get(f"{server.url}{path}", auth=("alice", "e2e password"), timeout=30)
    assert response.status_code == 405
    assert response.headers["Allow"] == "OPTIONS, POST"
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "error": "invalid_request",
        "error_description": f"The method GET is not allowed for {path}; use POST "
        "(every CSC method is called with POST)",
    }


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_info_logo_is_a_png_of_at_most_256_pixels(server, version):
    # CSC info.logo: the URI of a JPEG or PNG image, at most 256x256 (it named /docs, a page)
    logo = requests.post(f"{server.url}/csc/{version}/info", json={}, timeout=30).json()["logo"]
    assert logo == f"{server.url}/static/logo.png"
    image = requests.get(logo, timeout=30)
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n") and image.content[12:16] == b"IHDR"
    width, height = struct.unpack(">II", image.content[16:24])
    assert 0 < width <= 256 and 0 < height <= 256
