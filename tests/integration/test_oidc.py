"""OpenID Connect login end to end, on each database engine: a real OP (the npm
oidc-provider, tests/oidc_op.mjs) on loopback, the real Flask app over HTTP, a person at both
played by one requests session (cookies shared as a browser's are): from Signet's login page
to the OP and back to the consent page, a Signet access token, and for a credential on to
signHash with the signature verified. Every misuse of the round trip or the ID token (another
audience, a tampered or foreign signature, a replayed nonce, an expired token, too low an acr,
an unknown or disabled user) is refused with the check named, and audited."""

from __future__ import annotations

import hashlib
import html
import json
import re
import secrets
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.hashes import SHA256

from signet.auth import oidc
from signet.signing import users
from signet.signing.oauth2_clients import add_client
from tests.helpers import app_in_thread, enrol
from tests.integration import test_oauth2 as base
from tests.integration.csc_http import PASSWORD, SHA
from tests.integration.oauth2_browser import REDIRECT_URI, Browser, mail_keys, newest_code
from tests.integration.oidc_peer import OP_PORTS, free_port, running_op, signing_key

SECRET = "oidc-test-client-secret-" + "x" * 20
LEVELS = {"urn:test:pwd": "low", "urn:test:mfa": "substantial", "urn:test:hw": "high"}
ACCOUNTS = {
    "alice": {"preferred_username": "alice", "email": "alice@example.test", "name": "Alice"},
    "bob": {"preferred_username": "bob", "email": "bob@example.test", "name": "Bob B"},
    "carol": {"preferred_username": "carol", "email": "carol@example.test", "name": "Carol"},
}


@pytest.fixture
def provider_env(settings_env, monkeypatch, tmp_path):
    """[identity.providers]: `corp` (confidential, users matched by name, none provisioned)
    and `joiners` (a public client, users matched by e-mail and provisioned)."""
    oidc.forget_keys()
    port = free_port(OP_PORTS)
    issuer = f"http://127.0.0.1:{port}"
    secret_file = tmp_path / "corp.secret"
    secret_file.write_text(SECRET + "\n")
    providers = {
        "corp": {
            "kind": "oidc",
            "label": "Corporate login",
            "issuer": issuer,
            "client_id": "signet",
            "client_secret_file": str(secret_file),
            "acr_values": ["urn:test:mfa"],
            "levels": LEVELS,
        },
        "posting": {
            "kind": "oidc",
            "label": "Posting client",
            "issuer": issuer,
            "client_id": "signet-post",
            "client_secret_file": str(secret_file),
            "client_auth": "client_secret_post",
            "default_level": "substantial",
        },
        "joiners": {
            "kind": "oidc",
            "label": "Joiners",
            "issuer": issuer,
            "client_id": "signet-public",
            "match_claim": "email",
            "match_to": "email",
            "provision": True,
            "default_level": "low",
        },
    }
    monkeypatch.setenv("SIGNET_IDENTITY__PROVIDERS", json.dumps(providers))
    yield {"port": port, "issuer": issuer}
    oidc.forget_keys()


@pytest.fixture
def world(provider_env, app, services, tmp_path):
    users.add_user(
        services, "alice", password=PASSWORD, display_name="Alice", email="alice@example.test",
        actor="test",
    )  # fmt: skip
    users.add_user(
        services, "carol", password=PASSWORD, display_name="Carol", email=None, actor="test"
    )
    users.set_user_status(services, "carol", "disabled", actor="test")
    advanced = enrol(services, "alice", key="ec-p256").credential_id
    qualified = enrol(services, "alice", key="ec-p256", policy="qualified").credential_id
    client, secret = add_client(services, "Acme Sign", [REDIRECT_URI], public=False, actor="t")
    with app_in_thread(app, range(56850, 56870)) as url:
        names = ("corp", "joiners", "posting")
        callbacks = [f"{url}/oauth2/login/oidc/{name}/callback" for name in names]
        clients = [
            {
                "client_id": "signet",
                "client_secret": SECRET,
                "redirect_uris": [callbacks[0]],
                "token_endpoint_auth_method": "client_secret_basic",
            },
            {
                "client_id": "signet-public",
                "redirect_uris": [callbacks[1]],
                "token_endpoint_auth_method": "none",
            },
            {
                "client_id": "signet-post",
                "client_secret": SECRET,
                "redirect_uris": [callbacks[2]],
                "token_endpoint_auth_method": "client_secret_post",
            },
        ]
        keys = [signing_key("k1")]
        with running_op(
            tmp_path,
            provider_env["port"],
            clients=clients,
            accounts=ACCOUNTS,
            keys=keys,
            acr_values=list(LEVELS),
        ) as op:
            yield {
                "url": url,
                "services": services,
                "op": op,
                "credential": advanced,
                "qualified": qualified,
                "confidential": client.client_id,
                "secret": secret,
                "clients": clients,
                "keys": keys,
                "tmp": tmp_path,
                "port": provider_env["port"],
            }


