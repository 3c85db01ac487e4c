"""The signDoc body scanner (signet.web.signdoc.spool): long JSON strings base64-decoded to
disk while the body arrives, judged exactly as json.loads + base64.b64decode(validate=True)
would be."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import itertools
import json
import os

import pytest

from signet.errors import InvalidRequest, PayloadTooLarge
from signet.web.signdoc import spool

DOCUMENT = os.urandom(3000)


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def read_back(spooled: spool.SpooledString) -> bytes:
    spooled.file.seek(0)
    return spooled.file.read()


def body_with(document: str, **extra: object) -> bytes:
    fields = "".join(f', "{k}": {json.dumps(v)}' for k, v in extra.items())
    return (
        '{"credentialID": "c1", "documents": [{"document": "'
        + document
        + '", "signature_format": "P"}]'
        + fields
        + "}"
    ).encode()


def test_every_chunk_boundary_and_escaped_slashes():
    document = DOCUMENT[:400]
    encoded = base64.b64encode(document).decode().replace("/", "\\/")
    assert "\\/" in encoded
    body = body_with(encoded, SAD='s\\a"d')
    for split in range(1, len(body)):
        for chunks in ([body[:split], body[split:]], pieces(body, split % 7 + 1)):
            with spool.scan(chunks, max_document=10**6, threshold=64) as parsed:
                assert parsed.value["SAD"] == 's\\a"d'
                assert parsed.value["credentialID"] == "c1"
                spooled = parsed.spooled(parsed.value["documents"][0]["document"])
                assert spooled is not None and spooled.valid
                assert read_back(spooled) == document and spooled.size == len(document)
                assert spooled.hash_state().digest() == hashlib.sha256(document).digest()
                assert parsed.misplaced(parsed.value, ("documents", "document")) is None


def test_large_pieces_are_hashed_aside_in_order():
    # Pieces of 64 KiB and more go to the hashing threads, one at a time per document: the
    # digest is still that of the document in order, for two documents spooled together.
    first, second = os.urandom(3 * 1024 * 1024 + 5), os.urandom(2 * 1024 * 1024 + 1)
    body = (
        '{"documents": [{"document": "'
        + base64.b64encode(first).decode()
        + '"}, {"document": "'
        + base64.b64encode(second).decode()
        + '"}]}'
    ).encode()
    with spool.scan(pieces(body, 200_003), max_document=10**7) as parsed:
        spooled = [parsed.spooled(d["document"]) for d in parsed.value["documents"]]
        assert [s.hash_state().digest() for s in spooled] == [
            hashlib.sha256(first).digest(),
            hashlib.sha256(second).digest(),
        ]
        assert [read_back(s) for s in spooled] == [first, second]


def test_short_strings_stay_in_the_json_untouched():
    body = body_with("QUJD\\u0044", note="\u00e9t\u00e9")
    with spool.scan(pieces(body, 3), max_document=10**6) as parsed:
        assert parsed.value == json.loads(body) and not parsed.strings


@pytest.mark.parametrize("size", [0, 1, 2, 3])
def test_the_end_of_a_long_string_is_judged_like_b64decode(size):
    prefix = base64.b64encode(DOCUMENT[:30]).decode()
    for tail in map("".join, itertools.product("Q=/-", repeat=size)):
        for extra in ("", "Q", "QQ", "QQQ", "QQ=", "Q==", "QQQ="):
            text = prefix + extra + tail
            try:
                expected = base64.b64decode(text, validate=True)
            except binascii.Error:
                expected = None
            with spool.scan([body_with(text)], max_document=10**6, threshold=16) as parsed:
                document = parsed.spooled(parsed.value["documents"][0]["document"])
                assert document is not None
                assert document.valid is (expected is not None), text
                if expected is not None:
                    assert read_back(document) == expected, text


@pytest.mark.parametrize("bad", ["\\u0041", "\\n", '\\"', "\\\\", " ", "-", "\u00e9", "\\\\/"])
def test_anything_but_base64_and_escaped_slashes_is_not_base64(bad, opened):
    encoded = base64.b64encode(DOCUMENT).decode()
    text = encoded[:1000] + bad + encoded[1000:]
    body = body_with(text, after='"quoted" and \\ back')
    for size in (1, 5, 4096):
        with spool.scan(pieces(body, size), max_document=10**6, threshold=64) as parsed:
            assert parsed.value["after"] == '"quoted" and \\ back'
            document = parsed.spooled(parsed.value["documents"][0]["document"])
            assert document is not None and not document.valid
            assert read_back(document) == b""  # its disk space was given back at once
    assert all(f.closed for f in opened)


def test_a_long_string_elsewhere_is_named():
    long = "x" * 100_000
    cases = {
        "SAD": body_with("QUJD", SAD=long),
        "signature_format": (
            '{"documents": [{"document": "QUJD", "signature_format": "' + long + '"}]}'
        ).encode(),
        "hashes": ('{"documentDigests": [{"hashes": ["' + long + '"]}]}').encode(),
        "documents": ('{"documents": ["' + long + '"]}').encode(),
        "(a JSON key)": ('{"' + long + '": 1}').encode(),
    }
    for name, body in cases.items():
        with spool.scan(pieces(body, 4096), max_document=10**6) as parsed:
            assert parsed.misplaced(parsed.value, ("documents", "document")) == name


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{",
        b'{"documents": [{"document": "QUJD',
        b'{"a": 1} trailing',
        b"\xff\xfe",
    ],
)
def test_not_json(body, opened):
    encoded = base64.b64encode(DOCUMENT).decode().encode()
    for text in (body, body.replace(b"QUJD", encoded)):
        with pytest.raises(InvalidRequest) as refused:
            spool.scan(pieces(text, 100), max_document=10**6, threshold=64)
        assert refused.value.status == 400
        assert refused.value.description.startswith("The request body is not JSON")
    assert all(f.closed for f in opened)


def test_empty_body_and_other_json_values():
    assert spool.scan([], max_document=1).value is None
    assert spool.scan([b"[1, 2]"], max_document=1).value == [1, 2]
    assert spool.scan([b" 7 "], max_document=1).value == 7


def test_a_document_over_the_limit_is_refused_while_it_arrives(opened):
    encoded = base64.b64encode(os.urandom(3 * 2**20)).decode()
    read = []

    def chunks():
        for chunk in pieces(body_with(encoded), 65536):
            read.append(chunk)
            yield chunk

    with pytest.raises(PayloadTooLarge) as refused:
        spool.scan(chunks(), max_document=2**20)
    assert refused.value.status == 413
    assert refused.value.description == "document larger than 1 MiB (formats.max_document_mb)"
    assert sum(map(len, read)) < 1.5 * 2**20  # it stopped reading soon after the limit
    assert opened and all(f.closed for f in opened)


def test_at_most_max_spooled_documents_go_to_disk(opened):
    """Each spooled document holds a file descriptor until the request ends."""
    long = base64.b64encode(os.urandom(spool.SPOOL_THRESHOLD)).decode()
    entries = [{"document": long}] * spool.MAX_SPOOLED
    with spool.scan([json.dumps({"documents": entries}).encode()], max_document=2**20) as parsed:
        assert len(parsed.strings) == spool.MAX_SPOOLED
    with pytest.raises(PayloadTooLarge) as refused:
        spool.scan(
            [json.dumps({"documents": [*entries, {"document": long}]}).encode()], max_document=2**20
        )
    assert refused.value.status == 413
    assert refused.value.description == (
        f"More than {spool.MAX_SPOOLED} documents over 64 KiB in one request: send fewer "
        "documents per request"
    )
    assert len(opened) == 2 * spool.MAX_SPOOLED and all(f.closed for f in opened)


def test_too_much_json_besides_the_documents():
    body = b'{"documentDigests": [' + b",".join([b'{"hashes": ["QUJD"]}'] * 2000) + b"]}"
    with pytest.raises(PayloadTooLarge) as refused:
        spool.scan(pieces(body, 1000), max_document=2**20, skeleton_limit=10_000)
    assert refused.value.status == 413 and "besides the documents" in refused.value.description


class Stream(io.BytesIO):
    reads = 0

    def read(self, size=-1):
        self.reads += 1
        return super().read(size)


def test_request_chunks_limits_and_drains():
    body = b"x" * (3 * spool.READ_SIZE)
    declared = {"wsgi.input": Stream(body), "CONTENT_LENGTH": str(len(body))}
    with pytest.raises(PayloadTooLarge) as refused:
        next(spool.request_chunks(declared, len(body) - 1))
    assert refused.value.status == 413 and declared["wsgi.input"].reads == 0

    streamed = {"wsgi.input": Stream(body), "wsgi.input_terminated": True}
    with pytest.raises(PayloadTooLarge) as refused:
        list(spool.request_chunks(streamed, len(body) - 1))
    assert refused.value.status == 413

    accepted = {"wsgi.input": Stream(body), "CONTENT_LENGTH": str(len(body))}
    chunks = spool.request_chunks(accepted, len(body))
    assert next(chunks) == body[: spool.READ_SIZE]
    chunks.close()  # the consumer refused the body: the rest is read, so the client sees why
    assert accepted["wsgi.input"].tell() == len(body)


def test_body_limit_fits_one_maximal_document():
    limit = 5 * 2**20
    assert spool.body_limit(limit) == len(base64.b64encode(bytes(limit))) + spool.JSON_SLACK
