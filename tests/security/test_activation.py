"""The signer's own activation secret (issue 11, point 4), on SQLite and PostgreSQL: a credential
is enrolled pending, its activation code reaches the owner by e-mail (only an HSM verifier is
stored), and only she activates it — setting her PIN herself — through credentials/activate.

Every signature that should work is verified against the certificate; refusals are checked in
the trail too."""

from __future__ import annotations

import base64
import hashlib
import json
import mailbox
import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from sqlalchemy import insert, select, update

from signet.signing import admin
from signet.store import AuditRecord, Certificate, Credential, OtpChallenge
from tests.helpers import ACTIVATION_CODE, signet_cli
from tests.security.conftest import PASSWORD, Csc, audit_events, b64, error_of, text_of

ECDSA_SHA256 = "1.2.840.10045.4.3.2"
SHA256 = "2.16.840.1.101.3.4.2.1"
PIN = "583920"


@pytest.fixture
def enrolled(services) -> dict[str, str]:
    """Alice's pending PIN and OTP credentials, and Mallory's pending one."""
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
        "pin": admin.create_credential(
            services, "alice", key="ec-p256", activation="pin", policy="basic", actor="test"
        ).credential_id,
        "otp": admin.create_credential(
            services, "alice", key="ec-p256", actor="test"
        ).credential_id,
        "mallory": admin.create_credential(
            services, "mallory", key="ec-p256", actor="test"
        ).credential_id,
    }


def activation_mail(services, credential_id: str):
    box = mailbox.Maildir(services.settings.notify.maildir, create=False)
    mails = [m for m in box if credential_id in text_of(m)]
    assert mails, f"no mail for {credential_id}"
    return max(mails, key=lambda m: m.get_date())


def code_of(message) -> str:
    found = re.search(ACTIVATION_CODE, text_of(message), re.M)
    assert found, text_of(message)
    return found.group(1)


def activate(csc: Csc, credential_id: str, code: str, pin: str | None = None):
    body = {"credentialID": credential_id, "activationCode": code}
    if pin is not None:
        body["PIN"] = pin
    return csc.post("credentials/activate", body)


def status_of(services, credential_id: str) -> tuple[str, bool, int]:
    with services.database.transaction(read_only=True) as session:
        row = session.get(Credential, credential_id)
        return row.status, row.locked, row.failed_attempts


def login(client, services, user: str = "alice", version: str = "v2") -> Csc:
    csc = Csc(client, services, version)
    assert csc.login(user).status_code == 200
    return csc


def sign_with_pin(csc: Csc, services, credential_id: str, pin: str, text: str):
    """authorize with the PIN, signHash, and the signature checked against the certificate."""
    digest = hashlib.sha256(text.encode()).digest()
    authorized = csc.post(
        "credentials/authorize",
        {
            "credentialID": credential_id,
            "numSignatures": 1,
            "hashes": [b64(digest)],
            "hashAlgorithmOID": SHA256,
            "authData": [{"id": "PIN", "value": pin}],
        },
    )
    assert authorized.status_code == 200, authorized.json
    signed = csc.post(
        "signatures/signHash",
        {
            "credentialID": credential_id,
            "SAD": authorized.json["SAD"],
            "hashes": [b64(digest)],
            "signAlgo": ECDSA_SHA256,
            "hashAlgorithmOID": SHA256,
        },
    )
    assert signed.status_code == 200, signed.json
    with services.database.transaction(read_only=True) as session:
        der = session.execute(
            select(Certificate.der).where(
                Certificate.credential_id == credential_id, Certificate.position == 0
            )
        ).scalar_one()
    x509.load_der_x509_certificate(der).public_key().verify(
        base64.b64decode(signed.json["signatures"][0]),
        digest,
        ec.ECDSA(utils.Prehashed(hashes.SHA256())),
    )


