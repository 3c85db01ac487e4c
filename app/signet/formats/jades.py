"""JAdES baseline signatures (ETSI TS 119 182-1), compact or JSON serialisation, with jwcrypto.

jwcrypto assembles and signs the JWS through a public-key JWK whose private operation is the
remote key. Unsigned properties go in the ``etsiU`` unprotected header as base64url-encoded
JSON objects (so the archive time-stamp needs no JSON canonicalisation): ``sigTst`` (B-T),
``xVals`` and ``rVals`` (B-LT), ``arcTst`` (B-LTA). The compact serialisation has no
unprotected header, so TS 119 182-1 allows it for B-B only.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

from asn1crypto import cms
from jwcrypto.common import JWException, JWSEHeaderParameter
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from signet.algorithms import CURVE_BY_ASN1_NAME, HASHES
from signet.formats._io import CHUNK_SIZE, Source, open_source, read_source, stream_digest
from signet.formats.errors import FormatError
from signet.formats.keys import EcKeyAdapter, RemoteKey, RsaKeyAdapter, key_adapter
from signet.formats.levels import Level, parse_level
from signet.formats.names import document_uri
from signet.formats.services import (
    ServicesConfig,
    ValidationDataCollector,
    make_timestamper,
)

OBJECT_ID_BY_URI_HASH = "http://uri.etsi.org/19182/ObjectIdByURIHash"
PACKAGINGS = ("attached", "detached")
SERIALIZATIONS = ("compact", "json")

# JAdES header parameters that must be understood (they are listed in "crit"); a verifier
# using jwcrypto passes this registry too.
JADES_HEADER_REGISTRY = {
    "sigT": JWSEHeaderParameter("Claimed signing time", True, True, None),
    "sigD": JWSEHeaderParameter("Signed data objects", True, True, None),
}

_ALG_PREFIX = {"pkcs1v15": "RS", "pss": "PS", "ecdsa": "ES"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _RemoteJWK(JWK):
    """A public JWK whose 'private key' for signing is the remote-key adapter."""

    def _get_private_key(self, arg: Any = None) -> Any:
        return self._signet_adapter


def _jwk_for(adapter: RsaKeyAdapter | EcKeyAdapter) -> JWK:
    jwk = _RemoteJWK.from_pyca(adapter.public_key())
    jwk._signet_adapter = adapter
    return jwk


def jws_algorithm(key: RemoteKey, hash_name: str, scheme: str) -> str:
    if hash_name not in HASHES:
        raise FormatError(f"JAdES supports {', '.join(HASHES)}, not {hash_name!r}")
    curve = CURVE_BY_ASN1_NAME.get(key.curve or "")
    if scheme == "ecdsa" and (curve is None or curve.hash != hash_name):
        raise FormatError(
            f"JWS ties ECDSA hashes to curves: a {key.curve} key signs with "
            f"{curve.hash if curve else 'no supported hash'}, not {hash_name}"
        )
    return _ALG_PREFIX[scheme] + HASHES[hash_name].jws


def _signing_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _protected_header(
    key: RemoteKey,
    alg: str,
    *,
    mime_type: str | None,
    detached: tuple[str, str, bytes] | None,
) -> dict[str, Any]:
    header: dict[str, Any] = {
        "alg": alg,
        "x5t#S256": b64url(hashlib.sha256(key.certificate.dump()).digest()),
        "x5c": [_b64(cert.dump()) for cert in key.all_certificates],
        "sigT": _signing_time(),
    }
    crit = ["sigT"]
    if mime_type:
        header["cty"] = mime_type
    if detached is not None:
        name, hash_name, digest = detached
        header["sigD"] = {
            "mId": OBJECT_ID_BY_URI_HASH,
            "pars": [name],
            "hashM": "S" + HASHES[hash_name].jws,
            "hashV": [b64url(digest)],
        }
        if mime_type:
            header["sigD"]["ctys"] = [mime_type]
        crit.append("sigD")
    header["crit"] = crit
    return header


def _etsi_u_component(name: str, value: Any) -> str:
    return b64url(json.dumps({name: value}, separators=(",", ":")).encode())


def _tst_container(token: cms.ContentInfo) -> dict[str, Any]:
    return {"tstTokens": [{"val": _b64(token.dump())}]}


def _b64url_stream(source: Source) -> Iterator[bytes]:
    """base64url of a document, chunk by chunk (chunks are multiples of 3 bytes)."""
    size = CHUNK_SIZE - CHUNK_SIZE % 3
    with open_source(source) as stream:
        while chunk := stream.read(size):
            yield b64url(chunk).encode("ascii")


async def async_sign_jades(
    source: Source,
    out: IO[bytes],
    *,
    level: str | Level,
    key: RemoteKey,
    services: ServicesConfig | None = None,
    hash_algorithm: str = "sha256",
    scheme: str | None = None,
    packaging: str = "attached",
    serialization: str = "json",
    document_name: str | None = None,
    mime_type: str | None = None,
) -> None:
    """Write a JAdES signature to ``out``.

    ``attached`` carries the document as the (base64url) JWS payload, so it reads the document
    into memory once (jwcrypto builds the JWS whole); ``detached`` uses ``sigD`` with
    ObjectIdByURIHash over ``document_name`` (a file name, made a relative URI) and an empty
    payload, hashing the document in chunks. ``json`` writes the flattened JWS JSON
    serialisation.
    """
    level = parse_level(level)
    if packaging not in PACKAGINGS:
        raise FormatError(f"JAdES packaging {packaging!r} is not one of {', '.join(PACKAGINGS)}")
    if serialization not in SERIALIZATIONS:
        raise FormatError(f"JAdES serialisation {serialization!r} is not compact or json")
    if serialization == "compact" and level is not Level.B_B:
        raise FormatError(
            f"JAdES {level.value} needs the etsiU unprotected header, which the compact "
            "serialisation cannot carry (TS 119 182-1): use serialization='json'"
        )
    services = services or ServicesConfig()
    scheme = key.resolve_scheme(scheme)
    alg = jws_algorithm(key, hash_algorithm, scheme)
    timestamper = make_timestamper(services, level.value) if level.at_least(Level.B_T) else None

    detached = None
    payload = b""
    if packaging == "detached":
        if not document_name:
            raise FormatError("a detached JAdES signature needs document_name (the sigD URI)")
        with open_source(source) as stream:
            detached = (
                document_uri(document_name),
                hash_algorithm,
                stream_digest(stream, hash_algorithm),
            )
    else:
        payload = read_source(source)
    header = _protected_header(key, alg, mime_type=mime_type, detached=detached)

    collector = None
    if level.at_least(Level.B_LT):
        collector = await ValidationDataCollector.before_signing(key, services, timestamper)

    adapter = key_adapter(key)
    jws = JWS(payload, header_registry=JADES_HEADER_REGISTRY)
    try:
        jws.add_signature(_jwk_for(adapter), protected=json.dumps(header, separators=(",", ":")))
        if serialization == "compact":
            out.write(jws.serialize(compact=True).encode("ascii"))
            return
        document = json.loads(jws.serialize())
    except (JWException, ValueError) as exc:
        raise FormatError(f"JAdES signing failed: {exc}") from exc
    if detached is not None:
        # RFC 7515 appendix F: a detached payload is left out of the serialisation
        document.pop("payload", None)

    if timestamper is not None:
        signature_b64 = document["signature"]
        etsi_u: list[str] = []
        token = await timestamper.async_timestamp(
            hashlib.new(hash_algorithm, signature_b64.encode("ascii")).digest(), hash_algorithm
        )
        etsi_u.append(_etsi_u_component("sigTst", _tst_container(token)))
        if collector is not None:
            etsi_u.extend(await _validation_components(token, key, collector))
        if level is Level.B_LTA:
            hasher = hashlib.new(hash_algorithm)
            if detached is not None:
                for piece in _b64url_stream(source):
                    hasher.update(piece)
            else:
                hasher.update(document["payload"].encode("ascii"))
            hasher.update(b".")
            hasher.update(document["protected"].encode("ascii") + b".")
            hasher.update(signature_b64.encode("ascii") + b".")
            for component in etsi_u:
                hasher.update(component.encode("ascii"))
            archive_token = await timestamper.async_timestamp(hasher.digest(), hash_algorithm)
            etsi_u.append(_etsi_u_component("arcTst", _tst_container(archive_token)))
        document["header"] = {"etsiU": etsi_u}
    out.write(json.dumps(document, separators=(",", ":")).encode("ascii"))


async def _validation_components(
    token: cms.ContentInfo, key: RemoteKey, collector: ValidationDataCollector
) -> list[str]:
    data = await collector.result_after(token)
    in_x5c = {c.dump() for c in key.all_certificates}
    x_vals = [
        {"x509Cert": {"val": _b64(cert.dump())}}
        for cert in data.certificates
        if cert.dump() not in in_x5c
    ]
    r_vals: dict[str, Any] = {}
    if data.crls:
        r_vals["crlVals"] = [{"val": _b64(crl.dump())} for crl in data.crls]
    if data.ocsp_responses:
        r_vals["ocspVals"] = [{"val": _b64(resp.dump())} for resp in data.ocsp_responses]
    components = []
    if x_vals:
        components.append(_etsi_u_component("xVals", x_vals))
    components.append(_etsi_u_component("rVals", r_vals))
    return components