def authorize_address(w, client, scope="service", credential=None, digests=()):
    verifier = secrets.token_urlsafe(48)
    extra = {}
    if credential:
        extra = {
            "credentialID": credential,
            "numSignatures": str(len(digests)),
            "hashes": ",".join(base.b64url(d) for d in digests),
            "hashAlgorithmOID": SHA["sha256"],
        }
    address, _ = client.create_authorization_url(
        f"{w['url']}/oauth2/authorize", code_verifier=verifier, **extra
    )
    return address, verifier


def to_op(w, browser, address, provider="corp"):
    """Open Signet's login page and follow its button for `provider`: the OP's login form."""
    page = browser.open(address)
    assert page.status_code == 200, page.text
    found = re.search(rf'href="([^"]*/oauth2/login/oidc/{provider}\?[^"]*)"', page.text)
    assert found, page.text
    start = browser.session.get(urljoin(w["url"], html.unescape(found.group(1))), timeout=30)
    assert start.status_code == 200 and 'name="acr"' in start.text, start.text[:2000]
    return start


def at_op(browser, form_page, login="alice", acr="urn:test:mfa", amr="pwd,otp"):
    """Log in at the OP's form; follow the redirects back to Signet: the page it shows."""
    browser.page = browser.session.post(
        form_page.url, data={"login": login, "acr": acr, "amr": amr}, timeout=60
    )
    return browser.page


def oidc_login(w, browser, address, provider="corp", **at):
    return at_op(browser, to_op(w, browser, address, provider), **at)


def failures(services):
    return [d for outcome, d in base.events(services, "federation.login") if outcome == "failure"]


def test_service_grant_after_an_oidc_login(world, monkeypatch):
    w = world
    asked = []  # oidc-provider keeps profile claims out of a code flow's ID token: UserInfo
    real_userinfo = oidc.userinfo
    monkeypatch.setattr(
        oidc, "userinfo", lambda *a: asked.append(a[2]) or real_userinfo(*a)
    )  # fmt: skip
    client = base.confidential_session(w)
    address, verifier = authorize_address(w, client)
    page = browser_page = Browser(w["url"])
    login = browser_page.open(address)
    assert "Corporate login" in login.text and "Joiners" in login.text
    start = browser_page.session.get(
        urljoin(w["url"], html.unescape(re.search(r'href="([^"]*corp\?[^"]*)"', login.text)[1])),
        allow_redirects=False,
        timeout=30,
    )
    # off to the OP: code flow, PKCE S256, state, nonce, acr_values; the verifier stays home
    assert start.status_code == 303
    sent = parse_qs(urlsplit(start.headers["Location"]).query)
    assert sent["response_type"] == ["code"] and sent["code_challenge_method"] == ["S256"]
    assert sent["acr_values"] == ["urn:test:mfa"] and sent["nonce"] and sent["state"]
    cookie = start.headers["Set-Cookie"]
    assert (
        "signet_oidc=" in cookie and "HttpOnly" in cookie and "Path=/oauth2/login/oidc/" in cookie
    )
    assert "code_verifier" not in start.headers["Location"]
    assert "Content-Security-Policy" in start.headers
    form = page.session.get(start.headers["Location"], timeout=30)
    consent = at_op(page, form)
    assert consent.status_code == 200, consent.text
    assert "Approve" in consent.text and "Acme Sign" in consent.text
    page.submit(decision="approve")
    token = client.fetch_token(
        f"{w['url']}/oauth2/token", authorization_response=page.location(), code_verifier=verifier
    )
    assert token["scope"] == "service"
    listed = base.requests.post(
        f"{w['url']}/csc/v2/credentials/list",
        json={},
        headers=base.bearer(token["access_token"]),
        timeout=30,
    )
    assert listed.status_code == 200
    assert set(listed.json()["credentialIDs"]) == {w["credential"], w["qualified"]}
    logged = [d for o, d in base.events(w["services"], "federation.login") if o == "success"]
    assert logged[0]["provider"] == "corp" and logged[0]["context"] == "urn:test:mfa"
    assert logged[0]["loa"] == "substantial" and logged[0]["amr"] == ["pwd", "otp"]
    issued = base.events(w["services"], "oauth2.authorized")
    assert issued[0][1]["auth_methods"] == ["idp_substantial"]
    assert asked == ["alice"]  # the subject whose UserInfo named her


