"""Logging in with a passkey on Signet's OAuth 2.0 pages, on each engine. In headless
Chromium (its virtual authenticator, against `signet serve`): Alice registers a passkey, logs
in with it (no user name asked), approves with it, and the code's token signs a hash that
verifies with the certificate. Over HTTP with a software authenticator: the login page's
challenge is the SHA-256 of its sealed ticket; a service login whose token is used with a PIN
credential (two factor kinds) and refused by a credential's policy (one kind); the device flow;
and what must fail does, said on the page and audited: another user's passkey, a replayed
assertion, another origin or RP ID, no user verification, a cloned counter, a revoked passkey
or credential, a disabled user, an edited passkey row, another browser's ticket, a throttled
passkey."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from selenium.webdriver.common.by import By
from sqlalchemy import select, update

from signet.sam import mobile as mobile_trust
from signet.signing import admin, users
from signet.signing.oauth2_clients import add_client
from signet.store import MobileDevice
from tests.helpers import enrol, port_in, signet_server
from tests.integration.passkey_authenticator import SoftAuthenticator, b64url
from tests.integration.test_oauth2_approval import no_csp_violation, seen
from tests.integration.test_passkeys_api import register
from tests.integration.test_passkeys_browser import (  # noqa: F401 (chromium: a fixture)
    chromium,
    events,
    register_in_browser,
    virtual_authenticator,
)

PASSWORD = "correct horse battery"
SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
REDIRECT_URI = "http://127.0.0.1:57299/callback"  # this test's own ports: 57250-57299
ORIGIN = "http://localhost"  # Flask's test client
CSRF_COOKIE = "signet_oauth2_csrf"


def add_alice(services, policy="basic"):
    admin.add_user(
        services, "alice", password=PASSWORD, display_name="Alice", email="alice@example.test",
        actor="test",
    )  # fmt: skip
    return admin.create_credential(
        services, "alice", key="ec-p256", actor="test", activation="passkey", policy=policy
    ).credential_id


def authorization_url(base, client_id, verifier, scope="service", **extra):
    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    query = {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": scope, "state": "s-1", "code_challenge": challenge,
        "code_challenge_method": "S256", **extra,
    }  # fmt: skip
    return f"{base}/oauth2/authorize?{urlencode(query)}"


def passkey_form(text):
    """The login page's passkey form: its ticket and challenge (hidden without script)."""
    form = re.search(r'<form id="passkey-login"[^>]*>.*?</form>', text, re.S)
    assert form, text[:3000]
    assert " hidden" in form.group(0).split(">")[0]
    ticket = html.unescape(re.search(r'name="ticket" value="([^"]+)"', form.group(0)).group(1))
    challenge = re.search(r'data-challenge="([^"]+)"', form.group(0)).group(1)
    return ticket, challenge


def with_handle(assertion, credential_id):
    """A discoverable passkey's assertion names its user: the id it was registered with."""
    assertion["response"]["userHandle"] = b64url(credential_id.encode())
    return assertion


class Login:
    """One browser on the login page, over Flask's test client."""

    def __init__(self, client, address):
        self.client = client
        self.page = client.get(address)
        assert self.page.status_code == 200, self.page.text
        self.ticket, self.challenge = passkey_form(self.page.text)

    def challenge_bytes(self):
        return mobile_trust.unb64url(self.challenge)

    def post(self, assertion, ticket=None):
        self.page = self.client.post(
            "/oauth2/login/passkey",
            data={"ticket": ticket or self.ticket, "assertion": json.dumps(assertion)},
        )
        if self.page.status_code in (200, 400) and 'id="passkey-login"' in self.page.text:
            self.ticket, self.challenge = passkey_form(self.page.text)  # a fresh one
        return self.page

    def refused(self, assertion, why):
        answer = self.post(assertion)
        assert answer.status_code == 400, answer.text[:2000]
        assert "Passkey login refused" in answer.text and why in html.unescape(answer.text), (
            answer.text[:3000]
        )
        return answer


