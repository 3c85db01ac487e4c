"""PAdES signed in place from a resumed document hash (signet.formats.pades): the state given
really replaces hashing the original bytes, only for the signature's own digest and only in
its algorithm, and the result validates with pyHanko and pdfsig. A state of other bytes must
break the signature: that is what fails if pyHanko stops hashing through the stand-in."""

from __future__ import annotations

import asyncio
import hashlib
import io
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, utils
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers import pdf_byterange
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend

from signet.algorithms import KeySpec
from signet.config import HsmSettings
from signet.formats import RemoteKey, ServicesConfig, TsaConfig, sign_document
from signet.formats.pades import _resume, _ResumedHash, _resuming
from signet.hsm import Hsm
from tests.formats.formats_helpers import pdfsig
from tests.helpers import throwaway_chain
from tests.pki.make_pdf import write_pdf
from tests.pki.signet_test_pki import serve_test_pki

SIZE = 300_000


class SpyState:
    """A hashlib object that counts the bytes it is fed after its creation."""

    def __init__(self, inner: Any, fed: list[int] | None = None) -> None:
        self.inner = inner
        self.fed = [] if fed is None else fed

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def update(self, data: Any) -> None:
        self.fed.append(memoryview(data).nbytes)
        self.inner.update(data)

    def digest(self) -> bytes:
        return bytes(self.inner.digest())

    def copy(self) -> SpyState:
        return SpyState(self.inner.copy(), self.fed)


@pytest.fixture(scope="module")
def hsm_key(softhsm, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """An EC P-256 key generated in SoftHSM, certified by a throw-away in-memory root; the
    root is also in an NSS database for pdfsig."""
    hsm = Hsm(
        HsmSettings(
            module=softhsm["module"],
            token_label=softhsm["token_label"],
            pin_file=softhsm["pin_file"],
        )
    )
    label = f"pades-resume-{uuid.uuid4().hex[:8]}"
    hsm.generate_key(label, KeySpec.parse("ec-p256"))
    root, leaf = throwaway_chain("Resume", hsm.public_key(label))
    calls: list[tuple[int, str]] = []

    def sign_digest(digest: bytes, hash_name: str, scheme: str) -> bytes:
        calls.append((len(digest), hash_name))
        return hsm.sign_digest(label, digest, hash_name, scheme)

    der = serialization.Encoding.DER
    key = RemoteKey.from_certificates(leaf.public_bytes(der), [root.public_bytes(der)], sign_digest)
    base = tmp_path_factory.mktemp("resume-trust")
    root_pem = base / "root.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    nss_dir = base / "nss"
    nss_dir.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss_dir}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nss_dir}", "-n", "resume-root", "-t",
                    "CT,C,C", "-i", str(root_pem)], check=True)  # fmt: skip
    yield {
        "key": key,
        "root": asn1_x509.Certificate.load(root.public_bytes(der)),
        "nss_dir": nss_dir,
        "calls": calls,
    }
    hsm.destroy_key(label)


def _sign_in_place(
    document: Any, key: RemoteKey, state: Any, prefix: int, *, level: str = "B-B", **options: Any
) -> None:
    sign_document(
        document,
        document,
        format="pades",
        level=level,
        key=key,
        resume_digest=(state, prefix),
        **options,
    )


def _status(data: bytes, root: asn1_x509.Certificate, index: int = 0) -> Any:
    embedded = PdfFileReader(io.BytesIO(data)).embedded_signatures[index]
    context = ValidationContext(trust_roots=[root])
    return asyncio.run(async_validate_pdf_signature(embedded, signer_validation_context=context))


@pytest.mark.parametrize("stream", ["file", "bytesio"])  # pyHanko's chunked and buffer paths
def test_a_resumed_state_makes_a_valid_signature(hsm_key, tmp_path: Path, stream: str):
    original = write_pdf(tmp_path / "doc.pdf", SIZE).read_bytes()
    state = SpyState(hashlib.sha256(original))
    signed = tmp_path / "signed.pdf"
    if stream == "file":
        signed.write_bytes(original)
        with open(signed, "r+b") as document:
            _sign_in_place(document, hsm_key["key"], state, len(original))
    else:
        buffer = io.BytesIO(original)
        _sign_in_place(buffer, hsm_key["key"], state, len(original))
        signed.write_bytes(buffer.getvalue())
    data = signed.read_bytes()
    assert data.startswith(original)
    # Only the bytes pyHanko appended went into the state: the original was not hashed again.
    contents = PdfFileReader(io.BytesIO(data)).embedded_signatures[0].byte_range
    covered = contents[1] + contents[3]
    assert sum(state.fed) == covered - len(original)
    assert _resume.get() is None

    status = _status(data, hsm_key["root"])
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    verdict = pdfsig(signed, hsm_key["nss_dir"])
    assert verdict[0]["Signature Validation"] == "Signature is Valid."
    assert verdict[0]["Certificate Validation"] == "Certificate is Trusted."


