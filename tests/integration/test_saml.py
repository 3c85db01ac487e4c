"""SAML 2.0 login end to end, on each database engine: Signet's SP metadata exported to two
independent IdPs on loopback (pysaml2's own IdP; Debian's SimpleSAMLphp under `php -S`), a
person driven headlessly from an OAuth 2.0 client's authorization request through the login
page's SAML button, the IdP and the ACS to Signet's consent page and an access token that
the CSC API accepts; every spoiled Response (replayed, tampered, unsigned, for another
audience, expired, unsolicited, too weak a context, an unknown user) refused and audited."""

from __future__ import annotations

import base64
import json
import re
import secrets
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import select

from signet.signing.oauth2_clients import add_client
from signet.store import AuditRecord, User
from tests.helpers import app_in_thread, signet_cli
from tests.integration.csc_http import SHA, enrol_alice
from tests.integration.oauth2_browser import REDIRECT_URI, Browser, _Forms
from tests.saml_peers import (
    MFA,
    PPT,
    SMARTCARD,
    Posted,
    PysamlIdp,
    SimpleSamlPhp,
    key_and_cert,
    posted_form,
)

IDP_PORTS = range(56900, 56915)
SSP_PORTS = range(56915, 56930)
PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
APP_PORTS = range(56930, 56950)
UNMAPPED = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"


def provider(metadata: str, key: str, cert: str, label: str, **extra) -> dict:
    return {
        "kind": "saml",
        "label": label,
        "idp_metadata": metadata,
        "sp_key_file": key,
        "sp_cert_file": cert,
        "levels": {PPT: "low", MFA: "substantial", SMARTCARD: "high"},
        "match_claim": "NameID",
        **extra,
    }


@pytest.fixture
def pysaml(tmp_path):
    idp = PysamlIdp(tmp_path, IDP_PORTS)
    yield idp
    idp.stop()


@pytest.fixture
def sp_keys(tmp_path):
    return key_and_cert(tmp_path, "signet-sp")


@pytest.fixture
def ssp(tmp_path):
    idp = SimpleSamlPhp(tmp_path, SSP_PORTS)
    yield idp
    idp.stop()


@pytest.fixture
def provider_extra() -> dict:
    """Settings every provider gets on top of the suite's (a test parametrizes it)."""
    return {}


@pytest.fixture
def settings_env(settings_env, monkeypatch, pysaml, sp_keys, provider_extra, request):
    """The suite's settings with the pysaml2 IdP configured (its metadata written first), and
    SimpleSAMLphp for the tests that start it."""
    providers = {
        "pysaml": provider(
            str(pysaml.metadata_file),
            *sp_keys,
            "pysaml2 IdP",
            **{"want_response_signed": True, "requested_contexts": [PPT, MFA], **provider_extra},
        )
    }
    if "ssp" in request.fixturenames:
        ssp = request.getfixturevalue("ssp")
        # exampleauth over http: SimpleSAMLphp states ...:ac:classes:Password
        providers["ssp"] = provider(
            str(ssp.metadata_file),
            *sp_keys,
            "SimpleSAMLphp",
            match_claim="uid",
            levels={PASSWORD: "low"},
            **{"want_response_signed": True, **provider_extra},
        )
    monkeypatch.setenv("SIGNET_IDENTITY__PROVIDERS", json.dumps(providers))
    monkeypatch.setenv("SIGNET_ASSURANCE__DEFAULT_POLICY", "qualified")
    return {**settings_env, "SIGNET_IDENTITY__PROVIDERS": json.dumps(providers)}


@pytest.fixture
def world(app, services, pysaml):
    (credential_id,) = enrol_alice(services, "ec-p256")
    client, secret = add_client(services, "Acme Sign", [REDIRECT_URI], public=False, actor="t")
    with app_in_thread(app, APP_PORTS) as url:
        exported = requests.get(f"{url}/saml/pysaml/metadata", timeout=30)
        assert exported.status_code == 200, exported.text
        assert exported.headers["Content-Type"].startswith("application/samlmetadata+xml")
        pysaml.trust(exported.text)
        yield {
            "url": url,
            "services": services,
            "credential": credential_id,
            "client": client.client_id,
            "secret": secret,
            "idp": pysaml,
        }


def events(services, name):
    with services.database.transaction() as session:
        rows = session.execute(
            select(AuditRecord.outcome, AuditRecord.details).where(AuditRecord.event == name)
        ).all()
    return [(outcome, json.loads(details)) for outcome, details in rows]


