"""A throw-away client-certificate PKI for the login tests: a root CA, its CRL and an OCSP
responder served over HTTP on loopback, and TLS client certificates (valid, expired, revoked,
on a card, from a foreign CA) written as PEM files for requests and openssl."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

CARD_POLICY = "1.3.6.1.4.1.99999.1.1"  # a made-up "key on a PIN-protected card" policy


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class Pki:
    directory: Path
    base_url: str  # where the CRL (/root.crl) and the OCSP responder (/ocsp) answer
    name: str = "Test Client CA"
    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    revoked: set[int] = field(default_factory=set)
    ocsp_down: bool = False
    # A key other than the root's signs the CRL (an attacker on the CRL's plain HTTP).
    crl_forger: ec.EllipticCurvePrivateKey | None = None

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        self.root = (
            x509.CertificateBuilder()
            .subject_name(_name(self.name)).issuer_name(_name(self.name))
            .public_key(self.root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                         False), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.root_key.public_key()),
                           False)
            .sign(self.root_key, hashes.SHA256())
        )  # fmt: skip
        self.anchor_file = self.directory / f"{self.name.replace(' ', '-')}.pem"
        self.anchor_file.write_bytes(self.root.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        label: str,
        cn: str,
        *,
        email: str | None = None,
        expired: bool = False,
        card: bool = False,
        qc_sscd: bool = False,
        crl: bool = True,
        ocsp_url: bool = False,
        client_auth: bool = True,
    ) -> tuple[Path, Path, x509.Certificate]:
        """A client certificate and its key as PEM files: (certificate, key, certificate)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        start, end = (
            (now - dt.timedelta(days=3), now - dt.timedelta(days=1))
            if expired
            else (now - dt.timedelta(minutes=5), now + dt.timedelta(days=1))
        )
        eku = ExtendedKeyUsageOID.CLIENT_AUTH if client_auth else ExtendedKeyUsageOID.CODE_SIGNING
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(self.root.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), True)
            .add_extension(x509.ExtendedKeyUsage([eku]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.root_key.public_key()), False)
        )  # fmt: skip
        if email:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(email)]), False
            )
        if crl:
            point = x509.UniformResourceIdentifier(f"{self.base_url}/root.crl")
            builder = builder.add_extension(
                x509.CRLDistributionPoints([x509.DistributionPoint([point], None, None, None)]),
                False,
            )
        if ocsp_url:
            access = x509.AccessDescription(
                x509.oid.AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(f"{self.base_url}/ocsp"),
            )
            builder = builder.add_extension(x509.AuthorityInformationAccess([access]), False)
        if card:
            builder = builder.add_extension(
                x509.CertificatePolicies(
                    [x509.PolicyInformation(x509.ObjectIdentifier(CARD_POLICY), None)]
                ),
                False,
            )
        if qc_sscd:  # QcStatements: SEQUENCE { SEQUENCE { id-etsi-qcs-QcSSCD } }
            statements = bytes.fromhex("300a3008060604008e460104")
            builder = builder.add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3"), statements),
                False,
            )
        certificate = builder.sign(self.root_key, hashes.SHA256())
        cert_path = self.directory / f"{label}.pem"
        key_path = self.directory / f"{label}.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        return cert_path, key_path, certificate

    def server_tls(self) -> tuple[Path, Path]:
        """A TLS server certificate for 127.0.0.1 and localhost under the root."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        import ipaddress

        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost")).issuer_name(self.root.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(self.root_key, hashes.SHA256())
        )  # fmt: skip
        cert_path, key_path = self.directory / "server.pem", self.directory / "server.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        return cert_path, key_path

    def crl(self) -> bytes:
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.root.subject)
            .last_update(now)
            .next_update(now + dt.timedelta(hours=1))
        )
        for serial in sorted(self.revoked) if self.crl_forger is None else ():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - dt.timedelta(minutes=1))
                .build()
            )
        signer = self.crl_forger or self.root_key
        return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def ocsp_answer(self, body: bytes) -> bytes:
        request = ocsp.load_der_ocsp_request(body)
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        revoked = request.serial_number in self.revoked
        # The CertID names the issuer by hashes: answer for it as asked.
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number,
            algorithm=request.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
            this_update=now,
            next_update=now + dt.timedelta(hours=1),
            revocation_time=now if revoked else None,
            revocation_reason=None,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.root)
        return builder.sign(self.root_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@contextmanager
def serve_pki(directory: Path, ports: range) -> Iterator[Pki]:
    """A Pki whose CRL and OCSP responder answer over HTTP on the first free port of `ports`."""
    holder: dict[str, Pki] = {}

    @Request.application  # type: ignore[arg-type]
    def app(request: Request) -> Response:
        pki = holder["pki"]
        if request.path == "/root.crl":
            return Response(pki.crl(), content_type="application/pkix-crl")
        if request.path == "/ocsp" and request.method == "POST":
            if pki.ocsp_down:
                return Response("down", status=503)
            return Response(pki.ocsp_answer(request.get_data()),
                            content_type="application/ocsp-response")  # fmt: skip
        return Response("not found", status=404)

    server = None
    for port in ports:
        try:
            server = make_server("127.0.0.1", port, app, threaded=True)
            break
        except (OSError, SystemExit):
            continue
    assert server is not None, f"no free port in {ports}"
    holder["pki"] = Pki(directory, f"http://127.0.0.1:{server.server_port}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["pki"]
    finally:
        server.shutdown()
        thread.join(10)
