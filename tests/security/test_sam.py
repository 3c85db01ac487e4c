"""The SAM's requirements (after CEN EN 419 241-2), one test each, on SQLite and PostgreSQL:
what a SAD binds, and that no row written or edited in the database — by a DBA, an
administrator with SQL, anyone without the HSM's keys — ever yields a signature.

Every signature that should work is verified against the credential's certificate; every
refusal is checked in the audit trail too."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from sqlalchemy import insert, select, update

from signet.signing import admin
from signet.store import AccessToken, AuditRecord, Certificate, Credential, SignatureActivation
from tests.helpers import enrol
from tests.integration.csc_http import PASSWORD, Csc

ECDSA_SHA256 = "1.2.840.10045.4.3.2"


@pytest.fixture
def alice(services):
    for name in ("alice", "mallory"):
        admin.add_user(
            services,
            name,
            password=PASSWORD,
            display_name=name.title(),
            email=f"{name}@example.test",
            actor="test",
        )
    return {
        "ec": enrol(services, "alice", key="ec-p256", actor="test").credential_id,
        "ec2": enrol(services, "alice", key="ec-p256", actor="test").credential_id,
        "mallory": enrol(services, "mallory", key="ec-p256", actor="test").credential_id,
    }


@pytest.fixture
def csc(client, services, alice):
    api = Csc(client, services)
    api.login()
    return api


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def public_key(services, credential_id):
    with services.database.transaction() as session:
        der = session.execute(
            select(Certificate.der).where(
                Certificate.credential_id == credential_id, Certificate.position == 0
            )
        ).scalar_one()
    return x509.load_der_x509_certificate(der).public_key()


def assert_signed(services, credential_id, response, digests):
    """Each signature verifies under the credential's certificate, over its hash."""
    assert response.status_code == 200, response.json
    key = public_key(services, credential_id)
    for signature, value in zip(response.json["signatures"], digests, strict=True):
        key.verify(base64.b64decode(signature), value, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def refused(response, status=400):
    assert response.status_code == status, response.json
    return response.json["error_description"]


def last_events(services, count=1):
    with services.database.transaction() as session:
        rows = session.execute(
            select(AuditRecord.event, AuditRecord.details)
            .order_by(AuditRecord.seq.desc())
            .limit(count)
        ).all()
    return [(event, json.loads(details)) for event, details in rows]


def test_a_sad_signs_only_the_hashes_it_is_bound_to(csc, services, alice):
    h1, h2 = digest("contract"), digest("another contract")
    sad = csc.authorize(alice["ec"], [h1], num=2).json["SAD"]
    assert "not authorized" in refused(csc.sign(alice["ec"], sad, [h2], ECDSA_SHA256))
    assert last_events(services)[0][0] == "sad.rejected"
    assert_signed(services, alice["ec"], csc.sign(alice["ec"], sad, [h1], ECDSA_SHA256), [h1])


def test_a_sad_covers_each_hash_exactly_as_often_as_authorized(csc, services, alice):
    h3, h4 = digest("H3"), digest("H4")
    sad = csc.authorize(alice["ec"], [h3, h4]).json["SAD"]
    # [H3, H3] would sign H3 twice: refused before anything is spent.
    assert "already signed" in refused(csc.sign(alice["ec"], sad, [h3, h3], ECDSA_SHA256))
    assert_signed(services, alice["ec"], csc.sign(alice["ec"], sad, [h3], ECDSA_SHA256), [h3])
    assert "already signed" in refused(csc.sign(alice["ec"], sad, [h3], ECDSA_SHA256))
    assert_signed(services, alice["ec"], csc.sign(alice["ec"], sad, [h4], ECDSA_SHA256), [h4])
    # A multiset: a hash authorized twice signs twice.
    twice = csc.authorize(alice["ec"], [h3, h3]).json["SAD"]
    assert_signed(
        services, alice["ec"], csc.sign(alice["ec"], twice, [h3, h3], ECDSA_SHA256), [h3, h3]
    )


def test_a_spent_sad_cannot_be_replayed_even_after_the_count_is_raised(csc, services, alice):
    h1 = digest("once")
    sad = csc.authorize(alice["ec"], [h1]).json["SAD"]
    assert_signed(services, alice["ec"], csc.sign(alice["ec"], sad, [h1], ECDSA_SHA256), [h1])
    assert "numSignatures" in refused(csc.sign(alice["ec"], sad, [h1], ECDSA_SHA256))
    with services.database.transaction() as session:  # an insider raises the count
        session.execute(update(SignatureActivation).values(remaining=100, num_signatures=100))
    # The count is the SAD's own (under its MAC), checked against the spent markers.
    assert "numSignatures" in refused(csc.sign(alice["ec"], sad, [h1], ECDSA_SHA256))


def test_an_expired_sad_stays_expired_whatever_the_database_says(csc, services, alice, monkeypatch):
    monkeypatch.setattr(services.settings.sam, "sad_lifetime_seconds", 1)
    h1 = digest("late")
    sad = csc.authorize(alice["ec"], [h1]).json["SAD"]
    with services.database.transaction() as session:
        session.execute(
            update(SignatureActivation).values(expires_at=datetime.now(UTC) + timedelta(days=365))
        )
    time.sleep(1.2)
    assert "expired" in refused(csc.sign(alice["ec"], sad, [h1], ECDSA_SHA256))
    assert last_events(services)[0][0] == "sad.rejected"


def test_a_sad_works_only_for_its_user_and_credential(csc, client, services, alice):
    h1 = digest("mine")
    sad = csc.authorize(alice["ec"], [h1]).json["SAD"]
    assert refused(csc.sign(alice["ec2"], sad, [h1], ECDSA_SHA256)) == "Invalid parameter SAD"
    mallory = Csc(client, services)
    mallory.login("mallory")
    assert (
        refused(mallory.sign(alice["mallory"], sad, [h1], ECDSA_SHA256)) == "Invalid parameter SAD"
    )
    # Nor can a DBA hand Alice's SAD row to Mallory's credential.
    with services.database.transaction() as session:
        session.execute(
            update(SignatureActivation).values(
                credential_id=alice["mallory"],
                user_id=select(Credential.user_id)
                .where(Credential.id == alice["mallory"])
                .scalar_subquery(),
            )
        )
    assert (
        refused(mallory.sign(alice["mallory"], sad, [h1], ECDSA_SHA256)) == "Invalid parameter SAD"
    )


def test_a_revoked_token_or_disabled_user_signs_nothing_and_spends_nothing(
    csc, client, services, alice
):
    """signHash reads the token's state with the credential, in the signing transaction:
    a token revoked, or a user disabled, after the SAD was issued stops the signature (401)
    before anything is spent, and a token of another user cannot reach Alice's credential."""
    h1, h2 = digest("after revocation"), digest("after disable")
    sad = csc.authorize(alice["ec"], [h1, h2]).json["SAD"]
    mallory = Csc(client, services)
    mallory.login("mallory")
    assert (
        refused(mallory.sign(alice["ec"], sad, [h1], ECDSA_SHA256))
        == "Invalid parameter credentialID"
    )
    token = csc.token
    fresh = Csc(client, services)
    fresh.login()
    assert csc.post("auth/revoke", {"token": token}).status_code == 204
    assert "revoked" in refused(csc.sign(alice["ec"], sad, [h1], ECDSA_SHA256), 401)
    admin.set_user_status(services, "alice", "disabled", actor="test")
    assert "disabled" in refused(fresh.sign(alice["ec"], sad, [h1], ECDSA_SHA256), 401)
    with services.database.transaction() as session:
        spent = session.execute(select(SignatureActivation.spent)).scalar_one()
    assert spent == ""
    assert "sad.rejected" not in [e for e, _ in last_events(services, 2)]
    admin.set_user_status(services, "alice", "active", actor="test")
    assert_signed(services, alice["ec"], fresh.sign(alice["ec"], sad, [h2], ECDSA_SHA256), [h2])


def test_forged_token_and_sad_rows_never_sign(csc, client, services, alice):
    """The attack that worked before: one access_tokens row and one sads row, each holding the
    SHA-256 of a value of the insider's choosing."""
    token, sad, h1 = "insider-token", "insider-sad", digest("forged")
    stamp = datetime.now(UTC)
    with services.database.transaction() as session:
        user_id = session.execute(
            select(Credential.user_id).where(Credential.id == alice["ec"])
        ).scalar_one()
        session.execute(
            insert(AccessToken).values(
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                user_id=user_id,
                scope="service",
                auth_methods="pwd",
                loa="low",
                created_at=stamp,
                expires_at=stamp + timedelta(hours=1),
                revoked=False,
            )
        )
        session.execute(
            insert(SignatureActivation).values(
                sad_hash=hashlib.sha256(sad.encode()).hexdigest(),
                user_id=user_id,
                credential_id=alice["ec"],
                hash_algorithm=None,
                hashes=base64.b64encode(h1).decode(),
                num_signatures=5,
                remaining=5,
                spent="",
                scal="2",
                created_at=stamp,
                expires_at=stamp + timedelta(hours=1),
            )
        )
    insider = Csc(client, services)
    insider.token = token
    assert refused(insider.sign(alice["ec"], sad, [h1], ECDSA_SHA256), 401)
    assert last_events(services)[0][0] == "integrity.violation"
    # With Alice's real token, the forged SAD row is still nothing: signHash and signDoc.
    assert refused(csc.sign(alice["ec"], sad, [h1], ECDSA_SHA256)) == "Invalid parameter SAD"
    assert last_events(services)[0][0] == "sad.rejected"
    doc = csc.post(
        "signatures/signDoc",
        {
            "credentialID": alice["ec"],
            "SAD": sad,
            "documentDigests": [
                {
                    "hashes": [base64.b64encode(h1).decode()],
                    "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
                    "signature_format": "C",
                    "conformance_level": "Ades-B-B",
                    "signAlgo": ECDSA_SHA256,
                }
            ],
        },
    )
    assert refused(doc) == "Invalid parameter SAD"
    assert last_events(services)[0][0] == "sad.rejected"
    # A SAD string made to look like the SAM's, with a MAC of the insider's own key.
    genuine = csc.authorize(alice["ec"], [h1]).json["SAD"]
    head, payload, _ = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["k"] = 50
    counterfeit = ".".join(
        [
            head,
            base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode(),
            base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(),
        ]
    )
    assert (
        refused(csc.sign(alice["ec"], counterfeit, [h1], ECDSA_SHA256)) == "Invalid parameter SAD"
    )


@pytest.mark.parametrize(
    "edit",
    [
        {"status": "active", "from_status": "disabled"},
        {"user": "mallory"},
        {"activation": "pin", "pin_hash": "hsm-hmac-sha256$" + "00" * 32},
        {"epoch": 0, "from_status": "disabled_then_enabled"},
    ],
)
def test_an_edited_credential_record_never_signs(csc, client, services, alice, edit):
    h1 = digest("edited")
    sad = csc.authorize(alice["ec"], [h1], num=2).json["SAD"]
    cred = alice["ec"]
    values = {k: v for k, v in edit.items() if k not in ("user", "from_status")}
    if edit.get("from_status") == "disabled":
        admin.set_credential_status(services, cred, "disabled", actor="test")
    if edit.get("from_status") == "disabled_then_enabled":
        admin.set_credential_status(services, cred, "disabled", actor="test")
        admin.set_credential_status(services, cred, "active", actor="test")
    with services.database.transaction() as session:
        if "user" in edit:
            values["user_id"] = session.execute(
                select(Credential.user_id).where(Credential.id == alice["mallory"])
            ).scalar_one()
        session.execute(update(Credential).where(Credential.id == cred).values(**values))
    signer = csc
    if "user" in edit:
        signer = Csc(client, services)
        signer.login("mallory")
    description = refused(signer.sign(cred, sad, [h1], ECDSA_SHA256), 403)
    assert "integrity check" in description
    event, details = last_events(services)[0]
    assert event == "integrity.violation" and "integrity check" in details["reason"]
    # Nor does it authorize, or send a code to anyone.
    assert "integrity check" in refused(
        signer.post("credentials/sendOTP", {"credentialID": cred}), 403
    )


def test_a_sad_issued_before_a_disable_never_works_after_it(csc, services, alice):
    h1 = digest("before")
    sad = csc.authorize(alice["ec"], [h1]).json["SAD"]
    admin.set_credential_status(services, alice["ec"], "disabled", actor="test")
    assert "disabled" in refused(csc.sign(alice["ec"], sad, [h1], ECDSA_SHA256))
    admin.set_credential_status(services, alice["ec"], "active", actor="test")
    assert "before the credential was disabled" in refused(
        csc.sign(alice["ec"], sad, [h1], ECDSA_SHA256)
    )
    # A new authorization signs again.
    fresh = csc.authorize(alice["ec"], [h1]).json["SAD"]
    assert_signed(services, alice["ec"], csc.sign(alice["ec"], fresh, [h1], ECDSA_SHA256), [h1])


def test_revocation_destroys_the_key_and_no_database_edit_brings_it_back(csc, services, alice):
    h1 = digest("revoked")
    sad = csc.authorize(alice["ec"], [h1]).json["SAD"]
    with services.database.transaction() as session:
        serial = session.execute(
            select(Certificate.serial).where(
                Certificate.credential_id == alice["ec"], Certificate.position == 0
            )
        ).scalar_one()
        before = session.execute(
            select(Credential).where(Credential.id == alice["ec"])
        ).scalar_one()
        sealed_active = {c: getattr(before, c) for c in ("status", "epoch", "seal")}
    admin.set_credential_status(
        services, alice["ec"], "revoked", actor="test", reason="keyCompromise"
    )
    assert not services.hsm.key_exists(alice["ec"])
    details = next(d for e, d in last_events(services, 5) if e == "credential.revoked")
    assert details["key_label"] == alice["ec"] and details["serial"] == serial
    assert details["key_destroyed"] is True
    # The insider restores the row as it was, seal and all: the key is gone all the same.
    with services.database.transaction() as session:
        session.execute(
            update(Credential).where(Credential.id == alice["ec"]).values(**sealed_active)
        )
    response = csc.sign(alice["ec"], sad, [h1], ECDSA_SHA256)
    assert "no private key" in refused(response, 503)
    assert last_events(services)[0][0] == "signature.failed"


def test_an_unsealed_credential_record_inserted_by_sql_never_signs(csc, services, alice):
    """A whole credential row written by SQL (pointing at a real key of Alice's) is refused."""
    with services.database.transaction() as session:
        row = (
            session.execute(select(Credential.__table__).where(Credential.id == alice["ec2"]))
            .mappings()
            .one()
        )
        session.execute(
            insert(Credential).values(
                {**row, "id": "copy-of-ec2", "key_label": alice["ec2"] + "-x", "seal": None}
            )
        )
    assert "integrity check" in refused(
        csc.post("credentials/sendOTP", {"credentialID": "copy-of-ec2"}), 403
    )