class Flow:
    """One person's round trip: the client's authorization URL, the login page's SAML
    button, the IdP's page and its form (which a test may spoil before it is posted)."""

    def __init__(self, w, provider_name="pysaml", scope="service", **extra):
        self.w = w
        self.client = OAuth2Session(
            w["client"],
            w["secret"],
            scope=scope,
            redirect_uri=REDIRECT_URI,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
        )
        self.verifier = secrets.token_urlsafe(48)
        self.browser = Browser(w["url"])
        self.provider = provider_name
        self.extra = extra  # more of the authorization request (a credential's, say)

    def to_idp(self) -> requests.Response:
        """The login page, its SAML button pressed: the redirect to the IdP."""
        address, _ = self.client.create_authorization_url(
            f"{self.w['url']}/oauth2/authorize", code_verifier=self.verifier, **self.extra
        )
        page = self.browser.open(address)
        assert page.status_code == 200, page.text
        parser = _Forms()
        parser.feed(page.text)
        (button,) = [f for f in parser.forms if f["action"] == f"/login/saml/{self.provider}"]
        started = self.browser.session.post(
            urljoin(self.w["url"], button["action"]),
            data=button["fields"],
            allow_redirects=False,
            timeout=30,
        )
        assert started.status_code == 303, started.text
        return started

    def idp_form(self) -> Posted:
        started = self.to_idp()
        answer = self.browser.session.get(started.headers["Location"], timeout=30)
        assert answer.status_code == 200, answer.text
        return posted_form(answer.text)

    def post(self, form: Posted) -> requests.Response:
        self.browser.page = self.browser.session.post(
            form.action, data=form.fields, allow_redirects=False, timeout=60
        )
        return self.browser.page

    def token(self) -> dict:
        self.browser.submit(decision="approve")
        self.browser.redirected_to()
        return self.client.fetch_token(
            f"{self.w['url']}/oauth2/token",
            authorization_response=self.browser.location(),
            code_verifier=self.verifier,
        )


def refused(page: requests.Response, check: str) -> None:
    assert page.status_code in (400, 403), (page.status_code, page.text[:2000])
    assert check in page.text, page.text[:2000]
    assert "Content-Security-Policy" in page.headers


def test_login_through_pysaml2_idp_gives_a_token_the_csc_api_accepts(world):
    w = world
    flow = Flow(w)
    form = flow.idp_form()
    (request,) = w["idp"].requests  # the IdP verified its redirect signature (rsa-sha256)
    asked = [r.text for r in request.requested_authn_context.authn_context_class_ref]
    assert asked == [PPT, MFA]
    assert form.action == f"{w['url']}/saml/pysaml/acs"
    consent = flow.post(form)
    assert consent.status_code == 200, consent.text
    assert "Acme Sign" in consent.text and "Approve" in consent.text
    assert "signet_saml=;" in consent.headers.get("Set-Cookie", "")  # state cookie dropped
    token = flow.token()
    assert token["scope"] == "service"
    listed = requests.post(
        f"{w['url']}/csc/v2/credentials/list",
        json={},
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=30,
    )
    assert listed.status_code == 200 and listed.json()["credentialIDs"] == [w["credential"]]
    ((outcome, details),) = events(w["services"], "federation.login")
    assert outcome == "success" and details["provider"] == "pysaml"
    assert details["context"] == PPT and details["loa"] == "low"


def test_replayed_response_is_refused(world):
    flow = Flow(world)
    form = flow.idp_form()
    assert flow.post(form).status_code == 200
    # the same SAMLResponse posted again (the browser keeps no state cookie any more)...
    refused(flow.post(form), "start again")
    # ...and with a fresh login's state: it answers another request, and its assertion is spent
    other = Flow(world)
    relay = parse_qs(urlsplit(other.to_idp().headers["Location"]).query)["RelayState"][0]
    refused(other.post(Posted(form.action, dict(form.fields, RelayState=relay))), "InResponseTo")
    outcomes = [o for o, _ in events(world["services"], "federation.login")]
    assert outcomes == ["success", "failure", "failure"]


def test_tampered_assertion_fails_its_signature(world):
    flow = Flow(world)
    form = flow.idp_form()
    xml = form.xml
    assert ">alice<" in xml
    refused(flow.post(form.with_xml(xml.replace(">alice<", ">bob<"))), "signature")
    ((outcome, details),) = events(world["services"], "federation.login")
    assert outcome == "failure" and "signature" in details["reason"]


