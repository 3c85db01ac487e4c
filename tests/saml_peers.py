"""SAML 2.0 identity providers for the tests, on loopback: pysaml2's own IdP (a small WSGI app
in a thread, signing Response and Assertion, the AuthnContextClassRef and every field a test
wants to spoil chosen per test), and Debian's SimpleSAMLphp served by `php -S` with its
exampleauth static users. Key pairs and self-signed certificates are made here."""

from __future__ import annotations

import base64
import datetime
import html
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.helpers import port_in as free_port

PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
SMARTCARD = "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI"
MFA = "https://refeds.org/profile/mfa"
SIG_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
AES128_CBC = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
TRIPLEDES_CBC = "http://www.w3.org/2001/04/xmlenc#tripledes-cbc"
RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
RSA_1_5 = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"
_SESSION_KEYS = {AES256_GCM: "aes-256", AES128_CBC: "aes-128", TRIPLEDES_CBC: "des-192"}
_ENCRYPTED = """<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"
 Type="http://www.w3.org/2001/04/xmlenc#Element">
<xenc:EncryptionMethod Algorithm="{cipher}"/>
<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey>
<xenc:EncryptionMethod Algorithm="{transport}">{oaep_digest}</xenc:EncryptionMethod>
<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>
<xenc:CipherData><xenc:CipherValue/></xenc:CipherData>
</xenc:EncryptedData>"""


def key_and_cert(directory: Path, name: str) -> tuple[str, str]:
    """An RSA key and a self-signed certificate for `name`, as PEM files in `directory`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = directory / f"{name}.key", directory / f"{name}.crt"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_file), str(cert_file)


def _pem_body(cert_file: str) -> str:
    text = Path(cert_file).read_text()
    return "".join(line for line in text.splitlines() if "CERTIFICATE" not in line)


@dataclass
class Posted:
    """What an IdP's page asks the browser to post: where, and the form's fields."""

    action: str
    fields: dict[str, str]

    @property
    def xml(self) -> str:
        return base64.b64decode(self.fields["SAMLResponse"]).decode()

    def with_xml(self, xml: str) -> Posted:
        fields = dict(self.fields, SAMLResponse=base64.b64encode(xml.encode()).decode())
        return Posted(self.action, fields)


def posted_form(page: str) -> Posted:
    """The auto-submitting form of an IdP's answer page (a browser would post it)."""
    action = re.search(r'<form[^>]*action="([^"]+)"', page, re.I)
    assert action, page[:2000]
    fields = {
        html.unescape(n): html.unescape(v)
        for n, v in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page, re.I)
    }
    assert "SAMLResponse" in fields, page[:2000]
    return Posted(html.unescape(action.group(1)), fields)


@dataclass
class Answer:
    """How pysaml2's IdP answers the next AuthnRequest (tests change it)."""

    user: str = "alice"
    context: str | None = PPT
    attributes: dict[str, list[str]] = field(default_factory=dict)
    sign_response: bool = True
    sign_assertion: bool = True
    audience: str | None = None  # None: the requesting SP
    lifetime: int | None = None  # seconds the assertion is valid; negative: expired
    in_response_to: str | None = None  # None: the request's ID
    sign_alg: str = SIG_RSA_SHA256
    digest_alg: str = "http://www.w3.org/2001/04/xmlenc#sha256"
    assertion_sign_alg: str | None = None  # None: sign_alg
    assertion_digest_alg: str | None = None  # None: digest_alg
    encrypt: str | None = None  # the block cipher to encrypt the assertion with; None: plain
    key_transport: str = RSA_OAEP_MGF1P
    encrypt_to: str | None = None  # a certificate file; None: the SP's encryption certificate