def test_credential_grant_after_an_oidc_login_signs_with_a_verified_signature(world):
    """A qualified credential (eIDAS substantial, two factor kinds): the OP's substantial
    login and the credential's e-mailed code meet it; signHash with the token, verified."""
    w = world
    digest = hashlib.sha256(b"signed after an OIDC login").digest()
    client = base.public_session({**w, "public": w["confidential"]})
    client.client_secret = w["secret"]
    client.token_endpoint_auth_method = "client_secret_basic"
    address, verifier = authorize_address(w, client, "credential", w["qualified"], [digest])
    maildir = w["services"].settings.notify.maildir
    seen = mail_keys(maildir)
    browser = Browser(w["url"])
    consent = oidc_login(w, browser, address)
    assert consent.status_code == 200 and "Approve" in consent.text, consent.text
    factor = browser.submit(decision="approve")
    assert factor.status_code == 200 and "One-time code" in factor.text
    browser.submit(code=newest_code(maildir, seen))
    browser.redirected_to()
    token = client.fetch_token(
        f"{w['url']}/oauth2/token",
        authorization_response=browser.location(),
        code_verifier=verifier,
    )
    assert token["scope"] == "credential"
    signed = base.sign_hash({**w, "credential": w["qualified"]}, token["access_token"], [digest])
    assert signed.status_code == 200, signed.text
    signature = base.base64.b64decode(signed.json()["signatures"][0])
    public_key = base.certificate({**w, "credential": w["qualified"]}).public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, digest, ec.ECDSA(utils.Prehashed(SHA256())))


@pytest.mark.parametrize(
    ("mode", "named"),
    [
        ({"claims": {"aud": "someone-else"}}, "aud"),
        ({"claims": {"aud": ["signet", "other"], "azp": "other"}}, "azp"),
        ({"claims": {"iss": "http://127.0.0.1:1"}}, "iss"),
        ({"claims": {"sub": "mallory"}, "sign": "tamper"}, "signature does not verify"),
        ({"sign": "stray"}, "key the OP does not publish"),
        ({"sign": "secret"}, "'HS256' is not allowed"),
        ({"sign": "none"}, "'none' is not allowed"),
        ({"claims": {"exp": {"ago": 600}, "iat": {"ago": 900}}}, "expired"),
        ({"claims": {"iat": {"ago": -3600}}}, "issued in the future"),
        ({"claims": {"nonce": "another"}}, "nonce"),
    ],
)
def test_a_bad_id_token_is_refused_naming_the_check(world, mode, named):
    w = world
    w["op"].mode(**mode)
    address, _ = authorize_address(w, base.confidential_session(w))
    page = oidc_login(w, Browser(w["url"]), address)
    assert page.status_code == 400, page.text
    said = html.unescape(re.search(r'role="alert">([^<]*)<', page.text)[1])
    assert "was not accepted" in said and named in said, said
    assert 'name="password"' in page.text  # the login page again, another way still open
    (failed,) = failures(w["services"])
    assert failed["provider"] == "corp" and named in failed["reason"]
    assert not [o for o, _ in base.events(w["services"], "oauth2.authorized")]


def test_a_client_posting_its_secret_logs_in_at_the_default_level(world):
    w = world
    address, _ = authorize_address(w, base.confidential_session(w))
    page = oidc_login(w, Browser(w["url"]), address, provider="posting", acr="")
    assert page.status_code == 200 and "Approve" in page.text, page.text
    (logged,) = [d for o, d in base.events(w["services"], "federation.login") if o == "success"]
    assert logged["provider"] == "posting" and logged["loa"] == "substantial"
    assert logged["context"] is None


