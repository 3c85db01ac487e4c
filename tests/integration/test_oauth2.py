"""The CSC OAuth 2.0 authorization server end to end, on each database engine: Authlib's
OAuth2Session as the signature application, a person at Signet's own pages (forms read and
sent over HTTP), the real Flask app over loopback: service and credential grants (hashes, or
authorization_details), the second factor, signHash with the credential token and the
signature verified; PAR; every misuse of a code, a token or a page refused and audited."""

import base64
import hashlib
import json
import secrets
from urllib.parse import urlencode

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.hashes import SHA256
from sqlalchemy import select

from signet.store import AccessToken, AuditRecord, OAuth2Client
from tests.integration.csc_http import PASSWORD, SHA
from tests.integration.oauth2_browser import (
    REDIRECT_URI,
    Browser,
    client_world,
    mail_keys,
    newest_code,
)

ECDSA_SHA256 = "1.2.840.10045.4.3.2"


@pytest.fixture
def world(app, services):
    with client_world(app, services, range(56800, 56849), "Acme Sign", "Pocket Sign") as world:
        yield world


def events(services, name):
    with services.database.transaction() as session:
        rows = session.execute(
            select(AuditRecord.outcome, AuditRecord.details).where(AuditRecord.event == name)
        ).all()
    return [(outcome, json.loads(details)) for outcome, details in rows]


def confidential_session(w, scope="service"):
    return OAuth2Session(
        w["confidential"],
        w["secret"],
        scope=scope,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )


def public_session(w, scope="credential"):
    return OAuth2Session(
        w["public"],
        scope=scope,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )


def log_in(browser, address):
    page = browser.open(address)
    assert page.status_code == 200, page.text
    assert "Content-Security-Policy" in page.headers
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "<script" not in page.text
    return browser.submit(username="alice", password=PASSWORD)


def credential_grant(w, browser, address, *, pin_or_code=None):
    """Log in, approve, pass the second factor (the mailed code); the redirect's params."""
    maildir = w["services"].settings.notify.maildir
    seen = mail_keys(maildir)
    consent = log_in(browser, address)
    assert consent.status_code == 200, consent.text
    factor = browser.submit(decision="approve")
    assert factor.status_code == 200, factor.text
    assert "One-time code" in factor.text
    browser.submit(code=pin_or_code or newest_code(maildir, seen))
    return browser.redirected_to()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def certificate(w):
    login = requests.post(f"{w['url']}/csc/v2/auth/login", auth=("alice", PASSWORD), timeout=30)
    info = requests.post(
        f"{w['url']}/csc/v2/credentials/info",
        json={"credentialID": w["credential"], "certificates": "single"},
        headers=bearer(login.json()["access_token"]),
        timeout=30,
    )
    der = base64.b64decode(info.json()["cert"]["certificates"][0])
    return x509.load_der_x509_certificate(der)


def sign_hash(w, token, digests, sad=None):
    body = {
        "credentialID": w["credential"],
        "hashes": [base64.b64encode(d).decode() for d in digests],
        "hashAlgorithmOID": SHA["sha256"],
        "signAlgo": ECDSA_SHA256,
    }
    if sad:
        body["SAD"] = sad
    return requests.post(
        f"{w['url']}/csc/v2/signatures/signHash", json=body, headers=bearer(token), timeout=60
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_service_grant_gives_a_token_for_the_csc_api(world):
    w = world
    info = requests.post(f"{w['url']}/csc/v2/info", json={}, timeout=30).json()
    assert "oauth2code" in info["authType"] and info["oauth2"] == w["url"]
    assert info["oauth2Issuer"] == w["url"]
    meta = requests.get(f"{w['url']}/.well-known/oauth-authorization-server", timeout=30).json()
    assert meta["issuer"] == w["url"] and meta["code_challenge_methods_supported"] == ["S256"]

    client, browser = confidential_session(w), Browser(w["url"])
    verifier = secrets.token_urlsafe(48)
    address, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier
    )
    consent = log_in(browser, address)
    assert "Acme Sign" in consent.text and "Approve" in consent.text
    browser.submit(decision="approve")
    back = browser.redirected_to()
    assert back["state"] == state
    token = client.fetch_token(
        meta["token_endpoint"], authorization_response=browser.location(), code_verifier=verifier
    )
    assert token["token_type"].lower() == "bearer" and token["scope"] == "service"
    listed = requests.post(
        f"{w['url']}/csc/v2/credentials/list",
        json={},
        headers=bearer(token["access_token"]),
        timeout=30,
    )
    assert listed.status_code == 200 and listed.json()["credentialIDs"] == [w["credential"]]
    s = w["services"]
    assert events(s, "oauth2.login")[0][1]["loa"]
    assert events(s, "oauth2.consent")[0][1]["approved"] is True
    assert events(s, "oauth2.authorized")[0][1]["scope"] == "service"
    issued = events(s, "oauth2.token_issued")
    assert issued and issued[0][1]["client_id"] == w["confidential"]
    with s.database.transaction() as session:
        scopes = session.execute(select(AccessToken.scope)).scalars().all()
    assert "service" in scopes


