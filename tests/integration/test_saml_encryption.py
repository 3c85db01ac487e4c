"""Encrypted SAML assertions (EncryptedAssertion): decrypted with the SP's encryption key,
whose certificate and admitted ciphers Signet's metadata publishes; a cipher or key transport
not admitted (CBC by default, 3DES, RSA PKCS#1 v1.5), a ciphertext spoiled or encrypted to
another key, a SHA-1 signature hidden inside the ciphertext, and a plain assertion where
encrypted ones are wanted are each refused and audited. Against pysaml2's IdP (each cipher
chosen per test) and SimpleSAMLphp (AES-128-CBC, admitted for it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration import test_saml as saml_suite
from tests.integration.test_saml import Flow, events, refused, ssp_form
from tests.saml_peers import (
    AES128_CBC,
    AES256_GCM,
    RSA_1_5,
    TRIPLEDES_CBC,
    key_and_cert,
)

GCM128 = "http://www.w3.org/2009/xmlenc11#aes128-gcm"

# the SAML suite's fixtures: its IdPs, Signet's settings naming them, the running app
provider_extra = saml_suite.provider_extra
pysaml, ssp, sp_keys = saml_suite.pysaml, saml_suite.ssp, saml_suite.sp_keys
settings_env = saml_suite.settings_env
world, ssp_world = saml_suite.world, saml_suite.ssp_world


def test_gcm_encrypted_assertion_logs_in_and_metadata_offers_the_key(world):
    exported = Flow(world).browser.session.get(f"{world['url']}/saml/pysaml/metadata", timeout=30)
    encryption = re.search(r'use="encryption">(.*?)</\w+:KeyDescriptor>', exported.text, re.S)
    assert encryption is not None, exported.text
    offered = re.findall(r'EncryptionMethod Algorithm="([^"]+)"', encryption.group(1))
    assert offered[0] == AES256_GCM and AES128_CBC not in offered and RSA_1_5 not in offered
    world["idp"].answer.encrypt = AES256_GCM
    flow = Flow(world)
    form = flow.idp_form()
    assert "EncryptedAssertion" in form.xml and ">alice<" not in form.xml  # nothing in clear
    consent = flow.post(form)
    assert consent.status_code == 200, consent.text
    assert flow.token()["scope"] == "service"
    ((outcome, details),) = events(world["services"], "federation.login")
    assert outcome == "success" and details["provider"] == "pysaml"


def _refused_with(world, check: str, **answer) -> None:
    for name, value in answer.items():
        setattr(world["idp"].answer, name, value)
    flow = Flow(world)
    refused(flow.post(flow.idp_form()), check)


def test_ciphers_key_transports_and_spoiled_ciphertexts_are_refused(world, tmp_path):
    _refused_with(world, "aes128-cbc", encrypt=AES128_CBC)  # CBC not admitted by default
    _refused_with(world, "tripledes-cbc", encrypt=TRIPLEDES_CBC)
    _refused_with(world, "rsa-1_5", encrypt=AES256_GCM, key_transport=RSA_1_5)
    world["idp"].answer.key_transport = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
    _, other = key_and_cert(tmp_path, "not-signet")
    _refused_with(world, "cannot be decrypted", encrypt=AES256_GCM, encrypt_to=other)
    world["idp"].answer.encrypt_to = None
    # one byte of the assertion's ciphertext changed: the Response's signature covers it
    flow = Flow(world)
    form = flow.idp_form()
    values = re.findall(r"<xenc:CipherValue>([^<]+)</xenc:CipherValue>", form.xml)
    data = values[-1]  # the EncryptedData's own, after the EncryptedKey's
    middle = len(data) // 2
    flipped = data[:middle] + ("A" if data[middle] != "A" else "B") + data[middle + 1 :]
    refused(flow.post(form.with_xml(form.xml.replace(data, flipped))), "signature")
    outcomes = [o for o, _ in events(world["services"], "federation.login")]
    assert outcomes == ["failure"] * 5


def test_sha1_signature_inside_the_ciphertext_is_refused(world):
    # the Response signed with SHA-256 around it, the assertion inside with SHA-1
    world["idp"].answer.assertion_sign_alg = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
    world["idp"].answer.assertion_digest_alg = "http://www.w3.org/2000/09/xmldsig#sha1"
    world["idp"].answer.encrypt = AES256_GCM
    flow = Flow(world)
    form = flow.idp_form()
    assert "rsa-sha1" not in form.xml  # hidden from the check made before decryption
    refused(flow.post(form), "rsa-sha1")


@pytest.mark.parametrize(
    "provider_extra",
    [{"want_assertions_encrypted": True, "assertion_ciphers": [GCM128, AES128_CBC]}],
)
def test_wanted_encryption_refuses_plain_assertions_admits_cbc_when_asked(world):
    _refused_with(world, "not encrypted", encrypt=None)
    world["idp"].answer.encrypt = AES128_CBC
    flow = Flow(world)
    assert flow.post(flow.idp_form()).status_code == 200
    assert flow.token()["scope"] == "service"


@pytest.mark.parametrize("provider_extra", [{"want_response_signed": False}])
def test_spoiled_ciphertext_without_a_response_signature_fails_gcm(world):
    """Only the assertion signed, inside the ciphertext: GCM's tag refuses a changed byte."""
    world["idp"].answer.sign_response = False
    world["idp"].answer.encrypt = AES256_GCM
    flow = Flow(world)
    form = flow.idp_form()
    data = re.findall(r"<xenc:CipherValue>([^<]+)</xenc:CipherValue>", form.xml)[-1]
    middle = len(data) // 2
    flipped = data[:middle] + ("A" if data[middle] != "A" else "B") + data[middle + 1 :]
    refused(flow.post(form.with_xml(form.xml.replace(data, flipped))), "cannot be decrypted")
    flow = Flow(world)  # and unspoiled, the same answer logs in
    assert flow.post(flow.idp_form()).status_code == 200


