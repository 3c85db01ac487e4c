"""The Cloud Signature Consortium API: v2 (2.0.0.2) under /csc/v2 and v1 (1.0.4) under /csc/v1.

Views parse and validate, call one use case, and shape the answer for the API version."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import pybase64
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.wsgi import ClosingIterator, wrap_file

from signet.algorithms import CURVES, SIGNATURE_ALGORITHMS
from signet.auth.tokens import Principal
from signet.errors import InvalidRequest, InvalidToken, MethodNotImplemented, NotAcceptable
from signet.signing import Services, sessions, sign_doc, sign_hash
from signet.signing import csc as usecases
from signet.web import multipart, spool
from signet.web.jsonbody import check_complete, parse_json_object
from signet.web.openapi import describe

V1_METHODS = [
    "info",
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "credentials/extendTransaction",
    "credentials/sendOTP",
    "signatures/signHash",
]
V2_METHODS = [*V1_METHODS, "signatures/signDoc"]
TIMESTAMP = "signatures/timestamp"  # offered when a TSA is configured (formats.tsa_url)
# Methods the specification names that Signet does not offer: 501 with a CSC error, as the
# specification answers a method an RSSP does not implement (the OAuth 2.0 ones live outside
# /csc/v2; none is served).
NOT_OFFERED = {
    "v1": [],
    "v2": ["credentials/authorizeCheck", "credentials/getChallenge", "signatures/signPolling"],
}
B64_CHUNK = 3 * 256 * 1024  # signDoc answers are base64-encoded this many bytes at a time


def services() -> Services:
    return current_app.extensions["signet"]  # type: ignore[no-any-return]


# -- request parsing ------------------------------------------------------------------------
def body() -> dict[str, Any]:
    data = request.get_data(cache=True)
    check_complete(len(data), request.content_length)
    return parse_json_object(data)


def string(data: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidRequest(f"Missing (or invalid type) string parameter {name}")
    return value


def integer(data: dict[str, Any], name: str, *, default: int | None = None) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"Missing (or invalid type) integer parameter {name}")
    return value


def boolean(data: dict[str, Any], name: str, default: bool) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"Invalid type for boolean parameter {name}")
    return value


def hash_list(data: dict[str, Any], name: str, *, required: bool) -> list[str]:
    value = data.get(name)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise InvalidRequest(f"Missing (or invalid type) array parameter {name}")
    return value


def choice(data: dict[str, Any], name: str, options: tuple[str, ...], default: str) -> str:
    value = data.get(name, default)
    if value not in options:
        raise InvalidRequest(f"Invalid parameter {name}: use one of {', '.join(options)}")
    return str(value)


_PAGE_TOKEN = re.compile(rb"after:([0-9]{1,9})")


def page(data: dict[str, Any], items: list[Any]) -> tuple[list[Any], str | None]:
    """credentials/list pagination: at most `maxResults` items from where `pageToken` (a
    token this service gave as `nextPageToken`) says, and the token for the rest, if any."""
    limit = data.get("maxResults")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidRequest("Invalid parameter maxResults: a positive integer is expected")
    token = data.get("pageToken")
    start = 0
    if token is not None:
        try:
            decoded = base64.urlsafe_b64decode(str(token).encode("ascii"))
        except ValueError:  # not ASCII, not base64
            decoded = b""
        found = _PAGE_TOKEN.fullmatch(decoded)
        if not isinstance(token, str) or not found or int(found[1]) > len(items):
            raise InvalidRequest("Invalid parameter pageToken")
        start = int(found[1])
    end = len(items) if limit is None else min(start + limit, len(items))
    following = (
        base64.urlsafe_b64encode(f"after:{end}".encode()).decode() if end < len(items) else None
    )
    return items[start:end], following


def bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken(
            "Missing or invalid Authorization header: a Bearer access token is required"
        )
    return token.strip()


def authenticated(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        token = bearer()
        g.principal = sessions.authenticate(services(), token)
        g.token = token
        return view(*args, **kwargs)

    wrapper.__name__ = view.__name__
    return wrapper


def claimed(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    """`authenticated` for signHash: the token's claims verified here, its database state
    read by the signing transaction with the credential (one round trip less)."""

    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        g.caller = sessions.claimed(services(), bearer())
        return view(*args, **kwargs)

    wrapper.__name__ = view.__name__
    return wrapper


def principal() -> Principal:
    return g.principal  # type: ignore[no-any-return]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def generalized(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%SZ")


# -- shared views ---------------------------------------------------------------------------
def offered_methods(version: str) -> list[str]:
    """The methods info lists: those that work here, with this configuration."""
    methods = list(V2_METHODS if version == "v2" else V1_METHODS)
    if services().settings.formats.tsa_url:
        methods.append(TIMESTAMP)
    return methods


def not_offered(method: str) -> Callable[[], ResponseReturnValue]:
    def view() -> ResponseReturnValue:
        raise MethodNotImplemented(
            f"{method} is not implemented by this service; info lists the methods it offers"
        )

    return view


def info_view(version: str) -> ResponseReturnValue:
    body()
    settings = services().settings.web
    algos = sorted(SIGNATURE_ALGORITHMS)
    return jsonify(
        {
            "specs": "2.0.0.2" if version == "v2" else "1.0.4.0",
            "name": settings.name,
            "logo": (settings.base_url or request.host_url.rstrip("/")) + "/docs",
            "region": settings.region,
            "lang": settings.lang,
            "description": "Signet remote signing service",
            "authType": ["basic"],
            "methods": offered_methods(version),
            **(
                {
                    "signAlgorithms": {"algos": algos},
                    "signature_formats": {
                        "formats": ["C", "X", "P", "J"],
                        "envelope_properties": [
                            ["Detached", "Attached"],
                            ["Enveloped", "Enveloping", "Detached"],
                            ["Enveloped"],
                            ["Attached", "Detached"],
                        ],
                    },
                    "conformance_levels": sign_doc.offered_levels(services()),
                }
                if version == "v2"
                else {}
            ),
        }
    )


def labels(data: dict[str, Any]) -> list[str]:
    """signet_labels (a Signet extension): the names of the documents the hashes are of."""
    value = data.get("signet_labels", [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest("Invalid type for array parameter signet_labels: strings expected")
    return value


@authenticated
def send_otp_view() -> ResponseReturnValue:
    data = body()
    v1_api = request.blueprint == "csc_v1"
    count = data.get("numSignatures")
    usecases.send_otp(
        services(),
        principal(),
        string(data, "credentialID"),
        hashes=hash_list(data, "hash" if v1_api else "hashes", required=False),
        hash_oid=None if v1_api else string(data, "hashAlgorithmOID", required=False),
        num_signatures=None if count is None else integer(data, "numSignatures"),
        description=string(data, "description", required=False),
        labels=labels(data),
    )
    return Response(status=204)


def certificates_of(info: usecases.CredentialInfo, which: str) -> list[str]:
    if which == "none":
        return []
    ders = info.certificates if which == "chain" else info.certificates[:1]
    return [b64(d) for d in ders]


def cert_block(info: usecases.CredentialInfo, which: str, cert_info: bool) -> dict[str, Any]:
    block: dict[str, Any] = {"status": info.cert_status}
    if which != "none":
        block["certificates"] = certificates_of(info, which)
    if cert_info:
        block.update(
            issuerDN=info.issuer,
            serialNumber=info.serial,
            subjectDN=info.subject,
            validFrom=generalized(info.valid_from),
            validTo=generalized(info.valid_to),
        )
    return block


def key_block(info: usecases.CredentialInfo) -> dict[str, Any]:
    key: dict[str, Any] = {
        "status": "enabled" if info.key_enabled else "disabled",
        "algo": info.algorithms,
        "len": info.key_size,
    }
    if info.curve:
        key["curve"] = CURVES[info.curve].oid
    return key


def info_v2(
    info: usecases.CredentialInfo, which: str, cert_info: bool, auth_info: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": info.description or "",
        "key": key_block(info),
        "cert": cert_block(info, which, cert_info),
    }
    if auth_info:
        factor = (
            {
                "type": "Password",
                "id": "PIN",
                "format": "N",
                "label": "PIN",
                "description": "The credential's PIN",
            }
            if info.activation == "pin"
            else {
                "type": "OTP",
                "id": "OTP",
                "format": "N",
                "label": "OTP",
                "generator": "email",
                "description": "One-time code sent by e-mail (credentials/sendOTP)",
            }
        )
        out["auth"] = {"mode": "explicit", "expression": factor["id"], "objects": [factor]}
    # The specification's tables name the field SCAL (docs/csc.md)
    out.update(SCAL=info.scal, multisign=info.multisign, lang=services().settings.web.lang)
    return out


def info_v1(info: usecases.CredentialInfo, which: str, cert_info: bool) -> dict[str, Any]:
    pin = info.activation == "pin"
    return {
        "description": info.description or "",
        "key": key_block(info),
        "cert": cert_block(info, which, cert_info),
        "authMode": "explicit",
        "PIN": {"presence": "true" if pin else "false", "format": "N", "label": "PIN"},
        "OTP": {
            "presence": "false" if pin else "true",
            "type": "online",
            "ID": "email",
            "provider": "Signet",
            "format": "N",
            "label": "OTP",
        },
        "SCAL": info.scal,
        "multisign": info.multisign,
        "lang": services().settings.web.lang,
    }


# -- v2 -------------------------------------------------------------------------------------
v2 = Blueprint("csc_v2", __name__, url_prefix="/csc/v2")


@v2.post("/info")
def v2_info() -> ResponseReturnValue:
    return info_view("v2")


v2.add_url_rule("/credentials/sendOTP", "send_otp", send_otp_view, methods=["POST"])


@v2.post("/credentials/list")
@authenticated
def v2_list() -> ResponseReturnValue:
    data = body()
    with_info = boolean(data, "credentialInfo", False)
    which = choice(data, "certificates", ("none", "single", "chain"), "single")
    cert_info = boolean(data, "certInfo", False)
    auth_info = boolean(data, "authInfo", False)
    only_valid = boolean(data, "onlyValid", False)
    infos, following = page(
        data,
        usecases.list_credentials(
            services(),
            principal(),
            only_valid=only_valid,
            user_id=string(data, "userID", required=False),
        ),
    )
    out: dict[str, Any] = {"credentialIDs": [i.credential_id for i in infos]}
    if following:
        out["nextPageToken"] = following
    if with_info:
        out["credentialInfos"] = [
            {"credentialID": i.credential_id, **info_v2(i, which, cert_info, auth_info)}
            for i in infos
        ]
    if only_valid:
        out["onlyValid"] = True
    return jsonify(out)


@v2.post("/credentials/info")
@authenticated
def v2_credential_info() -> ResponseReturnValue:
    data = body()
    which = choice(data, "certificates", ("none", "single", "chain"), "single")
    cert_info = boolean(data, "certInfo", False)
    auth_info = boolean(data, "authInfo", False)
    info = usecases.credential_info(services(), principal(), string(data, "credentialID"))
    return jsonify(info_v2(info, which, cert_info, auth_info))


def _auth_data(data: dict[str, Any]) -> dict[str, str]:
    items = data.get("authData", [])
    if not isinstance(items, list):
        raise InvalidRequest("Invalid type for array parameter authData")
    values: dict[str, str] = {}
    for item in items:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("id"), str)
            or not isinstance(item.get("value"), str)
        ):
            raise InvalidRequest('Invalid parameter authData: items are {"id", "value"}')
        values[item["id"]] = item["value"]
    return values


@v2.post("/credentials/authorize")
@authenticated
def v2_authorize() -> ResponseReturnValue:
    data = body()
    factors = _auth_data(data)
    sad, expires = usecases.authorize(
        services(),
        principal(),
        credential_id=string(data, "credentialID"),
        num_signatures=integer(data, "numSignatures"),
        hashes=hash_list(data, "hashes", required=False),
        hash_oid=string(data, "hashAlgorithmOID", required=False),
        pin=factors.get("PIN"),
        otp=factors.get("OTP"),
        description=string(data, "description", required=False),
        labels=labels(data),
    )
    return jsonify({"SAD": sad, "expiresIn": expires})


@v2.post("/credentials/extendTransaction")
@authenticated
def v2_extend() -> ResponseReturnValue:
    data = body()
    sad, expires = usecases.extend_transaction(
        services(),
        principal(),
        credential_id=string(data, "credentialID"),
        sad=string(data, "SAD"),
        hashes=hash_list(data, "hashes", required=False),
        hash_oid=string(data, "hashAlgorithmOID", required=False),
    )
    return jsonify({"SAD": sad, "expiresIn": expires})


@v2.post("/signatures/signHash")
@claimed
def v2_sign_hash() -> ResponseReturnValue:
    data = body()
    mode = choice(data, "operationMode", ("S", "A"), "S")
    if mode == "A":
        raise InvalidRequest(
            "Invalid parameter operationMode: only synchronous (S) signing is offered"
        )
    signatures = sign_hash.sign_hash(
        services(),
        g.caller,
        credential_id=string(data, "credentialID"),
        sad=string(data, "SAD"),
        hashes=hash_list(data, "hashes", required=True),
        hash_oid=string(data, "hashAlgorithmOID", required=False),
        sign_algo=string(data, "signAlgo") or "",
        sign_algo_params=string(data, "signAlgoParams", required=False),
    )
    return jsonify({"signatures": [b64(s) for s in signatures]})


def _document(entry: dict[str, Any], spooled: spool.SpooledJson) -> bytes | sign_doc.DocumentFile:
    document = string(entry, "document") or ""
    long = spooled.spooled(document)
    if long is not None:
        if not long.valid:
            raise InvalidRequest("Invalid parameter document: not base64")
        return sign_doc.DocumentFile(
            long.file, long.size, give_up=long.give_up, hash_states={"sha256": long.hash_state}
        )
    try:
        return base64.b64decode(document, validate=True)
    except ValueError:
        raise InvalidRequest("Invalid parameter document: not base64") from None


def _jobs(data: dict[str, Any], spooled: spool.SpooledJson) -> list[sign_doc.DocumentJob]:
    jobs: list[sign_doc.DocumentJob] = []
    for name in ("documents", "documentDigests"):
        entries = data.get(name)
        if entries is None:
            continue
        if not isinstance(entries, list) or not entries:
            raise InvalidRequest(f"Invalid type for array parameter {name}")
        for entry in entries:
            if not isinstance(entry, dict):
                raise InvalidRequest(f"Invalid parameter {name}: items are JSON objects")
            common: dict[str, Any] = {
                "format": string(entry, "signature_format") or "",
                "level": string(entry, "conformance_level", required=False) or "Ades-B-B",
                "packaging": string(entry, "signed_envelope_property", required=False),
                "sign_algo": string(entry, "signAlgo") or "",
                "sign_algo_params": string(entry, "signAlgoParams", required=False),
            }
            if name == "documents":
                jobs.append(
                    sign_doc.DocumentJob(
                        **common,
                        document=_document(entry, spooled),
                        document_name=string(entry, sign_doc.DOCUMENT_NAME, required=False),
                    )
                )
            else:
                oid = string(entry, "hashAlgorithmOID")
                for value in hash_list(entry, "hashes", required=True):
                    try:
                        digest = base64.b64decode(value, validate=True)
                    except ValueError:
                        raise InvalidRequest("Invalid parameter hashes: not base64") from None
                    jobs.append(sign_doc.DocumentJob(**common, digest=digest, hash_oid=oid))
    return jobs


def _spooled_body() -> spool.SpooledJson:
    """The signDoc body, read as a stream: documents over 64 KiB (in JSON) and every document
    part (multipart/form-data) go to temporary files."""
    limit = services().settings.formats.max_document_mb * 2**20
    boundary = multipart.form_boundary(request.headers.get("Content-Type"))
    with closing(spool.request_chunks(request.environ, spool.body_limit(limit))) as chunks:
        if boundary is not None:
            spooled = multipart.read_form(chunks, boundary, max_document=limit)
        else:
            spooled = spool.scan(chunks, max_document=limit)
    try:
        if spooled.value is None:
            spooled.value = {}
        if not isinstance(spooled.value, dict):
            raise InvalidRequest("The request body must be a JSON object")
        misplaced = spooled.misplaced(spooled.value, ("documents", "document"))
        if misplaced:
            raise InvalidRequest(
                f"Invalid parameter {misplaced}: longer than {spool.SPOOL_THRESHOLD // 1024} KiB"
            )
    except BaseException:
        spooled.close()
        raise
    return spooled


OCTETS = "application/octet-stream"


def _answer_type(jobs: list[sign_doc.DocumentJob], appended: bool) -> str:
    """What the signDoc answer will be, from the Accept header: JSON with base64 (the
    default), multipart/mixed, or (one document only) the output's bytes alone. Decided before
    anything is signed, so that a request that cannot be answered spends no SAD."""
    wanted = request.accept_mimetypes.best_match(["application/json", multipart.MIXED, OCTETS])
    if wanted == OCTETS and len(jobs) > 1:
        raise NotAcceptable(
            f"Accept: {OCTETS} answers one document a request, not "
            f"{len(jobs)}: accept {multipart.MIXED} for several"
        )
    if appended and wanted not in (OCTETS, multipart.MIXED):
        raise NotAcceptable(
            f"{sign_doc.APPENDED} answers raw bytes, each output with a "
            f"{APPENDED_TO} header: accept {OCTETS} or {multipart.MIXED}"
        )
    return wanted or "application/json"


# The header that says an answer holds only what signing appended to the document, and after
# how many bytes of it (Signet extension, with the signDoc parameter signet_appended).
APPENDED_TO = "Signet-Appended-To"


@dataclass(frozen=True)
class _Sent:
    """The part of an output that is sent: ``size`` bytes from ``start``."""

    headers: dict[str, str]
    file: IO[bytes]
    start: int
    size: int


def _sent(output: sign_doc.SignedOutput, appended: bool) -> _Sent:
    kind = "SignatureObject" if output.detached else "DocumentWithSignature"
    headers = {"Content-Disposition": f'attachment; name="{kind}"'}
    start = output.unchanged if appended else 0
    if start:
        headers[APPENDED_TO] = str(start)
    return _Sent(headers, output.file, start, output.size - start)


def _answer(outputs: list[sign_doc.SignedOutput], answer_type: str, appended: bool) -> Response:
    if answer_type == OCTETS:
        (sent,) = (_sent(output, appended) for output in outputs)
        sent.file.seek(sent.start)
        # A file wrapper lets gunicorn send the file with sendfile(2), not through Python,
        # from where the file stands; closing it (when the answer is sent) deletes the
        # temporary file.
        response = Response(
            wrap_file(request.environ, sent.file, spool.READ_SIZE),
            mimetype=OCTETS,
            direct_passthrough=True,
        )
        response.headers.update(sent.headers)
        response.content_length = sent.size
        return response
    if answer_type != multipart.MIXED:
        return _streamed(outputs)
    parts = [
        _sent(output, appended)
        for detached in (False, True)
        for output in outputs
        if output.detached is detached
    ]
    for part in parts:
        part.headers["Content-Type"] = OCTETS
    mimetype, length, body = multipart.mixed(parts, read_size=spool.READ_SIZE)

    def close() -> None:
        for output in outputs:
            output.close()

    response = Response(ClosingIterator(body, close), direct_passthrough=True)
    response.headers["Content-Type"] = mimetype
    response.content_length = length
    return response


def _streamed(outputs: list[sign_doc.SignedOutput]) -> Response:
    """The signDoc answer, base64-encoded from the output files as it is sent; the files are
    deleted when the response closes. Bytes as jsonify would write them."""
    parts: list[bytes | sign_doc.SignedOutput] = [b"{"]
    for name, detached in (("DocumentWithSignature", False), ("SignatureObject", True)):
        group = [o for o in outputs if o.detached is detached]
        if not group:
            continue
        if len(parts) > 1:
            parts.append(b",")
        parts.append(f'"{name}":['.encode())
        for index, output in enumerate(group):
            parts.extend([b',"' if index else b'"', output, b'"'])
        parts.append(b"]")
    parts.append(b"}\n")
    length = sum(len(p) if isinstance(p, bytes) else -(-p.size // 3) * 4 for p in parts)

    def generate() -> Iterator[bytes]:
        for part in parts:
            if isinstance(part, bytes):
                yield part
                continue
            part.file.seek(0)
            while chunk := part.file.read(B64_CHUNK):
                yield pybase64.b64encode(chunk)  # SIMD: about twice binascii's speed

    def close() -> None:
        for output in outputs:
            output.close()

    # The server closes the iterable it was given; with direct_passthrough that is this one,
    # not the Response, so Response.call_on_close callbacks would never run.
    response = Response(
        ClosingIterator(generate(), close), mimetype="application/json", direct_passthrough=True
    )
    response.content_length = length
    return response


@v2.post("/signatures/signDoc")
@authenticated
def v2_sign_doc() -> ResponseReturnValue:
    with _spooled_body() as spooled:
        data = spooled.value
        mode = choice(data, "operationMode", ("S", "A"), "S")
        if mode == "A":
            raise InvalidRequest(
                "Invalid parameter operationMode: only synchronous (S) signing is offered"
            )
        if data.get("returnValidationInfo") not in (None, False):
            raise InvalidRequest(
                "Invalid parameter returnValidationInfo: validation info is "
                "embedded in the signatures from B-LT on, not returned apart"
            )
        jobs = _jobs(data, spooled)
        appended = boolean(data, sign_doc.APPENDED, False)
        answer_type = _answer_type(jobs, appended)
        outputs = sign_doc.sign_documents(
            services(),
            principal(),
            credential_id=string(data, "credentialID"),
            sad=string(data, "SAD"),
            jobs=jobs,
            appended=appended,
        )
    try:
        return _answer(outputs, answer_type, appended)
    except BaseException:
        for output in outputs:
            output.close()
        raise


def timestamp_view() -> ResponseReturnValue:
    data = body()  # a malformed body is a 400 whatever is offered
    if TIMESTAMP not in offered_methods("v2"):
        return not_offered(TIMESTAMP)()  # like the other methods not offered: before any token
    return _timestamp(data)


@authenticated
def _timestamp(data: dict[str, Any]) -> ResponseReturnValue:
    v1_api = request.blueprint == "csc_v1"
    token = sign_doc.timestamp(
        services(),
        principal(),
        hash_b64=data.get("hash"),
        hash_oid=data.get("hashAlgo" if v1_api else "hashAlgorithmOID"),
        nonce=data.get("nonce"),
    )
    return jsonify({"timestamp": b64(token)})


# -- v1 -------------------------------------------------------------------------------------
v1 = Blueprint("csc_v1", __name__, url_prefix="/csc/v1")


@v1.post("/info")
def v1_info() -> ResponseReturnValue:
    return info_view("v1")


v1.add_url_rule("/credentials/sendOTP", "send_otp", send_otp_view, methods=["POST"])


@v1.post("/credentials/list")
@authenticated
def v1_list() -> ResponseReturnValue:
    data = body()
    infos, following = page(
        data,
        usecases.list_credentials(
            services(), principal(), user_id=string(data, "userID", required=False)
        ),
    )
    out: dict[str, Any] = {"credentialIDs": [i.credential_id for i in infos]}
    if following:
        out["nextPageToken"] = following
    return jsonify(out)


@v1.post("/credentials/info")
@authenticated
def v1_credential_info() -> ResponseReturnValue:
    data = body()
    which = choice(data, "certificates", ("none", "single", "chain"), "single")
    cert_info = boolean(data, "certInfo", False)
    info = usecases.credential_info(services(), principal(), string(data, "credentialID"))
    return jsonify(info_v1(info, which, cert_info))


@v1.post("/credentials/authorize")
@authenticated
def v1_authorize() -> ResponseReturnValue:
    data = body()
    sad, expires = usecases.authorize(
        services(),
        principal(),
        credential_id=string(data, "credentialID"),
        num_signatures=integer(data, "numSignatures"),
        hashes=hash_list(data, "hash", required=False),
        hash_oid=None,
        pin=string(data, "PIN", required=False),
        otp=string(data, "OTP", required=False),
        description=string(data, "description", required=False),
        labels=labels(data),
    )
    return jsonify({"SAD": sad, "expiresIn": expires})


@v1.post("/credentials/extendTransaction")
@authenticated
def v1_extend() -> ResponseReturnValue:
    data = body()
    sad, expires = usecases.extend_transaction(
        services(),
        principal(),
        credential_id=string(data, "credentialID"),
        sad=string(data, "SAD"),
        hashes=hash_list(data, "hash", required=False),
        hash_oid=None,
    )
    return jsonify({"SAD": sad, "expiresIn": expires})


@v1.post("/signatures/signHash")
@claimed
def v1_sign_hash() -> ResponseReturnValue:
    data = body()
    signatures = sign_hash.sign_hash(
        services(),
        g.caller,
        credential_id=string(data, "credentialID"),
        sad=string(data, "SAD"),
        hashes=hash_list(data, "hash", required=True),
        hash_oid=string(data, "hashAlgo", required=False),
        sign_algo=string(data, "signAlgo") or "",
        sign_algo_params=string(data, "signAlgoParams", required=False),
    )
    return jsonify({"signatures": [b64(s) for s in signatures]})


for _version, _blueprint in (("v2", v2), ("v1", v1)):
    _blueprint.add_url_rule(f"/{TIMESTAMP}", "timestamp", timestamp_view, methods=["POST"])
    for _method in NOT_OFFERED[_version]:
        _blueprint.add_url_rule(
            f"/{_method}", _method.replace("/", "_"), not_offered(_method), methods=["POST"]
        )


def _describe_all() -> None:
    for version, title in (("v2", "CSC v2.0.0.2"), ("v1", "CSC v1.0.4")):
        base = f"/csc/{version}"
        describe(f"{base}/info", "post", f"{title}: service information", tag=title, auth=None)
        describe(
            f"{base}/auth/login",
            "post",
            f"{title}: HTTP Basic login → access token (and, with rememberMe, a refresh "
            "token); or refresh_token → new access and refresh tokens (each refresh "
            "token is used once; a replay revokes its family)",
            tag=title,
            auth="basic",
            responses={
                "401": "wrong user name or password",
                "400": "malformed Basic credentials, or a refresh token that is "
                "expired, revoked, replayed or not this service's",
            },
        )
        describe(
            f"{base}/auth/revoke",
            "post",
            f"{title}: revoke an access token, or a refresh token with its family "
            "(token required; token_type_hint)",
            tag=title,
        )
        describe(
            f"{base}/credentials/list", "post", f"{title}: the caller's credentials", tag=title
        )
        describe(f"{base}/credentials/info", "post", f"{title}: one credential", tag=title)
        describe(
            f"{base}/credentials/sendOTP",
            "post",
            f"{title}: send a one-time code by e-mail; with the hashes, numSignatures, "
            "description and signet_labels of the authorize call to come (a Signet "
            "extension), the code approves that request only (docs/csc.md)",
            tag=title,
        )
        describe(
            f"{base}/credentials/authorize",
            "post",
            f"{title}: second factor → SAD bound to the hashes; an OTP works only for "
            "the request it was sent for (hashes, numSignatures, description, "
            "signet_labels: docs/csc.md)",
            tag=title,
        )
        describe(
            f"{base}/credentials/extendTransaction",
            "post",
            f"{title}: renew a SAD for the signatures it has left; at SCAL2 bound to the "
            "hashes sent with it",
            tag=title,
        )
        describe(
            f"{base}/{TIMESTAMP}",
            "post",
            f"{title}: an RFC 3161 time-stamp token over a hash (only when a TSA is "
            "configured; else 501)",
            tag=title,
            responses={"501": "no TSA configured"},
        )
        describe(
            f"{base}/signatures/signHash", "post", f"{title}: sign hashes with a SAD", tag=title
        )
    describe(
        "/csc/v2/signatures/signDoc",
        "post",
        "CSC v2.0.0.2: sign whole documents (PAdES, XAdES, CAdES, JAdES); also as "
        "multipart/form-data (part request: the JSON, first or last; parts document: the "
        "raw documents), answered as JSON, multipart/mixed or application/octet-stream "
        "(one document) after the Accept header; with signet_appended, a PDF's answer is "
        "only what signing appended (header Signet-Appended-To) (docs/csc.md)",
        tag="CSC v2.0.0.2",
        responses={
            "406": "Accept: application/octet-stream with several documents, or "
            "a JSON answer with signet_appended",
            "413": "a document over formats.max_document_mb, or a body larger than "
            "one such document in base64 and 1 MiB of JSON",
        },
    )


def init_app(app: Flask) -> None:
    # The extension's views join the v1 and v2 blueprints when the module is first imported.
    from signet.web import csc_auth  # noqa: F401 - auth/login and auth/revoke
    from signet.web.activation import describe_activate

    _describe_all()
    describe_activate()
    app.register_blueprint(v2)
    app.register_blueprint(v1)