def consent_ticket(text):
    return html.unescape(re.search(r'name="ticket" value="([^"]+)"', text).group(1))


def exchange(client, location, client_id, verifier):
    code = parse_qs(urlsplit(location).query)["code"][0]
    token = client.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier, "client_id": client_id,
        },
    )  # fmt: skip
    assert token.status_code == 200, token.text
    return token.json["access_token"]


@pytest.fixture
def world(services, client):
    """Alice with a passkey credential (basic policy) whose passkey a software authenticator
    holds, and a public client."""
    credential_id = add_alice(services)
    authenticator = SoftAuthenticator(ORIGIN, "localhost")
    done = register(client, services, "alice", credential_id, authenticator)
    assert done.status_code == 200, done.text
    public, _ = add_client(services, "Pocket Sign", [REDIRECT_URI], public=True, actor="test")
    return {"credential": credential_id, "passkey": authenticator, "client": public.client_id}


def test_a_passkey_login_gives_a_token_that_signs_with_a_pin(services, client, world):
    credential_id, passkey = world["credential"], world["passkey"]
    verifier = secrets.token_urlsafe(48)
    login = Login(client, authorization_url("", world["client"], verifier))
    csp = login.page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    assert login.page.text.count("<script") == login.page.text.count("<script src=") == 2
    # the challenge is SHA-256 of the page's sealed ticket (docs/passkeys.md)
    assert (
        login.challenge_bytes()
        == hashlib.sha256(b"signet-passkey-login\0" + login.ticket.encode()).digest()
    )
    consent = login.post(with_handle(passkey.get(login.challenge_bytes()), credential_id))
    assert consent.status_code == 200 and "Approve this request?" in consent.text, consent.text
    (logged,) = events(services, "oauth2.login")
    assert (logged["method"], logged["auth_methods"], logged["loa"]) == (
        "passkey",
        ["passkey_login"],
        "low",
    )
    back = client.post("/oauth2/consent", data={"ticket": consent_ticket(consent.text),
                                               "decision": "approve"})  # fmt: skip
    assert back.status_code == 303 and back.headers["Location"].startswith(REDIRECT_URI)
    token = exchange(client, back.headers["Location"], world["client"], verifier)
    headers = {"Authorization": f"Bearer {token}"}
    listed = client.post("/csc/v2/credentials/list", json={}, headers=headers)
    assert listed.status_code == 200 and credential_id in listed.json["credentialIDs"]

    # a PIN credential after a passkey login: two kinds (possession, knowledge), substantial
    pin_credential = enrol(services, "alice", key="ec-p256", activation="pin", pin="482915")
    digest = hashlib.sha256(b"lease").digest()
    request = {
        "credentialID": pin_credential.credential_id, "numSignatures": 1,
        "hashes": [base64.b64encode(digest).decode()], "hashAlgorithmOID": SHA256,
    }  # fmt: skip
    sad = client.post(
        "/csc/v2/credentials/authorize",
        headers=headers,
        json={**request, "authData": [{"id": "PIN", "value": "482915"}]},
    )
    assert sad.status_code == 200, sad.text
    authorized = events(services, "credential.authorized")[-1]
    assert (authorized["auth_methods"], authorized["eidas"], authorized["aal"]) == (
        ["passkey_login", "pin"],
        "substantial",
        2,
    )
    signed = client.post(
        "/csc/v2/signatures/signHash",
        headers=headers,
        json={"credentialID": pin_credential.credential_id, "SAD": sad.json["SAD"],
              "hashes": request["hashes"], "hashAlgorithmOID": SHA256, "signAlgo": ECDSA_SHA256},
    )  # fmt: skip
    assert signed.status_code == 200, signed.text
    info = client.post(
        "/csc/v2/credentials/info",
        headers=headers,
        json={"credentialID": pin_credential.credential_id, "certificates": "single"},
    )
    key = x509.load_der_x509_certificate(
        base64.b64decode(info.json["cert"]["certificates"][0])
    ).public_key()
    key.verify(
        base64.b64decode(signed.json["signatures"][0]),
        digest,
        ec.ECDSA(utils.Prehashed(hashes.SHA256())),
    )

    # the passkey credential under 'advanced' after a passkey login: two possessions, one kind
    stricter = admin.create_credential(
        services, "alice", key="ec-p256", actor="test", activation="passkey", policy="advanced"
    ).credential_id
    assert (
        register(
            client, services, "alice", stricter, SoftAuthenticator(ORIGIN, "localhost")
        ).status_code
        == 200
    )
    verifier = secrets.token_urlsafe(48)
    login = Login(client, authorization_url(
        "", world["client"], verifier, scope="credential", credentialID=stricter,
        numSignatures="1", hashes=b64url(digest), hashAlgorithmOID=SHA256,
    ))  # fmt: skip
    consent = login.post(with_handle(passkey.get(login.challenge_bytes()), credential_id))
    assert consent.status_code == 200, consent.text
    refused = client.post("/oauth2/consent", data={"ticket": consent_ticket(consent.text),
                                                  "decision": "approve"})  # fmt: skip
    assert refused.status_code == 303, refused.text
    back = parse_qs(urlsplit(refused.headers["Location"]).query)
    assert (
        back["error"] == ["access_denied"] and "policy 'advanced'" in back["error_description"][0]
    )
    (shortfall,) = events(services, "credential.authorize_refused")
    assert shortfall["auth_methods"] == ["passkey_login", "passkey"] and shortfall["aal"] == 1


