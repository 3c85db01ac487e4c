"""Passkeys in a real browser, on each engine: Debian's headless Chromium with a virtual
authenticator (DevTools WebAuthn domain, user verification on) against `signet serve`
(gunicorn). Alice registers a passkey on the page, approves a request on its page,
authorizeCheck gives the SAD and the signature verifies with the certificate; she denies
another; an assertion over other hashes, an old assertion, her passkey on Bob's request and
an edited passkey row are refused and audited."""

import base64
import contextlib
import hashlib
import json
import mailbox
import os
import shutil

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select, update

from signet.mobile.protocol import approval_bytes
from signet.signing import admin
from signet.store import AuditRecord, Credential, MobileDevice, MobileRequest
from tests.helpers import activation_code_in_mail, port_in, signet_cli, signet_server

PASSWORD = "correct horse battery"
SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1000,1100",
)


def my_port() -> int:
    return port_in(range(56750, 56800))  # this test's own ports


def events(services, name):
    with services.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(AuditRecord.details).where(AuditRecord.event == name).order_by(AuditRecord.seq)
        ).all()
    return [json.loads(r.details) for r in rows]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    """The CSC client: a user's login, authorize, authorizeCheck, signHash."""

    def __init__(self, url: str, name: str):
        self.url, self.session = url, requests.Session()
        login = self.session.post(f"{url}/csc/v2/auth/login", auth=(name, PASSWORD), timeout=30)
        assert login.status_code == 200, login.text
        self.session.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

    def post(self, method, body):
        return self.session.post(f"{self.url}/csc/v2/{method}", json=body, timeout=30)

    def authorize(self, credential_id, digests, label="lease.pdf"):
        answer = self.post(
            "credentials/authorize",
            {
                "credentialID": credential_id,
                "numSignatures": len(digests),
                "hashes": [b64(d) for d in digests],
                "hashAlgorithmOID": SHA256,
                "signet_labels": [label],
            },
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "pending" and "SAD" not in body, body
        return body

    def check(self, credential_id, authorization_id):
        return self.post(
            "credentials/authorizeCheck",
            {"credentialID": credential_id, "authorizationID": authorization_id},
        )


@pytest.fixture
def world(services, settings_env):
    """Alice and Bob, each with a pending passkey credential, and Signet served at
    http://localhost:<port> (a WebAuthn RP ID must be a domain; localhost is a secure
    context)."""
    port = my_port()
    env = {**os.environ, **settings_env, "SIGNET_WEB__BASE_URL": f"http://localhost:{port}"}
    # Alice's credential as an operator makes it, with the CLI (qualified: password + passkey)
    added = signet_cli(
        "users", "add", "alice", "--email", "alice@example.test", "--password-stdin",
        env=env, stdin=f"{PASSWORD}\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    created = signet_cli(
        "credentials", "create", "alice", "--key", "ec-p256", "--activation", "passkey",
        "--policy", "qualified", env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    ids = {"alice": created.stdout.split()[1]}
    services.settings.web.base_url = env["SIGNET_WEB__BASE_URL"]  # as the server has it
    admin.add_user(
        services, "bob", password=PASSWORD, display_name="Bob", email="bob@example.test",
        actor="test",
    )  # fmt: skip
    ids["bob"] = admin.create_credential(
        services, "bob", key="ec-p256", actor="test", activation="passkey", policy="advanced"
    ).credential_id
    with signet_server(env=env, workers=2, port=port) as url:
        yield {"services": services, "url": url.replace("127.0.0.1", "localhost"), **ids}


@pytest.fixture
def chromium(tmp_path):
    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        pytest.fail("chromium-driver is not installed: run `make deps-test`")
    options = webdriver.ChromeOptions()
    for argument in ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    with contextlib.suppress(Exception):
        driver.quit()


def virtual_authenticator(driver) -> str:
    """A platform authenticator that holds resident keys and verifies its user (as a phone's
    screen lock would), answering at once."""
    driver.execute_cdp_cmd("WebAuthn.enable", {"enableUI": False})
    added = driver.execute_cdp_cmd(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return added["authenticatorId"]


def status_says(driver, text):
    WebDriverWait(driver, 60, ignored_exceptions=(WebDriverException,)).until(
        lambda d: text in d.find_element(By.ID, "status").text
    )
    return driver.find_element(By.ID, "status").text


def register_in_browser(driver, world, name):
    services, url, credential_id = world["services"], world["url"], world[name]
    # the page the activation mail names
    mail = "".join(
        m.get_payload(decode=True).decode()
        for m in mailbox.Maildir(services.settings.notify.maildir, create=False)
    )
    page = f"{url}/passkey/v1/register?credential={credential_id}"
    assert page in mail
    driver.get(page)
    code = activation_code_in_mail(services.settings.notify.maildir, credential_id)
    for field, value in (("username", name), ("password", PASSWORD), ("code", code)):
        driver.find_element(By.ID, field).send_keys(value)
    driver.find_element(By.ID, "register").click()
    status_says(driver, "Passkey registered")


def assertion(driver, challenge: bytes, webauthn_id: str):
    """What the page's script would post, made by the browser's authenticator over a
    challenge of the test's choosing (to show the server refuses it)."""
    return driver.execute_async_script(
        """
        const [challenge, id, done] = arguments;
        const bytes = (t) => Uint8Array.from(atob(t.replace(/-/g, "+").replace(/_/g, "/")
            + "=".repeat((4 - t.length % 4) % 4)), (c) => c.charCodeAt(0));
        navigator.credentials.get({publicKey: {challenge: bytes(challenge), rpId: "localhost",
            allowCredentials: [{type: "public-key", id: bytes(id)}],
            userVerification: "required"}})
          .then((got) => done(assertionJSON(got)), (error) => done({error: String(error)}));
        """,
        b64url(challenge),
        webauthn_id,
    )


def shown(services, request_id):
    with services.database.transaction(read_only=True) as session:
        row = session.get(MobileRequest, request_id)
        return {
            "requestID": row.id,
            "credentialID": row.credential_id,
            "hashAlgorithmOID": row.hash_algorithm,
            "hashes": row.hashes.split("\n"),
            "numSignatures": row.num_signatures,
            "labels": json.loads(row.labels),
            "description": row.description,
            "origin": row.origin,
            "nonce": row.nonce,
        }


def passkey_of(services, credential_id):
    with services.database.transaction(read_only=True) as session:
        return session.execute(
            select(MobileDevice).where(MobileDevice.credential_id == credential_id)
        ).scalar_one()


def test_register_approve_sign_and_deny_in_chromium(world, chromium, tmp_path):
    services, url, alice = world["services"], world["url"], world["alice"]
    authenticator_id = virtual_authenticator(chromium)
    register_in_browser(chromium, world, "alice")
    (registered,) = events(services, "passkey.registered")
    device = passkey_of(services, alice)
    assert device.kind == "passkey" and registered["webauthn_id"] == device.webauthn_id
    with services.database.transaction(read_only=True) as session:
        assert session.get(Credential, alice).status == "active"
    held = chromium.execute_cdp_cmd(
        "WebAuthn.getCredentials", {"authenticatorId": authenticator_id}
    )["credentials"]
    assert [b64url(base64.b64decode(c["credentialId"])) for c in held] == [device.webauthn_id]

    signer = Signer(url, "alice")
    digests = [hashlib.sha256(b"lease").digest()]
    pending = signer.authorize(alice, digests)
    request_id = pending["authorizationID"]
    assert pending["signet_approvalURL"] == f"{url}/passkey/v1/approve/{request_id}"
    chromium.get(pending["signet_approvalURL"])
    assert "lease.pdf" in chromium.find_element(By.TAG_NAME, "main").text
    assert signer.check(alice, request_id).json()["status"] == "pending"
    chromium.find_element(By.ID, "approve").click()
    status_says(chromium, "Approved")
    chromium.save_screenshot(str(tmp_path / "approved.png"))
    assert (tmp_path / "approved.png").stat().st_size > 5000  # a rendered page
    (approved,) = events(services, "passkey.approved")
    assert approved["request"] == request_id and approved["sign_count"] >= 1

    answer = signer.check(alice, request_id)
    assert answer.status_code == 200, answer.text
    authorized = events(services, "credential.authorized")[-1]
    assert authorized["mobile_request"] == request_id
    assert (authorized["auth_methods"], authorized["eidas"], authorized["aal"]) == (
        ["pwd", "passkey"],
        "substantial",
        2,
    )  # the qualified policy's level
    signed = signer.post(
        "signatures/signHash",
        {
            "credentialID": alice,
            "SAD": answer.json()["SAD"],
            "hashes": [b64(d) for d in digests],
            "hashAlgorithmOID": SHA256,
            "signAlgo": ECDSA_SHA256,
        },
    )
    assert signed.status_code == 200, signed.text
    info = signer.post("credentials/info", {"credentialID": alice, "certInfo": True})
    cert = x509.load_der_x509_certificate(base64.b64decode(info.json()["cert"]["certificates"][0]))
    (signature,) = signed.json()["signatures"]
    cert.public_key().verify(
        base64.b64decode(signature), digests[0], ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    )
    # the decided request's page says so
    chromium.get(pending["signet_approvalURL"])
    assert chromium.find_element(By.ID, "page-error").get_attribute("data-status") == "409"

    denied_id = signer.authorize(alice, [hashlib.sha256(b"annex").digest()])["authorizationID"]
    chromium.get(f"{url}/passkey/v1/approve/{denied_id}")
    chromium.find_element(By.ID, "deny").click()
    status_says(chromium, "Denied")
    refused = signer.check(alice, denied_id)
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied"
    assert [e["request"] for e in events(services, "passkey.denied")] == [denied_id]


def test_what_chromium_signs_for_anything_else_is_refused(world, chromium):
    services, url, alice, bob = world["services"], world["url"], world["alice"], world["bob"]
    virtual_authenticator(chromium)
    register_in_browser(chromium, world, "alice")
    # a wrong password on the page: said on the page, nothing registered
    chromium.get(f"{url}/passkey/v1/register?credential={bob}")
    for field, value in (("username", "bob"), ("password", "not the password"), ("code", "x")):
        chromium.find_element(By.ID, field).send_keys(value)
    chromium.find_element(By.ID, "register").click()
    assert "Invalid username or password" in status_says(chromium, "Not registered")
    with services.database.transaction(read_only=True) as session:
        assert session.get(Credential, bob).status == "pending"
    register_in_browser(chromium, world, "bob")
    alice_id = passkey_of(services, alice).webauthn_id
    signer = Signer(url, "alice")
    request_id = signer.authorize(alice, [hashlib.sha256(b"lease").digest()])["authorizationID"]
    chromium.get(f"{url}/passkey/v1/approve/{request_id}")  # the page's script is loaded
    request = shown(services, request_id)

    def post(target, got):
        assert "error" not in got, got
        return requests.post(
            f"{url}/passkey/v1/approve/{target}",
            json={"decision": "approve", "credential": got},
            timeout=30,
        )

    other = dict(request, hashes=[b64url(hashlib.sha256(b"something else").digest())])
    over_other = assertion(
        chromium, hashlib.sha256(approval_bytes(other, "approve")).digest(), alice_id
    )
    assert post(request_id, over_other).status_code == 400
    good = assertion(
        chromium, hashlib.sha256(approval_bytes(request, "approve")).digest(), alice_id
    )
    # Alice's passkey over Bob's request
    bob_request = Signer(url, "bob").authorize(bob, [hashlib.sha256(b"bob").digest()])
    bob_shown = shown(services, bob_request["authorizationID"])
    on_bobs = assertion(
        chromium, hashlib.sha256(approval_bytes(bob_shown, "approve")).digest(), alice_id
    )
    assert post(bob_request["authorizationID"], on_bobs).status_code == 400
    assert len(events(services, "passkey.assertion_invalid")) == 2
    assert post(request_id, good).status_code == 200
    assert post(request_id, good).status_code == 409  # replayed
    # the old assertion on a new request
    later = signer.authorize(alice, [hashlib.sha256(b"lease").digest()])["authorizationID"]
    assert post(later, good).status_code == 400
    # an edited passkey row (another public key) is refused and audited
    with services.database.transaction() as session:
        session.execute(
            update(MobileDevice)
            .where(MobileDevice.credential_id == alice)
            .values(public_key=passkey_of(services, bob).public_key)
        )
    chromium.get(f"{url}/passkey/v1/approve/{later}")
    assert chromium.find_element(By.ID, "page-error").get_attribute("data-status") == "403"
    assert events(services, "integrity.violation")
