"""Bad input to every Mobile ID endpoint is a CSC error JSON with a 4xx status, never a 500:
missing and mistyped parameters, malformed keys, signatures and challenges, unknown ids, a
credential of another kind, and credentials/activate on a Mobile ID credential."""

import base64
import time

import pytest

from signet.mobile import Device
from signet.signing import admin
from tests.helpers import activation_code_in_mail, app_in_thread
from tests.security.conftest import audit_events

PASSWORD = "correct horse battery"
PORTS = range(56700, 56750)
SHA = base64.b64encode(b"\1" * 32).decode()
SIG = base64.urlsafe_b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()


@pytest.fixture
def registered(app, services):
    admin.add_user(
        services, "alice", password=PASSWORD, display_name="A", email="a@x.test", actor="t"
    )
    view = admin.create_credential(
        services, "alice", key="ec-p256", actor="t", activation="mobile_id"
    )
    other = admin.create_credential(services, "alice", key="ec-p256", actor="t", activation="otp")
    code = activation_code_in_mail(services.settings.notify.maildir, view.credential_id)
    with app_in_thread(app, PORTS) as url:
        device = Device.register(url, view.credential_id, code, label="phone")
    return device, view.credential_id, other.credential_id


def refused(response, status=None):
    assert 400 <= response.status_code < 500, (response.status_code, response.data[:300])
    if status:
        assert response.status_code == status, response.json
    assert set(response.json) >= {"error", "error_description"}, response.json
    return response.json["error_description"]


def test_every_mobile_endpoint_refuses_bad_input_with_csc_errors(client, registered):
    device, credential_id, otp_credential = registered
    now = int(time.time())
    cases = {
        "/mobile/v1/register/challenge": [
            {},
            {"credentialID": 7},
            {"credentialID": "x" * 5000},
            {"credentialID": "nope"},
            {"credentialID": otp_credential},
            {"credentialID": credential_id},  # active already: nothing to register
        ],
        "/mobile/v1/register": [
            {},
            {"credentialID": credential_id, "activationCode": ["A"]},
            {
                "credentialID": credential_id,
                "activationCode": "AAAAA-AAAAA",
                "challenge": "m1.x.y",
                "publicKey": "not a key",
                "label": "p",
                "signature": SIG,
            },
            {
                "credentialID": credential_id,
                "activationCode": "AAAAA-AAAAA",
                "challenge": "m1.x.y",
                "publicKey": device._public(device._key),
                "label": "p",
                "signature": SIG,
            },
        ],
        "/mobile/v1/pending": [
            {},
            {"deviceID": device.device_id, "timestamp": "now", "signature": SIG},
            {"deviceID": device.device_id, "timestamp": True, "signature": SIG},
            {"deviceID": device.device_id, "timestamp": now, "signature": SIG, "wait": -1},
            {"deviceID": device.device_id, "timestamp": now - 3600, "signature": SIG},
            {"deviceID": device.device_id, "timestamp": now, "signature": "!!"},
            {"deviceID": "unknown", "timestamp": now, "signature": SIG},
        ],
        "/mobile/v1/approve": [
            {},
            {"deviceID": device.device_id, "requestID": 5, "signature": SIG},
            {"deviceID": device.device_id, "requestID": "unknown", "signature": SIG},
            {"deviceID": "unknown", "requestID": "unknown", "signature": SIG},
        ],
        "/mobile/v1/deny": [
            {},
            {"deviceID": device.device_id, "requestID": "unknown", "signature": None},
        ],
    }
    for path, bodies in cases.items():
        for body in bodies:
            refused(client.post(path, json=body))
        refused(client.post(path, data=b"{not json", content_type="application/json"))
        refused(client.post(path, json=[1, 2]))
    assert "signature" in refused(
        client.post(
            "/mobile/v1/pending",
            json={"deviceID": device.device_id, "timestamp": now, "signature": SIG},
        ),
        401,
    )


def test_authorize_check_and_activate_refuse_bad_input(client, services, registered):
    device, credential_id, otp_credential = registered
    waiting = admin.create_credential(
        services, "alice", key="ec-p256", actor="t", activation="mobile_id"
    ).credential_id
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    token = client.post("/csc/v2/auth/login", headers={"Authorization": f"Basic {basic}"}).json[
        "access_token"
    ]
    bearer = {"Authorization": f"Bearer {token}"}
    for body in (
        {},
        {"credentialID": credential_id},
        {"credentialID": credential_id, "authorizationID": 3},
        {"credentialID": credential_id, "authorizationID": "unknown"},
        {"credentialID": otp_credential, "authorizationID": "unknown"},
        {"credentialID": "nope", "authorizationID": "x"},
    ):
        refused(client.post("/csc/v2/credentials/authorizeCheck", json=body, headers=bearer))
    refused(client.post("/csc/v2/credentials/authorizeCheck", json={}), 401)
    assert client.post("/csc/v1/credentials/authorizeCheck", json={}).status_code == 404
    assert "Mobile ID" in refused(
        client.post(
            "/csc/v2/credentials/sendOTP", json={"credentialID": credential_id}, headers=bearer
        ),
        400,
    )
    # v1 has no authorizeCheck: it describes the credential but cannot authorize it
    for version in ("v1", "v2"):
        described = client.post(
            f"/csc/{version}/credentials/info",
            json={"credentialID": credential_id, "authInfo": True},
            headers=bearer,
        )
        assert described.status_code == 200, described.json
    assert described.json["auth"]["mode"] == "implicit"
    assert "CSC v2" in refused(
        client.post(
            "/csc/v1/credentials/authorize",
            json={"credentialID": credential_id, "numSignatures": 1, "hash": [SHA]},
            headers=bearer,
        ),
        400,
    )
    code = activation_code_in_mail(services.settings.notify.maildir, waiting)
    # a registration whose signature is not the key's is refused before the code is tried
    challenge = client.post("/mobile/v1/register/challenge", json={"credentialID": waiting})
    assert challenge.status_code == 200, challenge.json
    assert "signature" in refused(
        client.post(
            "/mobile/v1/register",
            json={
                "credentialID": waiting,
                "activationCode": code,
                "challenge": challenge.json["challenge"],
                "publicKey": device._public(device._key),
                "label": "stolen code",
                "signature": SIG,
            },
        ),
        400,
    )
    assert [e for e, d in audit_events(services) if e == "mobile.registration_refused"]
    described = refused(
        client.post(
            "/csc/v2/credentials/activate",
            json={"credentialID": waiting, "activationCode": code},
            headers=bearer,
        ),
        400,
    )
    assert "signet-mobile register" in described
