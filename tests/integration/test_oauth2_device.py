"""The OAuth 2.0 device authorization grant (RFC 8628) end to end, on each database engine:
the real app over loopback, the device played by Signet's own CSC client (device_login) or by
raw requests, the person at the verification and login pages by a requests session (forms read
from the HTML): the service token works on credentials/list; denial, expiry, slow_down, replay,
parallel polls, wrong user codes and client authentication are refused and audited."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select

from signet.auth.tokens import token_digest
from signet.client.csc import CscClient, CscError
from signet.signing import oauth2_device
from signet.signing.oauth2_clients import OAuth2Error
from signet.store import AccessToken, OAuth2DeviceCode, bulk_update
from tests.integration.csc_http import PASSWORD
from tests.integration.oauth2_browser import Browser, client_world
from tests.integration.test_oauth2 import bearer, events

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE = re.compile(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}")
TRIES = 4  # wrong user codes an address may send per window (login.max_failures_per_address)


@pytest.fixture
def device_env(settings_env, monkeypatch):
    monkeypatch.setenv("SIGNET_OAUTH2__DEVICE_POLL_INTERVAL_SECONDS", "1")
    monkeypatch.setenv("SIGNET_LOGIN__MAX_FAILURES_PER_ADDRESS", str(TRIES))


@pytest.fixture
def world(device_env, app, services):
    with client_world(app, services, range(57050, 57099), "Acme Desktop", "Signet Card") as world:
        yield world


def start(w, **form):
    form.setdefault("client_id", w["public"])
    return requests.post(f"{w['url']}/oauth2/device_authorization", data=form, timeout=30)


def poll(w, device_code, client_id=None):
    form = {"grant_type": GRANT, "device_code": device_code, "client_id": client_id or w["public"]}
    return requests.post(f"{w['url']}/oauth2/token", data=form, timeout=30)


def at_browser(w, address, decision="approve", typed=None):
    """Open the verification address, send the code (as `typed`, else as filled in), log in
    with the password and decide: the last page."""
    browser = Browser(w["url"])
    page = browser.open(address)
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers, page.text
    login = browser.submit(**({} if typed is None else {"user_code": typed}))
    assert login.status_code == 200 and "Log in to Signet" in login.text, login.text
    consent = browser.submit(username="alice", password=PASSWORD)
    assert consent.status_code == 200 and "Signet Card" in consent.text, consent.text
    return browser.submit(decision=decision)


def row_of(w, device_code):
    with w["services"].database.transaction() as session:
        row = session.execute(
            select(OAuth2DeviceCode).where(
                OAuth2DeviceCode.device_code_hash == token_digest(device_code)
            )
        ).scalar_one()
        session.expunge(row)
    return row


def edit_row(w, device_code, **values):
    with w["services"].database.transaction() as session:
        session.execute(
            bulk_update(OAuth2DeviceCode)
            .where(OAuth2DeviceCode.device_code_hash == token_digest(device_code))
            .values(**values)
        )


def test_the_client_logs_in_through_the_browser_and_lists_credentials(world):
    w = world
    meta = requests.get(f"{w['url']}/.well-known/oauth-authorization-server", timeout=30).json()
    assert meta["device_authorization_endpoint"] == f"{w['url']}/oauth2/device_authorization"
    assert GRANT in meta["grant_types_supported"]
    shown = []

    def show(uri, user_code, complete):
        shown.append((uri, user_code, complete))
        assert USER_CODE.fullmatch(user_code) and uri == f"{w['url']}/oauth2/device"
        assert complete == f"{uri}?user_code={user_code}"
        # typed by hand: lower case, no dash, a space
        done = at_browser(w, uri, typed=user_code.lower().replace("-", " ", 1))
        assert done.status_code == 200 and "Device connected" in done.text, done.text

    client, waits = CscClient(w["url"]), []
    token = client.device_login(w["public"], show=show, sleep=waits.append)
    assert len(shown) == 1 and client.access_token == token
    assert waits == [1.0]  # the interval the server asked for, before the first poll
    assert w["credential"] in client.list_credentials()["credentialIDs"]
    # stored: no device code, no user code, the approval sealed by the SAM
    with w["services"].database.transaction() as session:
        (row,) = session.execute(select(OAuth2DeviceCode)).scalars().all()
        assert row.status == "approved" and row.approval.startswith("v1.")
        assert row.user_code_hash == token_digest(shown[0][1].replace("-", ""))
        assert row.access_token_hash == token_digest(token)
        assert (
            session.execute(
                select(AccessToken.scope).where(AccessToken.token_hash == token_digest(token))
            ).scalar_one()
            == "service"
        )
    for name in ("requested", "code_entered", "approved", "token_issued"):
        assert [o for o, _ in events(w["services"], f"oauth2.device.{name}")] == ["success"]
    (issued,) = events(w["services"], "oauth2.device.token_issued")
    assert issued[1]["client_id"] == w["public"] and issued[1]["method"] == "device_code"


def test_pending_slow_down_then_one_token_and_the_replay_refused(world):
    w = world
    started = start(w)
    assert started.status_code == 200 and started.headers["Cache-Control"] == "no-store"
    answer = started.json()
    assert answer["expires_in"] == 600 and answer["interval"] == 1
    code = answer["device_code"]
    first = poll(w, code)
    assert first.status_code == 400 and first.json()["error"] == "authorization_pending"
    edit_row(w, code, poll_interval=30)  # as if the server had asked for 30 s
    second = poll(w, code)
    assert second.status_code == 400 and second.json()["error"] == "slow_down"
    assert row_of(w, code).poll_interval == 35  # RFC 8628 3.5: 5 s more
    done = at_browser(w, answer["verification_uri_complete"])
    assert "Device connected" in done.text
    token = poll(w, code)  # approved: no slow_down in the way
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "service" and token.json()["token_type"] == "Bearer"
    access = token.json()["access_token"]
    listed = requests.post(
        f"{w['url']}/csc/v2/credentials/list", json={}, headers=bearer(access), timeout=30
    )
    assert listed.status_code == 200 and w["credential"] in listed.json()["credentialIDs"]
    again = poll(w, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert "used before" in again.json()["error_description"]
    refused = events(w["services"], "oauth2.device.refused")
    assert [d["reason"] for _, d in refused] == ["The device code was used before"]
    # the client may revoke its device token (RFC 7009)
    revoked = requests.post(
        f"{w['url']}/oauth2/revoke", data={"token": access, "client_id": w["public"]}, timeout=30
    )
    assert revoked.status_code == 200
    listed = requests.post(
        f"{w['url']}/csc/v2/credentials/list", json={}, headers=bearer(access), timeout=30
    )
    assert listed.status_code == 401


def test_denied_and_expired_end_the_client_with_a_clear_error(world):
    w = world

    shown, waits = [], []

    def show(uri, user_code, complete):
        shown.append(complete)
        with w["services"].database.transaction() as session:  # as if it had asked for 30 s
            session.execute(
                bulk_update(OAuth2DeviceCode)
                .where(OAuth2DeviceCode.user_code_hash == token_digest(user_code.replace("-", "")))
                .values(poll_interval=30)
            )

    def sleep(seconds):  # pending, then slow_down (5 s more), then she denies
        waits.append(seconds)
        if len(waits) == 3:
            denied = at_browser(w, shown[0], decision="deny")
            assert denied.status_code == 200 and "Request denied" in denied.text

    with pytest.raises(CscError) as refused:
        CscClient(w["url"]).device_login(w["public"], show=show, sleep=sleep)
    assert waits == [1.0, 1.0, 6.0]
    assert refused.value.error == "access_denied" and "denied" in str(refused.value)
    assert [o for o, _ in events(w["services"], "oauth2.device.denied")] == ["failure"]
    consent = events(w["services"], "oauth2.consent")
    assert [d["approved"] for _, d in consent] == [False]

    expired_codes = []

    def expire(uri, user_code, complete):
        with w["services"].database.transaction() as session:
            session.execute(
                bulk_update(OAuth2DeviceCode)
                .where(OAuth2DeviceCode.user_code_hash == token_digest(user_code.replace("-", "")))
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        expired_codes.append(complete)

    with pytest.raises(CscError) as refused:
        CscClient(w["url"]).device_login(w["public"], show=expire, sleep=lambda _: None)
    assert refused.value.error == "expired_token" and "expired" in str(refused.value)
    browser = Browser(w["url"])
    browser.open(expired_codes[0])
    page = browser.submit()
    assert page.status_code == 400 and "unknown, used or expired" in page.text
    assert 'aria-invalid="true"' in page.text


def test_wrong_user_codes_are_throttled_and_audited(world):
    w = world
    answer = start(w).json()
    browser = Browser(w["url"])
    browser.open(f"{w['url']}/oauth2/device")
    for guess in ("BBBB-BBBB", "bcdf-ghjk", "AEIO-UAEI", "XXXX-XXXX"):
        page = browser.submit(user_code=guess)
        assert page.status_code == 400 and 'role="alert"' in page.text, page.text
    page = browser.submit(user_code=answer["user_code"])  # even the right one, now
    assert page.status_code == 429 and "Too many wrong codes" in page.text
    assert len(events(w["services"], "oauth2.device.code_failed")) == TRIES
    assert events(w["services"], "oauth2.device.throttled")
    assert not events(w["services"], "oauth2.device.code_entered")
    assert row_of(w, answer["device_code"]).status == "pending"


def test_parallel_polls_after_approval_get_one_token(world):
    w = world
    answer = start(w).json()
    assert "Device connected" in at_browser(w, answer["verification_uri_complete"]).text
    params = {"grant_type": GRANT, "device_code": answer["device_code"], "client_id": w["public"]}

    def one(_):
        try:
            return oauth2_device.poll(w["services"], params, None, "test")["access_token"]
        except OAuth2Error as exc:
            return exc.error

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(one, range(6)))
    tokens = [a for a in answers if a != "invalid_grant"]
    assert len(tokens) == 1 and answers.count("invalid_grant") == 5, answers
    assert len(events(w["services"], "oauth2.device.token_issued")) == 1
    assert row_of(w, answer["device_code"]).access_token_hash == token_digest(tokens[0])


def test_client_authentication_scope_and_forged_approval(world):
    w = world
    no_secret = start(w, client_id=w["confidential"])
    assert no_secret.status_code == 401 and no_secret.json()["error"] == "invalid_client"
    wrong = start(w, client_id=w["confidential"], client_secret="x" * 43)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    scoped = start(w, scope="credential")
    assert scoped.status_code == 400 and scoped.json()["error"] == "invalid_scope"
    assert "service" in scoped.json()["error_description"]
    ok = requests.post(
        f"{w['url']}/oauth2/device_authorization",
        data={"scope": "service"},
        auth=(w["confidential"], w["secret"]),
        timeout=30,
    )
    assert ok.status_code == 200, ok.text
    code = ok.json()["device_code"]
    foreign = poll(w, code)  # the public client polling the confidential one's code
    assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_grant"
    bare = poll(w, code, client_id=w["confidential"])  # without its secret
    assert bare.status_code == 401 and bare.json()["error"] == "invalid_client"
    missing = requests.post(
        f"{w['url']}/oauth2/token", data={"grant_type": GRANT, "client_id": w["public"]}, timeout=30
    )
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    # A DBA copies alice's sealed approval of another device's code onto this pending one:
    # it names the other code's digest and client, so it grants nothing here.
    other = start(w).json()
    assert "Device connected" in at_browser(w, other["verification_uri_complete"]).text
    approved = row_of(w, other["device_code"])
    edit_row(w, code, status="approved", user_id=approved.user_id, approval=approved.approval)
    forged = requests.post(
        f"{w['url']}/oauth2/token",
        data={"grant_type": GRANT, "device_code": code},
        auth=(w["confidential"], w["secret"]),
        timeout=30,
    )
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_grant"
    assert events(w["services"], "integrity.violation")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_new_endpoints_pass_the_openapi_fuzzer(world):
    """schemathesis, as tests/security/test_fuzz_openapi.py runs it, on the device and token
    endpoints: every answer documented, of its schema, never a 5xx; half of the positive
    cases as the registered public client, to get past its check."""
    import schemathesis
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    from tests.security.test_fuzz_openapi import CHECKS, SEED

    w = world
    schema = schemathesis.openapi.from_url(f"{w['url']}/openapi.json")
    seen: dict[int, int] = {}
    modes = st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

    def fuzzer(operation):
        @seed(SEED)
        @settings(
            max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(data=st.data())
        def fuzz(data) -> None:
            mode = data.draw(modes)
            case = data.draw(operation.as_strategy(generation_mode=mode))
            positive = mode is GenerationMode.POSITIVE and isinstance(case.body, dict)
            if positive and data.draw(st.booleans()):
                case.body["client_id"] = w["public"]
                case.body.pop("client_secret", None)
            response = case.call_and_validate(checks=CHECKS, timeout=30)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1

        return fuzz

    for path in ("/oauth2/device_authorization", "/oauth2/token"):
        fuzzer(schema[path]["POST"])()
    assert any(200 <= status < 300 for status in seen), seen
    assert any(400 <= status < 500 for status in seen), seen