@pytest.fixture
def own_encryption_key(tmp_path):
    key, cert = key_and_cert(tmp_path, "signet-sp-encryption")
    return {"sp_encryption_key_file": key, "sp_encryption_cert_file": cert}


def test_a_separate_encryption_key(settings_env, own_encryption_key):
    """sp_encryption_key_file/sp_encryption_cert_file: the metadata publishes that
    certificate for encryption, not the signing one; half a pair or 3DES is a settings error."""
    from signet.auth import saml
    from signet.config.identity import SamlProviderSettings

    (pysaml_settings,) = json.loads(settings_env["SIGNET_IDENTITY__PROVIDERS"]).values()
    settings = SamlProviderSettings(**{**pysaml_settings, **own_encryption_key})
    xml = saml.metadata(settings, "pysaml", "https://signet.example", sign=False)
    signing = re.search(r'use="signing">.*?X509Certificate>([^<]+)<', xml, re.S).group(1)
    encryption = re.search(r'use="encryption">.*?X509Certificate>([^<]+)<', xml, re.S).group(1)
    pem = Path(own_encryption_key["sp_encryption_cert_file"]).read_text()
    own = "".join(pem.splitlines()[1:-1])
    assert encryption == own and signing != own
    with pytest.raises(ValueError, match="both"):
        SamlProviderSettings(**{**pysaml_settings, "sp_encryption_key_file": "/k"})
    with pytest.raises(ValueError, match="refused cipher"):
        SamlProviderSettings(**{**pysaml_settings, "assertion_ciphers": [TRIPLEDES_CBC]})


@pytest.mark.parametrize("provider_extra", [{"assertion_ciphers": [AES256_GCM, AES128_CBC]}])
def test_simplesamlphp_encrypted_assertion_logs_in(ssp_world):
    w = ssp_world
    w["ssp"].encrypt_assertions()
    flow = Flow(w, "ssp")
    form = ssp_form(flow, "alice", "alice-pw")
    assert "EncryptedAssertion" in form.xml and "alice@example.test" not in form.xml
    assert flow.post(form).status_code == 200, w["ssp"].logged()
    assert flow.token()["scope"] == "service"
    ((outcome, details),) = events(w["services"], "federation.login")
    assert outcome == "success" and details["provider"] == "ssp"
