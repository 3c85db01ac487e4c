"""signet.validation on B-B signatures made by signet.formats with a throw-away CA (no
network): every format and packaging verifies, tampering and missing anchors are reported,
and unusable input is a VerifyError with a message, not a traceback."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from signet.cli.main import main as signet_main
from signet.formats import RemoteKey, sign_document
from signet.validation import (
    ContentFault,
    VerifyError,
    detect_format,
    load_certificates,
    verify_file,
)
from tests.helpers import signet_cli, throwaway_chain
from tests.pki.make_pdf import write_pdf

XML_DOC = b'<?xml version="1.0"?>\n<doc xmlns="urn:signet:unit"><line>unit line</line></doc>\n'
BLOB = b"unit line\n" * 100


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    """A root and an EC signer certificate; the keys are test-only and live in memory."""
    signer_key = ec.generate_private_key(ec.SECP256R1())
    root, signer = throwaway_chain("Unit", signer_key.public_key())
    base = tmp_path_factory.mktemp("unit-ca")
    root_pem = base / "root.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))

    def sign_digest(digest: bytes, hash_name: str, scheme: str) -> bytes:
        assert (hash_name, scheme) == ("sha256", "ecdsa")
        return signer_key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))

    key = RemoteKey.from_certificates(
        signer.public_bytes(serialization.Encoding.DER),
        [root.public_bytes(serialization.Encoding.DER)],
        sign_digest,
    )
    return {"key": key, "anchors": load_certificates(root_pem), "root_pem": root_pem}


CASES = [
    ("pades", None, "doc.pdf"),
    ("cades", "detached", "blob.bin"),
    ("cades", "attached", "blob.bin"),
    ("xades", "enveloped", "doc.xml"),
    ("xades", "enveloping", "blob.bin"),
    ("xades", "detached", "blob.bin"),
    ("jades", "attached", "blob.bin"),
    ("jades", "detached", "blob.bin"),
]


@pytest.mark.parametrize(("fmt", "packaging", "name"), CASES)
def test_b_b_verifies_and_tampering_is_found(ca, tmp_path: Path, fmt, packaging, name):
    document = tmp_path / name
    if name.endswith(".pdf"):
        write_pdf(document, 512)
    else:
        document.write_bytes(XML_DOC if name.endswith(".xml") else BLOB)
    signed = tmp_path / f"signed.{fmt}"
    with open(signed, "w+b") as out:
        sign_document(document, out, format=fmt, level="B-B", key=ca["key"],
                      packaging=packaging, document_name=name)  # fmt: skip
    detached = document if packaging == "detached" else None

    report = verify_file(signed, detached=detached, trust=ca["anchors"])
    (signature,) = report.signatures
    assert report.ok, "\n".join(report.lines())
    assert (signature.intact, signature.valid, signature.trusted) == (True, True, True)
    assert signature.reached == signature.found == "B-B"
    assert "Unit Signer" in signature.signer
    assert report.lines()[-1].startswith("result: OK")

    untrusted = verify_file(signed, detached=detached)
    assert not untrusted.ok and not untrusted.signatures[0].trusted
    assert any("no trust anchor" in note for note in untrusted.notes)

    if detached is not None:
        changed = tmp_path / "changed.bin"
        changed.write_bytes(BLOB.replace(b"unit", b"Unit", 1))
        tampered = verify_file(signed, detached=changed, trust=ca["anchors"])
    else:
        data = signed.read_bytes()
        marker = b"Signet test document" if fmt == "pades" else b"unit line"
        if fmt in ("jades", "xades") and packaging != "enveloped":
            marker = {"jades": b"dW5pdCBsaW5l", "xades": b"dW5pdCBsaW5l"}[fmt]  # base64
        assert marker in data, marker
        bad = tmp_path / f"tampered.{fmt}"
        bad.write_bytes(data.replace(marker, marker[:-1] + b"X", 1))
        tampered = verify_file(bad, trust=ca["anchors"])
    assert not tampered.ok
    assert not (tampered.signatures[0].intact and tampered.signatures[0].valid)
    assert tampered.lines()[-1].startswith("result: FAILED")


def sign_blob(ca, tmp_path: Path, name: str, **options) -> Path:
    """``tmp_path/name``: a B-B signature over ``tmp_path/blob.bin``."""
    document = tmp_path / "blob.bin"
    document.write_bytes(BLOB)
    signed = tmp_path / name
    with open(signed, "wb") as out:
        sign_document(document, out, level="B-B", key=ca["key"], **options)
    return signed


def test_jades_compact_verifies(ca, tmp_path: Path):
    signed = sign_blob(ca, tmp_path, "blob.jws", format="jades", serialization="compact")
    report = verify_file(signed, trust=ca["anchors"])
    assert report.ok and report.format == "JAdES (JWS compact)", "\n".join(report.lines())
    header, payload, signature = signed.read_text().split(".")
    signed.write_text(f"{header}.{payload[:-2]}AA.{signature}")
    assert not verify_file(signed, trust=ca["anchors"]).ok


def test_unusable_input_is_a_verify_error(ca, tmp_path: Path):
    with pytest.raises(VerifyError, match="No such file|no such file"):
        verify_file(tmp_path / "absent.p7s")
    text = tmp_path / "plain.txt"
    text.write_text("hello\n")
    with pytest.raises(VerifyError, match="not a PDF, CMS"):
        verify_file(text)
    signed = sign_blob(ca, tmp_path, "blob.p7s", format="cades")
    attached = sign_blob(ca, tmp_path, "blob.p7m", format="cades", packaging="attached")
    with pytest.raises(VerifyError, match="is a detached CAdES signature") as missing:
        verify_file(signed, trust=ca["anchors"])
    assert missing.value.fault is ContentFault.MISSING and "--" not in str(missing.value)
    with pytest.raises(VerifyError, match="carries its content") as unexpected:
        verify_file(attached, detached=tmp_path / "blob.bin", trust=ca["anchors"])
    assert unexpected.value.fault is ContentFault.UNEXPECTED and "--" not in str(unexpected.value)
    with pytest.raises(VerifyError, match="absent.bin: no such file") as absent:
        verify_file(signed, detached=tmp_path / "absent.bin", trust=ca["anchors"])
    assert absent.value.fault is ContentFault.NOT_FOUND and "--" not in str(absent.value)
    with pytest.raises(ValueError, match="no certificate"):
        load_certificates(text)


def test_a_damaged_embedded_structure_is_a_verify_error(ca, tmp_path: Path):
    """Unreadable data inside a signature (here a JAdES xVals certificate that is not base64)
    is a VerifyError naming the file and the problem, not a bare ValueError."""
    signed = sign_blob(ca, tmp_path, "blob.json", format="jades")
    document = json.loads(signed.read_text())
    x_vals = json.dumps({"xVals": [{"x509Cert": {"val": "abc"}}]}).encode()
    document["header"] = {"etsiU": [base64.urlsafe_b64encode(x_vals).rstrip(b"=").decode()]}
    signed.write_text(json.dumps(document))
    with pytest.raises(
        VerifyError, match="blob.json: part of it cannot be read: Incorrect padding"
    ):
        verify_file(signed, trust=ca["anchors"])


def test_cli_verify_without_trust_says_so_in_one_line(ca, tmp_path: Path):
    """`signet verify` with no --trust (or a --trust that is not the signer's root) prints the
    report and a hint naming --trust, exits 1, and shows no pyHanko traceback."""
    signed = sign_blob(ca, tmp_path, "blob.p7m", format="cades", packaging="attached")
    untrusted = signet_cli("verify", str(signed))
    assert untrusted.returncode == 1, untrusted.stderr
    assert untrusted.stderr == (
        "signet: no --trust given, so no signature can be trusted: name the root certificate "
        "of the signer (and of the TSA) with --trust CERT\n"
    )
    assert "  trusted: no (no trust anchor given)" in untrusted.stdout.splitlines()
    assert untrusted.stdout.splitlines()[-1].startswith("result: FAILED")

    other_root, _ = throwaway_chain("Other", ec.generate_private_key(ec.SECP256R1()).public_key())
    other_pem = tmp_path / "other.pem"
    other_pem.write_bytes(other_root.public_bytes(serialization.Encoding.PEM))
    wrong = signet_cli("verify", str(signed), "--trust", str(other_pem))
    assert (wrong.returncode, wrong.stderr) == (1, ""), wrong.stderr
    assert "  trusted: no (NO_CERTIFICATE_CHAIN_FOUND)" in wrong.stdout.splitlines()

    trusted = signet_cli("verify", str(signed), "--trust", str(ca["root_pem"]))
    assert (trusted.returncode, trusted.stderr) == (0, ""), trusted.stderr
    assert trusted.stdout.splitlines()[-1].startswith("result: OK")


def test_cli_verify_names_detached_in_its_advice(ca, tmp_path: Path):
    """The CLI words the library's content faults in terms of its --detached option."""
    signed = sign_blob(ca, tmp_path, "blob.p7m", format="cades", packaging="attached")
    document = tmp_path / "blob.bin"
    detached = sign_blob(ca, tmp_path, "blob.p7s", format="cades")
    absent = tmp_path / "absent.bin"
    for args, message in (
        ([signed, "--detached", document], f"{signed} carries its content: drop --detached"),
        ([signed, "--detached", absent], f"--detached {absent}: no such file"),
        (
            [detached, "--trust", ca["root_pem"]],
            f"{detached} is a detached CAdES signature: give the signed file with --detached FILE",
        ),
    ):
        result = CliRunner().invoke(signet_main, ["verify", *map(str, args)])
        assert (result.exit_code, result.stdout) == (1, ""), result.output
        assert result.stderr == f"signet: error: {message}\n"


def test_detect_format():
    assert detect_format(b"%PDF-1.7\n") == "pades"
    assert detect_format(b"\xef\xbb\xbf<?xml") == "xades"
    assert detect_format(b'  {"protected": ""}') == "jades"
    assert detect_format(b"eyJhbGciOiJFUzI1NiJ9.e30.c2ln") == "jades"
    assert detect_format(b"\x30\x82\x01\x00") == "cades"