def test_within_the_skew_an_expired_token_still_passes(world):
    w = world
    w["op"].mode(claims={"exp": {"ago": 30}})  # max_skew_seconds is 60
    address, _ = authorize_address(w, base.confidential_session(w))
    assert "Approve" in oidc_login(w, Browser(w["url"]), address).text


def test_a_replayed_nonce_or_callback_is_refused(world):
    w = world
    address, _ = authorize_address(w, base.confidential_session(w))
    browser = Browser(w["url"])
    form = to_op(w, browser, address)
    kept = browser.session.cookies.get("signet_oidc", path="/oauth2/login/oidc/")
    # the OP's authorization request, to be made a second time with the same state and nonce
    first_request = [r for r in form.history if "/auth?" in r.headers.get("Location", "")]
    assert first_request, [r.headers.get("Location") for r in form.history]
    op_request = urljoin(w["op"].issuer, first_request[0].headers["Location"])
    consent = at_op(browser, form)
    assert "Approve" in consent.text
    callback = consent.url
    # the same callback again (cookie put back): the code is spent at the OP
    browser.session.cookies.set("signet_oidc", kept, path="/oauth2/login/oidc/")
    again = browser.session.get(callback, timeout=30)
    assert again.status_code == 400 and "refused the code" in again.text
    # a new code for the same request (same nonce): its ID token is refused as a replay
    browser.session.cookies.set("signet_oidc", kept, path="/oauth2/login/oidc/")
    replay = browser.session.get(op_request, timeout=30)
    assert replay.status_code == 400, replay.text
    assert "replayed" in replay.text
    reasons = [f["reason"] for f in failures(w["services"])]
    assert any("refused the code" in r for r in reasons)
    assert any("replayed" in r for r in reasons)


def test_bad_state_or_missing_round_trip_is_an_error_page(world):
    w = world
    address, _ = authorize_address(w, base.confidential_session(w))
    browser = Browser(w["url"])
    form = to_op(w, browser, address)
    # the callback with another state
    wrong = browser.session.get(
        f"{w['url']}/oauth2/login/oidc/corp/callback?code=x&state=forged", timeout=30
    )
    assert wrong.status_code == 400 and "state" in wrong.text
    assert "Content-Security-Policy" in wrong.headers
    # another browser (no round trip cookie) with a genuine answer
    stranger = Browser(w["url"]).session.get(
        f"{w['url']}/oauth2/login/oidc/corp/callback?code=x&state=y", timeout=30
    )
    assert stranger.status_code == 400 and "No login at an identity provider" in stranger.text
    assert form.status_code == 200
    unknown = browser.session.get(f"{w['url']}/oauth2/login/oidc/nobody?ticket=x", timeout=30)
    assert unknown.status_code == 404 and "Unknown identity provider" in unknown.text
    reasons = [f["reason"] for f in failures(w["services"])]
    assert any("state" in r for r in reasons)


def test_an_op_error_brings_back_the_login_page(world):
    w = world
    address, _ = authorize_address(w, base.confidential_session(w))
    browser = Browser(w["url"])
    form = to_op(w, browser, address)
    start = next(r for r in form.history if r.url.startswith(w["url"]))
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    denied = browser.session.get(
        f"{w['url']}/oauth2/login/oidc/corp/callback?error=access_denied"
        f"&error_description=user+cancelled&state={state}",
        timeout=30,
    )
    assert denied.status_code == 400 and 'name="password"' in denied.text
    assert "Corporate login answered access_denied: user cancelled" in denied.text


