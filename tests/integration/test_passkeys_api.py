"""Passkeys at the protocol level, on each engine, with a software authenticator: registration
(password, activation code, UV required), an assertion over exactly the request's challenge
gives one SAD, and what must fail does: other hashes, another origin, no user verification,
another user's passkey, a replayed or old assertion, a counter that went back (clone), rows
edited in the database, an expired request."""

import base64
import hashlib
import json
import re

import pytest
from sqlalchemy import select, update

from signet.mobile.protocol import approval_bytes
from signet.sam import passkey as passkey_trust
from signet.signing import admin
from signet.store import AuditRecord, Credential, MobileDevice, MobileRequest
from tests.helpers import activation_code_in_mail
from tests.integration.passkey_authenticator import SoftAuthenticator, b64url

PASSWORD = "correct horse battery"
SHA256 = "2.16.840.1.101.3.4.2.1"
ORIGIN = "http://localhost"


def events(services, name):
    with services.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(AuditRecord.details).where(AuditRecord.event == name).order_by(AuditRecord.seq)
        ).all()
    return [json.loads(r.details) for r in rows]


def user_with_passkey_credential(services, name):
    admin.add_user(
        services,
        name,
        password=PASSWORD,
        display_name=name.title(),
        email=f"{name}@example.test",
        actor="test",
    )
    view = admin.create_credential(
        services, name, key="ec-p256", actor="test", activation="passkey", policy="advanced"
    )
    return view.credential_id


def register(client, services, name, credential_id, authenticator, *, packed=False, **changes):
    options = client.post(
        "/passkey/v1/register/options",
        json={"credentialID": credential_id, "username": name, "password": PASSWORD},
    )
    assert options.status_code == 200, options.text
    public_key = options.json["publicKey"]
    assert public_key["authenticatorSelection"]["userVerification"] == "required"
    assert public_key["rp"]["id"] == "localhost"
    made = authenticator.create(
        base64.urlsafe_b64decode(public_key["challenge"] + "=="), packed=packed
    )
    body = {
        "credentialID": credential_id,
        "username": name,
        "password": PASSWORD,
        "activationCode": activation_code_in_mail(services.settings.notify.maildir, credential_id),
        "challenge": options.json["challenge"],
        "credential": made,
        "label": f"{name}'s laptop",
        **changes,
    }
    return client.post("/passkey/v1/register", json=body)


def login(client, name):
    answer = client.post("/csc/v2/auth/login", auth=(name, PASSWORD))
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json['access_token']}"}