def test_unsigned_response_is_refused_when_signatures_are_required(world):
    world["idp"].answer.sign_response = False
    flow = Flow(world)
    refused(flow.post(flow.idp_form()), "signature")
    world["idp"].answer.sign_response = True
    world["idp"].answer.sign_assertion = False
    flow = Flow(world)
    refused(flow.post(flow.idp_form()), "signature")


def test_assertion_for_another_audience_is_refused(world):
    world["idp"].answer.audience = "https://other.example/sp"
    flow = Flow(world)
    refused(flow.post(flow.idp_form()), "Audience")


def test_expired_assertion_is_refused(world):
    world["idp"].answer.lifetime = -300  # NotOnOrAfter 5 min ago (skew allowed: 60 s)
    flow = Flow(world)
    refused(flow.post(flow.idp_form()), "NotOnOrAfter")


def test_response_to_another_request_is_refused(world):
    world["idp"].answer.in_response_to = "_" + secrets.token_hex(16)
    flow = Flow(world)
    refused(flow.post(flow.idp_form()), "InResponseTo")


def test_response_without_this_browsers_state_is_refused(world):
    flow = Flow(world)
    form = flow.idp_form()
    stranger = requests.post(form.action, data=form.fields, timeout=30)  # no state cookie
    refused(stranger, "not started in this browser")
    spoiled = dict(form.fields, RelayState="x" * 32)
    refused(flow.post(Posted(form.action, spoiled)), "RelayState")


def test_unmapped_context_is_refused(world):
    world["idp"].answer.context = UNMAPPED
    flow = Flow(world)
    refused(flow.post(flow.idp_form()), "not enough for Signet")
    ((outcome, details),) = events(world["services"], "federation.login")
    assert outcome == "failure" and details["context"] == UNMAPPED


