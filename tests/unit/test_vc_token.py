"""signet.vc without the C half: mechanism mapping, the credential objects and the Cryptoki
state machine's CKR answers, against a fake CSC client that signs with a local key."""

from __future__ import annotations

import base64
import hashlib

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from signet.client.csc import CscError
from signet.vc import ck, token
from signet.vc.config import Account
from signet.vc.mechanisms import (
    MECHANISMS,
    MechanismError,
    check_pss_params,
    ecdsa_raw,
    parse_digest_info,
)
from tests.helpers import self_signed_certificate

SHA256_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def test_digest_info() -> None:
    digest = hashlib.sha256(b"x").digest()
    assert parse_digest_info(SHA256_INFO + digest) == ("sha256", digest)
    sha1_info = bytes.fromhex("3021300906052b0e03021a05000414") + hashlib.sha1(b"x").digest()
    for bad in (digest, sha1_info, SHA256_INFO + digest[:-1]):
        with pytest.raises(MechanismError) as caught:
            parse_digest_info(bad)
        assert caught.value.rv == ck.CKR_DATA_INVALID


def test_pss_params() -> None:
    pss = MECHANISMS[ck.CKM_SHA384_RSA_PKCS_PSS]
    assert check_pss_params(pss, (ck.CKM_SHA384, ck.CKG_MGF1_SHA384, 48)) == "sha384"
    for params in (
        None,
        (ck.CKM_SHA256, ck.CKG_MGF1_SHA256, 32),  # not the mechanism's hash
        (ck.CKM_SHA384, ck.CKG_MGF1_SHA256, 48),  # another MGF hash
        (ck.CKM_SHA384, ck.CKG_MGF1_SHA384, 20),  # another salt length
    ):
        with pytest.raises(MechanismError) as caught:
            check_pss_params(pss, params)
        assert caught.value.rv == ck.CKR_MECHANISM_PARAM_INVALID


