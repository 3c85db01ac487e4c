"""Verifying a TLS client certificate offered at login: a path to a configured trust anchor
(cryptography's RFC 5280 client verifier), its validity now, the key usage a TLS client needs,
and its revocation by CRL or OCSP; whatever nginx or the TLS library decided is not relied on.
The verdict is `Verified`, or `CertificateRefused` naming what failed."""

from __future__ import annotations

import threading
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
)
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from signet.config.client_certificates import ClientCertificateSettings
from signet.errors import ServiceUnavailable

# ETSI EN 319 412-5: QcStatements, and the statement that the key is in a QSCD.
QC_STATEMENTS = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3")
QC_SSCD = bytes.fromhex("060604008e460104")  # DER of OID 0.4.0.1862.1.4
MAX_CRL_BYTES = 10 * 1024 * 1024


# RFC 5280 paths as the CA/Browser Forum profile checks them, but a login certificate need not
# name its holder in a subjectAltName: many user certificates (and cards) name her only in the
# subject, which the mapping rules read.
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()
_EE_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
)


class CertificateRefused(Exception):
    """The certificate cannot log anyone in; `reason` says why, in a few words for the audit
    trail and the client."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RevocationUnknown(CertificateRefused):
    """No revocation source gave an answer (unreachable, unsigned, stale)."""


@dataclass(frozen=True)
class Verified:
    """A certificate that chains to a trust anchor, is valid now and is not revoked."""

    certificate: x509.Certificate
    issuer: x509.Certificate
    fingerprint: str  # SHA-256 of the DER, lower-case hex
    on_card: bool  # its key is held on a card or token (policy OID or QcSSCD)
    revocation: str  # how revocation was checked: off, crl, ocsp, or unknown (soft-fail)


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def parse_certificate(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes; CertificateRefused when it is neither."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateRefused(f"not a readable X.509 certificate ({exc})") from exc


def _load_pem_files(paths: list[str]) -> list[x509.Certificate]:
    """Certificates of PEM files named by the settings; a file that cannot be read is the
    operator's to fix, said as a 503 naming it (never a 500)."""
    certificates: list[x509.Certificate] = []
    for path in paths:
        try:
            certificates += x509.load_pem_x509_certificates(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise ServiceUnavailable(
                f"client_certificates: cannot read the certificates of {path} ({exc}); "
                "client certificate logins are unavailable until the file is fixed"
            ) from exc
    return certificates


def _extension(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> object | None:
    try:
        return certificate.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None


def _check_usage(certificate: x509.Certificate) -> None:
    usage = _extension(certificate, ExtensionOID.KEY_USAGE)
    if isinstance(usage, x509.KeyUsage) and not usage.digital_signature:
        raise CertificateRefused("its key usage does not allow digitalSignature (TLS client)")
    eku = _extension(certificate, ExtensionOID.EXTENDED_KEY_USAGE)
    if isinstance(eku, x509.ExtendedKeyUsage) and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise CertificateRefused("its extended key usage does not include clientAuth")


def _on_card(certificate: x509.Certificate, card_policies: list[str]) -> bool:
    policies = _extension(certificate, ExtensionOID.CERTIFICATE_POLICIES)
    if isinstance(policies, x509.CertificatePolicies) and any(
        p.policy_identifier.dotted_string in card_policies for p in policies
    ):
        return True
    statements = _extension(certificate, QC_STATEMENTS)
    return isinstance(statements, x509.UnrecognizedExtension) and QC_SSCD in statements.value


def _urls(certificate: x509.Certificate, kind: str) -> list[str]:
    found: list[str] = []
    if kind == "crl":
        points = _extension(certificate, ExtensionOID.CRL_DISTRIBUTION_POINTS)
        for point in points if isinstance(points, x509.CRLDistributionPoints) else ():
            for name in point.full_name or ():
                if isinstance(name, x509.UniformResourceIdentifier):
                    found.append(name.value)
    else:
        access = _extension(certificate, ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
        for entry in access if isinstance(access, x509.AuthorityInformationAccess) else ():
            location = entry.access_location
            if entry.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
                location, x509.UniformResourceIdentifier
            ):
                found.append(location.value)
    return [u for u in found if u.startswith(("http://", "https://"))]


class ClientCertificateVerifier:
    """Verifies login certificates against the settings' anchors; keeps fetched CRLs for
    crl_cache_seconds (never past their nextUpdate). One per process, shared by threads."""

    def __init__(self, settings: ClientCertificateSettings) -> None:
        self.settings = settings
        self.anchors = _load_pem_files(settings.trust_anchors)
        self.intermediates = _load_pem_files(settings.intermediates)
        self._crls: dict[str, tuple[float, x509.CertificateRevocationList]] = {}
        self._lock = threading.Lock()

    def verify(self, certificate: x509.Certificate, chain: list[x509.Certificate]) -> Verified:
        """The certificate verified now, with `chain` (what the client sent besides it) and
        the configured intermediates as candidate issuers."""
        if not self.anchors:
            raise CertificateRefused("no trust anchors are configured for client certificates")
        moment = datetime.now(UTC)
        if certificate.not_valid_after_utc < moment:
            raise CertificateRefused(
                f"the certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
            )
        if certificate.not_valid_before_utc > moment:
            raise CertificateRefused(
                "the certificate is not valid before "
                f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
            )
        _check_usage(certificate)
        verifier = (
            PolicyBuilder()
            .store(Store(self.anchors))
            .time(moment)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(certificate, [*chain, *self.intermediates])
        except VerificationError as exc:
            # cryptography appends a repr of the certificate; the subject is audited already.
            why = (
                str(exc).split(" (encountered processing", 1)[0].removeprefix("validation failed: ")
            )
            raise CertificateRefused(f"no valid path to a trust anchor ({why})") from exc
        issuer = verified.chain[1] if len(verified.chain) > 1 else verified.chain[0]
        return Verified(
            certificate=certificate,
            issuer=issuer,
            fingerprint=fingerprint(certificate),
            on_card=_on_card(certificate, self.settings.card_policies),
            revocation=self._check_revocation(certificate, issuer),
        )

    def _check_revocation(self, certificate: x509.Certificate, issuer: x509.Certificate) -> str:
        mode = self.settings.revocation
        if mode == "off":
            return "off"
        ocsp_urls = (
            [self.settings.ocsp_url] if self.settings.ocsp_url else _urls(certificate, "ocsp")
        )
        crl_urls = _urls(certificate, "crl") + self.settings.crl_urls
        problems: list[str] = []
        if mode in ("ocsp", "require") and ocsp_urls:
            try:
                return self._ocsp(certificate, issuer, ocsp_urls[0])
            except RevocationUnknown as exc:
                problems.append(exc.reason)
        elif mode == "ocsp":
            problems.append("the certificate names no OCSP responder")
        if mode in ("crl", "require"):
            if not crl_urls:
                problems.append("the certificate names no CRL distribution point")
            for url in crl_urls:
                try:
                    return self._crl(certificate, issuer, url)
                except RevocationUnknown as exc:
                    problems.append(exc.reason)
        if self.settings.soft_fail:
            return "unknown"
        raise RevocationUnknown("revocation status unknown: " + "; ".join(problems))

    def _fetch_crl(self, url: str) -> x509.CertificateRevocationList:
        now = time.monotonic()
        with self._lock:
            cached = self._crls.get(url)
        if cached and cached[0] > now:
            return cached[1]
        try:
            if url.startswith(("http://", "https://")):
                answer = requests.get(url, timeout=self.settings.timeout_seconds, stream=True)
                answer.raise_for_status()
                data = answer.raw.read(MAX_CRL_BYTES + 1, decode_content=True)
            else:
                data = Path(urllib.parse.urlsplit(url).path if "://" in url else url).read_bytes()
        except (requests.RequestException, OSError) as exc:
            raise RevocationUnknown(f"CRL {url} could not be fetched ({exc})") from exc
        if len(data) > MAX_CRL_BYTES:
            raise RevocationUnknown(f"CRL {url} is larger than {MAX_CRL_BYTES} bytes")
        try:
            crl = (
                x509.load_pem_x509_crl(data)
                if data.lstrip().startswith(b"-----BEGIN")
                else x509.load_der_x509_crl(data)
            )
        except ValueError as exc:
            raise RevocationUnknown(f"CRL {url} is not a readable CRL") from exc
        keep = float(self.settings.crl_cache_seconds)
        if crl.next_update_utc is not None:
            keep = min(keep, (crl.next_update_utc - datetime.now(UTC)).total_seconds())
        if keep > 0:
            with self._lock:
                self._crls[url] = (now + keep, crl)
        return crl

    def _crl(self, certificate: x509.Certificate, issuer: x509.Certificate, url: str) -> str:
        crl = self._fetch_crl(url)
        if crl.issuer != issuer.subject or not crl.is_signature_valid(
            issuer.public_key()  # type: ignore[arg-type]
        ):
            with self._lock:  # a forged CRL must not stand in for the real one until it expires
                self._crls.pop(url, None)
            raise RevocationUnknown(f"CRL {url} is not signed by the certificate's issuer")
        moment = datetime.now(UTC)
        if crl.next_update_utc is not None and crl.next_update_utc < moment:
            raise RevocationUnknown(f"CRL {url} is out of date (nextUpdate passed)")
        entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        if entry is not None and entry.revocation_date_utc <= moment:
            raise CertificateRefused(
                f"the certificate was revoked on {entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC"
            )
        return "crl"

    def _ocsp(self, certificate: x509.Certificate, issuer: x509.Certificate, url: str) -> str:
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303 - RFC 6960 CertID
            .build()
        )
        try:
            answer = requests.post(
                url,
                data=request.public_bytes(serialization.Encoding.DER),
                headers={"Content-Type": "application/ocsp-request"},
                timeout=self.settings.timeout_seconds,
            )
            answer.raise_for_status()
            response = ocsp.load_der_ocsp_response(answer.content[:MAX_CRL_BYTES])
        except (requests.RequestException, ValueError) as exc:
            raise RevocationUnknown(f"OCSP responder {url} gave no answer ({exc})") from exc
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise RevocationUnknown(f"OCSP responder {url}: {response.response_status.name}")
        _check_ocsp_signer(response, issuer, url)
        if response.serial_number != certificate.serial_number:
            raise RevocationUnknown(f"OCSP responder {url} answered for another certificate")
        moment = datetime.now(UTC)
        if response.next_update_utc is not None and response.next_update_utc < moment:
            raise RevocationUnknown(f"OCSP responder {url} gave a stale answer")
        if response.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            when = response.revocation_time_utc
            raise CertificateRefused(
                f"the certificate was revoked on {when:%Y-%m-%d %H:%M} UTC" if when else
                "the certificate was revoked"
            )  # fmt: skip
        if response.certificate_status != ocsp.OCSPCertStatus.GOOD:
            raise RevocationUnknown(f"OCSP responder {url} does not know the certificate")
        return "ocsp"


def _check_ocsp_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, url: str) -> None:
    """The response is signed by the issuer, or by a responder the issuer delegated
    (RFC 6960 4.2.2.2: issued by it, with the OCSPSigning EKU)."""
    signer = issuer
    for candidate in response.certificates:
        eku = _extension(candidate, ExtensionOID.EXTENDED_KEY_USAGE)
        if not (isinstance(eku, x509.ExtendedKeyUsage) and ExtendedKeyUsageOID.OCSP_SIGNING in eku):
            continue
        try:
            candidate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        signer = candidate
        break
    key, algorithm = signer.public_key(), response.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(
                response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm
            )
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        else:
            raise RevocationUnknown(f"OCSP responder {url}: unsupported signature algorithm")
    except InvalidSignature as exc:
        raise RevocationUnknown(f"OCSP responder {url}: the answer's signature is invalid") from exc