class PysamlIdp:
    """pysaml2's Server as an IdP at http://127.0.0.1:<port>: /sso takes a signed
    HTTP-Redirect AuthnRequest (the signature is checked here with `cryptography`) and answers
    with an HTTP-POST form carrying the Response `answer` describes."""

    def __init__(self, directory: Path, ports: range):
        from saml2.config import IdPConfig
        from saml2.metadata import entity_descriptor, metadata_tostring_fix

        self.dir = directory
        self.port = free_port(ports)
        self.url = f"http://127.0.0.1:{self.port}"
        self.entity_id = f"{self.url}/metadata"
        self.key_file, self.cert_file = key_and_cert(directory, "pysaml-idp")
        self.metadata_file = directory / "pysaml-idp-metadata.xml"
        self.answer = Answer()
        self.requests: list[Any] = []  # the AuthnRequests received, parsed
        self.sp_cert: x509.Certificate | None = None
        config = IdPConfig()
        config.load(self._config(None))
        desc = entity_descriptor(config)
        self.metadata_file.write_bytes(metadata_tostring_fix(desc, {}))
        self.server: Any = None
        self._http: Any = None

    def _config(self, sp_metadata: str | None) -> dict[str, Any]:
        from saml2 import BINDING_HTTP_REDIRECT
        from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

        return {
            "entityid": self.entity_id,
            "key_file": self.key_file,
            "cert_file": self.cert_file,
            "xmlsec_binary": shutil.which("xmlsec1"),
            "metadata": {"local": [sp_metadata]} if sp_metadata else {},
            "service": {
                "idp": {
                    "endpoints": {
                        "single_sign_on_service": [(f"{self.url}/sso", BINDING_HTTP_REDIRECT)]
                    },
                    "want_authn_requests_signed": True,
                    "policy": {"default": {"lifetime": {"minutes": 5}}},
                }
            },
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
        }

    def trust(self, sp_metadata_xml: str) -> None:
        """Load the SP's metadata (exported by Signet) and start serving."""
        from saml2.config import IdPConfig
        from saml2.server import Server
        from werkzeug.serving import make_server

        path = self.dir / "sp-metadata-for-pysaml.xml"
        path.write_text(sp_metadata_xml)
        config = IdPConfig()
        config.load(self._config(str(path)))
        self.server = Server(config=config)
        der = base64.b64decode(re.search(r"X509Certificate>([^<]+)<", sp_metadata_xml).group(1))
        self.sp_cert = x509.load_der_x509_certificate(der)
        encryption = re.search(
            r'use="encryption">.*?X509Certificate>([^<]+)<', sp_metadata_xml, re.S
        )
        self.sp_encryption_cert = self.dir / "sp-encryption.crt"
        if encryption is not None:
            self.sp_encryption_cert.write_bytes(
                x509.load_der_x509_certificate(base64.b64decode(encryption.group(1))).public_bytes(
                    serialization.Encoding.PEM
                )
            )
        self._http = make_server("127.0.0.1", self.port, self._wsgi, threaded=False)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def _verify_redirect(self, query: str) -> None:
        """SAML bindings 3.4.4.1: the signature covers SAMLRequest, RelayState, SigAlg as sent."""
        raw = dict(part.split("=", 1) for part in query.split("&"))
        assert unquote_plus(raw["SigAlg"]) == SIG_RSA_SHA256, raw.get("SigAlg")
        signed = "&".join(
            f"{k}={raw[k]}" for k in ("SAMLRequest", "RelayState", "SigAlg") if k in raw
        )
        assert self.sp_cert is not None
        self.sp_cert.public_key().verify(  # type: ignore[union-attr, call-arg]
            base64.b64decode(unquote_plus(raw["Signature"])),
            signed.encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            return self._serve(environ, start_response)
        except Exception:
            import traceback

            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [traceback.format_exc().encode()]

    def _serve(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] != "/sso":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        query = environ.get("QUERY_STRING", "")
        try:
            self._verify_redirect(query)
        except Exception as exc:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [f"AuthnRequest signature: {exc!r}".encode()]
        args = {k: v[0] for k, v in parse_qs(query).items()}
        # pysaml2 checks the redirect signature too (want_authn_requests_signed)
        request = self.server.parse_authn_request(
            args["SAMLRequest"],
            relay_state=args.get("RelayState"),
            sigalg=args["SigAlg"],
            signature=args["Signature"],
        ).message
        self.requests.append(request)
        page = self.respond(request, args.get("RelayState", ""))
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [page.encode()]

    def respond(self, request: Any, relay_state: str) -> str:
        from saml2 import class_name, saml
        from saml2.s_utils import factory
        from saml2.sigver import pre_signature_part

        a = self.answer
        acs = request.assertion_consumer_service_url
        identity = {"uid": [a.user], **a.attributes}
        authn = {"class_ref": a.context, "authn_auth": self.entity_id} if a.context else None
        response = self.server.create_authn_response(
            identity=identity,
            in_response_to=a.in_response_to or request.id,
            destination=acs,
            sp_entity_id=request.issuer.text,
            name_id=factory(saml.NameID, format=saml.NAMEID_FORMAT_UNSPECIFIED, text=a.user),
            authn=authn,
            sign_response=False,
            sign_assertion=False,
        )
        assertion = (
            response.assertion[0] if isinstance(response.assertion, list) else response.assertion
        )
        if a.audience is not None:
            assertion.conditions.audience_restriction[0].audience[0].text = a.audience
        if a.lifetime is not None:
            end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + a.lifetime))
            start = time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + min(a.lifetime, 0) - 600)
            )
            assertion.conditions.not_on_or_after = end
            assertion.conditions.not_before = start
            for confirmation in assertion.subject.subject_confirmation:
                confirmation.subject_confirmation_data.not_on_or_after = end
        to_sign = []
        if a.sign_assertion:
            assertion.signature = pre_signature_part(
                assertion.id,
                self.server.sec.my_cert,
                1,
                sign_alg=a.assertion_sign_alg or a.sign_alg,
                digest_alg=a.assertion_digest_alg or a.digest_alg,
            )
            to_sign.append((class_name(assertion), assertion.id))
        if a.sign_response:
            response.signature = pre_signature_part(
                response.id,
                self.server.sec.my_cert,
                2,
                sign_alg=a.sign_alg,
                digest_alg=a.digest_alg,
            )
            to_sign.append((class_name(response), response.id))
        xml = response.to_string().decode()
        for node, ident in to_sign:  # the assertion's first: the Response's covers it as sent
            if a.encrypt is not None and node == class_name(response):
                xml = self._encrypt(xml)
            xml = self.server.sec.sign_statement(xml, node_name=node, node_id=ident)
            if isinstance(xml, bytes):
                xml = xml.decode()
        if a.encrypt is not None and not a.sign_response:
            xml = self._encrypt(xml)
        encoded = base64.b64encode(xml.encode()).decode()
        return (
            f'<html><body><form method="post" action="{html.escape(acs)}">'
            f'<input type="hidden" name="SAMLResponse" value="{encoded}">'
            f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">'
            '<button type="submit">Continue</button></form></body></html>'
        )

    def _encrypt(self, xml: str) -> str:
        """The Response with its Assertion replaced by an EncryptedAssertion (xmlsec1: a
        fresh session key under the answer's cipher, sent by its key transport)."""
        from lxml import etree

        a = self.answer
        assert a.encrypt is not None
        root = etree.fromstring(xml.encode())
        (assertion,) = root.findall("{urn:oasis:names:tc:SAML:2.0:assertion}Assertion")
        work = self.dir / "encrypt"
        work.mkdir(exist_ok=True)
        # standalone, its namespaces declared on itself, as an IdP serialises what it encrypts
        (work / "data.xml").write_bytes(etree.tostring(assertion))
        digest = '<ds:DigestMethod xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/>'
        (work / "template.xml").write_text(
            _ENCRYPTED.format(
                cipher=a.encrypt,
                transport=a.key_transport,
                oaep_digest=digest if a.key_transport == RSA_OAEP_MGF1P else "",
            )
        )
        cert = a.encrypt_to or str(self.sp_encryption_cert)
        done = subprocess.run(
            [
                "xmlsec1",
                "--encrypt",
                "--pubkey-cert-pem",
                cert,
                "--session-key",
                _SESSION_KEYS[a.encrypt],
                "--xml-data",
                str(work / "data.xml"),
                "--node-xpath",
                "/*",
                "--output",
                str(work / "out.xml"),
                str(work / "template.xml"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        wrapper = etree.Element("{urn:oasis:names:tc:SAML:2.0:assertion}EncryptedAssertion")
        wrapper.append(etree.parse(str(work / "out.xml")).getroot())
        assertion.addprevious(wrapper)
        root.remove(assertion)
        return etree.tostring(root).decode()


_SSP_WWW = Path("/usr/share/simplesamlphp/www")
_SSP_CONFIG = """<?php
$config = [
    'baseurlpath' => '/',
    'certdir' => '{dir}/cert/',
    'loggingdir' => '{dir}/log/',
    'datadir' => '{dir}/data/',
    'tempdir' => '{dir}/tmp',
    'secretsalt' => '{salt}',
    'auth.adminpassword' => '{salt}',
    'technicalcontact_email' => 'nobody@example.test',
    'timezone' => 'UTC',
    'logging.level' => SimpleSAML\\Logger::WARNING,
    'logging.handler' => 'errorlog',
    'enable.saml20-idp' => true,
    'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true],
    'store.type' => 'phpsession',
    'session.cookie.secure' => false,
    'session.phpsession.cookiename' => 'SSPSESSID',
    'metadata.sources' => [
        ['type' => 'flatfile', 'directory' => '{dir}/metadata'],
        ['type' => 'xml', 'file' => '{dir}/sp.xml'],
    ],
];
"""
_SSP_AUTHSOURCES = """<?php
$config = [
    'admin' => ['core:AdminPassword'],
    'example-userpass' => [
        'exampleauth:UserPass',
        'alice:alice-pw' => ['uid' => ['alice'], 'mail' => ['alice@example.test']],
        'dave:dave-pw' => ['uid' => ['dave'], 'mail' => ['dave@example.test']],
    ],
];
"""
_SSP_IDP = """<?php
$metadata['__DYNAMIC:1__'] = [
    'host' => '__DEFAULT__',
    'privatekey' => 'idp.key',
    'certificate' => 'idp.crt',
    'auth' => 'example-userpass',
    'saml20.sign.response' => true,
    'saml20.sign.assertion' => true,
    'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
];
"""


class SimpleSamlPhp:
    """Debian's SimpleSAMLphp as an IdP, served by `php -S` from a configuration of its own
    (SIMPLESAMLPHP_CONFIG_DIR): exampleauth's static users alice and dave, Response and
    Assertion signed; the SP's metadata read from the XML Signet exported."""

    def __init__(self, directory: Path, ports: range):
        if shutil.which("php") is None or not _SSP_WWW.is_dir():
            raise AssertionError(
                "SimpleSAMLphp tests need simplesamlphp, php-cli, php-xml (make deps-test)"
            )
        self.dir = directory / "simplesamlphp"
        for sub in ("cert", "log", "data", "tmp", "metadata", "config"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.port = free_port(ports)
        self.url = f"http://127.0.0.1:{self.port}"
        self.entity_id = f"{self.url}/saml2/idp/metadata.php"
        key_and_cert(self.dir / "cert", "idp")
        salt = base64.b16encode(os.urandom(16)).decode()
        config = _SSP_CONFIG.replace("{dir}", str(self.dir)).replace("{salt}", salt)
        (self.dir / "config" / "config.php").write_text(config)
        (self.dir / "config" / "authsources.php").write_text(_SSP_AUTHSOURCES)
        (self.dir / "metadata" / "saml20-idp-hosted.php").write_text(_SSP_IDP)
        self.sp_file = self.dir / "sp.xml"
        self.sp_file.write_text(
            '<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"/>'
        )
        self.log = open(self.dir / "log" / "php.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["php", "-S", f"127.0.0.1:{self.port}", "-t", str(_SSP_WWW)],
            env={**os.environ, "SIMPLESAMLPHP_CONFIG_DIR": str(self.dir / "config")},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.metadata_file = directory / "ssp-idp-metadata.xml"
        deadline = time.monotonic() + 30
        while True:
            try:
                import requests

                answer = requests.get(self.entity_id, timeout=5)
                if answer.status_code == 200 and "IDPSSODescriptor" in answer.text:
                    self.metadata_file.write_text(answer.text)
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise AssertionError(f"SimpleSAMLphp did not start: {self.logged()}")
            time.sleep(0.2)

    def logged(self) -> str:
        return (self.dir / "log" / "php.log").read_text(errors="replace")[-4000:]

    def encrypt_assertions(self) -> None:
        """Encrypt every assertion from now on (read again on the next request), to the SP
        metadata's encryption certificate: RSA-OAEP and AES-128-CBC, all SimpleSAMLphp 1.19
        does with a certificate."""
        hosted = self.dir / "metadata" / "saml20-idp-hosted.php"
        hosted.write_text(_SSP_IDP.replace("];", "    'assertion.encryption' => true,\n];"))

    def trust(self, sp_metadata_xml: str) -> None:
        """The SP metadata Signet exported, read by SimpleSAMLphp on each request."""
        self.sp_file.write_text(sp_metadata_xml)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.log.close()
