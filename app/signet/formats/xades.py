"""XAdES baseline signatures (B-B..B-LTA): enveloped, enveloping and detached, with signxml.

signxml builds and signs the XAdES B-B structure (through a key adapter, so only a digest
reaches the remote key); the unsigned properties that signxml lacks are added here with lxml:
SignatureTimeStamp (B-T), CertificateValues and RevocationValues (B-LT) and the XAdES 1.4.1
ArchiveTimeStamp (B-LTA) computed as ETSI EN 319 132-1 clause 5.5.2 specifies.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from typing import IO, Any

from asn1crypto import cms
from lxml import etree
from signxml import DigestAlgorithm, SignatureMethod
from signxml.algorithms import CanonicalizationMethod, SignatureConstructionMethod
from signxml.exceptions import InvalidInput
from signxml.signer import SignatureReference
from signxml.xades import XAdESDataObjectFormat, XAdESSigner

from signet.formats._io import CHUNK_SIZE, Source, open_source, read_source, stream_digest
from signet.formats._xml import XmlRefused, parse_xml, refuse_doctype, safe_parser
from signet.formats.errors import FormatError
from signet.formats.keys import RemoteKey, key_adapter, to_pyca
from signet.formats.levels import Level, parse_level
from signet.formats.names import document_uri
from signet.formats.services import (
    ServicesConfig,
    ValidationDataCollector,
    make_timestamper,
)

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
XADES141 = "http://uri.etsi.org/01903/v1.4.1#"
BASE64_ENCODING = "http://www.w3.org/2000/09/xmldsig#base64"
PACKAGINGS = ("enveloped", "enveloping", "detached")

# signxml digests References without Transforms (SignedProperties, KeyInfo) with its
# canonicalisation; inclusive C14N is also what XMLDSig verifiers apply to such node-sets,
# so keeping one inclusive algorithm everywhere keeps every digest reproducible.
C14N = CanonicalizationMethod.CANONICAL_XML_1_1

_SIGNATURE_METHODS = {
    ("rsa", "pkcs1v15"): "RSA_{}",
    ("rsa", "pss"): "{}_RSA_MGF1",
    ("ec", "ecdsa"): "ECDSA_{}",
}


def _tag(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def _c14n(element: Any) -> bytes:
    """Inclusive C14N of an element in its document context (what C14N 1.1 gives us here)."""
    return etree.tostring(element, method="c14n", exclusive=False, with_comments=False)


class _SignetXAdESSigner(XAdESSigner):
    """XAdESSigner with a detached mode for arbitrary (non-XML) external documents.

    signxml's own detached mode signs an XML element; a detached XAdES over a file needs a
    Reference whose URI names the file and whose digest covers its raw octets, no transforms.
    """

    def __init__(
        self,
        *,
        detached_uri: str | None = None,
        detached_digest: bytes | None = None,
        enveloping_base64: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._detached_uri = detached_uri
        self._detached_digest = detached_digest
        self._enveloping_base64 = enveloping_base64

    def _unpack(self, data: Any, references: Any) -> Any:
        if self._detached_uri is not None:
            sig_root = etree.Element(self._ds_tag("Signature"), nsmap=self.namespaces)
            return sig_root, sig_root, [None], [SignatureReference(URI=self._detached_uri)]
        sig_root, doc_root, c14n_inputs, refs = super()._unpack(data, references)
        if self._enveloping_base64:
            # set before the digest is taken: the Object's attributes are signed content
            c14n_inputs[0].set("Encoding", BASE64_ENCODING)
        return sig_root, doc_root, c14n_inputs, refs

    def _build_sig(
        self,
        sig_root: Any,
        references: Any,
        c14n_inputs: Any,
        inclusive_ns_prefixes: Any,
        exclude_c14n_transform_element: bool = False,
    ) -> Any:
        if self._detached_uri is None:
            return super()._build_sig(
                sig_root,
                references,
                c14n_inputs,
                inclusive_ns_prefixes,
                exclude_c14n_transform_element,
            )
        assert self._detached_digest is not None
        signed_info = etree.SubElement(sig_root, self._ds_tag("SignedInfo"), nsmap=self.namespaces)
        etree.SubElement(
            signed_info, self._ds_tag("CanonicalizationMethod"), Algorithm=self.c14n_alg.value
        )
        etree.SubElement(
            signed_info, self._ds_tag("SignatureMethod"), Algorithm=self.sign_alg.value
        )
        reference = etree.SubElement(signed_info, self._ds_tag("Reference"), URI=self._detached_uri)
        etree.SubElement(reference, self._ds_tag("DigestMethod"), Algorithm=self.digest_alg.value)
        digest_value = etree.SubElement(reference, self._ds_tag("DigestValue"))
        digest_value.text = base64.b64encode(self._detached_digest).decode()
        signature_value = etree.SubElement(sig_root, self._ds_tag("SignatureValue"))
        return signed_info, signature_value


def _signature_method(key: RemoteKey, hash_name: str, scheme: str) -> SignatureMethod:
    pattern = _SIGNATURE_METHODS[(key.key_type, scheme)]
    return SignatureMethod[pattern.format(hash_name.upper())]


async def async_sign_xades(
    source: Source,
    out: IO[bytes],
    *,
    level: str | Level,
    key: RemoteKey,
    services: ServicesConfig | None = None,
    hash_algorithm: str = "sha256",
    scheme: str | None = None,
    packaging: str = "enveloped",
    document_name: str | None = None,
    mime_type: str | None = None,
) -> None:
    """Write a XAdES signature to ``out``.

    * ``enveloped``: ``source`` is an XML document; the signature is appended to its root.
      A document that already carries a ``ds:Signature`` is refused: ours would break it.
    * ``enveloping``: the signature carries the data in a ``ds:Object`` -- XML is embedded as
      is, anything else (and XML that carries a signature) base64-encoded (``Encoding`` =
      xmldsig#base64).
    * ``detached``: the signature references ``document_name`` (a file name, required; made
      a relative URI by :func:`~signet.formats.names.document_uri`) and
      covers the raw octets of ``source``, which is hashed in chunks and never loaded whole.

    Enveloped and enveloping signatures read the document into memory once: lxml and signxml
    work on the whole tree.
    """
    level = parse_level(level)
    if packaging not in PACKAGINGS:
        raise FormatError(f"XAdES packaging {packaging!r} is not one of {', '.join(PACKAGINGS)}")
    services = services or ServicesConfig()
    scheme = key.resolve_scheme(scheme)
    timestamper = make_timestamper(services, level.value) if level.at_least(Level.B_T) else None
    signer_kwargs: dict[str, Any] = {
        "signature_algorithm": _signature_method(key, hash_algorithm, scheme),
        "digest_algorithm": DigestAlgorithm[hash_algorithm.upper()],
        "c14n_algorithm": C14N,
        "data_object_format": XAdESDataObjectFormat(
            Description=document_name or "signed data",
            MimeType=mime_type
            or ("text/xml" if packaging == "enveloped" else "application/octet-stream"),
        ),
    }
    data: Any
    if packaging == "detached":
        if not document_name:
            raise FormatError("a detached XAdES signature needs document_name (the Reference URI)")
        uri = document_uri(document_name)
        with open_source(source) as stream:
            digest = stream_digest(stream, hash_algorithm)
        signer = _SignetXAdESSigner(
            method=SignatureConstructionMethod.detached,
            detached_uri=uri,
            detached_digest=digest,
            **signer_kwargs,
        )
        data = etree.Element("unused")
    else:
        raw = read_source(source)
        xml_root = _parse_xml(raw) if packaging == "enveloped" else _try_parse_xml(raw)
        base64_payload = packaging == "enveloping" and xml_root is None
        method = (
            SignatureConstructionMethod.enveloped
            if packaging == "enveloped"
            else SignatureConstructionMethod.enveloping
        )
        signer = _SignetXAdESSigner(
            method=method, enveloping_base64=base64_payload, **signer_kwargs
        )
        data = base64.b64encode(raw).decode() if base64_payload else xml_root

    collector = None
    if level.at_least(Level.B_LT):
        collector = await ValidationDataCollector.before_signing(key, services, timestamper)

    adapter: Any = key_adapter(key)  # duck-typed private key; signxml only calls sign()
    try:
        result = signer.sign(
            data,
            key=adapter,
            cert=[to_pyca(c) for c in key.all_certificates],
            always_add_key_value=False,
        )
    except (InvalidInput, etree.XMLSyntaxError) as exc:
        raise FormatError(f"XAdES signing failed: {exc}") from exc
    signature = result if packaging != "enveloped" else _our_signature(result)

    if timestamper is not None:
        unsigned = _unsigned_signature_properties(signature)
        token = await timestamper.async_timestamp(
            hashlib.new(hash_algorithm, _c14n(_child(signature, DS, "SignatureValue"))).digest(),
            hash_algorithm,
        )
        _append_timestamp(unsigned, _tag(XADES, "SignatureTimeStamp"), token)
        if collector is not None:
            await _add_validation_data(unsigned, token, key, collector)
        if level is Level.B_LTA:
            imprint = _archive_timestamp_imprint(signature, source, packaging, hash_algorithm)
            token = await timestamper.async_timestamp(imprint, hash_algorithm)
            _append_timestamp(unsigned, _tag(XADES141, "ArchiveTimeStamp"), token)

    tree_root = result
    out.write(etree.tostring(tree_root, xml_declaration=True, encoding="UTF-8"))


def _parse_xml(raw: bytes) -> Any:
    try:
        root = parse_xml(raw)
    except XmlRefused as exc:
        raise FormatError(f"an enveloped XAdES signature needs an XML document: {exc}") from exc
    if _signed(root):
        # Our Reference covers the whole document, the earlier signature included, and that
        # one's (an enveloped-signature transform removes only its own ds:Signature) would
        # then cover ours: appending breaks it, and nothing done to ours can prevent that.
        raise FormatError(
            "the XML document already carries a signature (ds:Signature), which a second "
            "enveloped signature would invalidate; sign it as XAdES detached, or enveloping "
            "(the document is then embedded in base64, unchanged)"
        )
    return root


def _try_parse_xml(raw: bytes) -> Any:
    """XML to embed as such in an enveloping signature, or None for data to embed in base64.
    XML with a DOCTYPE is refused, not base64-encoded: its sender meant it as XML. XML that
    carries signatures is embedded in base64: its own enveloped signatures cover the document
    they are in, which must stay as it is (as its own root) for them to verify."""
    try:
        root = etree.fromstring(raw, parser=safe_parser())
    except etree.XMLSyntaxError:
        return None
    try:
        refuse_doctype(root)
    except XmlRefused as exc:
        raise FormatError(f"an enveloping XAdES signature over XML: {exc}") from exc
    return None if _signed(root) else root


def _signed(root: Any) -> bool:
    return next(root.iter(_tag(DS, "Signature")), None) is not None


def _child(element: Any, namespace: str, name: str) -> Any:
    found = element.find(_tag(namespace, name))
    if found is None:
        raise FormatError(f"XAdES structure lacks {name}")
    return found


def _our_signature(doc_root: Any) -> Any:
    # signxml appends the new ds:Signature as the last child of the root
    signatures = doc_root.findall(_tag(DS, "Signature"))
    if not signatures:
        raise FormatError("signxml did not produce an enveloped ds:Signature")
    return signatures[-1]


def _qualifying_properties(signature: Any) -> Any:
    for obj in signature.findall(_tag(DS, "Object")):
        qp = obj.find(_tag(XADES, "QualifyingProperties"))
        if qp is not None:
            return qp
    raise FormatError("the signature has no xades:QualifyingProperties")


def _unsigned_signature_properties(signature: Any) -> Any:
    qp = _qualifying_properties(signature)
    unsigned = qp.find(_tag(XADES, "UnsignedProperties"))
    if unsigned is None:
        unsigned = etree.SubElement(qp, _tag(XADES, "UnsignedProperties"))
    usp = unsigned.find(_tag(XADES, "UnsignedSignatureProperties"))
    if usp is None:
        usp = etree.SubElement(unsigned, _tag(XADES, "UnsignedSignatureProperties"))
    return usp


def _append_timestamp(parent: Any, tag: str, token: cms.ContentInfo) -> None:
    nsmap = {"xades141": XADES141} if tag.startswith(f"{{{XADES141}}}") else None
    element = etree.SubElement(parent, tag, nsmap=nsmap, Id=f"TS-{uuid.uuid4()}")
    etree.SubElement(element, _tag(DS, "CanonicalizationMethod"), Algorithm=C14N.value)
    encapsulated = etree.SubElement(element, _tag(XADES, "EncapsulatedTimeStamp"))
    encapsulated.text = base64.b64encode(token.dump()).decode()


async def _add_validation_data(
    unsigned: Any, token: cms.ContentInfo, key: RemoteKey, collector: ValidationDataCollector
) -> None:
    data = await collector.result_after(token)
    in_key_info = {c.dump() for c in key.all_certificates}
    certificate_values = etree.SubElement(unsigned, _tag(XADES, "CertificateValues"))
    for cert in data.certificates:
        if cert.dump() not in in_key_info:
            value = etree.SubElement(certificate_values, _tag(XADES, "EncapsulatedX509Certificate"))
            value.text = base64.b64encode(cert.dump()).decode()
    revocation_values = etree.SubElement(unsigned, _tag(XADES, "RevocationValues"))
    if data.crls:
        crl_values = etree.SubElement(revocation_values, _tag(XADES, "CRLValues"))
        for crl in data.crls:
            value = etree.SubElement(crl_values, _tag(XADES, "EncapsulatedCRLValue"))
            value.text = base64.b64encode(crl.dump()).decode()
    if data.ocsp_responses:
        ocsp_values = etree.SubElement(revocation_values, _tag(XADES, "OCSPValues"))
        for response in data.ocsp_responses:
            value = etree.SubElement(ocsp_values, _tag(XADES, "EncapsulatedOCSPValue"))
            value.text = base64.b64encode(response.dump()).decode()


def _reference_octets(
    signature: Any, reference: Any, source: Source, packaging: str
) -> Iterator[bytes]:
    """The octets a ds:Reference's digest was computed over, as signxml built them."""
    uri = reference.get("URI")
    if packaging == "detached" and uri == _first_reference(signature).get("URI"):
        with open_source(source) as stream:
            while chunk := stream.read(CHUNK_SIZE):
                yield chunk
        return
    if uri == "":
        # enveloped-signature transform, then C14N, over a standalone copy of the document
        doc_root = signature.getroottree().getroot()
        copy = etree.fromstring(etree.tostring(doc_root), parser=safe_parser())
        signature_index = list(doc_root).index(signature)
        del copy[signature_index]
        yield _c14n(copy)
        return
    if not uri or not uri.startswith("#"):
        raise FormatError(f"cannot process reference {uri!r} for the archive time-stamp")
    target_id = uri[1:]
    matches = signature.getroottree().xpath("//*[@Id=$id]", id=target_id)
    if len(matches) != 1:
        raise FormatError(f"reference {uri!r} matches {len(matches)} elements")
    target = matches[0]
    if reference.find(f"{_tag(DS, 'Transforms')}/{_tag(DS, 'Transform')}") is not None:
        # enveloping: signxml canonicalises a standalone copy of the ds:Object
        target = etree.fromstring(etree.tostring(target), parser=safe_parser())
    yield _c14n(target)


def _first_reference(signature: Any) -> Any:
    return signature.find(f"{_tag(DS, 'SignedInfo')}/{_tag(DS, 'Reference')}")


def _archive_timestamp_imprint(
    signature: Any, source: Source, packaging: str, hash_name: str
) -> bytes:
    """Message imprint of a xades141:ArchiveTimeStamp (EN 319 132-1 clause 5.5.2.2).

    1. every ds:Reference in SignedInfo order, dereferenced and transformed (each is checked
       against its own DigestValue, so a mismatch fails here and not at the relying party);
    2. ds:SignedInfo, ds:SignatureValue and ds:KeyInfo, canonicalised;
    3. the unsigned signature properties present before this time-stamp, canonicalised;
    4. every ds:Object except the one holding QualifyingProperties, canonicalised.
    """
    hasher = hashlib.new(hash_name)
    signed_info = _child(signature, DS, "SignedInfo")
    for reference in signed_info.findall(_tag(DS, "Reference")):
        digest_method = reference.find(_tag(DS, "DigestMethod")).get("Algorithm")
        ref_hash = hashlib.new(DigestAlgorithm(digest_method).name.lower())
        for octets in _reference_octets(signature, reference, source, packaging):
            ref_hash.update(octets)
            hasher.update(octets)
        expected = base64.b64decode(reference.findtext(_tag(DS, "DigestValue")) or "")
        if ref_hash.digest() != expected:
            raise FormatError(
                f"archive time-stamp input for reference {reference.get('URI')!r} does not "
                "match its digest; refusing to time-stamp"
            )
    for name in ("SignedInfo", "SignatureValue", "KeyInfo"):
        element = signature.find(_tag(DS, name))
        if element is not None:
            hasher.update(_c14n(element))
    for prop in _unsigned_signature_properties(signature):
        hasher.update(_c14n(prop))
    for obj in signature.findall(_tag(DS, "Object")):
        if obj.find(_tag(XADES, "QualifyingProperties")) is None:
            hasher.update(_c14n(obj))
    return hasher.digest()