def test_the_device_flow_logs_in_with_a_passkey(services, client, world):
    started = client.post("/oauth2/device_authorization", data={"client_id": world["client"]})
    assert started.status_code == 200, started.text
    page = client.post("/oauth2/device", data={"user_code": started.json["user_code"]})
    assert page.status_code == 200, page.text
    ticket, challenge = passkey_form(page.text)
    assertion = world["passkey"].get(mobile_trust.unb64url(challenge))
    consent = client.post(
        "/oauth2/login/passkey",
        data={
            "ticket": ticket,
            "assertion": json.dumps(with_handle(assertion, world["credential"])),
        },
    )
    assert consent.status_code == 200 and started.json["user_code"] in consent.text, consent.text
    done = client.post("/oauth2/consent", data={"ticket": consent_ticket(consent.text),
                                               "decision": "approve"})  # fmt: skip
    assert done.status_code == 200 and "Device connected" in done.text, done.text
    token = client.post(
        "/oauth2/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
              "device_code": started.json["device_code"], "client_id": world["client"]},
    )  # fmt: skip
    assert token.status_code == 200, token.text
    (issued,) = events(services, "oauth2.device.token_issued")
    assert issued["auth_methods"] == ["passkey_login"]


def test_what_must_not_log_in_does_not(services, client, world):
    alice, passkey = world["credential"], world["passkey"]
    admin.add_user(
        services, "bob", password=PASSWORD, display_name="Bob", email="bob@example.test",
        actor="test",
    )  # fmt: skip
    bob = admin.create_credential(
        services, "bob", key="ec-p256", actor="test", activation="passkey", policy="basic"
    ).credential_id
    bob_key = SoftAuthenticator(ORIGIN, "localhost")
    assert register(client, services, "bob", bob, bob_key).status_code == 200
    login = Login(client, authorization_url("", world["client"], secrets.token_urlsafe(48)))

    def over_page(authenticator=passkey, handle=alice, **options):
        return with_handle(authenticator.get(login.challenge_bytes(), **options), handle)

    login.refused(over_page(bob_key), "not registered")  # Bob's passkey, named as Alice's
    bob_id, bob_key.credential_id = bob_key.credential_id, passkey.credential_id
    login.refused(over_page(bob_key), "does not verify")  # and with her passkey's id too
    bob_key.credential_id = bob_id
    login.refused(over_page(origin="http://evil.localhost"), "does not verify")
    passkey.rp_id = "localhost.evil.example"
    login.refused(over_page(), "does not verify")
    passkey.rp_id, passkey.user_verified = "localhost", False
    login.refused(over_page(), "does not verify")  # no user verification
    passkey.user_verified = True
    other_page = Login(client, authorization_url("", world["client"], secrets.token_urlsafe(48)))
    login.refused(  # an assertion over another page's challenge
        with_handle(passkey.get(other_page.challenge_bytes()), alice), "does not verify"
    )
    no_handle = passkey.get(login.challenge_bytes())
    login.refused(no_handle, "no user handle")
    login.refused("not an assertion", "sent no assertion")  # not audited: no login tried
    assert len(events(services, "login.failed")) == 7
    assert all(e["method"] == "passkey" for e in events(services, "login.failed"))

    # another browser's form (its CSRF cookie): the error page, no login
    ticket, assertion = login.ticket, over_page()
    client.set_cookie(CSRF_COOKIE, "another-browser", domain="localhost")
    stolen = client.post(
        "/oauth2/login/passkey", data={"ticket": ticket, "assertion": json.dumps(assertion)}
    )
    assert stolen.status_code == 400 and "CSRF" in stolen.text
    client.delete_cookie(CSRF_COOKIE, domain="localhost")
    login = Login(client, authorization_url("", world["client"], secrets.token_urlsafe(48)))

    # a good one logs in once; sent again with the same ticket it is a replay
    ticket, good = login.ticket, over_page()
    assert login.post(good).status_code == 200
    replayed = login.post(good, ticket=ticket)
    assert replayed.status_code == 400 and "used before" in replayed.text, replayed.text[:2000]
    login.refused(over_page(counter=1), "did not move forward")  # a cloned authenticator
    assert events(services, "passkey.cloned")

    # a disabled user, then her revoked credential and passkey
    users.set_user_status(services, "alice", "disabled", actor="test")
    login.refused(over_page(), "the user is disabled")
    users.set_user_status(services, "alice", "active", actor="test")
    admin.set_credential_status(services, bob, "disabled", actor="test")
    login.refused(over_page(bob_key, bob), "credential is disabled")
    admin.set_credential_status(services, bob, "revoked", actor="test")
    login.refused(over_page(bob_key, bob), "credential is revoked")
    with services.database.transaction() as session:  # revoked by the SAM (sealed so)
        device = session.execute(
            select(MobileDevice).where(MobileDevice.credential_id == alice)
        ).scalar_one()
        device.status = "revoked"
        device.seal = mobile_trust.device_seal(services.hsm, device)
    login.refused(over_page(), "this passkey is revoked")
    with services.database.transaction() as session:  # and back, by SQL: not the SAM's
        session.execute(
            update(MobileDevice).where(MobileDevice.credential_id == alice).values(status="active")
        )
    login.refused(over_page(), "fails its integrity check")
    assert events(services, "integrity.violation")
    assert [e["method"] for e in events(services, "oauth2.login")] == ["passkey"]

    # her passkey's own throttle key (its failures since her login) at its limit: refused
    # before anything is verified, and the page says when to come back
    services.settings.login.max_failures_per_user = 5
    answer = login.post(over_page())
    assert answer.status_code == 400 and "Too many failed logins" in answer.text, answer.text[:2000]
    assert events(services, "login.throttled")


