"""The SAML IdP's metadata as Signet trusts it: read from its file or https URL and, when the
provider names a metadata signer's certificate (a federation's, an eIDAS node's), accepted only
with an enveloped SHA-2 signature by that certificate over the whole document and a
`validUntil` still ahead; pysaml2 is then handed exactly the element the signature covers."""

from __future__ import annotations

import time
from pathlib import Path

import requests
from lxml import etree
from saml2 import time_util
from signxml import InvalidInput, SignatureConfiguration, SignatureMethod, XMLVerifier
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidSignature

from signet.config.identity import SamlProviderSettings
from signet.errors import ServiceUnavailable

_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
_ROOTS = {f"{{{_MD}}}EntityDescriptor", f"{{{_MD}}}EntitiesDescriptor"}
_MAX_BYTES = 16 * 1024 * 1024  # a federation's aggregate is a few MB
_TIMEOUT = 15
# asymmetric SHA-2 signatures only: no SHA-1, no HMAC (a metadata signer has no shared key)
_METHODS = frozenset(
    {
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.SHA256_RSA_MGF1,
        SignatureMethod.SHA384_RSA_MGF1,
        SignatureMethod.SHA512_RSA_MGF1,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
    }
)


class MetadataRefused(ServiceUnavailable):
    """The IdP's metadata could not be read or did not pass its checks."""


def _read(source: str) -> bytes:
    if source.startswith("https://"):
        try:
            answer = requests.get(source, timeout=_TIMEOUT, stream=True)
            answer.raise_for_status()
            body = answer.raw.read(_MAX_BYTES + 1, decode_content=True)
        except (requests.RequestException, OSError) as exc:
            raise MetadataRefused(f"cannot fetch {source}: {exc}") from None
    else:
        try:
            with Path(source).open("rb") as handle:
                body = handle.read(_MAX_BYTES + 1)
        except OSError as exc:
            raise MetadataRefused(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(body) > _MAX_BYTES:
        raise MetadataRefused(f"{source} is larger than {_MAX_BYTES // 2**20} MiB")
    return body


def _still_valid(root: etree._Element, source: str) -> None:
    until = root.get("validUntil")
    if until is None:
        return
    try:
        ends = time_util.str_to_time(until)
    except (ValueError, TypeError):
        raise MetadataRefused(f"{source}: validUntil {until!r} is not a time") from None
    if ends is None or time.mktime(ends) - time.timezone <= time.time():
        raise MetadataRefused(f"{source}: the metadata expired (validUntil {until})")


def verified(settings: SamlProviderSettings) -> str:
    """The metadata's XML for pysaml2: as read when no signer is configured, else only the
    signed root element, its signature checked against `idp_metadata_signer_cert`."""
    source = settings.idp_metadata
    body = _read(source)
    try:
        root = etree.fromstring(
            body, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        )
    except etree.XMLSyntaxError as exc:
        raise MetadataRefused(f"{source} is not XML: {exc}") from None
    if root.tag not in _ROOTS:
        raise MetadataRefused(f"{source} is not SAML metadata (its root is {root.tag})")
    if settings.idp_metadata_signer_cert is None:
        _still_valid(root, source)
        return etree.tostring(root, encoding="unicode")  # whatever encoding the file declared
    try:
        signer = Path(settings.idp_metadata_signer_cert).read_text()
    except OSError as exc:
        raise MetadataRefused(
            f"cannot read idp_metadata_signer_cert {settings.idp_metadata_signer_cert}: "
            f"{exc.strerror or exc}"
        ) from None
    try:
        result = XMLVerifier().verify(
            root,
            x509_cert=signer,
            expect_config=SignatureConfiguration(location="./", signature_methods=_METHODS),
        )
    except (InvalidSignature, InvalidDigest, InvalidCertificate, InvalidInput) as exc:
        raise MetadataRefused(
            f"{source}: the metadata's signature does not verify against "
            f"{settings.idp_metadata_signer_cert} ({exc})"
        ) from None
    signed = result.signed_xml  # type: ignore[union-attr]
    if signed is None or signed.tag not in _ROOTS or signed.get("ID") != root.get("ID"):
        raise MetadataRefused(f"{source}: the signature does not cover the whole metadata")
    _still_valid(signed, source)
    return etree.tostring(signed, encoding="unicode")