def test_credential_grant_signs_exactly_its_hashes_once(world):
    w = world
    digests = [hashlib.sha256(b"contract %d" % i).digest() for i in range(2)]
    client, browser = public_session(w), Browser(w["url"])
    verifier = secrets.token_urlsafe(48)
    address, _ = client.create_authorization_url(
        f"{w['url']}/oauth2/authorize",
        code_verifier=verifier,
        credentialID=w["credential"],
        numSignatures="2",
        hashes=",".join(b64url(d) for d in digests),
        hashAlgorithmOID=SHA["sha256"],
    )
    maildir = w["services"].settings.notify.maildir
    seen = mail_keys(maildir)
    consent = log_in(browser, address)
    assert "Pocket Sign" in consent.text and "<dd>2</dd>" in consent.text
    assert base64.b64encode(digests[0]).decode()[:24] in consent.text
    factor = browser.submit(decision="approve")
    code = newest_code(maildir, seen)
    wrong = browser.submit(code="000000" if code != "000000" else "111111")
    assert wrong.status_code == 400 and 'aria-invalid="true"' in wrong.text
    browser.submit(code=code)
    assert factor.status_code == 200
    browser.redirected_to()
    token = client.fetch_token(
        f"{w['url']}/oauth2/token",
        authorization_response=browser.location(),
        code_verifier=verifier,
    )
    assert token["scope"] == "credential" and token["credentialID"] == w["credential"]
    access = token["access_token"]

    # good for signHash only, with no SAD parameter; another hash, or the same twice, refused
    assert (
        requests.post(
            f"{w['url']}/csc/v2/credentials/list", json={}, headers=bearer(access), timeout=30
        ).status_code
        == 401
    )
    other = sign_hash(w, access, [hashlib.sha256(b"forged").digest()])
    assert other.status_code == 400, other.text
    signed = sign_hash(w, access, digests)
    assert signed.status_code == 200, signed.text
    public_key = certificate(w).public_key()
    for digest, signature in zip(digests, signed.json()["signatures"], strict=True):
        public_key.verify(base64.b64decode(signature), digest, ec.ECDSA(utils.Prehashed(SHA256())))
    again = sign_hash(w, access, digests[:1])
    assert again.status_code == 400 and "numSignatures" in again.json()["error_description"]
    # the wrong code counted as a failed try, as at credentials/authorize
    assert [o for o, _ in events(w["services"], "otp.failed")] == ["failure"]
    (authorized,) = events(w["services"], "credential.authorized")
    assert authorized[1]["num_signatures"] == 2


