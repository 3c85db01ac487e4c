"""pyHanko's CSC client signs a PDF with an OAuth 2.0 credential token: the hashes pyHanko
computes go to Signet's pages (login, consent, the mailed code), Authlib exchanges the code,
and signHash spends the token's SAD (pyHanko sends an empty SAD); pyHanko and pdfsig
(poppler) verify the signature."""

import asyncio
import base64
import io
import secrets
import subprocess

import aiohttp
import requests
from authlib.integrations.requests_client import OAuth2Session
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.signers import csc_signer
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from tests.e2e.test_csc_gunicorn import minimal_pdf
from tests.integration.csc_http import PASSWORD, SHA
from tests.integration.oauth2_browser import REDIRECT_URI, Browser
from tests.integration.test_oauth2 import b64url, credential_grant, world  # noqa: F401


class OAuth2CredentialManager(csc_signer.CSCAuthorizationManager):
    """Authorizes each batch of hashes as a signing application with OAuth 2.0 would: the
    user approves them on Signet's pages, the credential token then signs them."""

    def __init__(self, w, session_info, credential_info):
        super().__init__(session_info, credential_info)
        self.w, self.token = w, None

    def _grant(self, hash_b64s):
        w = self.w
        client = OAuth2Session(
            w["public"],
            scope="credential",
            redirect_uri=REDIRECT_URI,
            code_challenge_method="S256",
            token_endpoint_auth_method="none",
        )
        verifier = secrets.token_urlsafe(48)
        address, _ = client.create_authorization_url(
            f"{w['url']}/oauth2/authorize",
            code_verifier=verifier,
            credentialID=w["credential"],
            numSignatures=str(len(hash_b64s)),
            hashes=",".join(b64url(base64.b64decode(h)) for h in hash_b64s),
            hashAlgorithmOID=SHA["sha256"],
        )
        browser = Browser(w["url"])
        credential_grant(w, browser, address)
        token = client.fetch_token(
            f"{w['url']}/oauth2/token",
            authorization_response=browser.location(),
            code_verifier=verifier,
        )
        return token["access_token"]

    async def authorize_signature(self, hash_b64s):
        self.token = await asyncio.to_thread(self._grant, hash_b64s)
        return csc_signer.CSCAuthorizationInfo(sad="")

    @property
    def auth_headers(self):
        return {"Authorization": f"Bearer {self.token}"}


def test_pyhanko_signs_a_pdf_with_a_credential_token(world, tmp_path):  # noqa: F811
    w = world
    login = requests.post(f"{w['url']}/csc/v2/auth/login", auth=("alice", PASSWORD), timeout=30)
    service_token = login.json()["access_token"]

    async def sign():
        async with aiohttp.ClientSession() as http:
            info = csc_signer.CSCServiceSessionInfo(
                w["url"], w["credential"], oauth_token=service_token, api_ver="v1"
            )
            cred_info = await csc_signer.fetch_certs_in_csc_credential(http, info)
            manager = OAuth2CredentialManager(w, info, cred_info)
            signer = csc_signer.CSCSigner(http, auth_manager=manager)
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
