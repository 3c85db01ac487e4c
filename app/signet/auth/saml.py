"""The SAML 2.0 service provider's protocol (pysaml2, xmlsec1): the SP's configuration and
metadata, the signed AuthnRequest sent over HTTP-Redirect, and the Response received over
HTTP-POST checked down to a verified `Asserted`. No web framework here: the caller hands in
the public URL, the request ID it remembered and the posted form value."""

from __future__ import annotations

import base64
import calendar
import contextlib
import shutil
import threading
import time
from dataclasses import dataclass
from typing import Any

import saml2
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, md, samlp, time_util, xmldsig
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor, metadata_tostring_fix, sign_entity_descriptor
from saml2.response import AuthnResponse
from saml2.saml import AuthnContextClassRef
from saml2.sigver import security_context

from signet.auth.federation import Asserted
from signet.auth.saml_metadata import MetadataRefused
from signet.auth.saml_metadata import verified as verified_metadata
from signet.config.identity import CBC_CIPHERS, GCM_CIPHERS, SamlProviderSettings
from signet.errors import ServiceUnavailable, SignetError

# How long a provider's loaded configuration (its IdP metadata above all) is reused.
_RELOAD_SECONDS = 3600
_LOCK = threading.Lock()
_CLIENTS: dict[tuple[str, str, str], tuple[float, Saml2Client, str]] = {}


class SamlRefused(SignetError):
    """A SAML Response that failed a check; the description names the check."""

    error, status = "access_denied", 403


@dataclass(frozen=True)
class Started:
    """An AuthnRequest on its way: where to send the browser, and the ID the Response must
    answer (InResponseTo)."""

    location: str
    request_id: str


def entity_id(settings: SamlProviderSettings, name: str, public_url: str) -> str:
    return settings.sp_entity_id or f"{public_url.rstrip('/')}/saml/{name}/metadata"


def acs_url(name: str, public_url: str) -> str:
    return f"{public_url.rstrip('/')}/saml/{name}/acs"


def _xmlsec() -> str:
    found = shutil.which("xmlsec1")
    if found is None:
        raise ServiceUnavailable("SAML login needs the xmlsec1 program (Debian package xmlsec1)")
    return found


def _config(
    settings: SamlProviderSettings, name: str, public_url: str, with_idp: bool = True
) -> SPConfig:
    # the IdP's metadata read (and its signature checked) by Signet, not by pysaml2
    metadata: dict[str, Any] = {"inline": [verified_metadata(settings)]} if with_idp else {}
    sp: dict[str, Any] = {
        "endpoints": {
            "assertion_consumer_service": [(acs_url(name, public_url), BINDING_HTTP_POST)]
        },
        "authn_requests_signed": True,
        "want_assertions_signed": settings.want_assertions_signed,
        "want_response_signed": settings.want_response_signed,
        # one of the two at least, whatever the settings say: an unsigned message is no login
        "want_assertions_or_response_signed": True,
        # the browser round trip carries the OAuth page's ticket: a Response nobody asked for
        # has nothing to continue
        "allow_unsolicited": False,
        "name_id_format_allow_create": True,
    }
    if settings.requested_contexts:
        sp["requested_authn_context"] = {
            "authn_context_class_ref": list(settings.requested_contexts),
            "comparison": "exact",
        }
    config = SPConfig()
    config.load(
        {
            "entityid": entity_id(settings, name, public_url),
            "key_file": settings.sp_key_file,
            "cert_file": settings.sp_cert_file,
            "encryption_keypairs": [
                dict(zip(("key_file", "cert_file"), settings.encryption_pair, strict=True))
            ],
            "xmlsec_binary": _xmlsec(),
            "metadata": metadata,
            "service": {"sp": sp},
            "accepted_time_diff": settings.max_skew_seconds,
            "allow_unknown_attributes": True,
            # attribute names as the IdP sent them (no converter renames them)
            "attribute_map_dir": None,
            "signing_algorithm": xmldsig.SIG_RSA_SHA256,
            "digest_algorithm": xmldsig.DIGEST_SHA256,
        }
    )
    return config


def _idp(client: Saml2Client, settings: SamlProviderSettings) -> str:
    """The IdP's entity ID: the configured one, or the only IdP the metadata describes."""
    known = list(client.metadata.identity_providers())
    if settings.idp_entity_id is not None:
        if settings.idp_entity_id not in known:
            raise ServiceUnavailable(
                f"The IdP metadata does not describe {settings.idp_entity_id!r}"
            )
        return settings.idp_entity_id
    if len(known) != 1:
        raise ServiceUnavailable(
            f"The IdP metadata describes {len(known)} identity providers; set idp_entity_id"
        )
    return known[0]


