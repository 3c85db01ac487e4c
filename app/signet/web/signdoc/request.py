"""Reading a signDoc request: its body as a stream (JSON or multipart/form-data, long documents
spooled to temporary files), and its documents and digests as the jobs signing takes."""

from __future__ import annotations

import base64
from contextlib import closing
from typing import Any

from flask import request

from signet.errors import InvalidRequest
from signet.signing import sign_doc
from signet.web.params import Params, services
from signet.web.signdoc import multipart, spool


def spooled_body() -> spool.SpooledJson:
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


def _document(entry: Params, spooled: spool.SpooledJson) -> bytes | sign_doc.DocumentFile:
    document = entry.string("document") or ""
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


def jobs(params: Params, spooled: spool.SpooledJson) -> list[sign_doc.DocumentJob]:
    """One job a document (documents) or a digest (documentDigests), in request order."""
    found: list[sign_doc.DocumentJob] = []
    for name in ("documents", "documentDigests"):
        entries = params.get(name)
        if entries is None:
            continue
        if not isinstance(entries, list) or not entries:
            raise InvalidRequest(f"Invalid type for array parameter {name}")
        for item in entries:
            if not isinstance(item, dict):
                raise InvalidRequest(f"Invalid parameter {name}: items are JSON objects")
            entry = Params(item)
            common: dict[str, Any] = {
                "format": entry.string("signature_format") or "",
                "level": entry.string("conformance_level", required=False) or "Ades-B-B",
                "packaging": entry.string("signed_envelope_property", required=False),
                "sign_algo": entry.string("signAlgo") or "",
                "sign_algo_params": entry.string("signAlgoParams", required=False),
            }
            if name == "documents":
                found.append(
                    sign_doc.DocumentJob(
                        **common,
                        document=_document(entry, spooled),
                        document_name=entry.string(sign_doc.DOCUMENT_NAME, required=False),
                    )
                )
            else:
                oid = entry.string("hashAlgorithmOID")
                for value in entry.hash_list("hashes", required=True):
                    try:
                        digest = base64.b64decode(value, validate=True)
                    except ValueError:
                        raise InvalidRequest("Invalid parameter hashes: not base64") from None
                    found.append(sign_doc.DocumentJob(**common, digest=digest, hash_oid=oid))
    return found
