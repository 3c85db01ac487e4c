"""signDoc's multipart transport (signet.web.signdoc.multipart): bodies made by urllib3's
encoder, cut into pieces of every awkward size, parse to the documents and digests that were
sent; answers made by it parse with the standard library's MIME parser."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
import json
import os
from dataclasses import dataclass
from typing import IO

import pytest
from urllib3 import encode_multipart_formdata
from urllib3.fields import RequestField

from signet.errors import InvalidRequest, PayloadTooLarge, SignetError
from signet.web.signdoc import multipart

REQUEST = {
    "credentialID": "c1",
    "SAD": "s",
    "documents": [
        {"signature_format": "P"},
        {"signature_format": "C", "signed_envelope_property": "Detached"},
    ],
}


def body(
    fields: list[tuple[str, bytes, str | None]], boundary: str = "x-boundary-1"
) -> tuple[bytes, bytes]:
    parts = []
    for name, data, filename in fields:
        field = RequestField(name, data, filename=filename)
        field.make_multipart(
            content_type="application/json" if name == "request" else "application/octet-stream"
        )
        parts.append(field)
    encoded, _ = encode_multipart_formdata(parts, boundary=boundary)
    return encoded, boundary.encode()


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 7, 14, 15, 16, 17, 29, 30, 31, 4096, 10**6])
@pytest.mark.parametrize("request_at", [0, 1, 2])
def test_documents_arrive_whole_whatever_the_pieces(size, request_at, opened):
    # The delimiter is 2 + 2 + 12 bytes: pieces of 29-31 cut it at every offset somewhere,
    # pieces of 14-17 are about as long as what the parser keeps back between two pieces;
    # the documents hold delimiter look-alikes that are not delimiters. The request part may
    # come first, between the documents or last: the documents fill its entries in order.
    # The look-alikes are followed by fixed bytes: a random "1" after the first would make it
    # the real delimiter (1 time in 256), and the body would rightly be refused.
    first = os.urandom(70_000) + b"\r\n--x-boundary-2" + os.urandom(100)
    second = b"--x-boundary-1" + os.urandom(3000) + b"\r\n--x-boundary"
    fields: list[tuple[str, bytes, str | None]] = [
        ("document", first, "a.pdf"),
        ("document", second, None),
    ]
    fields.insert(request_at, ("request", json.dumps(REQUEST).encode(), None))
    data, boundary = body(fields)
    data = b"a preamble\r\n" + data + b"an epilogue"
    with multipart.read_form(pieces(data, size), boundary, max_document=2**20) as parsed:
        documents = parsed.value["documents"]
        assert [e["signature_format"] for e in documents] == ["P", "C"]
        for entry, expected in zip(documents, (first, second), strict=True):
            spooled = parsed.spooled(entry["document"])
            assert spooled is not None and spooled.size == len(expected)
            assert spooled.hash_state().digest() == hashlib.sha256(expected).digest()
            spooled.file.seek(0)
            assert spooled.file.read() == expected
        assert parsed.misplaced(parsed.value, ("documents", "document")) is None
    assert len(opened) == 2 and all(f.closed for f in opened)


def test_at_most_max_spooled_document_parts(opened):
    limit = multipart.MAX_SPOOLED
    fields = [
        ("request", json.dumps({"documents": [{}] * (limit + 1)}).encode(), None),
        *[("document", b"%PDF", None)] * (limit + 1),
    ]
    data, boundary = body(fields)
    with pytest.raises(PayloadTooLarge) as refused:
        multipart.read_form([data], boundary, max_document=100)
    assert refused.value.status == 413
    assert refused.value.description.startswith(f"More than {limit} documents")
    assert len(opened) == limit and all(f.closed for f in opened)


def test_only_digests_need_no_document_part():
    request = {"credentialID": "c", "SAD": "s", "documentDigests": [{"hashes": ["AA=="]}]}
    data, boundary = body([("request", json.dumps(request).encode(), None)])
    with multipart.read_form([data], boundary, max_document=100) as parsed:
        assert parsed.value == request and not parsed.strings


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ([], 400, "A multipart/form-data signDoc needs a form-data part named request"),
        (
            [("document", b"%PDF", None)],
            400,
            "A multipart/form-data signDoc needs a form-data part named request",
        ),
        (
            [("request", b"{}", None), ("document", b"%PDF", None), ("request", b"{}", None)],
            400,
            "More than one part named request",
        ),
        ([("request", b"[1]", None)], 400, "The request part must be a JSON object"),
        ([("request", b"{", None)], 400, "The request part is not JSON"),
        (
            [("request", json.dumps(REQUEST).encode(), None), ("document", b"1", None)],
            400,
            "Invalid parameter documents: 2 entries for 1 document parts",
        ),
        (
            [
                ("request", json.dumps({"documents": [{"document": "QQ=="}]}).encode(), None),
                ("document", b"1", None),
            ],
            400,
            "Invalid parameter document: in a multipart/form-data",
        ),
        (
            [("request", b"{}", None), ("document", b"1", None)],
            400,
            "Invalid parameter documents: an array of objects",
        ),
        (
            [("request", json.dumps(REQUEST).encode(), None), ("signature", b"1", None)],
            400,
            "Unexpected part 'signature'",
        ),
        (
            [
                ("request", json.dumps({"documents": [{}]}).encode(), None),
                ("document", b"x" * 101, None),
            ],
            413,
            "document larger than",
        ),
        ([("request", b" " * (2**20 + 1) + b"{}", None)], 413, "The request part is larger"),
    ],
)
def test_refusals_name_the_problem(fields, status, message, opened):
    data, boundary = body(fields)
    with pytest.raises(SignetError) as refused:
        multipart.read_form(pieces(data, 1000), boundary, max_document=100)
    assert refused.value.status == status
    assert refused.value.description.startswith(message), refused.value.description
    assert all(f.closed for f in opened)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "it ends before the closing boundary"),
        (b"--b", "it ends after a boundary"),
        (b"--b\r\n", "a part's headers do not end"),
        (
            b"--b\r\nContent-Disposition: form-data; name=request\r\n\r\n{}",
            "it ends before the closing boundary",
        ),
        (b"--b junk\r\n\r\n{}\r\n--b--", "text after a boundary"),
        (
            b"--b\r\nContent-Disposition form-data\r\n\r\n{}\r\n--b--",
            "a part header without a colon: 'Content-Disposition form-data'",
        ),
        (b"--b\r\n" + b"X-Long: " + b"a" * 20_000, "a part's headers do not end"),
    ],
)
def test_malformed_bodies(data, message):
    with pytest.raises(InvalidRequest) as refused:
        multipart.read_form(pieces(data, 100), b"b", max_document=100)
    assert refused.value.description == "Malformed multipart/form-data body: " + message


def test_boundaries():
    assert multipart.form_boundary("application/json") is None
    assert multipart.form_boundary(None) is None
    assert multipart.form_boundary('multipart/form-data; boundary="a b:c"') == b"a b:c"
    for bad in (
        "multipart/form-data",
        "multipart/form-data; boundary=" + "a" * 71,
        'multipart/form-data; boundary="ends "',
    ):
        with pytest.raises(InvalidRequest, match="Invalid multipart/form-data boundary"):
            multipart.form_boundary(bad)


@dataclass
class Part:
    headers: dict[str, str]
    file: IO[bytes]
    start: int
    size: int


def test_answers_parse_with_the_standard_mime_parser():
    # The last part is sent from an offset, as an output answered with signet_appended is.
    outputs = [os.urandom(5000), b"", os.urandom(10), os.urandom(3000)]
    parts = [
        Part(
            {
                "Content-Disposition": f'attachment; name="n{i}"',
                "Content-Type": "application/octet-stream",
            },
            io.BytesIO(d),
            0,
            len(d),
        )
        for i, d in enumerate(outputs)
    ]
    parts[-1].start, parts[-1].size = 1234, 3000 - 1234
    content_type, length, chunks = multipart.mixed(parts, read_size=1000)
    raw = b"".join(chunks)
    assert len(raw) == length
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    received = list(message.iter_parts())
    assert [p.get_param("name", header="content-disposition") for p in received] == [
        "n0",
        "n1",
        "n2",
        "n3",
    ]
    assert [p.get_payload(decode=True) for p in received] == [*outputs[:3], outputs[3][1234:]]
    assert [int(p["Content-Length"]) for p in received] == [5000, 0, 10, 3000 - 1234]


def test_a_part_filename_names_the_document_unless_the_entry_does(opened):
    """A document part's filename (UTF-8 as browsers and curl send it, or RFC 2231
    filename*=) becomes its entry's signet_document_name; a name in the entry wins."""
    request = {
        "documents": [
            {"signature_format": "X"},
            {"signature_format": "J"},
            {"signature_format": "X", "signet_document_name": "given.xml"},
            {"signature_format": "C"},
        ]
    }
    boundary = b"b-1"
    parts = [
        b'Content-Disposition: form-data; name="request"\r\n\r\n' + json.dumps(request).encode(),
        'Content-Disposition: form-data; name="document"; filename="été 1.xml"\r\n\r\n'.encode()
        + b"<a/>",
        b"Content-Disposition: form-data; name=\"document\"; filename*=UTF-8''%E2%82%AC"
        b".json\r\n\r\n{}",
        b'Content-Disposition: form-data; name="document"; filename="ignored.xml"\r\n\r\n<b/>',
        b'Content-Disposition: form-data; name="document"\r\n\r\nno name',
    ]
    data = b"".join(b"--b-1\r\n" + part + b"\r\n" for part in parts) + b"--b-1--\r\n"
    with multipart.read_form([data], boundary, max_document=2**20) as parsed:
        names = [entry.get("signet_document_name") for entry in parsed.value["documents"]]
    assert names == ["été 1.xml", "€.json", "given.xml", None]