def client(settings: SamlProviderSettings, name: str, public_url: str) -> tuple[Saml2Client, str]:
    """The provider's pysaml2 client and its IdP's entity ID (metadata reloaded hourly)."""
    key = (name, public_url, settings.model_dump_json())
    now = time.monotonic()
    with _LOCK:
        cached = _CLIENTS.get(key)
        if cached is not None and now - cached[0] < _RELOAD_SECONDS:
            return cached[1], cached[2]
    try:
        made = Saml2Client(config=_config(settings, name, public_url))
    except (OSError, saml2.SAMLError, ValueError, MetadataRefused) as exc:
        detail = exc.description if isinstance(exc, MetadataRefused) else exc
        raise ServiceUnavailable(f"The SAML provider {name!r} cannot be loaded: {detail}") from None
    idp = _idp(made, settings)
    with _LOCK:
        _CLIENTS[key] = (now, made, idp)
    return made, idp


def metadata(settings: SamlProviderSettings, name: str, public_url: str, sign: bool) -> str:
    """The SP's metadata (entity ID, the ACS over HTTP-POST, the signing certificate, signed
    requests and assertions wanted), signed with the SP key when `sign`. The IdP's own
    metadata is not needed for it."""
    try:
        config = _config(settings, name, public_url, with_idp=False)
        descriptor = entity_descriptor(config)
        # pysaml2 lists every algorithm xmlsec1 knows (MD5, SHA-1 among them): Signet
        # advertises none rather than those it refuses
        descriptor.extensions = None
        # the ciphers an IdP may encrypt assertions with, best first (SAML metadata 2.4.1.1)
        for key in descriptor.spsso_descriptor.key_descriptor:
            if key.use == "encryption":
                key.encryption_method = [
                    md.EncryptionMethod(algorithm=a)
                    for a in sorted(settings.assertion_ciphers, key=_cipher_rank)
                ] + [md.EncryptionMethod(algorithm=a) for a in _KEY_TRANSPORT]
        if not sign:
            xml = metadata_tostring_fix(descriptor, {"xs": "http://www.w3.org/2001/XMLSchema"})
        else:
            _, xml = sign_entity_descriptor(
                descriptor,
                None,
                security_context(config),
                xmldsig.SIG_RSA_SHA256,
                xmldsig.DIGEST_SHA256,
            )
    except (OSError, saml2.SAMLError, ValueError) as exc:
        raise ServiceUnavailable(f"No SP metadata for {name!r}: {exc}") from None
    return xml.decode() if isinstance(xml, bytes) else str(xml)


def start(
    settings: SamlProviderSettings,
    name: str,
    public_url: str,
    relay_state: str,
    *,
    contexts: list[str] | None = None,
) -> Started:
    """A signed AuthnRequest over HTTP-Redirect (SigAlg rsa-sha256), asking for the
    configured contexts — or, for a step-up, for `contexts` with ForceAuthn (she logs in
    again, not with the session the IdP holds); the browser goes to `location`."""
    sp, idp = client(settings, name, public_url)
    extra: dict[str, Any] = {}
    asked = settings.requested_contexts if contexts is None else contexts
    if asked:
        extra["requested_authn_context"] = samlp.RequestedAuthnContext(
            authn_context_class_ref=[AuthnContextClassRef(c) for c in asked],
            comparison="exact",
        )
    if contexts is not None:
        extra["force_authn"] = "true"
    try:
        request_id, info = sp.prepare_for_authenticate(
            entityid=idp,
            relay_state=relay_state,
            binding=BINDING_HTTP_REDIRECT,
            sign=True,
            sigalg=xmldsig.SIG_RSA_SHA256,
            digest_alg=xmldsig.DIGEST_SHA256,
            **extra,
        )
    except (saml2.SAMLError, ValueError, OSError) as exc:
        raise ServiceUnavailable(f"No AuthnRequest for {name!r}: {exc}") from None
    return Started(dict(info["headers"])["Location"], str(request_id))


# pysaml2's own failures, by exception class name, as the check they stand for.
_FAILED_CHECKS = {
    "SignatureError": "signature: the Response or Assertion signature does not verify",
    "IncorrectlySigned": "signature: the Response signature does not verify",
    "MissingKey": "signature: no IdP key in the metadata verifies it",
    "UnsolicitedResponse": "InResponseTo: the Response answers no request Signet sent",
    "ResponseLifetimeExceed": "NotOnOrAfter: the assertion has expired",
    "ToEarly": "NotBefore: the assertion is not valid yet",
    "InvalidAssertion": "Assertion: not exactly one assertion in the Response",
    "DecryptionFailed": "EncryptedAssertion: cannot be decrypted",
}
_MAX_RESPONSE = 256 * 1024