def test_one_challenge_logs_in_once_however_many_send_it(services, app, client, world):
    login = Login(client, authorization_url("", world["client"], secrets.token_urlsafe(48)))
    good = with_handle(world["passkey"].get(login.challenge_bytes()), world["credential"])
    cookie = client.get_cookie(CSRF_COOKIE).value

    def send(_):
        browser = app.test_client()
        browser.set_cookie(CSRF_COOKIE, cookie, domain="localhost")
        answer = browser.post(
            "/oauth2/login/passkey", data={"ticket": login.ticket, "assertion": json.dumps(good)}
        )
        return answer.status_code, answer.text

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, range(4)))
    assert sorted(status for status, _ in answers) == [200, 400, 400, 400], answers
    assert sum("Approve this request?" in text for _, text in answers) == 1
    assert len(events(services, "oauth2.login")) == 1
    assert len(events(services, "login.failed")) == 3


def serve(services, settings_env):
    """Alice with a basic passkey credential, the public client, and Signet served at
    http://localhost:<port> (a WebAuthn RP ID must be a domain)."""
    port = port_in(range(57250, 57290))
    base_url = f"http://localhost:{port}"
    services.settings.web.base_url = base_url  # as the server has it
    env = {**os.environ, **settings_env, "SIGNET_WEB__BASE_URL": base_url}
    credential_id = add_alice(services)
    client, _ = add_client(services, "Pocket Sign", [REDIRECT_URI], public=True, actor="test")
    return credential_id, client.client_id, signet_server(env=env, workers=2, port=port)