def test_a_pending_credential_cannot_authorize_send_an_otp_or_sign(client, services, enrolled):
    csc = login(client, services)
    digest = b64(hashlib.sha256(b"x").digest())
    for credential_id in (enrolled["pin"], enrolled["otp"]):
        assert status_of(services, credential_id)[0] == "pending"
        refused = [
            csc.post("credentials/sendOTP", {"credentialID": credential_id}),
            csc.post(
                "credentials/authorize",
                {
                    "credentialID": credential_id,
                    "numSignatures": 1,
                    "hashes": [digest],
                    "hashAlgorithmOID": SHA256,
                    "authData": [{"id": "PIN", "value": PIN}, {"id": "OTP", "value": "123456"}],
                },
            ),
            csc.post(
                "signatures/signHash",
                {
                    "credentialID": credential_id,
                    "SAD": "s1.anything.at-all",
                    "hashes": [digest],
                    "signAlgo": ECDSA_SHA256,
                    "hashAlgorithmOID": SHA256,
                },
            ),
        ]
        for response in refused:
            assert "not activated yet" in error_of(response, 400)
    # The mails in the Maildir are the activation mails only: no OTP was sent.
    box = mailbox.Maildir(services.settings.notify.maildir, create=False)
    assert {m["Subject"] for m in box} == {"Activate your signing credential"}
    assert not [e for e, _ in audit_events(services) if e in ("otp.sent", "sad.issued")]


def test_the_owner_activates_with_the_mailed_code_and_then_signs(client, services, enrolled):
    mail = activation_mail(services, enrolled["pin"])
    code = code_of(mail)
    body = text_of(mail)
    assert mail["To"] == "alice@example.test"
    assert code not in mail["Subject"] and code.replace("-", "") not in mail["Subject"]
    assert "signet activate" in body and f"--credential {enrolled['pin']}" in body
    assert "valid for 72 hours" in body  # sam.activation_lifetime_hours, the default
    csc = login(client, services)
    # Her PIN follows the policy: digits, 6 to 16, not one digit throughout.
    for bad in ("12345", "abcdef", "777777", None):
        assert "PIN" in error_of(activate(csc, enrolled["pin"], code, bad), 400)
    assert status_of(services, enrolled["pin"]) == ("pending", False, 0)
    # The code as typed by a person: lower case, the dash left out.
    done = activate(csc, enrolled["pin"], code.lower().replace("-", " "), PIN)
    assert done.status_code == 200, done.json
    assert done.json == {"credentialID": enrolled["pin"], "status": "active", "activation": "pin"}
    assert status_of(services, enrolled["pin"]) == ("active", False, 0)
    sign_with_pin(csc, services, enrolled["pin"], PIN, "activated and signed")
    # Once is enough: the code is spent and the credential active.
    assert "already activated" in error_of(activate(csc, enrolled["pin"], code, PIN), 409)
    # The OTP credential activates through v1 as well (no PIN: its factor is the mailed OTP).
    v1 = login(client, services, version="v1")
    otp_code = code_of(activation_mail(services, enrolled["otp"]))
    assert "not a PIN" in error_of(activate(v1, enrolled["otp"], otp_code, PIN), 400)
    assert activate(v1, enrolled["otp"], otp_code).status_code == 200
    assert status_of(services, enrolled["otp"])[0] == "active"
    activated = [(e, d) for e, d in audit_events(services) if e == "credential.activated"]
    assert [d["activation"] for _, d in activated] == ["pin", "otp"]
    assert admin.verify_audit(services)[1] == []


def test_nobody_but_the_owner_can_activate(client, services, enrolled):
    code = code_of(activation_mail(services, enrolled["pin"]))
    mallory = login(client, services, "mallory")
    assert (
        error_of(activate(mallory, enrolled["pin"], code, "424242"), 400)
        == "Invalid parameter credentialID"
    )
    anonymous = client.post(
        "/csc/v2/credentials/activate",
        json={"credentialID": enrolled["pin"], "activationCode": code, "PIN": "424242"},
    )
    error_of(anonymous, 401, "invalid_token")
    assert status_of(services, enrolled["pin"]) == ("pending", False, 0)
    # An administrator cannot activate it either: only its owner does.
    with pytest.raises(Exception, match="only its owner activates it"):
        admin.set_credential_status(services, enrolled["pin"], "active", actor="test")
    # The code still works for Alice, and the PIN is hers.
    alice = login(client, services)
    assert activate(alice, enrolled["pin"], code, PIN).status_code == 200
    sign_with_pin(alice, services, enrolled["pin"], PIN, "hers")


