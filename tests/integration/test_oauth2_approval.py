"""A Mobile ID or passkey credential authorized on Signet's OAuth 2.0 pages, on each engine,
against `signet serve` (gunicorn): after the consent the approval page waits for the phone
(the reference device, as in test_mobile_id) or runs the passkey (headless Chromium's virtual
authenticator, as in test_passkeys_browser); the code is exchanged at the token endpoint and
its token's SAD signs a hash that verifies with the certificate. Without script the page's
Continue button checks once; one approval gives one code however often, or however many at
once, its ticket is sent; a forged ticket, a denial, a cancel, a wrong and a replayed
assertion are refused."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from signet.mobile.protocol import approval_bytes
from signet.signing import admin
from signet.signing.oauth2_clients import add_client
from signet.store import MobileRequest
from tests.helpers import port_in, signet_server
from tests.integration.oauth2_browser import Browser, application_callback
from tests.integration.test_mobile_id import register_with_cli
from tests.integration.test_passkeys_browser import (  # noqa: F401 (chromium: a fixture)
    assertion,
    chromium,
    events,
    passkey_of,
    register_in_browser,
    shown,
    virtual_authenticator,
)

PASSWORD = "correct horse battery"
SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
REDIRECT_URI = "http://127.0.0.1:57399/callback"  # this test's own ports: 57350-57399
CSRF_COOKIE = "signet_oauth2_csrf"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def serve(services, settings_env, activation, base_url=None):
    """Alice with a qualified credential of this activation, the public client, and Signet."""
    port = port_in(range(57350, 57390))
    env = {**os.environ, **settings_env}
    if base_url:  # as the server has it, before the activation mail names its pages
        env["SIGNET_WEB__BASE_URL"] = services.settings.web.base_url = base_url.format(port=port)
    admin.add_user(
        services, "alice", password=PASSWORD, display_name="Alice", email="alice@example.test",
        actor="test",
    )  # fmt: skip
    credential_id = admin.create_credential(
        services, "alice", key="ec-p256", actor="test", activation=activation, policy="qualified"
    ).credential_id
    client, _ = add_client(services, "Pocket Sign", [REDIRECT_URI], public=True, actor="test")
    return credential_id, client.client_id, signet_server(env=env, workers=2, port=port)


@pytest.fixture
def mobile_world(services, settings_env, tmp_path):
    credential_id, client_id, server = serve(services, settings_env, "mobile_id")
    with server as url:
        device = register_with_cli(services, url, credential_id, tmp_path / "device.json")
        yield {
            "services": services, "url": url, "credential": credential_id, "client": client_id,
            "device": device,
        }  # fmt: skip


@pytest.fixture
def passkey_world(services, settings_env):
    # a WebAuthn RP ID must be a domain: Signet at http://localhost:<port>
    credential_id, client_id, server = serve(
        services, settings_env, "passkey", "http://localhost:{port}"
    )
    with server as url:
        yield {
            "services": services, "url": url.replace("127.0.0.1", "localhost"),
            "alice": credential_id, "credential": credential_id, "client": client_id,
        }  # fmt: skip


@pytest.fixture
def callback():
    with application_callback(REDIRECT_URI):
        yield


class App:
    """The signature application: a public client with PKCE asking to sign `digests`."""

    def __init__(self, w, digests):
        self.w, self.digests = w, digests
        self.verifier = secrets.token_urlsafe(48)
        self.session = OAuth2Session(
            w["client"],
            scope="credential",
            redirect_uri=REDIRECT_URI,
            code_challenge_method="S256",
            token_endpoint_auth_method="none",
        )
        self.address, self.state = self.session.create_authorization_url(
            f"{w['url']}/oauth2/authorize",
            code_verifier=self.verifier,
            credentialID=w["credential"],
            numSignatures=str(len(digests)),
            hashes=",".join(b64url(d) for d in digests),
            hashAlgorithmOID=SHA256,
        )

    def token(self, location):
        return self.session.fetch_token(
            f"{self.w['url']}/oauth2/token",
            authorization_response=location,
            code_verifier=self.verifier,
        )["access_token"]

    def signs_and_verifies(self, token):
        """signHash with the credential token alone (its SAD), checked with the certificate."""
        url, headers = self.w["url"], {"Authorization": f"Bearer {token}"}
        signed = requests.post(
            f"{url}/csc/v2/signatures/signHash",
            json={
                "credentialID": self.w["credential"],
                "hashes": [base64.b64encode(d).decode() for d in self.digests],
                "hashAlgorithmOID": SHA256,
                "signAlgo": ECDSA_SHA256,
            },
            headers=headers,
            timeout=60,
        )
        assert signed.status_code == 200, signed.text
        login = requests.post(f"{url}/csc/v2/auth/login", auth=("alice", PASSWORD), timeout=30)
        info = requests.post(
            f"{url}/csc/v2/credentials/info",
            json={"credentialID": self.w["credential"], "certificates": "single"},
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
            timeout=30,
        )
        der = base64.b64decode(info.json()["cert"]["certificates"][0])
        key = x509.load_der_x509_certificate(der).public_key()
        for digest, signature in zip(self.digests, signed.json()["signatures"], strict=True):
            key.verify(
                base64.b64decode(signature), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))
            )


def to_approval_page(browser, app):
    """Log in and approve over HTTP (no script): the approval page."""
    login = browser.open(app.address)
    assert login.status_code == 200, login.text
    assert browser.submit(username="alice", password=PASSWORD).status_code == 200
    page = browser.submit(decision="approve")
    assert page.status_code == 200, page.text
    return page


def back_with(browser):
    """The parameters the page sent the browser back to the application with."""
    assert browser.page.status_code == 303, (browser.page.status_code, browser.page.text[:2000])
    location = browser.location()
    assert location.startswith(REDIRECT_URI), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def ticket_of(text):
    return re.search(r'name="ticket" value="([^"]+)"', text).group(1)


def seen(driver, css, text):
    WebDriverWait(driver, 60, ignored_exceptions=(WebDriverException,)).until(
        lambda d: any(text in e.text for e in d.find_elements(By.CSS_SELECTOR, css))
    )


def log_in_chromium(driver, app):
    driver.get(app.address)
    driver.find_element(By.ID, "username").send_keys("alice")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    seen(driver, "h1", "Approve this request?")
    driver.find_element(By.CSS_SELECTOR, "button[value=approve]").click()


def back_at_application(driver):
    seen(driver, "body", "back at the application")
    assert driver.current_url.startswith(REDIRECT_URI), driver.current_url
    return driver.current_url


def no_csp_violation(driver):
    blocked = [
        e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]
    ]
    assert not blocked, blocked


def test_mobile_id_the_page_waits_for_the_phone_in_chromium(
    mobile_world,
    callback,
    chromium,  # noqa: F811
    tmp_path,
):
    w = mobile_world
    services, device = w["services"], w["device"]
    app = App(w, [hashlib.sha256(b"lease").digest(), hashlib.sha256(b"annex").digest()])
    log_in_chromium(chromium, app)
    seen(chromium, "h1", "Approve on your phone")
    (request,) = device.pending()  # the request reached her phone, bound to the hashes
    assert request.raw["hashes"] == [b64url(d) for d in app.digests]
    assert request.raw["numSignatures"] == 2
    assert chromium.find_element(By.ID, "fingerprint").text == request.raw["fingerprint"]
    assert [e["request"] for e in events(services, "mobile.requested")] == [request.id]
    chromium.save_screenshot(str(tmp_path / "approval.png"))
    assert (tmp_path / "approval.png").stat().st_size > 5000  # a rendered page
    device.approve(request)
    # the page's script sees the approval and sends the form: back with a code
    back = back_at_application(chromium)
    assert parse_qs(urlsplit(back).query)["state"] == [app.state]
    no_csp_violation(chromium)
    chromium.quit()
    app.signs_and_verifies(app.token(back))
    (authorized,) = events(services, "credential.authorized")
    assert authorized["mobile_request"] == request.id
    assert authorized["auth_methods"] == ["pwd", "mobile_id"]
    assert len(events(services, "oauth2.authorized")) == 1


def test_mobile_id_without_script_one_approval_one_code(mobile_world):
    w = mobile_world
    services, device, url = w["services"], w["device"], w["url"]
    app = App(w, [hashlib.sha256(b"deed").digest()])
    browser = Browser(url)
    page = to_approval_page(browser, app)
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    assert page.text.count("<script") == page.text.count("<script src=") == 2
    ticket, cookie = ticket_of(page.text), browser.session.cookies[CSRF_COOKIE]
    (request,) = device.pending()
    assert request.raw["fingerprint"] in page.text

    def status(**cookies):
        return requests.post(
            f"{url}/oauth2/approval/status", data={"ticket": ticket}, cookies=cookies, timeout=30
        )

    assert status(**{CSRF_COOKIE: cookie}).json()["status"] == "pending"
    assert status().status_code == 400  # another browser's: the CSRF binding
    still = browser.submit(decision="continue")
    assert still.status_code == 200 and "Not approved yet" in still.text
    forged = requests.post(
        f"{url}/oauth2/approval",
        data={"ticket": ticket[:-4] + "AAAA", "decision": "continue"},
        cookies={CSRF_COOKIE: cookie},
        allow_redirects=False,
        timeout=30,
    )
    assert forged.status_code == 400 and "Location" not in forged.headers

    device.approve(request)
    assert status(**{CSRF_COOKIE: cookie}).json()["status"] == "approved"

    def send(_):
        return requests.post(
            f"{url}/oauth2/approval",
            data={"ticket": ticket, "decision": "continue"},
            cookies={CSRF_COOKIE: cookie},
            allow_redirects=False,
            timeout=60,
        )

    with ThreadPoolExecutor(6) as pool:  # the same ticket sent six times at once
        answers = list(pool.map(send, range(6)))
    codes = [a for a in answers if a.status_code == 303]
    assert len(codes) == 1, [(a.status_code, a.text[:200]) for a in answers]
    assert all(
        a.status_code == 400 and "one request gives one SAD" in a.text
        for a in answers
        if a is not codes[0]
    )
    assert send(0).status_code == 400  # and once more, later
    assert len(events(services, "mobile.replay")) == 6
    assert len(events(services, "oauth2.authorized")) == 1
    app.signs_and_verifies(app.token(codes[0].headers["Location"]))

    # she denies the next one on her phone: access_denied back to the application
    app = App(w, [hashlib.sha256(b"other deed").digest()])
    to_approval_page(browser, app)
    (request,) = device.pending()
    device.deny(request)
    browser.submit(decision="continue")
    denied = back_with(browser)
    assert denied["error"] == "access_denied" and denied["state"] == app.state
    # and cancels the third on the page: the request is withdrawn, her phone cannot approve it
    app = App(w, [hashlib.sha256(b"third deed").digest()])
    to_approval_page(browser, app)
    (request,) = device.pending()
    browser.submit(decision="cancel")
    assert back_with(browser)["error"] == "access_denied"
    assert device.pending() == []
    with services.database.transaction(read_only=True) as session:
        states = sorted(session.execute(select(MobileRequest.state)).scalars())
    assert states == ["denied", "expired", "issued"]
    assert len(events(services, "oauth2.authorized")) == 1


def test_passkey_on_the_pages_in_chromium(passkey_world, callback, chromium):  # noqa: F811
    w = passkey_world
    services, url = w["services"], w["url"]
    virtual_authenticator(chromium)
    register_in_browser(chromium, w, "alice")
    webauthn_id = passkey_of(services, w["credential"]).webauthn_id
    app = App(w, [hashlib.sha256(b"lease").digest()])
    log_in_chromium(chromium, app)
    seen(chromium, "h1", "Approve with your passkey")
    with services.database.transaction(read_only=True) as session:
        request_id = session.execute(select(MobileRequest.id)).scalar_one()
    request = shown(services, request_id)
    assert request["hashes"] == [b64url(d) for d in app.digests]
    form = chromium.find_element(By.ID, "oauth2-approval")
    ticket = form.find_element(By.NAME, "ticket").get_attribute("value")
    cookie = chromium.get_cookie(CSRF_COOKIE)["value"]

    # an assertion over other hashes, posted as the page would: the page again, saying why
    other = dict(request, hashes=[b64url(hashlib.sha256(b"something else").digest())])
    wrong = assertion(
        chromium, hashlib.sha256(approval_bytes(other, "approve")).digest(), webauthn_id
    )
    chromium.execute_script(
        "const f = document.getElementById('oauth2-approval');"
        "f.elements.assertion.value = arguments[0]; f.submit();",
        json.dumps(wrong),
    )
    seen(chromium, "#approval-error", "not this passkey's assertion")
    assert len(events(services, "passkey.assertion_invalid")) == 1
    good = assertion(
        chromium, hashlib.sha256(approval_bytes(request, "approve")).digest(), webauthn_id
    )

    # the page's own button: navigator.credentials.get, the assertion sent, the code
    chromium.find_element(By.ID, "use-passkey").click()
    back = back_at_application(chromium)
    no_csp_violation(chromium)
    chromium.quit()
    (approved,) = events(services, "passkey.approved")
    assert approved["request"] == request_id

    # a valid assertion of that request, sent again with the same ticket: no second code
    replayed = requests.post(
        f"{url}/oauth2/approval",
        data={"ticket": ticket, "decision": "continue", "assertion": json.dumps(good)},
        cookies={CSRF_COOKIE: cookie},
        allow_redirects=False,
        timeout=30,
    )
    assert replayed.status_code == 400 and "already" in replayed.text, replayed.text[:2000]
    assert "Location" not in replayed.headers
    assert events(services, "passkey.replay")

    app.signs_and_verifies(app.token(back))
    (authorized,) = events(services, "credential.authorized")
    assert authorized["auth_methods"] == ["pwd", "passkey"]
    assert authorized["mobile_request"] == request_id
