"""The IdP's metadata under a metadata signer's certificate (`idp_metadata_signer_cert`): a
login through pysaml2's IdP whose metadata a "federation" key signed; and the metadata refused
— unsigned, signed by another key, changed after signing, signed with SHA-1, expired, its
signature on a nested element only, not XML, not metadata, missing — each with a message that
names the problem, as the login page's 503 or `signet.auth.saml_metadata.verified`'s error.
The https source is read from a TLS server on loopback."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from lxml import etree
from signxml import XMLSigner

from signet.auth import saml
from signet.auth.saml_metadata import MetadataRefused, verified
from signet.config.identity import SamlProviderSettings
from tests.helpers import self_signed_tls
from tests.integration import test_saml as saml_suite
from tests.integration.oauth2_browser import _Forms
from tests.integration.test_saml import Flow
from tests.saml_peers import key_and_cert

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"

pysaml, sp_keys, settings_env = saml_suite.pysaml, saml_suite.sp_keys, saml_suite.settings_env
world = saml_suite.world


class _AnySigner(XMLSigner):
    """signxml's signer, allowed SHA-1 so that a test can show it refused."""

    def check_deprecated_methods(self) -> None:
        pass


def sign(xml: bytes, key: str, cert: str, algorithm: str = "rsa-sha256") -> bytes:
    root = etree.fromstring(xml)
    root.set("ID", "_metadata")
    # where SAML metadata carries its signature: the root's first child (signxml's placeholder)
    placeholder = etree.Element(f"{{{DS}}}Signature", Id="placeholder")
    root.insert(0, placeholder)
    digest = "sha1" if algorithm.endswith("sha1") else "sha256"
    signed = _AnySigner(signature_algorithm=algorithm, digest_algorithm=digest).sign(
        root, key=Path(key).read_bytes(), cert=Path(cert).read_text(), reference_uri="#_metadata"
    )
    assert signed[0].tag == f"{{{DS}}}Signature"
    return etree.tostring(signed)


@pytest.fixture
def federation(tmp_path):
    return key_and_cert(tmp_path, "federation")


@pytest.fixture
def provider_extra(pysaml, federation):
    """pysaml2's metadata signed in place by the federation's key, which Signet is told of."""
    pysaml.metadata_file.write_bytes(sign(pysaml.metadata_file.read_bytes(), *federation))
    return {"idp_metadata_signer_cert": federation[1]}


def press_saml_button(w) -> requests.Response:
    """A new person's login page, its SAML button pressed: the answer, whatever it is."""
    flow = Flow(w)
    address, _ = flow.client.create_authorization_url(
        f"{w['url']}/oauth2/authorize", code_verifier=flow.verifier
    )
    page = flow.browser.open(address)
    parser = _Forms()
    parser.feed(page.text)
    (button,) = [f for f in parser.forms if f["action"] == "/login/saml/pysaml"]
    return flow.browser.session.post(
        urljoin(w["url"], button["action"]),
        data=button["fields"],
        allow_redirects=False,
        timeout=30,
    )


def test_login_with_signed_metadata_and_a_changed_copy_refused(world, pysaml):
    flow = Flow(world)
    assert flow.post(flow.idp_form()).status_code == 200
    assert flow.token()["scope"] == "service"
    # the file changed under the same signature (another SSO address), read again as after
    # the hourly reload: no login starts
    text = pysaml.metadata_file.read_text()
    pysaml.metadata_file.write_text(text.replace("/sso", "/elsewhere"))
    saml._CLIENTS.clear()
    answer = press_saml_button(world)
    assert answer.status_code >= 400, answer.text[:2000]
    assert "signature does not verify" in answer.text and "/elsewhere" not in answer.text


