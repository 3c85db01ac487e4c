"""signatures/signDoc over HTTP (CSC v2 only): the request read as a stream (`request`, with
`spool` and `multipart`), the documents signed by `signing.sign_doc`, the answer streamed
(`answer`)."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from signet.errors import InvalidRequest
from signet.signing import sign_doc
from signet.web.openapi import (
    BASE64,
    BOOLEAN,
    HASHES,
    OPTIONAL_STRING,
    STRING,
    enum,
    obj,
    operation,
    with_description,
)
from signet.web.params import Params, authenticated, principal, services
from signet.web.signdoc import answer, request

# What each entry of documents and documentDigests says of the signature to make
_SIGNATURE = {
    "signature_format": enum("C", "X", "P", "J", description="CAdES, XAdES, PAdES, JAdES"),
    "conformance_level": with_description(OPTIONAL_STRING, "default Ades-B-B (info lists them)"),
    "signed_envelope_property": with_description(
        OPTIONAL_STRING, "Attached, Detached, Enveloped, Enveloping (info lists them per format)"
    ),
    "signAlgo": with_description(STRING, "OID of the signature algorithm"),
    "signAlgoParams": BASE64,
}
REQUEST_SCHEMA = obj(
    required=("credentialID", "SAD"),
    credentialID=STRING,
    SAD=STRING,
    documents={
        "type": "array",
        "minItems": 1,
        "items": obj(
            required=("document", "signature_format", "signAlgo"),
            document=BASE64,
            signet_document_name=with_description(
                OPTIONAL_STRING, "the signed document's name (detached XAdES and JAdES need it)"
            ),
            **_SIGNATURE,
        ),
    },
    documentDigests={
        "type": "array",
        "minItems": 1,
        "items": obj(
            required=("hashes", "hashAlgorithmOID", "signature_format", "signAlgo"),
            hashes=HASHES,
            hashAlgorithmOID=STRING,
            **_SIGNATURE,
        ),
    },
    operationMode=enum("S", description="synchronous only; A is refused"),
    returnValidationInfo=with_description(
        BOOLEAN, "false only: validation data is embedded from B-LT on"
    ),
    signet_appended=with_description(
        BOOLEAN, "answer a PDF with only what signing appended (header Signet-Appended-To)"
    ),
)


@operation(
    "Sign whole documents (PAdES, XAdES, CAdES, JAdES); also as multipart/form-data (part "
    "request: the JSON, first or last; parts document: the raw documents), answered as JSON, "
    "multipart/mixed or application/octet-stream (one document) after the Accept header; "
    "with signet_appended, a PDF's answer is only what signing appended (docs/csc.md)",
    request=REQUEST_SCHEMA,
    answer=obj(
        DocumentWithSignature={"type": "array", "items": BASE64},
        SignatureObject={"type": "array", "items": BASE64},
    ),
    errors={
        "400": "invalid request: the description names the parameter",
        "401": "no access token, or an expired or revoked one",
        "403": "not the caller's credential, or a refusal of the SAM",
        "406": "Accept: application/octet-stream with several documents, or a JSON answer "
        "with signet_appended",
        "413": "a document over formats.max_document_mb, or a body larger than one such "
        "document in base64 and 1 MiB of JSON",
        "503": "the database, the HSM or the TSA is unavailable",
    },
)
@authenticated
def sign_doc_view() -> ResponseReturnValue:
    with request.spooled_body() as spooled:
        params = Params(spooled.value)
        mode = params.choice("operationMode", ("S", "A"), "S")
        if mode == "A":
            raise InvalidRequest(
                "Invalid parameter operationMode: only synchronous (S) signing is offered"
            )
        if params.get("returnValidationInfo") not in (None, False):
            raise InvalidRequest(
                "Invalid parameter returnValidationInfo: validation info is "
                "embedded in the signatures from B-LT on, not returned apart"
            )
        jobs = request.jobs(params, spooled)
        appended = params.boolean(sign_doc.APPENDED, False)
        answer_type = answer.answer_type(jobs, appended)
        outputs = sign_doc.sign_documents(
            services(),
            principal(),
            credential_id=params.string("credentialID"),
            sad=params.string("SAD"),
            jobs=jobs,
            appended=appended,
        )
    try:
        return answer.answer(outputs, answer_type, appended)
    except BaseException:
        for output in outputs:
            output.close()
        raise
