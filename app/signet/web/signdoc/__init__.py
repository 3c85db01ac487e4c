"""signatures/signDoc over HTTP (CSC v2 only): the request read as a stream (`request`, with
`spool` and `multipart`), the documents signed by `signing.sign_doc`, the answer streamed
(`answer`)."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from signet.errors import InvalidRequest
from signet.signing import sign_doc
from signet.web.openapi import describe
from signet.web.params import Params, authenticated, principal, services
from signet.web.signdoc import answer, request


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


def describe_sign_doc() -> None:
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
