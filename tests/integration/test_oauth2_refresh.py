"""The OAuth 2.0 refresh token grant end to end, on each database engine: Authlib's
OAuth2Session as the application, the person at Signet's pages, the real app over loopback. A
service grant's token (code or device) comes with a refresh token, a credential grant's never;
each refresh token is used once and rotated within its family, a replay revokes the family,
six parallel sends give one token; every bad refresh token is invalid_grant JSON and audited;
the client revokes a family at /oauth2/revoke."""

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from signet.auth.tokens import record_refresh_token, token_digest
from signet.sam import mint_refresh_token
from signet.signing import admin, oauth2_refresh
from signet.signing.oauth2_clients import OAuth2Error
from signet.store import AccessToken, RefreshToken, User, bulk_update
from tests.integration.csc_http import PASSWORD
from tests.integration.oauth2_browser import REDIRECT_URI, Browser, client_world
from tests.integration.test_oauth2 import (
    b64url,
    bearer,
    confidential_session,
    credential_grant,
    events,
    log_in,
    public_session,
)
from tests.integration.test_oauth2_device import at_browser


@pytest.fixture
def world(app, services):
    admin.add_user(
        services, "bob", password=PASSWORD, display_name="Bob", email="bob@example.test", actor="t"
    )
    with client_world(app, services, range(57200, 57249), "Acme Sign", "Signet Card") as world:
        yield world


def service_token(w):
    """A service grant to the confidential client: its token answer."""
    client, browser = confidential_session(w), Browser(w["url"])
    verifier = secrets.token_urlsafe(48)
    address, _ = client.create_authorization_url(
        f"{w['url']}/oauth2/authorize", code_verifier=verifier
    )
    log_in(browser, address)
    browser.submit(decision="approve")
    browser.redirected_to()
    return client.fetch_token(
        f"{w['url']}/oauth2/token",
        authorization_response=browser.location(),
        code_verifier=verifier,
    )


def renew(w, refresh_token, client=None, secret=None, **form):
    """grant_type=refresh_token by the confidential client (HTTP Basic), or another."""
    auth = (client or w["confidential"], secret if client else w["secret"])
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **form}
    if auth[1] is None:
        data["client_id"], auth = auth[0], None
    return requests.post(f"{w['url']}/oauth2/token", data=data, auth=auth, timeout=30)


def refused(response, error="invalid_grant", status=400):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == error, response.json()
    return response.json()["error_description"]


def works(w, access_token):
    listed = requests.post(
        f"{w['url']}/csc/v2/credentials/list", json={}, headers=bearer(access_token), timeout=30
    )
    return listed.status_code == 200


def family_rows(w, family=None):
    with w["services"].database.transaction() as session:
        query = select(RefreshToken)
        if family is not None:
            query = query.where(RefreshToken.family == family)
        rows = session.execute(query.order_by(RefreshToken.id)).scalars().all()
        session.expunge_all()
    return rows


def test_a_service_token_renews_rotated_once_and_a_replay_revokes_its_family(world):
    w, s = world, world["services"]
    meta = requests.get(f"{w['url']}/.well-known/oauth-authorization-server", timeout=30).json()
    assert "refresh_token" in meta["grant_types_supported"]

    first = service_token(w)
    assert first["scope"] == "service" and first["refresh_token"].startswith("r1.")
    # Authlib's own refresh call, as an application would make it
    client = confidential_session(w)
    second = client.refresh_token(f"{w['url']}/oauth2/token", refresh_token=first["refresh_token"])
    assert second["scope"] == "service" and second["token_type"].lower() == "bearer"
    assert second["refresh_token"] not in (first["refresh_token"], None)
    assert works(w, second["access_token"]) and works(w, first["access_token"])
    # hashed at rest, one family, bound to the client, never past the first token's end
    rows = family_rows(w)
    assert [r.token_hash for r in rows] == [
        token_digest(first["refresh_token"]),
        token_digest(second["refresh_token"]),
    ]
    assert {r.family for r in rows} == {rows[0].family} and [r.used for r in rows] == [True, False]
    assert {r.client_id for r in rows} == {w["confidential"]}
    assert rows[1].expires_at == rows[0].expires_at
    assert rows[1].access_token_hash == token_digest(second["access_token"])
    issued = [d for _, d in events(s, "oauth2.token_issued") if d["method"] == "refresh_token"]
    assert issued == [issued[0]] and issued[0]["client_id"] == w["confidential"]
    assert issued[0]["family"] == rows[0].family

    # auth/login does not take an OAuth client's refresh token (it would need no client
    # authentication there), and does not spend it
    login = requests.post(
        f"{w['url']}/csc/v2/auth/login", json={"refresh_token": second["refresh_token"]}, timeout=30
    )
    assert login.status_code == 400 and "OAuth 2.0 client" in login.json()["error_description"]
    assert not family_rows(w)[1].used

    # the first one again: a replay — the whole family is revoked, and audited
    assert "used before" in refused(renew(w, first["refresh_token"]))
    replay = [d for o, d in events(s, "oauth2.token_refused") if "revoked_family" in d]
    assert replay and replay[0]["revoked_family"] == rows[0].family
    assert replay[0]["reason"] == "refresh token replayed"
    assert "revoked" in refused(renew(w, second["refresh_token"]))
    assert not works(w, first["access_token"]) and not works(w, second["access_token"])
    assert all(r.revoked for r in family_rows(w))