def test_a_state_of_other_bytes_breaks_the_signature(hsm_key, tmp_path: Path):
    """The drift guard: if pyHanko's fill ever stops making its hash through
    ``pdf_byterange.hashes``, the state goes unused and this signature comes out intact."""
    original = write_pdf(tmp_path / "doc.pdf", SIZE).read_bytes()
    buffer = io.BytesIO(original)
    _sign_in_place(buffer, hsm_key["key"], hashlib.sha256(b"x" * len(original)), len(original))
    status = _status(buffer.getvalue(), hsm_key["root"])
    assert not status.intact


def test_a_sha384_signature_does_not_use_a_sha256_state(hsm_key, tmp_path: Path):
    original = write_pdf(tmp_path / "doc.pdf", SIZE).read_bytes()
    state = SpyState(hashlib.sha256(b"x" * len(original)))  # would break it if it were used
    hsm_key["calls"].clear()
    buffer = io.BytesIO(original)
    _sign_in_place(buffer, hsm_key["key"], state, len(original), hash_algorithm="sha384")
    assert hsm_key["calls"] == [(48, "sha384")]
    assert state.fed == []
    status = _status(buffer.getvalue(), hsm_key["root"])
    assert status.intact and status.valid, status.pretty_print_details()


def test_a_state_longer_than_the_file_is_ignored(hsm_key, tmp_path: Path):
    original = write_pdf(tmp_path / "doc.pdf", SIZE).read_bytes()
    state = SpyState(hashlib.sha256(original + b"more"))
    buffer = io.BytesIO(original)
    _sign_in_place(buffer, hsm_key["key"], state, len(original) + 4)
    assert state.fed == []
    assert _status(buffer.getvalue(), hsm_key["root"]).intact


def test_the_state_is_one_shot_and_stays_in_its_context():
    """Armed for the signature's digest only: another thread (a concurrent signing) and any
    later digest (the B-LTA document time-stamp's) get cryptography's own Hash."""
    stand_in = pdf_byterange.hashes
    with _resuming((hashlib.sha256(), 0)):
        with ThreadPoolExecutor(1) as pool:
            elsewhere = pool.submit(stand_in.Hash, hashes.SHA256()).result()
        first = stand_in.Hash(hashes.SHA256())
        second = stand_in.Hash(hashes.SHA256())
    assert type(elsewhere) is hashes.Hash and type(second) is hashes.Hash
    assert type(first) is _ResumedHash
    with _resuming((hashlib.sha256(), 0)):
        assert type(stand_in.Hash(hashes.SHA384())) is hashes.Hash  # other algorithm: disarmed
        assert type(stand_in.Hash(hashes.SHA256())) is hashes.Hash
    assert stand_in.SHA256 is hashes.SHA256  # the rest of the module shows through


def test_the_resumed_hash_skips_exactly_the_prefix_across_updates():
    data = bytes(range(256)) * 40
    for prefix in (0, 1, 255, 256, 4000, len(data)):
        resumed = _ResumedHash(hashes.SHA256(), hashlib.sha256(data[:prefix]), prefix)
        for start in range(0, len(data), 333):
            resumed.update(memoryview(data)[start : start + 333])
            if start == 999:
                half = resumed.copy()
        assert resumed.finalize() == hashlib.sha256(data).digest()
        half.update(data[1332:])
        assert half.finalize() == hashlib.sha256(data).digest()
    short = _ResumedHash(hashes.SHA256(), hashlib.sha256(data), len(data))
    short.update(data[:10])
    with pytest.raises(RuntimeError, match="less than"):
        short.finalize()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    with serve_test_pki(tmp_path_factory.mktemp("pki")) as running:
        yield running


def test_b_lta_resumed_validates_with_its_document_time_stamp(pki, tmp_path: Path):
    """The signature resumes; the document time-stamp, hashed after it, is computed in full."""
    private_key = serialization.load_pem_private_key(pki.private_key_pem("signer-rsa"), None)

    def sign_digest(digest: bytes, hash_name: str, scheme: str) -> bytes:
        return private_key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))

    key = RemoteKey(
        certificate=pki.cert("signer-rsa"), chain=(pki.interm, pki.root), sign_digest=sign_digest
    )
    services = ServicesConfig(tsa=TsaConfig(url=pki.tsa_url, timeout=10))
    original = write_pdf(tmp_path / "doc.pdf", SIZE).read_bytes()
    state = SpyState(hashlib.sha256(original))
    signed = tmp_path / "signed.pdf"
    signed.write_bytes(original)
    with open(signed, "r+b") as document:
        _sign_in_place(document, key, state, len(original), level="B-LTA", services=services)
    data = signed.read_bytes()
    reader = PdfFileReader(io.BytesIO(data))
    signature, doc_ts = reader.embedded_signatures
    assert doc_ts.sig_object_type == "/DocTimeStamp"
    assert sum(state.fed) == signature.byte_range[1] + signature.byte_range[3] - len(original)
    context = ValidationContext(
        trust_roots=[pki.root], allow_fetching=True, fetcher_backend=RequestsFetcherBackend()
    )
    status = asyncio.run(async_validate_pdf_signature(signature, signer_validation_context=context))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    ts_status = asyncio.run(async_validate_pdf_timestamp(doc_ts, validation_context=context))
    assert ts_status.intact and ts_status.valid and ts_status.trusted, ts_status
