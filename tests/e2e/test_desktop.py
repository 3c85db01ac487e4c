"""`signet sign` against a real Signet under gunicorn: the password on stdin, the OTP read from
the SMTP inbox and typed at the prompt, only hashes sent; outputs checked by independent
validators (pdfsig, openssl cms/ts, xmlsec1, jwcrypto, pyHanko) and by `signet verify`,
tampered copies refused. Bad input ends in one line on stderr, never a traceback."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from asn1crypto import cms, pem
from asn1crypto import x509 as asn1_x509
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from jwcrypto.common import JWSEHeaderParameter
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS
from lxml import etree
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from signet.cli.main import main as signet_main
from tests.e2e.conftest import PASSWORD, Server
from tests.formats.formats_helpers import (
    DS,
    XADES,
    c14n,
    find_signature,
    openssl_cms_verify,
    openssl_ts_verify,
    pdfsig,
    token_hash_name,
    xmlsec1_verify,
)
from tests.helpers import free_port, signet_cli
from tests.pki.make_pdf import write_pdf
from tests.pki.signet_test_pki import TestPKI, serve_test_pki

SIGNET = str(Path(sys.executable).parent / "signet")
PIN = "135790"
XML_DOC = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<invoice xmlns="urn:signet:test">\n  <line>Signet desktop line</line>\n'
    b"  <total>42.00</total>\n</invoice>\n"
)
JSON_DOC = b'{"invoice": 42, "lines": ["Signet desktop line"]}'
BLOB = bytes(range(256)) * 16


@dataclass
class Desk:
    server: Server
    pki: TestPKI
    alice: str  # RSA-2048, OTP by e-mail: alice's only credential
    bob_ec: str  # EC P-256, PIN
    bob_locked: str  # RSA-2048, OTP; locked by five wrong tries
    roots_pem: Path  # Signet's CA root and the test TSA's root
    signet_root: asn1_x509.Certificate
    nss_dir: Path
    crl_dp: bool  # Signet's certificates name a CRL distribution point
    crl_problem: str | None  # why that CRL cannot be fetched, if it cannot


@pytest.fixture(scope="module")
def tsa_pki(tmp_path_factory):
    with serve_test_pki(tmp_path_factory.mktemp("tsa-pki")) as running:
        yield running


def _credential(server: Server, user: str, *args: str, pin: str | None = None) -> str:
    """Enrolled by the admin CLI, activated by its owner with `signet activate` (password,
    mailed code and, for a PIN credential, her PIN twice, one a line on stdin)."""
    # web.base_url makes the certificate's CRL distribution point name this very server
    made = signet_cli(
        "credentials",
        "create",
        user,
        *args,
        env={**server.env, "SIGNET_WEB__BASE_URL": server.url},
    )
    assert made.returncode == 0, made.stderr
    credential_id = made.stdout.split()[1]
    code = server.inbox.activation_code_for(credential_id)
    lines = [PASSWORD, code] + ([pin, pin] if pin is not None else [])
    done = signet_cli(
        "activate",
        "--server",
        server.url,
        "--user",
        user,
        "--credential",
        credential_id,
        stdin="".join(f"{line}\n" for line in lines),
        env={"SIGNET_CONFIG": "/nonexistent"},
    )
    assert done.returncode == 0, done.stderr
    assert f"credential {credential_id} is active" in done.stdout
    return credential_id


def _crl_problem(leaf_der: bytes) -> tuple[bool, str | None]:
    """(has a CRL distribution point, why its CRL cannot be fetched and parsed or None)."""
    cert = x509.load_der_x509_certificate(leaf_der)
    try:
        points = cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
    except x509.ExtensionNotFound:
        return False, "Signet's certificates carry no CRL distribution point yet"
    problem = "no URL in it"
    urls = [n.value for p in points for n in p.full_name or [] if hasattr(n, "value")]
    for url in urls:
        try:
            response = requests.get(url, timeout=5)
            if response.status_code == 200:
                x509.load_der_x509_crl(response.content)
                return True, None
            problem = f"GET {url} answered HTTP {response.status_code}"
        except (requests.RequestException, ValueError) as exc:
            problem = f"GET {url} failed: {exc}"
    return True, f"the CRL in Signet's certificates is not available ({problem})"


@pytest.fixture(scope="module")
def desk(server, tsa_pki, tmp_path_factory) -> Desk:
    tmp = tmp_path_factory.mktemp("desk")
    alice = _credential(server, "alice", "--key", "rsa-2048")
    bob_ec = _credential(
        server, "bob", "--key", "ec-p256", "--activation", "pin", "--policy", "basic", pin=PIN
    )
    bob_locked = _credential(server, "bob", "--key", "rsa-2048")
    session = server.login("alice")
    info = session.post(
        f"{server.url}/csc/v2/credentials/info",
        json={"credentialID": alice, "certificates": "chain"},
        timeout=30,
    ).json()
    chain = [base64.b64decode(c) for c in info["cert"]["certificates"]]
    signet_root = asn1_x509.Certificate.load(chain[-1])
    roots_pem = tmp / "roots.pem"
    roots_pem.write_bytes(
        pem.armor("CERTIFICATE", chain[-1]) + pem.armor("CERTIFICATE", tsa_pki.root.dump())
    )
    nss_dir = tmp / "nss"
    nss_dir.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss_dir}", "--empty-password"], check=True)
    for name, der in (("signet-root", chain[-1]), ("tsa-root", tsa_pki.root.dump())):
        (tmp / f"{name}.der").write_bytes(der)
        subprocess.run(
            [
                "certutil",
                "-A",
                "-d",
                f"sql:{nss_dir}",
                "-n",
                name,
                "-t",
                "CT,C,C",
                "-i",
                str(tmp / f"{name}.der"),
            ],
            check=True,
        )
    return Desk(
        server,
        tsa_pki,
        alice,
        bob_ec,
        bob_locked,
        roots_pem,
        signet_root,
        nss_dir,
        *_crl_problem(chain[0]),
    )


# -- running `signet sign` ----------------------------------------------------------------
@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def sign(
    desk: Desk | None,
    *args: str,
    user: str = "alice",
    password: str = PASSWORD,
    otp_credential: str | None = None,
    otp: str | None = None,
    pin: str | None = None,
    server_url: str | None = None,
    timeout: float = 90,
) -> Run:
    """Run `signet sign` as a user would: password (and PIN) on stdin; for an OTP, wait for
    the prompt, fetch the code from the inbox (or use ``otp``) and type it."""
    before = len(desk.server.inbox.messages) if desk else 0
    process = subprocess.Popen(
        [SIGNET, "sign", *args, "--server", server_url or desk.server.url, "--user", user],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("SIGNET_")},
    )
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    def pump(stream, name):
        while data := os.read(stream.fileno(), 4096):
            chunks[name].append(data)

    readers = [
        threading.Thread(target=pump, args=(process.stdout, "out"), daemon=True),
        threading.Thread(target=pump, args=(process.stderr, "err"), daemon=True),
    ]
    for reader in readers:
        reader.start()
    assert process.stdin is not None
    process.stdin.write((password + "\n").encode())
    if pin is not None:
        process.stdin.write((pin + "\n").encode())
    process.stdin.flush()
    if otp_credential is not None:
        deadline = time.monotonic() + timeout
        while b"OTP for credential" not in b"".join(chunks["err"]):
            assert process.poll() is None, b"".join(chunks["err"]).decode()
            assert time.monotonic() < deadline, "no OTP prompt"
            time.sleep(0.02)
        code = otp or desk.server.inbox.code_for(otp_credential, before)
        process.stdin.write((code + "\n").encode())
        process.stdin.flush()
    process.stdin.close()
    process.wait(timeout=timeout)
    for reader in readers:
        reader.join(timeout=5)
    return Run(
        process.returncode, b"".join(chunks["out"]).decode(), b"".join(chunks["err"]).decode()
    )


def verify(*args: str) -> Run:
    result = CliRunner().invoke(signet_main, ["verify", *args])
    return Run(result.exit_code, result.output, "")


def only_on_sqlite(desk: Desk, *, unless: bool = False) -> None:
    """The desktop path is client-side: the database only stores what login, OTP and SAD
    need, so PostgreSQL runs a subset (keeping the module near two minutes)."""
    if not unless and desk.server.env["SIGNET_DATABASE__URL"].startswith("postgresql"):
        pytest.skip("client-side variation: covered on SQLite; PostgreSQL runs B-LTA")


def assert_one_line_error(run: Run, *fragments: str) -> None:
    assert run.returncode != 0, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("signet: error:")]
    assert len(errors) == 1, run.stderr
    for fragment in fragments:
        assert fragment in errors[0], run.stderr


# -- independent validation per format ----------------------------------------------------
def _tamper_bytes(data: bytes, marker: bytes) -> bytes:
    assert data.count(marker) == 1, marker
    return data.replace(marker, marker[:-1] + bytes([marker[-1] ^ 0x20]))


def check_pades(desk: Desk, level: str, signed: Path, tmp: Path) -> Path:
    verdict = pdfsig(signed, desk.nss_dir)
    assert verdict[0]["Signature Validation"] == "Signature is Valid.", verdict
    assert verdict[0]["Certificate Validation"] == "Certificate is Trusted.", verdict
    context = ValidationContext(trust_roots=[desk.signet_root, desk.pki.root])
    embedded = PdfFileReader(io.BytesIO(signed.read_bytes())).embedded_signatures[0]
    status = validate_pdf_signature(embedded, context, context)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    if level != "B-B":
        assert status.timestamp_validity.intact and status.timestamp_validity.trusted
        token = embedded.signer_info["unsigned_attrs"][0]["values"][0]
        imprint = hashlib.sha256(embedded.signer_info["signature"].native).digest()
        assert openssl_ts_verify(token.dump(), imprint, desk.roots_pem, tmp)
    tampered = tmp / "tampered.pdf"
    tampered.write_bytes(_tamper_bytes(signed.read_bytes(), b"Signet test document"))
    assert pdfsig(tampered, desk.nss_dir)[0]["Signature Validation"] != "Signature is Valid."
    embedded = PdfFileReader(io.BytesIO(tampered.read_bytes())).embedded_signatures[0]
    assert not validate_pdf_signature(embedded, context, context).intact
    return tampered


def check_cades(desk: Desk, level: str, signed: Path, tmp: Path, content: Path) -> Path:
    assert openssl_cms_verify(signed, content, desk.roots_pem)
    signer_info = cms.ContentInfo.load(signed.read_bytes())["content"]["signer_infos"][0]
    assert signer_info["signature_algorithm"]["algorithm"].native == "rsassa_pss"
    if level != "B-B":
        token = cms.ContentInfo.load(signer_info["unsigned_attrs"][0]["values"][0].dump())
        imprint = hashlib.new(token_hash_name(token), signer_info["signature"].native).digest()
        assert openssl_ts_verify(token.dump(), imprint, desk.roots_pem, tmp)
    tampered = tmp / content.name.replace(".", "-tampered.")
    tampered.write_bytes(content.read_bytes()[:-1] + b"?")
    assert not openssl_cms_verify(signed, tampered, desk.roots_pem)
    return tampered


def check_xades(desk: Desk, level: str, signed: Path, tmp: Path) -> Path:
    assert xmlsec1_verify(signed, desk.roots_pem)
    signature = find_signature(etree.parse(str(signed)).getroot())
    if level != "B-B":
        stamp = signature.find(f".//{{{XADES}}}SignatureTimeStamp")
        token = base64.b64decode(stamp.findtext(f"{{{XADES}}}EncapsulatedTimeStamp"))
        imprint = hashlib.new(
            token_hash_name(cms.ContentInfo.load(token)),
            c14n(signature.find(f"{{{DS}}}SignatureValue")),
        ).digest()
        assert openssl_ts_verify(token, imprint, desk.roots_pem, tmp)
    tampered = tmp / "tampered.xml"
    tampered.write_bytes(_tamper_bytes(signed.read_bytes(), b"Signet desktop line"))
    assert not xmlsec1_verify(tampered, desk.roots_pem)
    return tampered


def check_jades(desk: Desk, level: str, signed: Path, tmp: Path, content: Path) -> Path:
    document = json.loads(signed.read_text())
    header = json.loads(base64.urlsafe_b64decode(document["protected"] + "=="))
    leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    crit = {name: JWSEHeaderParameter(name, True, True, None) for name in ("sigT", "sigD")}
    jws = JWS(header_registry=crit)
    jws.deserialize(json.dumps({k: v for k, v in document.items() if k != "header"}))
    jws.verify(JWK.from_pyca(leaf.public_key()), detached_payload=b"")
    digest = base64.urlsafe_b64encode(hashlib.sha256(content.read_bytes()).digest()).rstrip(b"=")
    assert header["sigD"]["hashV"] == [digest.decode()]
    chain = tmp / "x5c.pem"
    chain.write_bytes(
        b"".join(pem.armor("CERTIFICATE", base64.b64decode(c)) for c in header["x5c"][1:])
    )
    (tmp / "leaf.pem").write_bytes(pem.armor("CERTIFICATE", base64.b64decode(header["x5c"][0])))
    checked = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(desk.roots_pem),
            "-untrusted",
            str(chain),
            str(tmp / "leaf.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    if level != "B-B":
        (raw,) = [
            r
            for r in document["header"]["etsiU"]
            if "sigTst" in base64.urlsafe_b64decode(r + "==").decode()
        ]
        value = json.loads(base64.urlsafe_b64decode(raw + "=="))["sigTst"]
        token = base64.b64decode(value["tstTokens"][0]["val"])
        imprint = hashlib.new(
            token_hash_name(cms.ContentInfo.load(token)), document["signature"].encode()
        ).digest()
        assert openssl_ts_verify(token, imprint, desk.roots_pem, tmp)
    tampered = tmp / "tampered.bin"
    tampered.write_bytes(content.read_bytes()[:-1] + b"?")
    return tampered


# -- the tests ----------------------------------------------------------------------------
# format -> (document, extra sign arguments, credential, expected default output name)
CASES = {
    "pades": ("document.pdf", (), "alice", "document.signed.pdf"),
    "cades": ("blob.bin", ("--scheme", "pss"), "alice", "blob.bin.p7s"),
    "xades": ("invoice.xml", (), "bob_ec", "invoice.signed.xml"),
    "jades": ("blob.bin", ("--packaging", "detached"), "bob_ec", "blob.bin.json"),
}
LEVELS = ["B-B", "B-T", "B-LT", "B-LTA"]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("fmt", list(CASES))
def test_sign_through_csc_and_validate_independently(desk, fmt, level, tmp_path):
    if level in ("B-LT", "B-LTA"):
        if not desk.crl_dp:
            pytest.xfail(
                f"{level} needs revocation data for the Signet-issued signer "
                f"certificate: {desk.crl_problem}"
            )
        assert desk.crl_problem is None, desk.crl_problem
    only_on_sqlite(desk, unless=level == "B-LTA")
    name, extra, who, default_name = CASES[fmt]
    document = tmp_path / name
    if name.endswith(".pdf"):
        write_pdf(document, 2048)
    else:
        document.write_bytes({"invoice.xml": XML_DOC, "blob.bin": BLOB}[name])
    args = [str(document), "--format", fmt, "--level", level, *extra]
    if level != "B-B":
        args += ["--tsa", desk.pki.tsa_url, "--trust", str(desk.roots_pem)]
    if who == "alice":
        run = sign(desk, *args, otp_credential=desk.alice)
    else:
        run = sign(desk, *args, "--credential", desk.bob_ec, user="bob", pin=PIN)
    assert run.returncode == 0, run.stderr
    signed = tmp_path / default_name
    assert run.stdout.strip() == str(signed) and signed.is_file()
    # progress on stderr, in order; the document itself never went anywhere
    steps = ["login:", "credential:", "document hash:", "authorize:", "sign:", "written:"]
    if level != "B-B":
        steps.insert(5, "timestamp/validation data:")
    positions = [run.stderr.find(f"signet: {step}") for step in steps]
    assert -1 not in positions and positions == sorted(positions), run.stderr

    checker = {"pades": check_pades, "xades": check_xades}.get(fmt)
    if checker is not None:
        tampered = checker(desk, level, signed, tmp_path)
        detached: tuple[str, ...] = ()
        tampered_args = [str(tampered)]
    else:
        check = check_cades if fmt == "cades" else check_jades
        tampered = check(desk, level, signed, tmp_path, document)
        detached = ("--detached", str(document))
        tampered_args = [str(signed), "--detached", str(tampered)]

    good = verify(str(signed), *detached, "--trust", str(desk.roots_pem))
    assert good.returncode == 0, good.stdout
    lines = good.stdout.splitlines()
    for expected in ("  intact: yes", "  valid: yes", f"  level: {level}"):
        assert expected in lines, good.stdout
    assert any(line.startswith("  trusted: yes") for line in lines), good.stdout
    assert lines[-1].startswith("result: OK"), good.stdout
    assert any(line.startswith("not checked:") for line in lines)

    bad = verify(*tampered_args, "--trust", str(desk.roots_pem))
    assert bad.returncode == 1, bad.stdout
    assert bad.stdout.splitlines()[-1].startswith("result: FAILED"), bad.stdout
    assert "  intact: no" in bad.stdout.splitlines() or "  valid: no" in bad.stdout.splitlines()

    untrusted = verify(str(signed), *detached)
    assert untrusted.returncode == 1 and "trusted: no" in untrusted.stdout


def test_bad_local_input_ends_in_one_clear_line(tmp_path):
    document = tmp_path / "note.txt"
    document.write_bytes(b"Signet desktop line\n")
    nowhere = f"http://127.0.0.1:{free_port()}"

    run = sign(None, str(tmp_path / "missing.pdf"), "--format", "pades", server_url=nowhere)
    assert_one_line_error(run, "missing.pdf", "no such file")

    run = sign(None, str(document), "--format", "cades", server_url=nowhere)
    assert_one_line_error(run, "cannot reach the signing service", nowhere)

    run = sign(None, str(document), "--format", "cades", "--level", "B-T", server_url=nowhere)
    assert_one_line_error(run, "--tsa", "SIGNET_TSA_URL")

    run = sign(
        None, str(document), "--format", "pades", "--packaging", "detached", server_url=nowhere
    )
    assert_one_line_error(run, "pades cannot be packaged 'detached'")


def test_refusals_by_the_service_end_in_one_clear_line(desk, tmp_path):
    document = tmp_path / "note.txt"
    document.write_bytes(b"Signet desktop line\n")
    base = [str(document), "--format", "cades"]

    run = sign(desk, *base, password="not the password")
    assert_one_line_error(run, "login as alice", "failed")

    run = sign(desk, *base, user="bob")
    assert_one_line_error(run, "bob has 2 credentials", "--credential")
    assert desk.bob_ec in run.stderr and desk.bob_locked in run.stderr

    run = sign(desk, *base, otp_credential=desk.alice, otp="000000")
    assert_one_line_error(run, "refused the OTP", "tries left")
    assert not (tmp_path / "note.txt.p7s").exists()

    run = sign(desk, *base, "--credential", desk.bob_ec, user="bob", pin="246801")
    assert_one_line_error(run, "refused the PIN", "tries left")

    session = desk.server.login("bob")
    for _ in range(5):
        session.post(
            f"{desk.server.url}/csc/v2/credentials/authorize",
            timeout=30,
            json={
                "credentialID": desk.bob_locked,
                "numSignatures": 1,
                "hashes": [base64.b64encode(bytes(32)).decode()],
                "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
                "authData": [{"id": "OTP", "value": "000000"}],
            },
        )
    run = sign(desk, *base, "--credential", desk.bob_locked, user="bob")
    assert_one_line_error(run, desk.bob_locked, "disabled", "administrator")

    if not desk.server.env["SIGNET_DATABASE__URL"].startswith("postgresql"):
        # B-LT without the TSA's root: its path cannot end at an anchor, found before signing
        run = sign(desk, *base, "--level", "B-LT", "--tsa", desk.pki.tsa_url,
                   "--credential", desk.bob_ec, user="bob", pin=PIN)  # fmt: skip
        assert_one_line_error(run, "the TSA's certificate", "--trust CERT")
        assert "authorize:" not in run.stderr and "signHash" not in run.stderr, run.stderr

    dead_tsa = f"http://127.0.0.1:{free_port()}/tsa"
    run = sign(
        desk,
        *base,
        "--level",
        "B-T",
        "--tsa",
        dead_tsa,
        "--credential",
        desk.bob_ec,
        user="bob",
        pin=PIN,
    )
    assert_one_line_error(run, "TSA", dead_tsa, "nothing was signed")
    assert not list(tmp_path.glob("note.txt.p7s*")) and not list(tmp_path.glob(".note*"))
    # The TSA is asked before the one-time code is sent: none goes out, none is wasted.
    mails = len(desk.server.inbox.messages)
    run = sign(desk, *base, "--level", "B-T", "--tsa", dead_tsa, "--credential", desk.alice)
    assert_one_line_error(
        run,
        f"the time-stamping service (TSA) {dead_tsa} does not answer",
        "no one-time code was used",
    )
    assert "authorize" not in run.stderr and len(desk.server.inbox.messages) == mails


def test_verify_reports_problems_in_one_line(tmp_path):
    run = verify(str(tmp_path / "nothing.p7s"))
    assert run.returncode == 1 and "signet: error:" in run.stdout
    text = tmp_path / "plain.txt"
    text.write_text("not a signature\n")
    run = verify(str(text))
    assert run.returncode == 1 and "not a PDF, CMS" in run.stdout


def test_signet_verify_is_installed_and_exits_by_verdict(desk, tmp_path):
    """The installed command (not only click's runner) reports and exits by verdict."""
    only_on_sqlite(desk)
    document = tmp_path / "note.txt"
    document.write_bytes(b"Signet desktop line\n")
    run = sign(
        desk,
        str(document),
        "--format",
        "cades",
        "--packaging",
        "attached",
        "--credential",
        desk.bob_ec,
        user="bob",
        pin=PIN,
    )
    assert run.returncode == 0, run.stderr
    signed = tmp_path / "note.txt.p7m"
    done = subprocess.run(
        [SIGNET, "verify", str(signed), "--trust", str(desk.roots_pem)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "format: CAdES (CMS SignedData, attached)" in done.stdout
    assert "  level: B-B" in done.stdout.splitlines()
    broken = tmp_path / "broken.p7m"
    broken.write_bytes(_tamper_bytes(signed.read_bytes(), b"Signet desktop line"))
    done = subprocess.run(
        [SIGNET, "verify", str(broken), "--trust", str(desk.roots_pem)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "intact: no" in done.stdout, done.stdout
    assert shutil.which("openssl")
