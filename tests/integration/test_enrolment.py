"""Enrolment through the local CA on SQLite and PostgreSQL: rows, chains, audit records."""

import subprocess

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from signet.errors import Conflict, InvalidRequest, NotFound
from signet.signing import admin
from signet.store import AuditRecord, Certificate, Credential, User
from tests.helpers import enrol


def add_alice(services, email="alice@example.test"):
    return admin.add_user(
        services,
        "alice",
        password="correct horse",
        display_name="Alice A",
        email=email,
        actor="test",
    )


@pytest.mark.parametrize("key", ["rsa-3072", "ec-p256"])
def test_enrolled_chain_validates_with_openssl(services, key, tmp_path):
    add_alice(services)
    view = admin.create_credential(services, "alice", key=key, actor="test")
    with services.database.transaction() as session:
        cred = session.get(Credential, view.credential_id)
        ders = [c.der for c in cred.certificates]
        assert [c.role for c in cred.certificates] == ["end-entity", "chain"]
    ee, root = (x509.load_der_x509_certificate(d) for d in ders)
    (tmp_path / "ee.pem").write_bytes(ee.public_bytes(Encoding.PEM))
    (tmp_path / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            "any",
            "-CAfile",
            str(tmp_path / "root.pem"),
            str(tmp_path / "ee.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    # The certificate certifies the key in the HSM, for signing only.
    assert (
        ee.public_key().public_numbers()
        == services.hsm.public_key(view.credential_id).public_numbers()
    )
    usage = ee.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_cert_sign
    assert not ee.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ee.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "Alice A"
    # Tampering with the certificate breaks the chain for openssl too.
    broken = bytearray(ders[0])
    broken[-10] ^= 0xFF
    (tmp_path / "bad.der").write_bytes(bytes(broken))
    bad = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "root.pem"), str(tmp_path / "bad.der")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0


def test_qc_statements_are_optional(services, monkeypatch):
    services.settings.ca.qc_statements = True
    add_alice(services)
    view = admin.create_credential(services, "alice", key="ec-p256", actor="test")
    with services.database.transaction() as session:
        der = session.get(Credential, view.credential_id).certificates[0].der
    cert = asn1_x509.Certificate.load(der)
    qc = [
        e
        for e in cert["tbs_certificate"]["extensions"]
        if e["extn_id"].dotted == "1.3.6.1.5.5.7.1.3"
    ]
    assert len(qc) == 1
    assert b"\x04\x00\x8e\x46\x01\x01" in qc[0]["extn_value"].contents  # QcCompliance


def test_rows_and_audit_records_are_written_together(services):
    add_alice(services)
    view = admin.create_credential(services, "alice", key="ec-p256", actor="test")
    with services.database.transaction() as session:
        user = session.execute(select(User).where(User.username == "alice")).scalar_one()
        assert user.status == "active"
        assert (
            session.execute(
                select(Certificate).where(Certificate.credential_id == view.credential_id)
            )
            .scalars()
            .all()
        )
        events = session.execute(
            select(AuditRecord.event, AuditRecord.subject).order_by(AuditRecord.seq)
        ).all()
    assert ("user.created", "alice") in events
    assert ("key.generated", view.credential_id) in events
    assert ("credential.enrolled", view.credential_id) in events
    assert admin.verify_audit(services)[1] == []


def test_bad_requests_are_refused_without_side_effects(services):
    add_alice(services, email=None)
    with pytest.raises(Conflict, match="already exists"):
        add_alice(services)
    with pytest.raises(InvalidRequest, match="no e-mail address"):
        admin.create_credential(services, "alice", key="rsa-2048", actor="test")
    with pytest.raises(InvalidRequest, match="unknown key type"):
        admin.create_credential(
            services, "alice", key="rsa-1000", actor="test", activation="pin", policy="basic"
        )
    with pytest.raises(NotFound):
        admin.create_credential(services, "nobody", key="rsa-2048", actor="test")
    with pytest.raises(InvalidRequest, match="password too short"):
        admin.add_user(
            services, "bob", password="short", display_name=None, email=None, actor="test"
        )
    with pytest.raises(InvalidRequest, match="invalid user name"):
        admin.add_user(
            services,
            "Bad Name",
            password="long enough",
            display_name=None,
            email=None,
            actor="test",
        )
    assert [u.username for u in admin.list_users(services)] == ["alice"]
    assert admin.list_credentials(services) == []


def test_status_changes_are_audited_and_revocation_is_final(services):
    add_alice(services)
    view = enrol(services, "alice", key="ec-p256", activation="pin", pin="482913")
    cid = view.credential_id
    admin.set_credential_status(services, cid, "disabled", actor="test")
    admin.set_credential_status(services, cid, "active", actor="test")
    admin.set_credential_status(services, cid, "revoked", actor="test", reason="keyCompromise")
    with pytest.raises(Conflict, match="revoked"):
        admin.set_credential_status(services, cid, "active", actor="test")
    admin.set_user_status(services, "alice", "disabled", actor="test")
    with services.database.transaction() as session:
        events = [
            e for (e,) in session.execute(select(AuditRecord.event).order_by(AuditRecord.seq)).all()
        ]
        cert = session.execute(
            select(Certificate).where(Certificate.credential_id == cid, Certificate.position == 0)
        ).scalar_one()
        assert cert.revoked_at is not None
    assert events[-4:] == [
        "credential.disabled",
        "credential.enabled",
        "credential.revoked",
        "user.disabled",
    ]
