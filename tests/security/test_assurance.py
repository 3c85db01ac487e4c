"""Assurance policies: the level each set of methods reaches (and docs/assurance.md's table
against the code), a policy sealed into its credential, refused before any factor is tried
when the authorization cannot meet it (audited, the step-up named), and met by SMS one-time
codes where e-mail ones fall short, on a real token and database, through the HTTP API."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.hashes import SHA256
from sqlalchemy import func, select, update

from signet.auth import assurance
from signet.auth.tokens import Principal
from signet.errors import InvalidRequest
from signet.sam import keys
from signet.sam.seals import SEALED_FIELDS, credential_intact
from signet.signing import admin
from signet.signing.activation import activate
from signet.store import AuditRecord, Credential, OtpChallenge, User
from tests.helpers import enrol
from tests.integration.csc_http import PASSWORD, Csc, error_of
from tests.sms_peers import http_gateway

DOC = Path(__file__).resolve().parents[2] / "docs" / "assurance.md"


@pytest.mark.parametrize(
    ("methods", "factors", "eidas", "aal", "iso"),
    [
        (("pwd",), 1, "low", 1, 2),
        (("pwd", "pin"), 1, "low", 1, 2),  # two things she knows: one kind of factor
        (("pwd", "email_otp"), 2, "low", 1, 2),  # e-mail: no 800-63B authenticator
        (("pwd", "sms_otp"), 2, "substantial", 2, 3),
        (("pwd", "pin", "sms_otp"), 2, "substantial", 2, 3),
        (("pwd", "mobile_id"), 2, "substantial", 2, 3),  # a device key: possession
        (("mobile_id", "sms_otp"), 1, "low", 1, 2),  # two possessions: one kind
        (("passkey_login",), 1, "low", 1, 2),  # UV unattested: possession only
        (("passkey_login", "pin"), 2, "substantial", 2, 3),
        (("passkey_login", "passkey"), 1, "low", 1, 2),  # the same kind twice
    ],
)
def test_levels_reached(methods, factors, eidas, aal, iso):
    level = assurance.reached(methods)
    assert (level.factors, level.eidas, level.aal, level.iso) == (factors, eidas, aal, iso)


def test_the_documented_table_is_the_code():
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) > 5 and cells[0] in assurance.METHODS:
            rows[cells[0]] = cells
    assert set(rows) == set(assurance.METHODS)
    for name, method in assurance.METHODS.items():
        _, _label, kinds, eidas, aal, *_ = rows[name]
        assert kinds == " + ".join(method.kinds), name
        assert eidas == method.eidas_cap, name
        assert aal == (f"AAL{method.aal_cap}" if method.aal_cap else "none"), name


def test_a_policy_no_factor_can_meet_is_refused_at_enrolment(services):
    admin.add_user(
        services, "alice", password=PASSWORD, display_name="Alice",
        email="alice@example.test", actor="test",
    )  # fmt: skip
    with pytest.raises(InvalidRequest) as pin:
        admin.create_credential(services, "alice", key="ec-p256", activation="pin", actor="t")
    assert "policy 'advanced' needs 2 factor kinds" in str(pin.value)
    assert "a credential activated by mobile_id or otp or passkey or sms_otp" in str(pin.value)
    with pytest.raises(InvalidRequest) as otp:
        admin.create_credential(services, "alice", key="ec-p256", policy="qualified", actor="t")
    assert "eIDAS substantial (has low)" in str(otp.value)
    assert "activated by mobile_id or passkey or sms_otp" in str(otp.value)
    with pytest.raises(InvalidRequest, match="unknown policy 'gold'"):
        admin.create_credential(services, "alice", key="ec-p256", policy="gold", actor="t")
    assert admin.list_credentials(services) == []


def _events(services, name):
    with services.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(AuditRecord.details).where(AuditRecord.event == name).order_by(AuditRecord.seq)
        ).scalars()
        return [json.loads(r) for r in rows]


def test_a_tightened_policy_is_refused_before_the_code_is_tried(
    settings_env, monkeypatch, tmp_path
):
    from signet.config import load_settings
    from signet.signing import Services
    from signet.signing.admin import initialise
    from signet.web import create_app

    monkeypatch.setenv("SIGNET_ASSURANCE__POLICIES", '{"house": {"factors": 2}}')
    services = Services(load_settings())
    initialise(services)
    admin.add_user(
        services, "alice", password=PASSWORD, display_name="Alice",
        email="alice@example.test", actor="test",
    )  # fmt: skip
    credential = enrol(services, "alice", key="ec-p256", policy="house").credential_id
    csc = Csc(create_app(services.settings).test_client(), services)
    csc.login()
    (login,) = _events(services, "login")
    assert (login["auth_methods"], login["loa"]) == (["pwd"], "low")
    info = csc.post("credentials/info", {"credentialID": credential, "authInfo": True})
    assert info.json["auth"]["policy"] == {
        "name": "house", "eidas": "low", "aal": 1, "factors": 2, "description": "",
    }  # fmt: skip
    digest = [hashlib.sha256(b"before").digest()]
    code = csc.otp(credential)
    granted = csc.authorize(credential, digest, num=2, otp=code)
    assert granted.status_code == 200, granted.json
    sad = granted.json["SAD"]  # two signatures: one is left for an extension
    services.database.dispose()

    # The operator raises the house policy to eIDAS substantial: e-mail codes fall short.
    monkeypatch.setenv(
        "SIGNET_ASSURANCE__POLICIES", '{"house": {"factors": 2, "eidas": "substantial"}}'
    )
    services = Services(load_settings())
    csc = Csc(create_app(services.settings).test_client(), services)
    csc.login()
    sent = csc.post("credentials/sendOTP", {"credentialID": credential})
    assert "eIDAS substantial (has low)" in error_of(sent, 403, "access_denied")  # no code sent
    refused = csc.authorize(credential, [hashlib.sha256(b"after").digest()], otp="000000")
    message = error_of(refused, 403, "access_denied")
    assert "policy 'house', which needs eIDAS substantial (has low)" in message
    assert "password + e-mail one-time code" in message
    assert "a credential activated by sms_otp or mobile_id or passkey would do" in message
    # The SAD granted before cannot be extended past the raised policy either.
    extension = csc.post(
        "credentials/extendTransaction",
        {
            "credentialID": credential,
            "SAD": sad,
            "hashes": [base64.b64encode(hashlib.sha256(b"after").digest()).decode()],
            "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
        },
    )
    assert "needs eIDAS substantial (has low)" in error_of(extension, 403, "access_denied")
    events = _events(services, "credential.authorize_refused")
    assert len(events) == 3  # the sendOTP, the authorize and the extension
    assert {e["policy"] for e in events} == {"house"} and {e["eidas"] for e in events} == {"low"}
    assert events[1]["auth_methods"] == ["pwd", "email_otp"]
    with services.database.transaction(read_only=True) as session:
        codes = session.execute(
            select(func.count()).where(
                OtpChallenge.credential_id == credential, OtpChallenge.purpose == "authorize"
            )
        ).scalar_one()
        assert codes == 1  # only the code of the authorization before
        assert session.get(Credential, credential).failed_attempts == 0  # no try counted

    # Policy gone from the settings: refused, never treated as no policy.
    monkeypatch.setenv("SIGNET_ASSURANCE__POLICIES", "{}")
    services = Services(load_settings())
    csc = Csc(create_app(services.settings).test_client(), services)
    csc.login()
    gone = csc.authorize(credential, digest, otp="000000")
    assert "which [assurance.policies] no longer defines" in error_of(gone, 403, "access_denied")
    services.database.dispose()


def test_the_policy_is_sealed(services):
    admin.add_user(
        services, "alice", password=PASSWORD, display_name="Alice",
        email="alice@example.test", actor="test",
    )  # fmt: skip
    view = admin.create_credential(services, "alice", key="ec-p256", actor="t")
    assert view.policy == "advanced"
    with services.database.transaction() as session:
        row = session.get(Credential, view.credential_id)
        assert credential_intact(services.hsm, row)
        row.policy = "basic"  # a DBA's downgrade
        assert not credential_intact(services.hsm, row)
        # A record sealed before policies were (migration 0006 gave it "basic") still holds,
        # and only for "basic".
        parts = [getattr(row, name) for name in SEALED_FIELDS[:-1]]
        row.seal = keys.mac(services.hsm, keys.SEAL_KEY, "credential", *parts).hex()
        assert credential_intact(services.hsm, row)
        row.policy = "advanced"
        assert not credential_intact(services.hsm, row)
        session.rollback()


def test_sms_codes_meet_the_qualified_policy(settings_env, monkeypatch, tmp_path):
    from signet.config import load_settings
    from signet.signing import Services
    from signet.signing.admin import initialise
    from signet.web import create_app

    with http_gateway() as gateway:
        for key, value in {
            "TYPE": "http", "URL": gateway.url, "SUCCESS_FIELD": "status",
            "SUCCESS_PATTERN": "queued", "MESSAGE_ID_FIELD": "id",
        }.items():  # fmt: skip
            monkeypatch.setenv(f"SIGNET_NOTIFY__SMS__{key}", value)
        services = Services(load_settings())
        initialise(services)
        admin.add_user(
            services, "alice", password=PASSWORD, display_name="Alice", email=None,
            phone="+32470123456", actor="test",
        )  # fmt: skip
        view = admin.create_credential(
            services, "alice", key="ec-p256", activation="sms_otp", policy="qualified", actor="t"
        )

        def texted() -> str:
            return json.loads(gateway.requests[-1]["body"])["text"]

        activation_code = re.search(r"\b([0-9A-Z]{5}-[0-9A-Z]{5})\b", texted()).group(1)
        with services.database.transaction(read_only=True) as session:
            user_id = session.execute(select(User.id)).scalar_one()
        owner = Principal(user_id=user_id, username="alice", auth_methods="pwd", loa="low")
        activate(services, owner, view.credential_id, activation_code, None)
        csc = Csc(create_app(services.settings).test_client(), services)
        csc.login()
        assert (
            csc.post("credentials/sendOTP", {"credentialID": view.credential_id}).status_code == 204
        )
        code = re.search(r"\b(\d{6,8})\b", texted()).group(1)
        digest = [hashlib.sha256(b"qualified").digest()]
        authorized = csc.authorize(view.credential_id, digest, otp=code)
        assert authorized.status_code == 200, authorized.json
        signed = csc.sign(view.credential_id, authorized.json["SAD"], digest, "1.2.840.10045.4.3.2")
        assert signed.status_code == 200, signed.json
        info = csc.post("credentials/info", {"credentialID": view.credential_id})
        public_key = x509.load_der_x509_certificate(
            base64.b64decode(info.json["cert"]["certificates"][0])
        ).public_key()
        public_key.verify(
            base64.b64decode(signed.json["signatures"][0]), digest[0],
            ec.ECDSA(utils.Prehashed(SHA256())),
        )  # fmt: skip
        (event,) = _events(services, "credential.authorized")
        assert event["auth_methods"] == ["pwd", "sms_otp"]
        assert (event["eidas"], event["aal"], event["iso29115"]) == ("substantial", 2, 3)
        with services.database.transaction() as session:
            session.execute(
                update(Credential).where(Credential.id == view.credential_id).values(policy="basic")
            )
        assert csc.authorize(view.credential_id, digest, otp="123456").status_code == 403
        services.database.dispose()