def write(tmp_path: Path, name: str, body: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return str(path)


def settings(source: str, signer: str | None) -> SamlProviderSettings:
    return SamlProviderSettings(
        kind="saml",
        label="x",
        idp_metadata=source,
        idp_metadata_signer_cert=signer,
        sp_key_file="/unused",
        sp_cert_file="/unused",
    )


def refusal(source: str, signer: str | None) -> str:
    with pytest.raises(MetadataRefused) as caught:
        verified(settings(source, signer))
    return caught.value.description


ENTITY = (
    f'<md:EntityDescriptor xmlns:md="{MD}" entityID="https://idp.example/"{{until}}>'
    "<md:IDPSSODescriptor protocolSupportEnumeration="
    '"urn:oasis:names:tc:SAML:2.0:protocol"><md:SingleSignOnService Binding='
    '"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/sso"/>'
    "</md:IDPSSODescriptor></md:EntityDescriptor>"
)


def test_metadata_refusals_name_the_problem(tmp_path, federation):
    plain = ENTITY.format(until="").encode()
    key, cert = federation
    good = write(tmp_path, "good.xml", sign(plain, key, cert))
    got = verified(settings(good, cert))
    assert "https://idp.example/sso" in got and "Signature" not in got
    assert verified(settings(write(tmp_path, "plain.xml", plain), None)) == plain.decode()
    latin = plain.replace(b"idp.example/sso", "idp.example/s\xf8".encode("latin-1"))
    declared = b'<?xml version="1.0" encoding="ISO-8859-1"?>' + latin
    assert "idp.example/s\xf8" in verified(settings(write(tmp_path, "l1.xml", declared), None))
    assert "does not verify" in refusal(write(tmp_path, "unsigned.xml", plain), cert)
    other_key, other_cert = key_and_cert(tmp_path, "other")
    by_other = write(tmp_path, "other.xml", sign(plain, other_key, other_cert))
    assert "does not verify" in refusal(by_other, cert)
    changed = Path(good).read_text().replace("idp.example/sso", "evil.example/sso")
    assert "does not verify" in refusal(write(tmp_path, "changed.xml", changed), cert)
    sha1 = write(tmp_path, "sha1.xml", sign(plain, key, cert, "rsa-sha1"))
    assert "does not verify" in refusal(sha1, cert)
    past = ENTITY.format(until=' validUntil="2020-01-01T00:00:00Z"').encode()
    assert "expired" in refusal(write(tmp_path, "past.xml", sign(past, key, cert)), cert)
    assert "expired" in refusal(write(tmp_path, "past-plain.xml", past), None)
    # a signed entity wrapped in an unsigned aggregate: no signature on the document itself
    wrapped = (
        f'<md:EntitiesDescriptor xmlns:md="{MD}">'
        + Path(good).read_text()
        + ENTITY.format(until="").replace("idp.example", "evil.example")
        + "</md:EntitiesDescriptor>"
    )
    assert "does not verify" in refusal(write(tmp_path, "wrapped.xml", wrapped), cert)
    assert "not XML" in refusal(write(tmp_path, "junk.xml", "<md:Entity"), None)
    assert "not SAML metadata" in refusal(write(tmp_path, "html.xml", "<html/>"), None)
    assert "cannot read" in refusal(str(tmp_path / "missing.xml"), None)
    assert "idp_metadata_signer_cert" in refusal(good, str(tmp_path / "no-cert.pem"))


def test_metadata_over_https(tmp_path, federation, monkeypatch):
    from werkzeug.serving import make_server

    key, cert = federation
    tls_cert, tls_key = (str(p) for p in self_signed_tls(tmp_path))
    body = sign(ENTITY.format(until="").encode(), key, cert)

    def app(environ, start_response):
        if environ["PATH_INFO"] != "/md.xml":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no"]
        start_response("200 OK", [("Content-Type", "application/samlmetadata+xml")])
        return [body]

    server = make_server("127.0.0.1", 0, app, ssl_context=(tls_cert, tls_key))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://localhost:{server.server_port}"
        assert "cannot fetch" in refusal(f"{url}/md.xml", cert)  # its certificate not trusted
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_cert)
        assert "https://idp.example/sso" in verified(settings(f"{url}/md.xml", cert))
        assert "404" in refusal(f"{url}/missing.xml", cert)
    finally:
        server.shutdown()
        server.server_close()