def test_low_context_cannot_authorize_a_qualified_credential(world):
    flow = Flow(world)  # PasswordProtectedTransport: low
    assert flow.post(flow.idp_form()).status_code == 200
    token = flow.token()["access_token"]
    answer = requests.post(
        f"{world['url']}/csc/v2/credentials/authorize",
        json={
            "credentialID": world["credential"],
            "numSignatures": 1,
            "hashes": [base64.b64encode(bytes(32)).decode()],
            "hashAlgorithmOID": SHA["sha256"],
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code in (400, 403), answer.text
    assert "qualified" in answer.text and "Step up" in answer.text, answer.text


def test_unknown_user_refused_unless_provisioning_is_allowed(world):
    world["idp"].answer.user = "carol"
    flow = Flow(world)
    refused(flow.post(flow.idp_form()), "not enrolled")
    services = world["services"]
    name = "pysaml"
    services.settings.identity.providers[name] = services.settings.identity.providers[
        name
    ].model_copy(update={"provision": True})
    flow = Flow(world)
    consent = flow.post(flow.idp_form())
    assert consent.status_code == 200, consent.text
    assert re.search(r"carol", consent.text)
    with services.database.transaction() as session:
        assert session.scalars(select(User.username).where(User.username == "carol")).one()
    assert [o for o, _ in events(services, "user.provisioned")] == ["success"]


def test_cli_exports_the_sp_metadata(world, settings_env, tmp_path):
    out = tmp_path / "sp.xml"
    done = signet_cli(
        "identity",
        "saml-metadata",
        "pysaml",
        "--public-url",
        world["url"],
        "-o",
        str(out),
        env=settings_env,
    )
    assert done.returncode == 0, done.stderr
    xml = out.read_text()
    assert f'entityID="{world["url"]}/saml/pysaml/metadata"' in xml
    assert f'Location="{world["url"]}/saml/pysaml/acs"' in xml
    assert 'AuthnRequestsSigned="true"' in xml and "X509Certificate" in xml
    assert "md5" not in xml and "xmldsig#sha1" not in xml  # no algorithm Signet refuses
    unknown = signet_cli(
        "identity", "saml-metadata", "nobody", "--public-url", "https://x", env=settings_env
    )
    assert (
        unknown.returncode == 1 and "nobody" in unknown.stderr and "Traceback" not in unknown.stderr
    )


def ssp_form(flow: Flow, username: str, password: str) -> Posted:
    """Through SimpleSAMLphp: its login form filled in, its answer page's form."""
    started = flow.to_idp()
    session = flow.browser.session
    login = session.get(started.headers["Location"], timeout=60)
    assert login.status_code == 200 and 'name="password"' in login.text, login.text[:3000]
    parser = _Forms()
    parser.feed(login.text)
    (form,) = [f for f in parser.forms if "password" in f["fields"] or "AuthState" in f["fields"]]
    data = {**form["fields"], "username": username, "password": password}
    answer = session.post(urljoin(login.url, form["action"] or ""), data=data, timeout=60)
    assert answer.status_code == 200, answer.text[:3000]
    return posted_form(answer.text)


@pytest.fixture
def ssp_world(world, ssp):
    exported = requests.get(f"{world['url']}/saml/ssp/metadata", timeout=30)
    assert exported.status_code == 200, exported.text
    ssp.trust(exported.text)  # the SP metadata exported first
    return {**world, "ssp": ssp}


def test_login_through_simplesamlphp_gives_a_token(ssp_world):
    w = ssp_world
    flow = Flow(w, "ssp")
    form = ssp_form(flow, "alice", "alice-pw")
    assert form.action == f"{w['url']}/saml/ssp/acs", w["ssp"].logged()
    consent = flow.post(form)
    assert consent.status_code == 200, consent.text
    token = flow.token()
    listed = requests.post(
        f"{w['url']}/csc/v2/credentials/list",
        json={},
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=30,
    )
    assert listed.status_code == 200 and listed.json()["credentialIDs"] == [w["credential"]]
    ((outcome, details),) = events(w["services"], "federation.login")
    assert outcome == "success" and details["provider"] == "ssp"
    assert details["context"] == PASSWORD and details["loa"] == "low"


def test_simplesamlphp_tampered_replayed_and_unknown_refused(ssp_world):
    w = ssp_world
    flow = Flow(w, "ssp")
    form = ssp_form(flow, "alice", "alice-pw")
    assert "alice@example.test" in form.xml
    spoiled = form.with_xml(form.xml.replace("alice@example.test", "bob@example.test"))
    refused(flow.post(spoiled), "signature")
    flow = Flow(w, "ssp")
    form = ssp_form(flow, "alice", "alice-pw")
    assert flow.post(form).status_code == 200
    refused(flow.post(form), "start again")
    flow = Flow(w, "ssp")
    refused(flow.post(ssp_form(flow, "dave", "dave-pw")), "not enrolled")
    outcomes = [o for o, _ in events(w["services"], "federation.login")]
    assert outcomes == ["failure", "success", "failure", "failure"]


def test_bad_ticket_unknown_provider_and_bad_posts_are_pages_not_500s(world):
    url = world["url"]
    link = requests.get(f"{url}/login/saml/pysaml", params={"ticket": "w1.x.y"}, timeout=30)
    refused(link, "expired")
    unknown = requests.post(f"{url}/login/saml/nobody", data={"ticket": "x"}, timeout=30)
    assert unknown.status_code == 404 and "nobody" in unknown.text
    assert requests.get(f"{url}/saml/nobody/metadata", timeout=30).status_code == 404
    flow = Flow(world)
    form = flow.idp_form()
    garbage = dict(form.fields, SAMLResponse="PHNhbWw+bm90IFNBTUw8L3NhbWw+")  # "<saml>not SAML"
    refused(flow.post(Posted(form.action, garbage)), "failed a check")


def test_simplesamlphp_checks_the_authnrequest_signature(ssp_world):
    """SimpleSAMLphp read AuthnRequestsSigned from the exported metadata: the same request
    without its signature, or with another's, gets no login form."""
    flow = Flow(ssp_world, "ssp")
    location = flow.to_idp().headers["Location"]
    signed = flow.browser.session.get(location, timeout=60)
    assert "AuthState" in signed.text
    unsigned = re.sub(r"&Signature=[^&]+", "", location)
    assert unsigned != location
    answer = requests.get(unsigned, timeout=60)
    assert "AuthState" not in answer.text and "signature" in answer.text.lower(), answer.text
    forged = re.sub(r"&Signature=[^&]+", "&Signature=" + "A" * 344, location)
    answer = requests.get(forged, timeout=60)
    assert "AuthState" not in answer.text and "signature" in answer.text.lower(), answer.text


def test_sha1_signature_is_refused_before_it_is_checked(world):
    world["idp"].answer.sign_alg = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
    world["idp"].answer.digest_alg = "http://www.w3.org/2000/09/xmldsig#sha1"
    flow = Flow(world)
    form = flow.idp_form()
    assert "xmldsig#rsa-sha1" in form.xml
    refused(flow.post(form), "SignatureMethod")
