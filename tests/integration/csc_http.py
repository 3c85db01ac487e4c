"""A small CSC client over HTTP for the integration tests, on the Flask test client or on a
live gunicorn (``LiveClient`` answers with the same attributes), and the error check they share."""

import base64
import mailbox
import re

import requests
from cryptography.hazmat.primitives import hashes

from signet.algorithms import HASHES
from signet.signing import admin
from tests.helpers import enrol

SHA = {name: algorithm.oid for name, algorithm in HASHES.items()}
HASH_CLS = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
PASSWORD = "correct horse battery"


class Csc:
    """A small CSC client over HTTP."""

    def __init__(self, client, services, version="v2"):
        self.client, self.services, self.version = client, services, version
        self.token = None

    def post(self, method, json=None, token=None, **kw):
        headers = kw.pop("headers", {})
        if token or self.token:
            headers["Authorization"] = f"Bearer {token or self.token}"
        return self.client.post(f"/csc/{self.version}/{method}", json=json, headers=headers, **kw)

    def login(self, user="alice", password=PASSWORD):
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        response = self.client.post(
            f"/csc/{self.version}/auth/login", headers={"Authorization": f"Basic {basic}"}
        )
        assert response.status_code == 200, response.json
        self.token = response.json["access_token"]
        return self.token

    def otp(self, credential_id):
        box = mailbox.Maildir(self.services.settings.notify.maildir, create=True)
        seen = set(box.keys())
        sent = self.post("credentials/sendOTP", {"credentialID": credential_id})
        assert sent.status_code == 204, sent.json
        box = mailbox.Maildir(self.services.settings.notify.maildir, create=False)
        (newest,) = [box[key] for key in box.iterkeys() if key not in seen]
        return re.search(r"^\s+(\d{6,8})\s*$", newest.get_payload(), re.M).group(1)

    def authorize(self, credential_id, digests, hash_name="sha256", num=None, **extra):
        hashes_b64 = [base64.b64encode(d).decode() for d in digests]
        body = {"credentialID": credential_id, "numSignatures": num or len(digests)}
        if self.version == "v2":
            body.update(
                hashes=hashes_b64,
                hashAlgorithmOID=SHA[hash_name],
                authData=[
                    {"id": "OTP", "value": extra.pop("otp", None) or self.otp(credential_id)}
                ],
            )
        else:
            body.update(hash=hashes_b64, OTP=extra.pop("otp", None) or self.otp(credential_id))
        body.update(extra)
        return self.post("credentials/authorize", body)

    def sign(self, credential_id, sad, digests, sign_algo, hash_name="sha256", params=None):
        key = "hashes" if self.version == "v2" else "hash"
        body = {
            "credentialID": credential_id,
            "SAD": sad,
            key: [base64.b64encode(d).decode() for d in digests],
            "signAlgo": sign_algo,
            ("hashAlgorithmOID" if self.version == "v2" else "hashAlgo"): SHA[hash_name],
        }
        if params is not None:
            body["signAlgoParams"] = params
        return self.post("signatures/signHash", body)


class Reply:
    """The parts of a response the tests read, as the Flask test client names them."""

    def __init__(self, response: requests.Response):
        self.status_code = response.status_code
        self.headers = response.headers
        self.data = response.content
        self.is_json = response.headers.get("Content-Type", "").startswith("application/json")
        self.json = response.json() if self.is_json and response.content else None


class LiveClient:
    def __init__(self, url: str):
        self.url, self.session = url, requests.Session()

    def post(self, path, json=None, headers=None, data=None):
        return Reply(
            self.session.post(
                self.url + path, json=json, headers=headers or {}, data=data, timeout=60
            )
        )


def error_of(response, status, error="invalid_request"):
    assert response.status_code == status, (response.status_code, response.json)
    assert response.json["error"] == error, response.json
    return response.json["error_description"]


def enrol_alice(services, *keys: str) -> list[str]:
    """Alice (password PASSWORD, e-mail alice@example.test) and a credential per key type
    (e-mailed one-time codes); their IDs, in the order of ``keys``."""
    admin.add_user(
        services,
        "alice",
        password=PASSWORD,
        display_name="Alice",
        email="alice@example.test",
        actor="test",
    )
    return [enrol(services, "alice", key=key, actor="test").credential_id for key in keys]