def test_bad_refresh_tokens_get_invalid_grant_and_credential_tokens_get_none(world):
    w, s = world, world["services"]
    token = service_token(w)
    good = token["refresh_token"]
    before = len(events(s, "oauth2.token_refused"))

    # a credential grant: its token carries a SAD, and never comes with a refresh token
    client = public_session(w)
    verifier = secrets.token_urlsafe(48)
    address, _ = client.create_authorization_url(
        f"{w['url']}/oauth2/authorize",
        code_verifier=verifier,
        credentialID=w["credential"],
        numSignatures="1",
        hashes=b64url(b"\x01" * 32),
        hashAlgorithmOID="2.16.840.1.101.3.4.2.1",
    )
    browser = Browser(w["url"])
    credential_grant(w, browser, address)
    credential = client.fetch_token(
        f"{w['url']}/oauth2/token",
        authorization_response=browser.location(),
        code_verifier=verifier,
    )
    assert credential["scope"] == "credential" and "refresh_token" not in credential

    # auth/login's own refresh token (rememberMe): no client's
    remembered = requests.post(
        f"{w['url']}/csc/v2/auth/login",
        json={"rememberMe": True},
        auth=("alice", PASSWORD),
        timeout=30,
    ).json()["refresh_token"]
    # an expired one of this client's (minted as the SAM would have, its family over)
    user_id, ends = family_rows(w)[0].user_id, family_rows(w)[0].expires_at
    expired, claims = mint_refresh_token(
        s.hsm,
        user_id=user_id,
        username="alice",
        methods="pwd",
        loa="low",
        family=None,
        expires_at=int(time.time()) - 1,
        client=w["confidential"],
    )
    with s.database.transaction() as session:
        record_refresh_token(
            session,
            expired,
            user_id=user_id,
            family=claims.family,
            access_token="-",
            expires_at=ends,
            client_id=w["confidential"],
        )

    for bad in (
        "r1.e30.AAAA",
        "not a token",
        "r1." + "A" * 20000,
        token["access_token"],
        credential["access_token"],
        remembered,
        expired,
    ):
        refused(renew(w, bad))
    assert "not issued to this client" in refused(renew(w, good, w["public"], None))
    refused(renew(w, good, w["confidential"], "wrong secret"), "invalid_client", 401)
    refused(renew(w, good, scope="credential"), "invalid_scope")
    refused(renew(w, ""), "invalid_request")
    assert len(events(s, "oauth2.token_refused")) - before == 8
    assert not family_rows(w, family_rows(w)[0].family)[0].used  # none of that spent it

    # a row moved to another user by SQL, then a disabled user
    with s.database.transaction() as session:
        bob = session.execute(select(User.id).where(User.username == "bob")).scalar_one()
        session.execute(
            bulk_update(RefreshToken)
            .where(RefreshToken.token_hash == token_digest(good))
            .values(user_id=bob)
        )
    assert "not known" in refused(renew(w, good))
    with s.database.transaction() as session:
        session.execute(
            bulk_update(RefreshToken)
            .where(RefreshToken.token_hash == token_digest(good))
            .values(user_id=user_id)
        )
    admin.set_user_status(s, "alice", "disabled", actor="t")
    assert "disabled" in refused(renew(w, good))
    admin.set_user_status(s, "alice", "active", actor="t")
    assert "used before" in refused(renew(w, good))  # it was spent by that try: never twice