def test_insufficient_acr_is_asked_again_once_then_refused_naming_the_step_up(world):
    w = world
    # an acr the provider does not map (and no default level): no login at all
    address, _ = authorize_address(w, base.confidential_session(w))
    page = oidc_login(w, Browser(w["url"]), address, acr="urn:test:unknown")
    assert page.status_code == 400 and "not enough for Signet" in html.unescape(page.text)
    # low (password at the OP) for a qualified credential: Signet asks the OP again, once,
    # for the stronger contexts its levels map, with prompt=login
    digest = hashlib.sha256(b"x").digest()
    address, _ = authorize_address(
        w, base.confidential_session(w, "credential"), "credential", w["qualified"], [digest]
    )
    browser = Browser(w["url"])
    again = oidc_login(w, browser, address, acr="urn:test:pwd", amr="pwd")
    assert again.status_code == 200 and 'name="acr"' in again.text, again.text[:2000]
    (asked,) = [r.headers["Location"] for r in again.history if "/auth?" in r.headers.get(
        "Location", "")]  # fmt: skip
    query = parse_qs(urlsplit(asked).query)
    assert query["acr_values"] == ["urn:test:hw urn:test:mfa"] and query["prompt"] == ["login"]
    (step,) = base.events(w["services"], "federation.step_up")
    assert step[1]["contexts"] == ["urn:test:hw", "urn:test:mfa"] and step[1]["loa"] == "low"
    # low again: the login page, naming the step-up, before any consent or second factor
    page = at_op(browser, again, acr="urn:test:pwd", amr="pwd")
    text = html.unescape(page.text)
    assert page.status_code == 400 and "Step up" in text, text
    assert "eIDAS substantial" in text and "qualified" in text
    refusals = base.events(w["services"], "credential.authorize_refused")
    assert [r[1]["policy"] for r in refusals] == ["qualified", "qualified"]
    assert refusals[0][1]["auth_methods"] == ["idp_low", "email_otp"]
    assert len(base.events(w["services"], "federation.step_up")) == 1  # asked once only
    # asked again, she logs in with the stronger method: the consent page
    address, _ = authorize_address(
        w, base.confidential_session(w, "credential"), "credential", w["qualified"], [digest]
    )
    browser = Browser(w["url"])
    again = oidc_login(w, browser, address, acr="urn:test:pwd", amr="pwd")
    page = at_op(browser, again, acr="urn:test:mfa", amr="pwd,otp")
    assert page.status_code == 200 and "Approve" in page.text, page.text[:2000]
    # the same low login for the advanced credential (two kinds with its code) is enough
    address, _ = authorize_address(
        w, base.confidential_session(w, "credential"), "credential", w["credential"], [digest]
    )
    page = oidc_login(w, Browser(w["url"]), address, acr="urn:test:pwd", amr="pwd")
    assert page.status_code == 200 and "Approve" in page.text


def test_a_credential_not_hers_goes_back_to_the_application(world):
    """Bob (provisioned by the joiners provider) asked for Alice's credential: the
    application hears invalid_request at its redirect URI, as after a password login."""
    w = world
    digest = hashlib.sha256(b"not his").digest()
    client = base.confidential_session(w, "credential")
    address, _ = authorize_address(w, client, "credential", w["credential"], [digest])
    browser = Browser(w["url"])
    form = to_op(w, browser, address, "joiners")
    back = browser.session.post(
        form.url, data={"login": "bob", "acr": "", "amr": ""}, timeout=60, allow_redirects=False
    )
    while back.status_code in (302, 303) and not back.headers["Location"].startswith(REDIRECT_URI):
        back = browser.session.get(
            urljoin(back.url, back.headers["Location"]), timeout=60, allow_redirects=False
        )
    assert back.status_code == 303, back.text
    browser.page = back
    answer = browser.redirected_to()
    assert answer["error"] == "invalid_request" and "credentialID" in answer["error_description"]


def test_unknown_user_refused_provisioned_where_allowed_disabled_refused(world):
    w = world
    address, _ = authorize_address(w, base.confidential_session(w))
    refused = oidc_login(w, Browser(w["url"]), address, login="bob")
    assert refused.status_code == 400 and "not enrolled" in refused.text
    # the joiners provider provisions her (matched by e-mail; a public client, PKCE only)
    page = oidc_login(w, Browser(w["url"]), address, provider="joiners", login="bob", acr="")
    assert page.status_code == 200 and "Approve" in page.text, page.text
    provisioned = base.events(w["services"], "user.provisioned")
    assert provisioned and provisioned[0][1]["email"] == "bob@example.test"
    # and the next time finds her
    page = oidc_login(w, Browser(w["url"]), address, provider="joiners", login="bob", acr="")
    assert page.status_code == 200
    assert len(base.events(w["services"], "user.provisioned")) == 1
    disabled = oidc_login(w, Browser(w["url"]), address, login="carol")
    assert disabled.status_code == 400 and "disabled" in disabled.text


