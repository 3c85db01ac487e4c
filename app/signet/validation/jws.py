"""JAdES: a JWS (compact or flattened JSON), checked by jwcrypto, with its sigD detached
payload, x5c signer, etsiU validation data and time-stamps (ETSI TS 119 182-1)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path
from typing import Any

from asn1crypto import cms, crl, ocsp
from asn1crypto import x509 as asn1_x509

from signet.algorithms import HASHES
from signet.validation.errors import ContentFault, VerifyError, short
from signet.validation.report import SignatureReport, VerificationReport
from signet.validation.timestamps import Stamps, hasher
from signet.validation.trust import SIGNER_KEY_USAGES, Evidence, path_check, signer_trust

JWS_HASHES = {"S" + h.jws: h.name for h in HASHES.values()}


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jades_registry() -> dict[str, Any]:
    from jwcrypto.common import JWSEHeaderParameter

    return {
        "sigT": JWSEHeaderParameter("Claimed signing time", True, True, None),
        "sigD": JWSEHeaderParameter("Signed data objects", True, True, None),
    }


async def verify_jws(
    path: Path, detached: Path | None, anchors: list[asn1_x509.Certificate]
) -> VerificationReport:
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise VerifyError(f"{path}: not JSON: {short(exc)}") from exc
        if "signatures" in document:
            raise VerifyError(
                f"{path}: general JWS JSON serialisation; only the flattened one "
                "JAdES uses is verified"
            )
        if not isinstance(document, dict) or "protected" not in document:
            raise VerifyError(f"{path}: not a JWS (no protected header)")
        serialization = "JSON"
    else:
        pieces = text.split(".")
        if len(pieces) != 3:
            raise VerifyError(f"{path}: not a JWS compact serialisation")
        document = {"protected": pieces[0], "payload": pieces[1], "signature": pieces[2]}
        serialization = "compact"
    report = await _verify_jades(path, document, detached, anchors)
    return VerificationReport(str(path), f"JAdES (JWS {serialization})", [report])


async def _verify_jades(
    path: Path,
    document: dict[str, Any],
    detached: Path | None,
    anchors: list[asn1_x509.Certificate],
) -> SignatureReport:
    from jwcrypto.common import JWException
    from jwcrypto.jwk import JWK
    from jwcrypto.jws import JWS

    report = SignatureReport("signature 1")
    try:
        header = json.loads(_b64url_decode(document["protected"]))
        certs = [asn1_x509.Certificate.load(base64.b64decode(c)) for c in header["x5c"]]
        certs[0].native  # noqa: B018 - a full parse
    except (KeyError, IndexError, ValueError, TypeError, binascii.Error) as exc:
        report.problems.append(f"no usable protected header with x5c: {short(exc)}")
        return report
    signer_cert = certs[0]
    report.signer = signer_cert.subject.human_friendly
    report.claimed_time = header.get("sigT")
    sig_d = header.get("sigD")
    payload_present = "payload" in document and document["payload"] != ""
    if sig_d is not None and detached is None:
        raise VerifyError(
            f"{path} is a detached JAdES signature over {', '.join(sig_d.get('pars') or ['?'])}",
            ContentFault.MISSING,
        )
    if sig_d is None and detached is not None:
        raise VerifyError(f"{path} carries its payload", ContentFault.UNEXPECTED)

    if header.get("x5t#S256") not in (None, _b64url(hashlib.sha256(signer_cert.dump()).digest())):
        report.problems.append("x5t#S256 does not match the first x5c certificate")
    serialised = dict(document)
    serialised.setdefault("payload", "")
    try:
        from cryptography import x509 as pyca_x509

        public = JWK.from_pyca(pyca_x509.load_der_x509_certificate(signer_cert.dump()).public_key())
        jws = JWS(header_registry=_jades_registry())
        jws.deserialize(json.dumps({k: v for k, v in serialised.items() if k != "header"}))
        jws.verify(public, alg=header.get("alg"))
        report.valid = True
        report.checked.append(f"JWS signature ({header.get('alg')}, jwcrypto)")
    except (JWException, ValueError, TypeError) as exc:
        report.problems.append(f"the JWS signature does not verify: {short(exc)}")
    if sig_d is None:
        report.intact = report.valid and payload_present
        if report.valid and not payload_present:
            report.problems.append("the JWS has an empty payload and no sigD: nothing signed")
    else:
        assert detached is not None
        report.intact = _sig_d_matches(report, sig_d, detached)
    if (
        report.intact
        and report.valid
        and header.get("x5t#S256")
        not in (None, _b64url(hashlib.sha256(signer_cert.dump()).digest()))
    ):
        report.valid = False

    components = []
    for raw in (document.get("header") or {}).get("etsiU") or []:
        try:
            ((name, value),) = json.loads(_b64url_decode(raw)).items()
        except (ValueError, binascii.Error) as exc:
            report.problems.append(f"an etsiU entry is not base64url JSON: {short(exc)}")
            continue
        components.append((name, value, raw))
    evidence = Evidence(list(certs))
    for name, value, _ in components:
        if name == "xVals":
            evidence.certs += [
                asn1_x509.Certificate.load(base64.b64decode(v["x509Cert"]["val"]))
                for v in value
                if "x509Cert" in v
            ]
        elif name == "rVals":
            evidence.crls += [
                crl.CertificateList.load(base64.b64decode(v["val"]))
                for v in value.get("crlVals", [])
            ]
            evidence.ocsps += [
                ocsp.OCSPResponse.load(base64.b64decode(v["val"]))
                for v in value.get("ocspVals", [])
            ]
    ok, detail = await path_check(
        signer_cert, anchors, evidence, require_revocation=False, key_usage=SIGNER_KEY_USAGES
    )
    signer_trust(report, ok, detail)

    stamps = Stamps(report, anchors, evidence)
    signature_b64 = str(document.get("signature", ""))
    for position, (name, value, _) in enumerate(components):
        if name not in ("sigTst", "arcTst"):
            continue
        for entry in value.get("tstTokens", []):
            token = cms.ContentInfo.load(base64.b64decode(entry["val"]))
            if name == "sigTst":
                await stamps.check_signature_stamp(token, [signature_b64.encode("ascii")])
            else:
                earlier = [raw.encode("ascii") for _, _, raw in components[:position]]
                parts = _jades_archive_input(document, detached, earlier)
                await stamps.check_archive_stamp(token, hasher(parts))
    await stamps.settle(signer_cert)
    return report


def _sig_d_matches(report: SignatureReport, sig_d: dict[str, Any], detached: Path) -> bool:
    hash_name = JWS_HASHES.get(str(sig_d.get("hashM")))
    values = sig_d.get("hashV") or []
    if sig_d.get("mId") != "http://uri.etsi.org/19182/ObjectIdByURIHash" or hash_name is None:
        report.problems.append(
            f"sigD mechanism {sig_d.get('mId')!r} / {sig_d.get('hashM')!r} "
            "is not one this verifier knows"
        )
        return False
    if len(values) != 1:
        report.problems.append(f"sigD names {len(values)} documents; only one is verified")
        return False
    digest = hashlib.new(hash_name)
    with open(detached, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if _b64url(digest.digest()) != values[0]:
        report.problems.append(
            f"the signed file {detached.name} does not match the signed hash "
            f"of {', '.join(sig_d.get('pars') or ['?'])}"
        )
        return False
    report.checked.append(f"sigD {hash_name} of the detached file")
    return True


def _jades_archive_input(
    document: dict[str, Any], detached: Path | None, earlier: list[bytes]
) -> list[bytes]:
    """arcTst input: payload (base64url of the detached file), protected header, signature,
    each followed by '.', then the etsiU components before the archive time-stamp."""
    if detached is not None:
        payload = _b64url(detached.read_bytes()).encode("ascii")
    else:
        payload = str(document.get("payload", "")).encode("ascii")
    return [
        payload,
        b".",
        str(document["protected"]).encode("ascii"),
        b".",
        str(document["signature"]).encode("ascii"),
        b".",
        *earlier,
    ]