def test_wrong_codes_count_and_lock_the_credential(client, services, enrolled):
    code = code_of(activation_mail(services, enrolled["otp"]))
    csc = login(client, services)
    limit = services.settings.sam.otp_max_attempts
    for attempt in range(1, limit):
        text = error_of(activate(csc, enrolled["otp"], "WRONG-CODE1"), 400)
        assert f"{limit - attempt} tries left" in text
    assert "now locked" in error_of(
        activate(csc, enrolled["otp"], "WRONG-CODE1"), 403, "invalid_request"
    )
    assert status_of(services, enrolled["otp"]) == ("pending", True, limit)
    # Locked: even the right code is refused until an administrator unlocks it.
    assert "locked" in error_of(activate(csc, enrolled["otp"], code), 403, "access_denied")
    events = [e for e, _ in audit_events(services)]
    assert events.count("activation_code.failed") == limit
    assert events.count("credential.locked") == 1
    admin.set_credential_status(services, enrolled["otp"], "unlock", actor="test")
    assert activate(csc, enrolled["otp"], code).status_code == 200
    assert status_of(services, enrolled["otp"]) == ("active", False, 0)


def test_expired_and_stretched_codes_are_refused(client, services, enrolled):
    code = code_of(activation_mail(services, enrolled["otp"]))
    csc = login(client, services)
    with services.database.transaction() as session:
        session.execute(
            update(OtpChallenge)
            .where(OtpChallenge.credential_id == enrolled["otp"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert "has expired (valid 72 hours)" in error_of(activate(csc, enrolled["otp"], code), 400)
    assert status_of(services, enrolled["otp"]) == ("pending", False, 0)
    assert audit_events(services)[-1][1]["reason"] == "the activation code has expired"
    # A fresh code; a row whose lifetime is stretched by SQL no longer matches its verifier.
    admin.resend_activation(services, enrolled["otp"], actor="test")
    fresh = code_of(activation_mail(services, enrolled["otp"]))
    assert fresh != code
    with services.database.transaction() as session:
        session.execute(
            update(OtpChallenge)
            .where(OtpChallenge.credential_id == enrolled["otp"], OtpChallenge.used.is_(False))
            .values(expires_at=datetime.now(UTC) + timedelta(days=30))
        )
    assert "activation code is invalid" in error_of(activate(csc, enrolled["otp"], fresh), 400)
    assert status_of(services, enrolled["otp"])[0] == "pending"


def test_a_code_inserted_by_sql_never_activates(client, services, enrolled):
    chosen = "ABCDE23456"
    with services.database.transaction() as session:
        session.execute(update(OtpChallenge).values(used=True))
        session.execute(
            insert(OtpChallenge).values(
                credential_id=enrolled["pin"],
                purpose="activation",
                binding=None,
                code_hash=hashlib.sha256(chosen.encode()).hexdigest(),
                created_at=datetime.now(UTC),
                expires_at=datetime.now(UTC) + timedelta(hours=1),
                used=False,
            )
        )
    csc = login(client, services)
    assert "activation code is invalid" in error_of(
        activate(csc, enrolled["pin"], chosen, PIN), 400
    )
    # Refused and counted like any wrong code; the credential stays pending.
    assert status_of(services, enrolled["pin"]) == ("pending", False, 1)
    assert audit_events(services)[-1][0] == "activation_code.failed"


def test_the_administrator_never_sees_the_code_or_the_pin(settings_env, services):
    made = signet_cli(
        "users",
        "add",
        "carol",
        "--email",
        "carol@example.test",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert made.returncode == 0, made.stderr
    # --pin-stdin is gone: an administrator has no way to choose a PIN.
    refused = signet_cli(
        "credentials",
        "create",
        "carol",
        "--activation",
        "pin",
        "--policy",
        "basic",
        "--pin-stdin",
        stdin="123456\n",
    )
    assert refused.returncode != 0 and "No such option '--pin-stdin'" in refused.stderr
    created = signet_cli(
        "credentials",
        "create",
        "carol",
        "--key",
        "ec-p256",
        "--activation",
        "pin",
        "--policy",
        "basic",
    )
    assert created.returncode == 0, created.stderr
    credential_id = created.stdout.split()[1]
    assert "pending: an activation code was sent to carol@example.test" in created.stdout
    resent = signet_cli("credentials", "resend-activation", credential_id)
    assert resent.returncode == 0 and "carol@example.test" in resent.stdout
    code = code_of(activation_mail(services, credential_id))
    listed = signet_cli("credentials", "list")
    assert re.search(rf"{credential_id}\s+carol\s+ec-p256\s+pending", listed.stdout)
    from signet.auth.tokens import Principal
    from signet.signing.activation import activate as activate_usecase

    with services.database.transaction(read_only=True) as session:
        user_id = session.get(Credential, credential_id).user_id
    owner = Principal(user_id=user_id, username="carol", auth_methods="pwd", loa="low")
    activate_usecase(services, owner, credential_id, code, PIN)
    listed = signet_cli("credentials", "list")
    assert re.search(rf"{credential_id}\s+carol\s+ec-p256\s+active", listed.stdout)
    # Neither the code nor the PIN in anything the administrator saw, nor in the trail.
    shown = created.stdout + created.stderr + resent.stdout + resent.stderr + listed.stdout
    with services.database.transaction(read_only=True) as session:
        trail = json.dumps(
            session.execute(select(AuditRecord.event, AuditRecord.details)).all(), default=str
        )
        stored = json.dumps(
            [
                tuple(r)
                for r in session.execute(select(OtpChallenge.code_hash, OtpChallenge.binding)).all()
            ]
            + [session.get(Credential, credential_id).pin_hash]
        )
    for secret in (code, code.replace("-", ""), PIN):
        assert secret not in shown and secret not in trail and secret not in stored
    events = [e for e, _ in audit_events(services)]
    assert events.count("credential.activation_sent") == 2
    assert "credential.activated" in events
    assert signet_cli("audit", "verify").returncode == 0


def test_init_demo_activates_the_demo_credentials_through_the_maildir(settings_env, services):
    done = signet_cli("init", "--demo")
    assert done.returncode == 0, done.stderr
    views = admin.list_credentials(services)
    assert sorted((v.username, v.key, v.status) for v in views) == [
        ("alice", "ec-p256", "active"),
        ("alice", "rsa-3072", "active"),
        ("bob", "ec-p256", "active"),
        ("bob", "rsa-3072", "active"),
    ]
    with services.database.transaction(read_only=True) as session:
        activated = session.execute(
            select(AuditRecord.subject, AuditRecord.actor).where(
                AuditRecord.event == "credential.activated"
            )
        ).all()
    # Each by its owner (the demo acts as the user would), once.
    assert sorted(tuple(r) for r in activated) == sorted(
        (v.credential_id, v.username) for v in views
    )
    box = mailbox.Maildir(services.settings.notify.maildir, create=False)
    assert sorted(m["To"] for m in box) == ["alice@signet.test"] * 2 + ["bob@signet.test"] * 2
    # The demo cannot read mail it does not hold: another backend is a clear one-line error.
    smtp = signet_cli("init", "--demo", env={"SIGNET_NOTIFY__EMAIL_BACKEND": "smtp"})
    assert smtp.returncode == 1 and smtp.stderr.count("\n") == 1
    assert "notify.email_backend is 'smtp'" in smtp.stderr