_DSIG = "{http://www.w3.org/2000/09/xmldsig#}"
# What a signature may be made with: SHA-2 digests, RSA (PKCS#1 v1.5 or PSS) or ECDSA over them.
_ALLOWED = {
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1",
    "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1",
    "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
}


_XENC = "{http://www.w3.org/2001/04/xmlenc#}"
_ASSERTION = "{urn:oasis:names:tc:SAML:2.0:assertion}"
# How an assertion's AES key may travel: RSA-OAEP only (never RSA PKCS#1 v1.5, Bleichenbacher).
_KEY_TRANSPORT = (
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
)
# The digests OAEP may use inside RSA-OAEP key transport (SHA-1 is sound there).
_OAEP_DIGESTS = {
    "http://www.w3.org/2000/09/xmldsig#sha1",
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
}


def _cipher_rank(uri: str) -> int:
    """GCM before CBC, the longer key first."""
    return (GCM_CIPHERS[::-1] + CBC_CIPHERS[::-1]).index(uri)


def _algorithms_allowed(posted: str, settings: SamlProviderSettings) -> bool:
    """Refuse, before any signature is checked or anything decrypted, a Response signed or
    digested with anything but SHA-2 (no MD5, no SHA-1), an assertion encrypted with a cipher
    or key transport the provider does not admit, and a plain assertion where encrypted ones
    are wanted. True when the Response carries an encrypted assertion."""
    try:
        root = etree.fromstring(
            base64.b64decode(posted),
            etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False),
        )
    except (ValueError, etree.XMLSyntaxError):
        raise _refuse("SAMLResponse: not base64-encoded XML") from None
    for tag in ("SignatureMethod", "DigestMethod"):
        for element in root.iter(f"{_DSIG}{tag}"):
            algorithm = element.get("Algorithm")
            if element.getparent() is not None and element.getparent().tag == (
                f"{_XENC}EncryptionMethod"
            ):
                if algorithm not in _OAEP_DIGESTS:  # RSA-OAEP's own digest, not a signature's
                    raise _refuse(f"EncryptedAssertion: OAEP digest {algorithm!r} is not allowed")
            elif algorithm not in _ALLOWED:
                raise _refuse(f"signature: {tag} {algorithm!r} is not allowed")
    for method in root.iter(f"{_XENC}EncryptionMethod"):
        algorithm = method.get("Algorithm")
        parent = method.getparent()
        if parent is not None and parent.tag == f"{_XENC}EncryptedKey":
            allowed: tuple[str, ...] | list[str] = _KEY_TRANSPORT
        else:
            allowed = settings.assertion_ciphers
        if algorithm not in allowed:
            raise _refuse(f"EncryptedAssertion: {algorithm!r} is not an admitted algorithm")
    if settings.want_assertions_encrypted and root.find(f"{_ASSERTION}Assertion") is not None:
        raise _refuse("EncryptedAssertion: the assertion is not encrypted")
    return root.find(f"{_ASSERTION}EncryptedAssertion") is not None


def _signatures_allowed(resp: AuthnResponse) -> None:
    """The same SHA-2 rule on the signatures pysaml2 verified, the decrypted assertion's
    included (hidden from the check above while it was encrypted)."""
    for element in (resp.response, resp.assertion):
        signature = getattr(element, "signature", None)
        if signature is None or signature.signed_info is None:
            continue
        info = signature.signed_info
        used = [info.signature_method.algorithm if info.signature_method else None]
        used += [r.digest_method.algorithm if r.digest_method else None for r in info.reference]
        for algorithm in used:
            if algorithm not in _ALLOWED:
                raise _refuse(f"signature: {algorithm!r} is not allowed")


def _refuse(check: str) -> SamlRefused:
    return SamlRefused(f"The identity provider's SAML Response failed a check: {check}")


def _explain(exc: Exception) -> str:
    kind = type(exc).__name__
    if kind in _FAILED_CHECKS:
        return _FAILED_CHECKS[kind]
    text = str(exc)
    if isinstance(exc, saml2.response.StatusError):
        return f"Status: the IdP answered {kind.removeprefix('Status')} ({text[:120]})"
    if "AudienceRestriction" in text:
        return "Audience: the assertion is for another service provider"
    if "recipient" in text.lower():
        return "Recipient: the subject confirmation is for another address"
    if "subject confirmation" in text.lower() or "Came from" in text or "recall" in text:
        return "SubjectConfirmation: no bearer confirmation for this request"
    return f"{kind}: {text[:160]}"


def _epoch(value: str | None) -> int | None:
    if not value:
        return None
    return calendar.timegm(time_util.str_to_time(value))