def test_key_rotation_refetches_the_jwks(world, monkeypatch):
    """The OP restarts with a new signing key (the old one still published): the ID token's
    unknown kid makes Signet read the JWKS again, once, and the login passes; with the key
    withdrawn from the JWKS, it fails."""
    w = world
    monkeypatch.setattr(oidc, "_JWKS_MIN_INTERVAL", 0)
    address, _ = authorize_address(w, base.confidential_session(w))
    assert "Approve" in oidc_login(w, Browser(w["url"]), address).text
    w["op"].process.terminate()
    w["op"].process.wait(10)
    rotated = [signing_key("k2"), *w["keys"]]
    with running_op(
        w["tmp"],
        w["port"],
        clients=w["clients"],
        accounts=ACCOUNTS,
        keys=rotated,
        acr_values=list(LEVELS),
    ):
        page = oidc_login(w, Browser(w["url"]), address)
        assert page.status_code == 200 and "Approve" in page.text, page.text


def test_the_refetch_is_rate_limited(world, monkeypatch):
    w = world
    address, _ = authorize_address(w, base.confidential_session(w))
    assert "Approve" in oidc_login(w, Browser(w["url"]), address).text
    fetched = []
    real = oidc._get
    monkeypatch.setattr(oidc, "_get", lambda s, url: fetched.append(url) or real(s, url))
    for _ in range(3):
        w["op"].mode(sign="stray")
        page = oidc_login(w, Browser(w["url"]), address)
        assert "key the OP does not publish" in page.text
    assert [u for u in fetched if u.endswith("/jwks")] == []  # fetched within 30 s: cached


def test_an_op_that_cannot_be_reached_is_a_clear_503(world):
    w = world
    w["op"].process.terminate()
    w["op"].process.wait(10)
    address, _ = authorize_address(w, base.confidential_session(w))
    browser = Browser(w["url"])
    login = browser.open(address)
    href = html.unescape(re.search(r'href="([^"]*corp\?[^"]*)"', login.text)[1])
    down = browser.session.get(urljoin(w["url"], href), allow_redirects=False, timeout=30)
    assert down.status_code == 503 and "Corporate login cannot be reached now" in down.text
    assert "Content-Security-Policy" in down.headers
    assert "could not be read" in failures(w["services"])[0]["reason"]


def test_the_settings_refuse_an_http_issuer_elsewhere_and_symmetric_algorithms():
    from pydantic import ValidationError

    from signet.config.identity import OidcProviderSettings

    good = {"kind": "oidc", "label": "x", "issuer": "https://op.example", "client_id": "c"}
    OidcProviderSettings(**good)
    with pytest.raises(ValidationError, match="https"):
        OidcProviderSettings(**{**good, "issuer": "http://op.example"})
    with pytest.raises(ValidationError, match="allowed_algorithms"):
        OidcProviderSettings(**{**good, "allowed_algorithms": ["HS256"]})
    with pytest.raises(ValidationError, match="allowed_algorithms"):
        OidcProviderSettings(**{**good, "allowed_algorithms": ["none"]})


def test_a_device_login_approved_after_an_oidc_login(world):
    """RFC 8628 (docs/oauth2.md, "Device flow"): the code entered on the verification page,
    the login at the OP from the same login page, the consent; the device's token works."""
    w = world
    grant = "urn:ietf:params:oauth:grant-type:device_code"
    client = (w["confidential"], w["secret"])
    device = base.requests.post(
        f"{w['url']}/oauth2/device_authorization",
        data={"scope": "service"},
        auth=client,
        timeout=30,
    ).json()
    browser = Browser(w["url"])
    browser.open(device["verification_uri_complete"])
    login = browser.submit()
    assert login.status_code == 200 and "Corporate login" in login.text, login.text
    found = re.search(r'href="([^"]*/oauth2/login/oidc/corp\?[^"]*)"', login.text)
    assert found, login.text
    start = browser.session.get(urljoin(w["url"], html.unescape(found[1])), timeout=30)
    consent = at_op(browser, start)
    assert consent.status_code == 200 and device["user_code"] in consent.text, consent.text
    assert "Device connected" in browser.submit(decision="approve").text
    token = base.requests.post(
        f"{w['url']}/oauth2/token",
        data={"grant_type": grant, "device_code": device["device_code"]},
        auth=client,
        timeout=30,
    )
    assert token.status_code == 200, token.text
    listed = base.requests.post(
        f"{w['url']}/csc/v2/credentials/list",
        json={},
        headers=base.bearer(token.json()["access_token"]),
        timeout=30,
    )
    assert listed.status_code == 200 and w["credential"] in listed.json()["credentialIDs"]
    (issued,) = base.events(w["services"], "oauth2.device.token_issued")
    assert issued[1]["auth_methods"] == ["idp_substantial"]
