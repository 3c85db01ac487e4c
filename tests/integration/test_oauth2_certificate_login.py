"""The OAuth 2.0 login page's certificate button, on each database engine: `signet serve`
terminating TLS and asking for client certificates under the test PKI's root; a browser
(requests, its certificate set) goes from a client's authorization request through the
button and the consent to a token with which a PIN credential under the qualified policy
signs (a certificate and a PIN are two kinds of factor), and a device's code (RFC 8628)
approved the same way. Without a certificate, or with one
that maps to nobody or is revoked, the login page says why, and the refusal is audited."""

from __future__ import annotations

import secrets
from urllib.parse import urljoin

import requests
from authlib.integrations.requests_client import OAuth2Session

from signet.signing.oauth2_clients import add_client
from tests.helpers import enrol
from tests.integration import test_client_certificates as certificates
from tests.integration.oauth2_browser import REDIRECT_URI, Browser, _Forms
from tests.integration.test_client_certificates import (
    PIN,
    add_alice,
    audit,
    certificate_settings,
    sign_with_pin,
    tls_server,
)

pki = certificates.pki  # the test PKI, served, certificate logins enabled under its root


class Person:
    """A browser with (or without) a client certificate, at the login page of a client's
    authorization request, its certificate button pressed."""

    def __init__(self, url: str, world: dict, cert: tuple | None):
        self.url, self.world = url, world
        self.oauth = OAuth2Session(
            world["client"],
            world["secret"],
            scope="service",
            redirect_uri=REDIRECT_URI,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
        )
        self.verifier = secrets.token_urlsafe(48)
        self.browser = Browser(url)
        self.browser.session.trust_env = False  # REQUESTS_CA_BUNDLE would win over verify
        self.browser.session.verify = str(world["anchor"])
        self.browser.session.cert = (str(cert[0]), str(cert[1])) if cert else None

    def press_certificate_button(self) -> requests.Response:
        address, _ = self.oauth.create_authorization_url(
            f"{self.url}/oauth2/authorize", code_verifier=self.verifier
        )
        page = self.browser.open(address)
        assert page.status_code == 200, page.text
        parser = _Forms()
        parser.feed(page.text)
        (form,) = [f for f in parser.forms if f["action"] == "/oauth2/login/certificate"]
        self.browser.page = self.browser.session.post(
            urljoin(self.url, form["action"]), data=form["fields"], allow_redirects=False
        )
        return self.browser.page

    def token(self) -> dict:
        self.browser.submit(decision="approve")
        self.browser.redirected_to()
        return self.oauth.fetch_token(
            f"{self.url}/oauth2/token",
            authorization_response=self.browser.location(),
            code_verifier=self.verifier,
            verify=str(self.world["anchor"]),
        )


def device_flow_with_the_certificate(url: str, world: dict, pki, cert: tuple) -> None:
    """RFC 8628: the device's code entered in a browser holding the certificate, its login
    page's certificate button, the consent; the device's poll gets a token that lists."""
    tls = {"verify": str(pki.anchor_file), "timeout": 30}
    started = requests.post(
        f"{url}/oauth2/device_authorization", data={"client_id": world["public"]}, **tls
    )
    assert started.status_code == 200, started.text
    person = Person(url, world, cert)
    person.browser.open(started.json()["verification_uri_complete"])
    login = person.browser.submit()
    assert login.status_code == 200 and 'id="certificate-login"' in login.text, login.text
    parser = _Forms()
    parser.feed(login.text)
    (form,) = [f for f in parser.forms if f["action"] == "/oauth2/login/certificate"]
    consent = person.browser.session.post(
        urljoin(url, form["action"]), data=form["fields"], allow_redirects=False
    )
    assert consent.status_code == 200 and "Signet Card" in consent.text, consent.text
    person.browser.page = consent
    assert person.browser.submit(decision="approve").status_code == 200
    polled = requests.post(
        f"{url}/oauth2/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": started.json()["device_code"],
            "client_id": world["public"],
        },
        **tls,
    )
    assert polled.status_code == 200, polled.text
    listed = requests.post(
        f"{url}/csc/v2/credentials/list",
        json={},
        headers={"Authorization": f"Bearer {polled.json()['access_token']}"},
        **tls,
    )
    assert listed.status_code == 200 and len(listed.json()["credentialIDs"]) == 1


def test_login_page_certificate_button_to_a_token_that_signs(pki, services):
    add_alice(services)
    credential = enrol(
        services, "alice", key="ec-p256", activation="pin", pin=PIN, policy="qualified"
    ).credential_id
    client, secret = add_client(services, "Acme Sign", [REDIRECT_URI], public=False, actor="t")
    public, _ = add_client(services, "Signet Card", [REDIRECT_URI], public=True, actor="t")
    world = {"client": client.client_id, "secret": secret, "anchor": pki.anchor_file}
    world["public"] = public.client_id
    alice = pki.issue("alice", "alice")
    mallory = pki.issue("mallory", "mallory")
    revoked = pki.issue("revoked", "alice")
    pki.revoked.add(revoked[2].serial_number)
    with tls_server(pki, certificate_settings(pki)) as url:
        person = Person(url, world, alice[:2])
        consent = person.press_certificate_button()
        assert consent.status_code == 200, consent.text
        assert "Acme Sign" in consent.text and "Approve" in consent.text
        token = person.token()
        sign_with_pin(url, pki, token["access_token"], credential)
        (login,) = audit(services, "oauth2.login")
        assert login["subject"] == "alice" and login["method"] == "x509"
        assert login["auth_methods"] == ["x509"]

        device_flow_with_the_certificate(url, world, pki, alice[:2])
        for cert, words in (
            (None, "sent no client certificate"),
            (mallory[:2], "maps to no user"),
            (revoked[:2], "revoked"),
        ):
            page = Person(url, world, cert).press_certificate_button()
            assert page.status_code == 400 and words in page.text, page.text[:2000]
            assert 'id="certificate-login"' in page.text  # the login page again, button and all
    reasons = [f["reason"] for f in audit(services, "login.failed") if f.get("method") == "x509"]
    assert len(reasons) == 2 and "maps to no user" in reasons[0] and "revoked" in reasons[1]


def test_no_certificate_button_while_certificate_logins_are_off(client, services):
    registered, _ = add_client(services, "Acme Sign", [REDIRECT_URI], public=True, actor="t")
    oauth = OAuth2Session(registered.client_id, scope="service", redirect_uri=REDIRECT_URI,
                          code_challenge_method="S256")  # fmt: skip
    address, _ = oauth.create_authorization_url(
        "http://localhost/oauth2/authorize", code_verifier=secrets.token_urlsafe(48)
    )
    page = client.get(address.removeprefix("http://localhost"))
    assert page.status_code == 200 and "Log in with your password" in page.text
    assert 'id="certificate-login"' not in page.text
    # the button's address asked all the same: the login page again, saying why
    ticket = page.text.split('name="ticket" value="')[1].split('"')[0]
    answer = client.post("/oauth2/login/certificate", data={"ticket": ticket})
    assert answer.status_code == 400 and "sent no client certificate" in answer.text