def _attributes(assertion: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for statement in assertion.attribute_statement or ():
        for attribute in statement.attribute or ():
            values = [v.text or "" for v in attribute.attribute_value or ()]
            found.setdefault(attribute.name, []).extend(values)
    return found


def _check(
    resp: AuthnResponse, idp: str, sp_entity: str, acs: str, request_id: str, skew: int
) -> tuple[Any, int]:
    """Signet's own checks on what pysaml2 verified: Issuer, Destination, InResponseTo,
    Audience, times and the bearer SubjectConfirmation; the assertion and its expiry."""
    response, assertion = resp.response, resp.assertion
    if response.issuer is not None and response.issuer.text != idp:
        raise _refuse(f"Issuer: the Response comes from {response.issuer.text!r}, not {idp!r}")
    if assertion is None or assertion.issuer is None or assertion.issuer.text != idp:
        raise _refuse(f"Issuer: the assertion is not issued by {idp!r}")
    if response.destination is not None and response.destination != acs:
        raise _refuse(f"Destination: the Response is for {response.destination!r}")
    if response.in_response_to != request_id:
        raise _refuse("InResponseTo: the Response answers another request")
    conditions = assertion.conditions
    audiences = [
        a.text for r in (conditions.audience_restriction if conditions else ()) for a in r.audience
    ]
    if sp_entity not in audiences:
        raise _refuse("Audience: the assertion is for another service provider")
    now = time.time()
    ends = [_epoch(conditions.not_on_or_after)] if conditions else []
    bearer = [
        sc.subject_confirmation_data
        for sc in assertion.subject.subject_confirmation
        if sc.method == "urn:oasis:names:tc:SAML:2.0:cm:bearer" and sc.subject_confirmation_data
    ]
    if not bearer:
        raise _refuse("SubjectConfirmation: no bearer confirmation")
    for data in bearer:
        if data.recipient != acs:
            raise _refuse("Recipient: the subject confirmation is for another address")
        if data.in_response_to != request_id:
            raise _refuse("InResponseTo: the subject confirmation answers another request")
        ends.append(_epoch(data.not_on_or_after))
    limits = [end for end in ends if end is not None]
    if not limits:
        raise _refuse("NotOnOrAfter: the assertion states no end of validity")
    if min(limits) + skew <= now:
        raise _refuse("NotOnOrAfter: the assertion has expired")
    start = _epoch(conditions.not_before) if conditions else None
    if start is not None and start - skew > now:
        raise _refuse("NotBefore: the assertion is not valid yet")
    return assertion, min(limits)


def verify(
    settings: SamlProviderSettings,
    name: str,
    public_url: str,
    posted: str,
    request_id: str,
) -> Asserted:
    """The assertion of a Response posted to the ACS (the form's SAMLResponse), once every
    check passed: signatures as the settings want them, Issuer, Destination and Recipient
    (this ACS), InResponseTo (`request_id`, the request this browser was sent with),
    Audience (this SP), NotBefore/NotOnOrAfter within the allowed skew."""
    if not posted or len(posted) > _MAX_RESPONSE:
        raise _refuse("SAMLResponse: missing or too large")
    encrypted = _algorithms_allowed(posted, settings)
    sp, idp = client(settings, name, public_url)
    acs = acs_url(name, public_url)
    try:
        resp = sp.parse_authn_request_response(
            posted, BINDING_HTTP_POST, outstanding={request_id: "signet"}
        )
    except Exception as exc:  # pysaml2 raises bare Exceptions for some checks
        raise _refuse(_explain(exc)) from None
    if resp is None:
        raise _refuse("Destination, InResponseTo or IssueInstant: the Response is not for this SP")
    if encrypted and resp.assertion is None:  # pysaml2 logs a failed decryption and goes on
        raise _refuse("EncryptedAssertion: cannot be decrypted with the SP's encryption key")
    if resp.name_id is not None:  # pysaml2 remembers each subject in memory: Signet does not
        with contextlib.suppress(KeyError):
            sp.users.remove_person(resp.name_id)
    _signatures_allowed(resp)
    assertion, valid_until = _check(
        resp, idp, entity_id(settings, name, public_url), acs, request_id, settings.max_skew_seconds
    )
    subject = assertion.subject.name_id
    if subject is None or not subject.text:
        raise _refuse("NameID: the assertion names no subject")
    context, instant = None, None
    if assertion.authn_statement:
        statement = assertion.authn_statement[0]
        instant = _epoch(statement.authn_instant)
        ref = statement.authn_context.authn_context_class_ref if statement.authn_context else None
        context = ref.text.strip() if ref is not None and ref.text else None
    return Asserted(
        provider=name,
        subject=subject.text.strip(),
        claims=_attributes(assertion),
        context=context,
        authenticated_at=instant,
        one_time=str(assertion.id),
        valid_until=valid_until,
    )
