"""Bad input to every passkey endpoint is a CSC error JSON with a 4xx status (a page: an HTML
page with a 4xx status), never a 500: missing and mistyped parameters, malformed WebAuthn
answers, unknown ids, credentials of another kind or another user, activate on a passkey
credential."""

import pytest

from signet.signing import admin
from tests.integration.passkey_authenticator import SoftAuthenticator
from tests.integration.test_passkeys_api import PASSWORD, authorize, login, register

GARBAGE = [
    None,
    "x",
    3,
    [],
    {},
    {"id": "AA", "rawId": "AA", "type": "public-key", "response": {}},
    {"id": "!!", "rawId": "!!", "type": "public-key", "response": {"clientDataJSON": "!!"}},
    {
        "id": "AA",
        "rawId": "AA",
        "type": "public-key",
        "response": {
            "clientDataJSON": "e30",
            "authenticatorData": "AA",
            "attestationObject": "oA",
            "signature": "AA",
        },
    },
]


def refused(response, status=None):
    assert 400 <= response.status_code < 500, (response.status_code, response.data[:300])
    if status:
        assert response.status_code == status, response.data[:300]
    if response.mimetype == "application/json":
        assert set(response.json) >= {"error", "error_description"}, response.json
        return response.json["error_description"]
    return response.text


@pytest.fixture
def alice(services, client):
    admin.add_user(
        services, "alice", password=PASSWORD, display_name="A", email="a@x.test", actor="t"
    )
    passkey = admin.create_credential(
        services, "alice", key="ec-p256", actor="t", activation="passkey"
    ).credential_id
    other = admin.create_credential(services, "alice", key="ec-p256", actor="t", activation="otp")
    return passkey, other.credential_id


def test_registration_refuses_bad_input(client, alice):
    passkey, otp_credential = alice
    login_body = {"credentialID": passkey, "username": "alice", "password": PASSWORD}
    for body in (
        {},
        {**login_body, "credentialID": 7},
        {**login_body, "credentialID": "nope"},
        {**login_body, "credentialID": otp_credential},
        {**login_body, "username": ["alice"]},
        {**login_body, "password": None},
        {**login_body, "credentialID": "a\u0000b"},  # PostgreSQL refuses NUL: a 400, not a 500
        {**login_body, "username": "al\u0000ice"},
    ):
        refused(client.post("/passkey/v1/register/options", json=body))
    options = client.post("/passkey/v1/register/options", json=login_body)
    assert options.status_code == 200
    sealed = options.json["challenge"]
    for credential in GARBAGE:
        refused(
            client.post(
                "/passkey/v1/register",
                json={
                    **login_body,
                    "activationCode": "AAAA-BBBB",
                    "challenge": sealed,
                    "credential": credential,
                },
            )
        )
    for challenge in (None, "x", sealed[:-4] + "AAAA", 5):
        refused(
            client.post(
                "/passkey/v1/register",
                json={
                    **login_body,
                    "activationCode": "A",
                    "challenge": challenge,
                    "credential": {},
                },
            )
        )
    for path in ("/passkey/v1/register/options", "/passkey/v1/register"):
        refused(client.post(path, data=b"{not json", content_type="application/json"))
        refused(client.post(path, json=[1, 2]))
    # the activation code is for the page, not for credentials/activate
    token = login(client, "alice")
    assert "passkey" in refused(
        client.post(
            "/csc/v2/credentials/activate",
            json={"credentialID": passkey, "activationCode": "AAAA-BBBB"},
            headers=token,
        )
    )


def test_approval_refuses_bad_input(client, services, alice):
    passkey, _ = alice
    assert register(client, services, "alice", passkey, SoftAuthenticator("http://localhost", "localhost")).status_code == 200  # fmt: skip
    request_id = authorize(client, login(client, "alice"), passkey, [b"\1" * 32])["authorizationID"]
    for target in ("0" * 32, "x" * 200, request_id):
        for body in (
            {},
            {"decision": "approve"},
            {"decision": ["approve"], "credential": {}},
            {"decision": "maybe", "credential": {}},
            *({"decision": "approve", "credential": c} for c in GARBAGE),
        ):
            refused(client.post(f"/passkey/v1/approve/{target}", json=body))
        refused(
            client.post(f"/passkey/v1/approve/{target}", data=b"{", content_type="application/json")
        )
    assert "No such request" in refused(client.get("/passkey/v1/approve/" + "0" * 32), 404)
    refused(client.get("/passkey/v1/approve/" + "x" * 200), 400)
    page = client.get(f"/passkey/v1/approve/{request_id}")
    assert page.status_code == 200  # still pending: nothing above decided it
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
