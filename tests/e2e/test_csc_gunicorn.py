"""Signet under gunicorn: concurrent SAD spending across workers, OTP over real SMTP, and
pyHanko's own unpatched CSCSigner signing a PDF that pyHanko and pdfsig then validate."""

import asyncio
import base64
import hashlib
import io
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import requests
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.signers import csc_signer
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import create_engine, text

from tests.e2e.conftest import create_credential
from tests.helpers import signet_cli

SHA256 = "2.16.840.1.101.3.4.2.1"
RSA_SHA256 = "1.2.840.113549.1.1.11"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_twenty_parallel_sign_hash_on_one_sad_exactly_five_succeed(server):
    credential = create_credential(
        server, "alice", "rsa-2048", "--activation", "pin", "--policy", "basic", pin="246801"
    )
    session = server.login("alice")
    digests = [hashlib.sha256(f"parallel {i}".encode()).digest() for i in range(5)]
    authorized = session.post(
        f"{server.url}/csc/v2/credentials/authorize",
        json={
            "credentialID": credential,
            "numSignatures": 5,
            "hashes": [b64(d) for d in digests],
            "hashAlgorithmOID": SHA256,
            "authData": [{"id": "PIN", "value": "246801"}],
        },
        timeout=30,
    )
    assert authorized.status_code == 200, authorized.text
    sad = authorized.json()["SAD"]
    token = session.headers["Authorization"]

    def sign(i):
        response = requests.post(
            f"{server.url}/csc/v2/signatures/signHash",
            json={
                "credentialID": credential,
                "SAD": sad,
                "hashes": [b64(digests[i % 5])],
                "hashAlgorithmOID": SHA256,
                "signAlgo": RSA_SHA256,
            },
            headers={"Authorization": token},
            timeout=60,
        )
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(sign, range(20)))
    ok = [body for status, body in results if status == 200]
    refused = [body for status, body in results if status != 200]
    assert len(ok) == 5, results
    assert all(status in (200, 400) for status, _ in results)
    assert all(body["error"] == "invalid_request" for body in refused)
    info = session.post(
        f"{server.url}/csc/v2/credentials/info", json={"credentialID": credential}, timeout=30
    ).json()
    cert = x509.load_der_x509_certificate(base64.b64decode(info["cert"]["certificates"][0]))
    signed = [base64.b64decode(body["signatures"][0]) for body in ok]
    verified = 0
    for signature in signed:
        for digest in digests:
            try:
                cert.public_key().verify(
                    signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
                )
                verified += 1
                break
            except Exception:
                continue
    assert verified == len(signed) == 5
    # Two workers appended to the audit chain at once: it is intact, and it holds exactly the
    # five spends and five signatures (each naming its hash), and the fifteen refusals.
    checked = signet_cli("audit", "verify", env=server.env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    engine = create_engine(
        server.env["SIGNET_DATABASE__URL"].replace("postgresql:", "postgresql+psycopg:", 1)
    )
    try:
        with engine.connect() as conn:
            events = conn.execute(
                text("SELECT event, details FROM audit_records WHERE subject = :c ORDER BY seq"),
                {"c": credential},
            ).all()
    finally:
        engine.dispose()
    names = [event for event, _ in events]
    assert names.count("sad.spent") == 5
    assert names.count("signature.created") == 5
    assert names.count("sad.rejected") == 15
    recorded = [
        json.loads(details)["hashes"] for event, details in events if event == "signature.created"
    ]
    assert all(len(h) == 1 and h[0] in {b64(d) for d in digests} for h in recorded), recorded


def test_otp_arrives_by_smtp_with_starttls_and_auth(server):
    credential = create_credential(server, "bob", "ec-p256")
    session = server.login("bob")
    before = len(server.inbox.messages)
    sent = session.post(
        f"{server.url}/csc/v2/credentials/sendOTP", json={"credentialID": credential}, timeout=30
    )
    assert sent.status_code == 204, sent.text
    code = server.inbox.code_for(credential, before)
    recipients, message, authenticated = server.inbox.messages[-1]
    assert recipients == ["bob@example.test"] and authenticated
    assert code not in message["Subject"]
    digest = hashlib.sha256(b"smtp").digest()
    authorized = session.post(
        f"{server.url}/csc/v2/credentials/authorize",
        json={
            "credentialID": credential,
            "numSignatures": 1,
            "hashes": [b64(digest)],
            "hashAlgorithmOID": SHA256,
            "authData": [{"id": "OTP", "value": code}],
        },
        timeout=30,
    )
    assert authorized.status_code == 200, authorized.text


class OtpAuthorizationManager(csc_signer.CSCAuthorizationManager):
    """Authorises each batch of hashes the way a signing app would: ask the service to send
    an OTP, read it from the user's mailbox, and call credentials/authorize with it."""

    def __init__(self, server, session_info, credential_info, http):
        super().__init__(session_info, credential_info)
        self.server, self.http = server, http

    async def authorize_signature(self, hash_b64s):
        headers = self.auth_headers
        before = len(self.server.inbox.messages)
        async with self.http.post(
            self.csc_session_info.endpoint_url("credentials/sendOTP"),
            json={"credentialID": self.csc_session_info.credential_id},
            headers=headers,
            raise_for_status=True,
        ):
            pass
        code = await asyncio.to_thread(
            self.server.inbox.code_for, self.csc_session_info.credential_id, before
        )
        body = self.format_csc_auth_request(otp=code, hash_b64s=hash_b64s)
        async with self.http.post(
            self.csc_session_info.endpoint_url("credentials/authorize"),
            json=body,
            headers=headers,
            raise_for_status=True,
        ) as resp:
            return self.parse_csc_auth_response(await resp.json())


def minimal_pdf() -> bytes:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter()
    page = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Page"),
            generic.NameObject("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(n) for n in (0, 0, 595, 842)]
            ),
        }
    )
    writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pyhanko_csc_signer_signs_a_pdf_through_v1(server, tmp_path):
    credential = create_credential(server, "alice", "rsa-3072")
    token = server.login("alice", "v1").headers["Authorization"].split()[1]

    async def sign() -> bytes:
        async with aiohttp.ClientSession() as http:
            info = csc_signer.CSCServiceSessionInfo(
                server.url, credential, oauth_token=token, api_ver="v1"
            )
            cred_info = await csc_signer.fetch_certs_in_csc_credential(http, info)
            assert cred_info.hash_pinning_required  # SCAL2
            manager = OtpAuthorizationManager(server, info, cred_info, http)
            signer = csc_signer.CSCSigner(http, auth_manager=manager, prefer_pss=True)
            writer = IncrementalPdfFileWriter(io.BytesIO(minimal_pdf()))
            out = await signers.async_sign_pdf(
                writer, signers.PdfSignatureMetadata(field_name="Signature1"), signer=signer
            )
            return out.getvalue(), cred_info

    signed, cred_info = asyncio.run(sign())
    root = cred_info.chain[-1] if cred_info.chain else cred_info.signing_cert
    status = validate_pdf_signature(
        PdfFileReader(io.BytesIO(signed)).embedded_signatures[0],
        ValidationContext(trust_roots=[root]),
    )
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.signing_cert.subject == cred_info.signing_cert.subject
    assert status.md_algorithm in ("sha256", "sha384")
    assert status.pkcs7_signature_mechanism == "rsassa_pss"  # with pyHanko's maximal salt

    # pdfsig (poppler, NSS) validates it too, trusting our local CA through an NSS database.
    pdf = tmp_path / "signed.pdf"
    pdf.write_bytes(signed)
    nssdb = tmp_path / "nss"
    nssdb.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    (tmp_path / "root.der").write_bytes(root.dump())
    subprocess.run(
        [
            "certutil",
            "-A",
            "-d",
            f"sql:{nssdb}",
            "-n",
            "signet-root",
            "-t",
            "CT,C,C",
            "-i",
            str(tmp_path / "root.der"),
        ],
        check=True,
    )
    result = subprocess.run(
        ["pdfsig", "-nssdir", f"sql:{nssdb}", str(pdf)], capture_output=True, text=True
    )
    assert "Signature is Valid" in result.stdout, result.stdout + result.stderr
    assert "Certificate is Trusted" in result.stdout, result.stdout

    # A changed byte in the signed range makes both validators refuse it.
    tampered = bytearray(signed)
    index = tampered.index(b"/MediaBox")
    tampered[index + 1] = ord("m")
    bad = tmp_path / "tampered.pdf"
    bad.write_bytes(bytes(tampered))
    result = subprocess.run(
        ["pdfsig", "-nssdir", f"sql:{nssdb}", str(bad)], capture_output=True, text=True
    )
    assert "Signature is Valid" not in result.stdout
    status = validate_pdf_signature(
        PdfFileReader(io.BytesIO(bytes(tampered))).embedded_signatures[0],
        ValidationContext(trust_roots=[root]),
    )
    assert not status.intact
    assert isinstance(asn1_x509.Certificate.load(root.dump()), asn1_x509.Certificate)