def authorize(client, headers, credential_id, digests):
    answer = client.post(
        "/csc/v2/credentials/authorize",
        headers=headers,
        json={
            "credentialID": credential_id,
            "numSignatures": len(digests),
            "hashes": [base64.b64encode(d).decode() for d in digests],
            "hashAlgorithmOID": SHA256,
            "signet_labels": ["lease.pdf"],
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json["status"] == "pending" and "SAD" not in answer.json
    return answer.json


def shown(services, request_id):
    """The request as the reference Mobile ID SDK sees it (an independent canonical form)."""
    with services.database.transaction(read_only=True) as session:
        row = session.get(MobileRequest, request_id)
        return {
            "requestID": row.id,
            "credentialID": row.credential_id,
            "hashAlgorithmOID": row.hash_algorithm,
            "hashes": row.hashes.split("\n"),
            "numSignatures": row.num_signatures,
            "labels": json.loads(row.labels),
            "description": row.description,
            "origin": row.origin,
            "nonce": row.nonce,
        }


def challenge(request, decision):
    return hashlib.sha256(approval_bytes(request, decision)).digest()


def decide(client, request_id, decision, assertion):
    return client.post(
        f"/passkey/v1/approve/{request_id}", json={"decision": decision, "credential": assertion}
    )


@pytest.fixture
def alice(services, client):
    credential_id = user_with_passkey_credential(services, "alice")
    authenticator = SoftAuthenticator(ORIGIN, "localhost")
    done = register(client, services, "alice", credential_id, authenticator)
    assert done.status_code == 200, done.text
    return credential_id, authenticator, login(client, "alice")


def test_registration_checks_password_code_and_user_verification(services, client):
    credential_id = user_with_passkey_credential(services, "alice")
    wrong = client.post(
        "/passkey/v1/register/options",
        json={"credentialID": credential_id, "username": "alice", "password": "wrong password"},
    )
    assert wrong.status_code == 401 and wrong.json["error"] == "authentication_error"
    no_uv = register(
        client,
        services,
        "alice",
        credential_id,
        SoftAuthenticator(ORIGIN, "localhost", user_verified=False),
    )
    assert no_uv.status_code == 400 and "does not verify" in no_uv.json["error_description"]
    assert events(services, "passkey.registration_refused")
    wrong_code = register(
        client,
        services,
        "alice",
        credential_id,
        SoftAuthenticator(ORIGIN, "localhost"),
        activationCode="AAAA-AAAA-AAAA",
    )
    assert wrong_code.status_code == 400, wrong_code.text
    # packed self-attestation whose signature is another key's: refused
    impostor = SoftAuthenticator(ORIGIN, "localhost")
    impostor._sign = SoftAuthenticator(ORIGIN, "localhost")._sign  # type: ignore[method-assign]
    broken = register(client, services, "alice", credential_id, impostor, packed=True)
    assert broken.status_code == 400, broken.text
    authenticator = SoftAuthenticator(ORIGIN, "localhost")
    # packed self-attestation: its signature is checked (a broken one is refused)
    done = register(client, services, "alice", credential_id, authenticator, packed=True)
    assert done.status_code == 200, done.text
    (registered,) = events(services, "passkey.registered")
    assert registered["authenticator"]["fmt"] == "packed"
    assert registered["webauthn_id"] == b64url(authenticator.credential_id)
    with services.database.transaction(read_only=True) as session:
        assert session.get(Credential, credential_id).status == "active"
        device = session.get(MobileDevice, done.json["deviceID"])
        assert device.kind == "passkey" and device.webauthn_id == b64url(
            authenticator.credential_id
        )
    again = client.post(
        "/passkey/v1/register/options",
        json={"credentialID": credential_id, "username": "alice", "password": PASSWORD},
    )
    assert again.status_code == 400 and "is active" in again.json["error_description"]


def test_assertion_bound_to_the_hashes_gives_one_sad(services, client, alice):
    credential_id, authenticator, headers = alice
    digests = [hashlib.sha256(b"lease").digest()]
    pending = authorize(client, headers, credential_id, digests)
    request_id = pending["authorizationID"]
    assert pending["signet_approvalURL"] == f"{ORIGIN}/passkey/v1/approve/{request_id}"
    info = client.post(
        "/csc/v2/credentials/info",
        headers=headers,
        json={"credentialID": credential_id, "authInfo": True},
    )
    assert info.json["auth"]["mode"] == "implicit"  # nothing for the client to collect

    page = client.get(f"/passkey/v1/approve/{request_id}")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "lease.pdf" in page.text
    request = shown(services, request_id)
    # the page's challenge is SHA-256 of the Mobile ID canonical bytes (reference SDK's)
    offered = re.search(r'data-approve="([^"]+)"', page.text).group(1)
    assert offered == b64url(challenge(request, "approve"))

    other = dict(request, hashes=[b64url(hashlib.sha256(b"other").digest())])
    for bad in (
        authenticator.get(challenge(other, "approve")),  # other hashes
        authenticator.get(challenge(request, "deny")),  # the deny challenge, posted as approve
        authenticator.get(challenge(request, "approve"), origin="http://evil.localhost"),
    ):
        refused = decide(client, request_id, "approve", bad)
        assert refused.status_code == 400, refused.text
    assert len(events(services, "passkey.assertion_invalid")) == 3
    assert (
        client.post(
            "/csc/v2/credentials/authorizeCheck",
            headers=headers,
            json={"credentialID": credential_id, "authorizationID": request_id},
        ).json["status"]
        == "pending"
    )

    good = authenticator.get(challenge(request, "approve"))
    approved = decide(client, request_id, "approve", good)
    assert approved.status_code == 200 and approved.json["state"] == "approved", approved.text
    replayed = decide(client, request_id, "approve", good)
    assert replayed.status_code == 409 and events(services, "passkey.replay")
    assert client.get(f"/passkey/v1/approve/{request_id}").status_code == 409

    check = client.post(
        "/csc/v2/credentials/authorizeCheck",
        headers=headers,
        json={"credentialID": credential_id, "authorizationID": request_id},
    )
    assert check.status_code == 200 and "SAD" in check.json, check.text
    authorized = events(services, "credential.authorized")[-1]
    assert authorized["auth_methods"] == ["pwd", "passkey"] and authorized["aal"] == 2
    signed = client.post(
        "/csc/v2/signatures/signHash",
        headers=headers,
        json={
            "credentialID": credential_id,
            "SAD": check.json["SAD"],
            "hashes": [base64.b64encode(d).decode() for d in digests],
            "hashAlgorithmOID": SHA256,
            "signAlgo": "1.2.840.10045.4.3.2",
        },
    )
    assert signed.status_code == 200, signed.text

    # the old assertion, on a new request, is refused (its challenge names the old request)
    second = authorize(client, headers, credential_id, digests)["authorizationID"]
    old = decide(client, second, "approve", good)
    assert old.status_code == 400, old.text
    # the passkey is no Mobile ID phone: the device channel does not know it
    with services.database.transaction(read_only=True) as session:
        device_id = session.get(MobileRequest, second).device_id
    phone = client.post(
        "/mobile/v1/approve",
        json={
            "deviceID": device_id,
            "requestID": second,
            "signature": good["response"]["signature"],
        },
    )
    assert phone.status_code == 400 and "deviceID" in phone.json["error_description"]


def test_another_users_passkey_and_a_cloned_counter_are_refused(services, client, alice):
    credential_id, authenticator, headers = alice
    bob_credential = user_with_passkey_credential(services, "bob")
    bob_key = SoftAuthenticator(ORIGIN, "localhost")
    assert register(client, services, "bob", bob_credential, bob_key).status_code == 200
    request_id = authorize(client, headers, credential_id, [b"\1" * 32])["authorizationID"]
    request = shown(services, request_id)
    refused = decide(client, request_id, "approve", bob_key.get(challenge(request, "approve")))
    assert refused.status_code == 400, refused.text
    # Alice's own passkey, but without user verification (UP only): refused
    authenticator.user_verified = False
    unverified = decide(
        client, request_id, "approve", authenticator.get(challenge(request, "approve"))
    )
    assert unverified.status_code == 400, unverified.text
    authenticator.user_verified = True
    assert len(events(services, "passkey.assertion_invalid")) == 2

    assert (
        decide(client, request_id, "deny", authenticator.get(challenge(request, "deny"))).json[
            "state"
        ]
        == "denied"
    )
    denied = client.post(
        "/csc/v2/credentials/authorizeCheck",
        headers=headers,
        json={"credentialID": credential_id, "authorizationID": request_id},
    )
    assert denied.status_code == 403 and [
        e["request"] for e in events(services, "passkey.denied")
    ] == [request_id]

    with services.database.transaction(read_only=True) as session:
        stored = session.execute(
            select(MobileDevice.sign_count).where(MobileDevice.credential_id == credential_id)
        ).scalar_one()
    assert stored == authenticator.counter > 1  # the counter moved with the deny
    cloned_id = authorize(client, headers, credential_id, [b"\2" * 32])["authorizationID"]
    cloned = authenticator.get(challenge(shown(services, cloned_id), "approve"), counter=1)
    answer = decide(client, cloned_id, "approve", cloned)
    assert answer.status_code == 403 and events(services, "passkey.cloned"), answer.text


def test_rows_edited_in_the_database_give_nothing(services, client, alice):
    credential_id, authenticator, headers = alice
    first = authorize(client, headers, credential_id, [b"\3" * 32])["authorizationID"]
    approved = decide(
        client, first, "approve", authenticator.get(challenge(shown(services, first), "approve"))
    )
    assert approved.status_code == 200
    second = authorize(client, headers, credential_id, [b"\4" * 32])["authorizationID"]
    with services.database.transaction() as session:
        stored = session.get(MobileRequest, first).approval
        # an administrator marks the second request approved with the first one's assertion
        session.execute(
            update(MobileRequest)
            .where(MobileRequest.id == second)
            .values(state="approved", approval=stored)
        )
    forged = client.post(
        "/csc/v2/credentials/authorizeCheck",
        headers=headers,
        json={"credentialID": credential_id, "authorizationID": second},
    )
    assert forged.status_code == 403 and "SAD" not in forged.json, forged.text
    # a passkey row pointed at another key (the administrator's own authenticator)
    with services.database.transaction() as session:
        session.execute(
            update(MobileDevice)
            .where(MobileDevice.credential_id == credential_id)
            .values(webauthn_id=b64url(b"x" * 32))
        )
    third = client.post(
        "/csc/v2/credentials/authorize",
        headers=headers,
        json={
            "credentialID": credential_id,
            "numSignatures": 1,
            "hashes": [base64.b64encode(b"\5" * 32).decode()],
            "hashAlgorithmOID": SHA256,
        },
    )
    assert third.status_code == 403, third.text
    assert client.get(f"/passkey/v1/approve/{first}").status_code == 403
    assert events(services, "integrity.violation")


def test_pages_say_unknown_and_expired(services, client, alice):
    credential_id, authenticator, headers = alice
    unknown = client.get("/passkey/v1/approve/" + "0" * 32)
    assert unknown.status_code == 404 and "No such request" in unknown.text
    services.settings.sam.mobile_request_lifetime_seconds = 5
    request_id = authorize(client, headers, credential_id, [b"\6" * 32])["authorizationID"]
    import time

    time.sleep(6)
    assert client.get(f"/passkey/v1/approve/{request_id}").status_code == 410
    late = decide(
        client,
        request_id,
        "approve",
        authenticator.get(challenge(shown(services, request_id), "approve")),
    )
    assert late.status_code == 410, late.text
    assert events(services, "mobile.expired")
    assert passkey_trust.KIND == "passkey"