def test_ecdsa_raw() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.sign(b"m", ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert ecdsa_raw(der, 32) == raw
    assert ecdsa_raw(raw, 32) == raw


class FakeClient:
    """Signs with a local EC key; PIN "1234" is the second factor, "pw" the password."""

    key = ec.generate_private_key(ec.SECP256R1())
    calls: list[str] = []

    def __init__(self, url: str, **_: object) -> None:
        self.url = url

    def login(self, user: str, password: str) -> str:
        if password != "pw":
            raise CscError(401, "invalid_request", "wrong password")
        return "token"

    def list_credentials(self, *, with_info: bool = False) -> dict:
        cert, _ = self_signed_certificate("alice")
        cert = cert.public_bytes(serialization.Encoding.DER)
        spki = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # the fake's own key in the certificate alice's credential shows
        parsed = asn1_x509.Certificate.load(cert)
        tbs = parsed["tbs_certificate"]
        tbs["subject_public_key_info"] = asn1_x509.PublicKeyInfo.load(spki)
        parsed = asn1_x509.Certificate(
            {"tbs_certificate": tbs, "signature_algorithm": parsed["signature_algorithm"],
             "signature_value": parsed["signature_value"]}
        )  # fmt: skip
        return {
            "credentialInfos": [
                {
                    "credentialID": "c1",
                    "description": "alice ec",
                    "key": {"status": "enabled"},
                    "cert": {"certificates": [base64.b64encode(parsed.dump()).decode()]},
                    "auth": {"mode": "explicit", "objects": [{"type": "Password", "id": "PIN"}]},
                }
            ]
        }

    def revoke(self) -> None:
        self.calls.append("revoke")

    def authorize(self, credential_id, hashes_, hash_name, *, factor="", value="", **_) -> str:
        if (factor, value) != ("PIN", "1234"):
            raise CscError(400, "invalid_pin", "wrong PIN")
        return "sad"

    def sign_hash(self, credential_id, sad, hashes_, hash_name, sign_algo, params=None):
        return [self.key.sign(hashes_[0], ec.ECDSA(utils.Prehashed(hashes.SHA256())))]


@pytest.fixture
def card(monkeypatch: pytest.MonkeyPatch, tmp_path) -> token.Cryptoki:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(token, "CscClient", FakeClient)
    return token.Cryptoki([Account("http://signet.test", "alice")])


def _fails(rv: int, call, *args) -> None:
    with pytest.raises(token.Failure) as caught:
        call(*args)
    assert caught.value.rv == rv, hex(caught.value.rv)


def test_sessions_and_login(card: token.Cryptoki) -> None:
    _fails(ck.CKR_SLOT_ID_INVALID, card.open_session, 1, ck.CKF_SERIAL_SESSION)
    _fails(ck.CKR_SESSION_PARALLEL_NOT_SUPPORTED, card.open_session, 0, 0)
    session = card.open_session(0, ck.CKF_SERIAL_SESSION)
    assert card.session_info(session)[1] == ck.CKS_RO_PUBLIC_SESSION
    _fails(ck.CKR_PIN_INCORRECT, card.login, session, ck.CKU_USER, "nope")
    _fails(ck.CKR_USER_TYPE_INVALID, card.login, session, ck.CKU_SO, "pw")
    card.login(session, ck.CKU_USER, "pw")
    _fails(ck.CKR_USER_ALREADY_LOGGED_IN, card.login, session, ck.CKU_USER, "pw")
    assert card.session_info(session)[1] == ck.CKS_RO_USER_FUNCTIONS
    card.find_init(session, [(ck.CKA_CLASS, ck_ulong(ck.CKO_PRIVATE_KEY))])
    (key,) = card.find(session, 10)
    card.find_final(session)
    attributes = card.attributes(session, key)
    assert attributes[ck.CKA_ALWAYS_AUTHENTICATE] == b"\x01"
    assert ck.CKA_VALUE not in attributes  # the key is remote
    card.close_session(session)  # the last session: the login ends
    assert "revoke" in FakeClient.calls


def ck_ulong(value: int) -> bytes:
    from signet.vc.objects import ck_ulong as encode

    return encode(value)


def test_sign_needs_the_context_login(card: token.Cryptoki) -> None:
    session = card.open_session(0, ck.CKF_SERIAL_SESSION)
    _fails(ck.CKR_USER_NOT_LOGGED_IN, card.sign_init, session, ck.CKM_ECDSA, None, 0)
    card.login(session, ck.CKU_USER, "pw")
    card.find_init(session, [(ck.CKA_CLASS, ck_ulong(ck.CKO_PRIVATE_KEY))])
    (key,) = card.find(session, 1)
    card.find_final(session)
    _fails(ck.CKR_KEY_TYPE_INCONSISTENT, card.sign_init, session, ck.CKM_RSA_PKCS, None, key)
    _fails(ck.CKR_KEY_FUNCTION_NOT_PERMITTED, card.sign_init, session, ck.CKM_ECDSA, None, key - 2)
    _fails(ck.CKR_MECHANISM_INVALID, card.sign_init, session, 0x9999, None, key)
    digest = hashlib.sha256(b"message").digest()
    card.sign_init(session, ck.CKM_ECDSA, None, key)
    _fails(ck.CKR_OPERATION_ACTIVE, card.sign_init, session, ck.CKM_ECDSA, None, key)
    _fails(ck.CKR_USER_NOT_LOGGED_IN, card.sign, session, digest)  # no context login: ended
    _fails(ck.CKR_OPERATION_NOT_INITIALIZED, card.sign, session, digest)
    card.sign_init(session, ck.CKM_ECDSA, None, key)
    card.login(session, ck.CKU_CONTEXT_SPECIFIC, "9999")
    _fails(ck.CKR_PIN_INCORRECT, card.sign, session, digest)
    card.sign_init(session, ck.CKM_ECDSA_SHA256, None, key)
    card.login(session, ck.CKU_CONTEXT_SPECIFIC, "1234")
    assert card.sign_length(session) == 64
    card.sign_update(session, b"mess")
    card.sign_update(session, b"age")
    raw = card.sign(session, None)
    signature = utils.encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    FakeClient.key.public_key().verify(signature, b"message", ec.ECDSA(hashes.SHA256()))


def test_configure_keeps_the_other_accounts(tmp_path, monkeypatch, capsys) -> None:
    from signet.vc.__main__ import main
    from signet.vc.config import load_accounts

    path = tmp_path / "signet-vc" / "config.toml"
    monkeypatch.setenv("SIGNET_VC_CONFIG", str(path))
    assert main(["configure", "--server", "https://a.test", "--user", "alice"]) == 0
    assert main(["configure", "--server", "https://b.test", "--user", 'bo"b', "--agent"]) == 0
    assert main(["configure", "--server", "https://a.test", "--user", "alice"]) == 0
    accounts = load_accounts(path)
    assert [(a.server, a.user, a.agent) for a in accounts] == [
        ("https://b.test", 'bo"b', True),
        ("https://a.test", "alice", False),
    ]
    assert main(["configure", "--server", "ftp://x", "--user", "alice"]) == 1
    assert "not an http(s) URL" in capsys.readouterr().err