def test_authorization_details_and_pushed_request(world):
    w = world
    digest = hashlib.sha256(b"the lease").digest()
    details = [
        {
            "type": "credential",
            "credentialID": w["credential"],
            "documentDigests": [{"hash": b64url(digest), "label": "Lease agreement.pdf"}],
            "hashAlgorithmOID": SHA["sha256"],
        }
    ]
    verifier = secrets.token_urlsafe(48)
    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    pushed = requests.post(
        f"{w['url']}/oauth2/pushed_authorize",
        data={
            "client_id": w["confidential"],
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "state": "s-123",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "authorization_details": json.dumps(details),
        },
        auth=(w["confidential"], w["secret"]),
        timeout=30,
    )
    assert pushed.status_code == 201, pushed.text
    request_uri = pushed.json()["request_uri"]
    assert request_uri.startswith("urn:ietf:params:oauth:request_uri:")
    address = f"{w['url']}/oauth2/authorize?" + urlencode(
        {"client_id": w["confidential"], "request_uri": request_uri}
    )
    browser = Browser(w["url"])
    maildir = w["services"].settings.notify.maildir
    seen = mail_keys(maildir)
    consent = log_in(browser, address)
    assert "Lease agreement.pdf" in consent.text
    browser.submit(decision="approve")
    browser.submit(code=newest_code(maildir, seen))
    back = browser.redirected_to()
    assert back["state"] == "s-123"
    answer = requests.post(
        f"{w['url']}/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": back["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(w["confidential"], w["secret"]),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["authorization_details"][0]["credentialID"] == w["credential"]
    signed = sign_hash(w, answer.json()["access_token"], [digest])
    assert signed.status_code == 200, signed.text
    # a request_uri is used once
    replay = Browser(w["url"]).open(address)
    assert replay.status_code == 400 and "used before" in replay.text


def _service_code(w, client, verifier):
    browser = Browser(w["url"])
    address, _ = client.create_authorization_url(
        f"{w['url']}/oauth2/authorize", code_verifier=verifier
    )
    log_in(browser, address)
    browser.submit(decision="approve")
    return browser.redirected_to()["code"]


def _token(w, code, verifier, redirect_uri=REDIRECT_URI):
    return requests.post(
        f"{w['url']}/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=(w["confidential"], w["secret"]),
        timeout=30,
    )


def test_code_misuse_is_refused_and_a_replay_revokes_its_token(world):
    w = world
    client, verifier = confidential_session(w), secrets.token_urlsafe(48)
    code = _service_code(w, client, verifier)
    wrong = _token(w, code, secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    elsewhere = _token(w, code, verifier, "http://127.0.0.1:56849/other")
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_grant"
    first = _token(w, code, verifier)
    assert first.status_code == 200, first.text
    access = first.json()["access_token"]
    ok = requests.post(f"{w['url']}/csc/v2/credentials/list", json={}, headers=bearer(access))
    assert ok.status_code == 200
    replay = _token(w, code, verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    gone = requests.post(f"{w['url']}/csc/v2/credentials/list", json={}, headers=bearer(access))
    assert gone.status_code == 401
    (reused,) = events(w["services"], "oauth2.code_reused")
    assert reused[0] == "failure" and reused[1]["revoked_token"] is True
    refused = [d["reason"] for _, d in events(w["services"], "oauth2.token_refused")]
    assert any("PKCE" in r for r in refused) and any("redirect_uri" in r for r in refused)


def test_expired_code_is_refused(world):
    w = world
    w["services"].settings.oauth2.code_lifetime_seconds = 1
    client, verifier = confidential_session(w), secrets.token_urlsafe(48)
    code = _service_code(w, client, verifier)
    import time

    time.sleep(2.1)
    late = _token(w, code, verifier)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


def test_revoked_credential_token_signs_nothing(world):
    w = world
    digest = hashlib.sha256(b"to revoke").digest()
    client, browser = public_session(w), Browser(w["url"])
    verifier = secrets.token_urlsafe(48)
    address, _ = client.create_authorization_url(
        f"{w['url']}/oauth2/authorize",
        code_verifier=verifier,
        credentialID=w["credential"],
        numSignatures="1",
        hashes=b64url(digest),
        hashAlgorithmOID=SHA["sha256"],
    )
    credential_grant(w, browser, address)
    token = client.fetch_token(
        f"{w['url']}/oauth2/token",
        authorization_response=browser.location(),
        code_verifier=verifier,
    )
    revoked = client.revoke_token(
        f"{w['url']}/oauth2/revoke", token=token["access_token"], token_type_hint="access_token"
    )
    assert revoked.status_code == 200
    refused = sign_hash(w, token["access_token"], [digest])
    assert refused.status_code == 401, refused.text
    (event,) = events(w["services"], "oauth2.token_revoked")
    assert event[0] == "success" and event[1]["kind"] == "access_token"


def test_bad_requests_get_a_page_or_rfc6749_json_never_a_500(world):
    w = world
    url = w["url"]
    # public client without PKCE: told at its (registered) redirect URI
    browser = Browser(url)
    page = browser.open(
        f"{url}/oauth2/authorize?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": w["public"],
                "redirect_uri": REDIRECT_URI,
                "scope": "service",
                "state": "x",
            }
        )
    )
    assert page.status_code == 303
    back = browser.redirected_to()
    assert back["error"] == "invalid_request" and "PKCE" in back["error_description"]
    assert back["state"] == "x"
    # unknown client, or a redirect URI not registered: an error page, no redirect
    for params in (
        {"response_type": "code", "client_id": "nobody", "redirect_uri": REDIRECT_URI},
        {
            "response_type": "code",
            "client_id": w["confidential"],
            "redirect_uri": "https://evil.example/cb",
        },
        {
            "response_type": "code",
            "client_id": w["confidential"],
            "redirect_uri": REDIRECT_URI,
            "request_uri": "urn:ietf:params:oauth:request_uri:forged",
        },
    ):
        page = Browser(url).open(f"{url}/oauth2/authorize?" + urlencode(params))
        assert page.status_code == 400 and "Location" not in page.headers
        assert "text/html" in page.headers["Content-Type"]
    # a form sent without this browser's cookie (CSRF), or with a forged ticket
    client = confidential_session(w)
    address, _ = client.create_authorization_url(
        f"{url}/oauth2/authorize", code_verifier=secrets.token_urlsafe(48)
    )
    browser = Browser(url)
    browser.open(address)
    ticket = browser.form()["fields"]["ticket"]
    stranger = requests.post(
        f"{url}/oauth2/login", data={"ticket": ticket, "username": "alice", "password": PASSWORD}
    )
    assert stranger.status_code == 400 and "CSRF" in stranger.text
    forged = browser.session.post(
        f"{url}/oauth2/consent", data={"ticket": ticket[:-4] + "AAAA", "decision": "approve"}
    )
    assert forged.status_code == 400
    out_of_order = browser.session.post(
        f"{url}/oauth2/consent", data={"ticket": ticket, "decision": "approve"}
    )
    assert out_of_order.status_code == 400 and "out of order" in out_of_order.text
    wrong_password = browser.submit(username="alice", password="wrong password!")
    assert wrong_password.status_code == 400 and 'aria-invalid="true"' in wrong_password.text
    # the token endpoint: RFC 6749 5.2 errors as JSON
    cases = [
        ({}, None, 400, "invalid_request"),
        ({"grant_type": "password"}, None, 400, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "x"}, ("nobody", "x"), 401, "invalid_client"),
        (
            {"grant_type": "authorization_code", "code": "x"},
            (w["confidential"], "wrong"),
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "authorization_code", "code": "garbage"},
            (w["confidential"], w["secret"]),
            400,
            "invalid_grant",
        ),
        (
            {"grant_type": "authorization_code", "client_id": w["public"], "code": "\x00" * 300},
            None,
            400,
            "invalid_request",
        ),
    ]
    for data, auth, status, error in cases:
        answer = requests.post(f"{url}/oauth2/token", data=data, auth=auth, timeout=30)
        assert answer.status_code == status, (data, answer.text)
        assert answer.json()["error"] == error, (data, answer.text)
        assert answer.headers["Cache-Control"] == "no-store"
    doubled = requests.post(
        f"{url}/oauth2/token", data=[("grant_type", "authorization_code")] * 2, timeout=30
    )
    assert doubled.status_code == 400 and doubled.json()["error"] == "invalid_request"


def test_a_client_record_edited_in_the_database_is_refused(world):
    w = world
    with w["services"].database.transaction() as session:
        row = session.execute(
            select(OAuth2Client).where(OAuth2Client.client_id == w["confidential"])
        ).scalar_one()
        row.redirect_uris += "\nhttps://evil.example/cb"
    page = Browser(w["url"]).open(
        f"{w['url']}/oauth2/authorize?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": w["confidential"],
                "redirect_uri": "https://evil.example/cb",
                "scope": "service",
            }
        )
    )
    assert page.status_code == 403 and "Location" not in page.headers
    assert events(w["services"], "integrity.violation")