def test_six_parallel_renewals_give_one_token(world):
    w = world
    good = service_token(w)["refresh_token"]
    params = {"grant_type": "refresh_token", "refresh_token": good}
    barrier = threading.Barrier(6)

    def one(_):  # the use case in six threads at once: the database sees them together
        barrier.wait()
        try:
            return oauth2_refresh.refresh(
                w["services"], params, (w["confidential"], w["secret"]), "test"
            )
        except OAuth2Error as exc:
            return exc.error

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(one, range(6)))
    (winner,) = [a for a in answers if isinstance(a, dict)]
    assert answers.count("invalid_grant") == 5, answers
    issued = [
        d for _, d in events(w["services"], "oauth2.token_issued") if d["method"] == "refresh_token"
    ]
    assert len(issued) == 1
    # the five others were replays of a spent token: the family is revoked with the new one
    assert "revoked" in refused(renew(w, winner["refresh_token"]))
    assert not works(w, winner["access_token"])


def test_revocation_by_the_client_the_device_grant_and_a_reused_code(world):
    w, s = world, world["services"]
    token = service_token(w)
    renewed = renew(w, token["refresh_token"]).json()

    # another client's revocation does nothing; its own revokes the family
    form = {"token": renewed["refresh_token"], "token_type_hint": "refresh_token"}
    other = requests.post(
        f"{w['url']}/oauth2/revoke", data={**form, "client_id": w["public"]}, timeout=30
    )
    assert other.status_code == 200 and works(w, renewed["access_token"])
    mine = requests.post(
        f"{w['url']}/oauth2/revoke", data=form, auth=(w["confidential"], w["secret"]), timeout=30
    )
    assert mine.status_code == 200
    assert "revoked" in refused(renew(w, renewed["refresh_token"]))
    assert not works(w, renewed["access_token"]) and not works(w, token["access_token"])
    revoked = [d for _, d in events(s, "oauth2.token_revoked") if d["kind"] == "refresh_token"]
    assert revoked and revoked[0]["family"] == family_rows(w)[0].family

    # an access token a refresh gave: its client may revoke it (and only it)
    fresh = renew(w, service_token(w)["refresh_token"]).json()
    form = {"token": fresh["access_token"]}
    other = requests.post(
        f"{w['url']}/oauth2/revoke", data={**form, "client_id": w["public"]}, timeout=30
    )
    assert other.status_code == 200 and works(w, fresh["access_token"])
    requests.post(
        f"{w['url']}/oauth2/revoke", data=form, auth=(w["confidential"], w["secret"]), timeout=30
    )
    assert not works(w, fresh["access_token"])

    # the device grant is a service grant: a refresh token too, bound to the device's client
    started = requests.post(
        f"{w['url']}/oauth2/device_authorization", data={"client_id": w["public"]}, timeout=30
    ).json()
    assert "Device connected" in at_browser(w, started["verification_uri_complete"]).text
    device = requests.post(
        f"{w['url']}/oauth2/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": started["device_code"],
            "client_id": w["public"],
        },
        timeout=30,
    ).json()
    assert device["refresh_token"].startswith("r1.")
    refused(renew(w, device["refresh_token"]))  # the confidential client's try
    again = renew(w, device["refresh_token"], w["public"], None)
    assert again.status_code == 200 and works(w, again.json()["access_token"])

    # a code used twice (RFC 6749 10.5): its refresh family goes with its access token
    client, browser = confidential_session(w), Browser(w["url"])
    verifier = secrets.token_urlsafe(48)
    address, _ = client.create_authorization_url(
        f"{w['url']}/oauth2/authorize", code_verifier=verifier
    )
    log_in(browser, address)
    browser.submit(decision="approve")
    code = browser.redirected_to()["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    auth = (w["confidential"], w["secret"])
    stolen = requests.post(f"{w['url']}/oauth2/token", data=form, auth=auth, timeout=30).json()
    refused(requests.post(f"{w['url']}/oauth2/token", data=form, auth=auth, timeout=30))
    assert "revoked" in refused(renew(w, stolen["refresh_token"]))
    reused = events(s, "oauth2.code_reused")
    assert reused and reused[-1][1]["revoked_family"]
    with s.database.transaction() as session:
        assert session.execute(
            select(AccessToken.revoked).where(
                AccessToken.token_hash == token_digest(stolen["access_token"])
            )
        ).scalar_one()