@pytest.fixture
def callback():
    from tests.integration.oauth2_browser import application_callback

    with application_callback(REDIRECT_URI):
        yield


def test_log_in_and_approve_with_a_passkey_in_chromium(
    services,
    settings_env,
    callback,
    chromium,  # noqa: F811
):
    credential_id, client_id, server = serve(services, settings_env)
    with server as url:
        url = url.replace("127.0.0.1", "localhost")
        virtual_authenticator(chromium)
        register_in_browser(
            chromium, {"services": services, "url": url, "alice": credential_id}, "alice"
        )
        digest = hashlib.sha256(b"lease").digest()
        verifier = secrets.token_urlsafe(48)
        chromium.get(authorization_url(
            url, client_id, verifier, scope="credential", credentialID=credential_id,
            numSignatures="1", hashes=b64url(digest), hashAlgorithmOID=SHA256,
        ))  # fmt: skip
        button = chromium.find_element(By.ID, "passkey-login-button")
        assert button.is_displayed()  # shown by the page's script
        button.click()  # navigator.credentials.get: no user name, the authenticator's passkey
        seen(chromium, "h1", "Approve this request?")
        chromium.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
        seen(chromium, "h1", "Approve with your passkey")
        chromium.find_element(By.ID, "use-passkey").click()
        seen(chromium, "body", "back at the application")
        back = chromium.current_url
        assert back.startswith(REDIRECT_URI), back
        no_csp_violation(chromium)
        chromium.quit()
        code = parse_qs(urlsplit(back).query)["code"][0]
        token = requests.post(
            f"{url}/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                  "code_verifier": verifier, "client_id": client_id},
            timeout=30,
        ).json()["access_token"]  # fmt: skip
        signed = requests.post(
            f"{url}/csc/v2/signatures/signHash",
            json={"credentialID": credential_id, "hashes": [base64.b64encode(digest).decode()],
                  "hashAlgorithmOID": SHA256, "signAlgo": ECDSA_SHA256},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )  # fmt: skip
        assert signed.status_code == 200, signed.text
        verifies(url, credential_id, digest, signed.json()["signatures"][0])
    (logged,) = events(services, "oauth2.login")
    assert logged["method"] == "passkey" and logged["auth_methods"] == ["passkey_login"]
    (authorized,) = events(services, "credential.authorized")
    assert authorized["auth_methods"] == ["passkey_login", "passkey"]
    assert [e["reason"] for e in events(services, "credential.authorize_refused")] == []


def verifies(url, credential_id, digest, signature):
    """The signature checked with the credential's certificate (read with a password login)."""
    login = requests.post(f"{url}/csc/v2/auth/login", auth=("alice", PASSWORD), timeout=30)
    info = requests.post(
        f"{url}/csc/v2/credentials/info",
        json={"credentialID": credential_id, "certificates": "single"},
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        timeout=30,
    )
    der = base64.b64decode(info.json()["cert"]["certificates"][0])
    x509.load_der_x509_certificate(der).public_key().verify(
        base64.b64decode(signature), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    )
