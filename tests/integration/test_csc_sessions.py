"""CSC sessions and conformance over HTTP against gunicorn, on SQLite and PostgreSQL: logins
(HTTP Basic, refresh tokens rotated on use), revocation, what credentials/info advertises
against what authorize enforces, and a connection kept alive after an unread body."""

import base64
import hashlib
import http.client
import json
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from signet.errors import InvalidRequest
from signet.signing import sessions
from signet.store import AccessToken, AuditRecord, RefreshToken
from tests.integration.csc_http import PASSWORD, enrol_alice, error_of


@pytest.fixture
def client(live_client):
    """These tests speak HTTP to gunicorn (tests/integration/conftest.py)."""
    return live_client


@pytest.fixture
def alice(services):
    (ecc,) = enrol_alice(services, "ec-p256")
    return {"ec": ecc}


def basic(text: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(text.encode()).decode()}


def login(client, **body):
    return client.post("/csc/v2/auth/login", json=body or None, headers=basic(f"alice:{PASSWORD}"))


def refresh(client, token):
    return client.post("/csc/v2/auth/login", json={"refresh_token": token})


def listed(client, token):
    return client.post(
        "/csc/v2/credentials/list", json={}, headers={"Authorization": f"Bearer {token}"}
    )


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def events(services, name):
    with services.database.transaction(read_only=True) as session:
        rows = (
            session.execute(
                select(AuditRecord.details)
                .where(AuditRecord.event == name)
                .order_by(AuditRecord.seq)
            )
            .scalars()
            .all()
        )
    return [json.loads(row) for row in rows]


def test_revoke_needs_the_token_parameter(csc, alice):
    token = csc.login()
    assert "token" in error_of(csc.post("auth/revoke", {}), 400)
    assert "token_type_hint" in error_of(
        csc.post("auth/revoke", {"token": token, "token_type_hint": "id_token"}), 400
    )
    assert "token" in error_of(csc.post("auth/revoke", {"token": "t1.not.mine"}), 400)
    # None of those revoked the caller's own token.
    assert csc.post("credentials/list", {}).status_code == 200
    assert csc.post("auth/revoke", {"token": token}).status_code == 204
    error_of(csc.post("credentials/list", {}), 401, "invalid_token")


def test_basic_credentials_without_a_colon_are_a_bad_request(client, alice):
    for header in (
        basic("alice"),
        basic(""),
        basic(f":{PASSWORD}"),
        {"Authorization": "Basic !!not-base64!!"},
        {"Authorization": "Basic " + base64.b64encode(b"alice\xff:x").decode()},
    ):
        response = client.post("/csc/v2/auth/login", headers=header)
        assert "Basic credentials" in error_of(response, 400), header
    error_of(client.post("/csc/v1/auth/login", headers=basic("alice")), 400)
    error_of(client.post("/csc/v2/auth/login", headers={"Authorization": "Bearer x"}), 401)
    error_of(client.post("/csc/v2/auth/login"), 401)
    # A colon inside the password is the password's.
    assert login(client).status_code == 200
    error_of(
        client.post("/csc/v2/auth/login", headers=basic(f"alice:{PASSWORD}:x")),
        401,
        "authentication_error",
    )


def test_refresh_tokens_rotate_and_a_replay_revokes_the_family(client, services, alice):
    plain = login(client)
    assert plain.status_code == 200 and "refresh_token" not in plain.json
    first = login(client, rememberMe=True).json
    assert set(first) == {"access_token", "refresh_token", "expires_in"}
    assert first["refresh_token"].startswith("r1.")
    # A refresh token is no bearer token, and an access token is no refresh token.
    error_of(listed(client, first["refresh_token"]), 401, "invalid_token")
    assert "refresh_token" in error_of(refresh(client, first["access_token"]), 400)
    assert "refresh_token" in error_of(refresh(client, "r1.e30.AAAA"), 400)
    both = client.post(
        "/csc/v2/auth/login",
        json={"refresh_token": first["refresh_token"]},
        headers=basic(f"alice:{PASSWORD}"),
    )
    assert "not both" in error_of(both, 400)

    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.json
    second = second.json
    assert second["refresh_token"] != first["refresh_token"]
    assert listed(client, second["access_token"]).status_code == 200
    third = refresh(client, second["refresh_token"]).json
    with services.database.transaction(read_only=True) as session:
        rows = {r.token_hash: r for r in session.execute(select(RefreshToken)).scalars()}
    # Only hashes are stored; one family; each token used once, the newest not yet.
    assert {digest(t["refresh_token"]) for t in (first, second, third)} == set(rows)
    assert len({r.family for r in rows.values()}) == 1
    assert [rows[digest(t["refresh_token"])].used for t in (first, second, third)] == [
        True,
        True,
        False,
    ]
    assert rows[digest(third["refresh_token"])].access_token_hash == digest(third["access_token"])

    # The first token again: a replay. Refused, and the whole family is revoked with the
    # access tokens issued with it.
    assert "replayed" in error_of(refresh(client, first["refresh_token"]), 400)
    assert "revoked" in error_of(refresh(client, third["refresh_token"]), 400)
    for tokens in (second, third):
        error_of(listed(client, tokens["access_token"]), 401, "invalid_token")
    assert listed(client, plain.json["access_token"]).status_code == 200  # another login's
    with services.database.transaction(read_only=True) as session:
        assert all(session.execute(select(RefreshToken.revoked)).scalars())
        revoked = {
            row.token_hash: row.revoked
            for row in session.execute(select(AccessToken.token_hash, AccessToken.revoked))
        }
    assert (
        revoked[digest(third["access_token"])] and not revoked[digest(plain.json["access_token"])]
    )
    failed = [e for e in events(services, "login.failed") if e.get("method") == "refresh_token"]
    assert [e["reason"] for e in failed] == ["refresh token replayed", "refresh token revoked"]
    assert failed[0]["revoked_family"] == rows[digest(first["refresh_token"])].family


def test_revoke_a_refresh_token_with_its_hint(client, services, alice):
    tokens = login(client, rememberMe=True).json
    other = login(client).json["access_token"]
    headers = {"Authorization": f"Bearer {other}"}
    revoked = client.post(
        "/csc/v2/auth/revoke",
        headers=headers,
        json={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
    )
    assert revoked.status_code == 204
    assert "revoked" in error_of(refresh(client, tokens["refresh_token"]), 400)
    error_of(listed(client, tokens["access_token"]), 401, "invalid_token")
    assert listed(client, other).status_code == 200
    # Without the hint, found all the same (RFC 7009); v1 too.
    tokens = login(client, rememberMe=True).json
    assert (
        client.post(
            "/csc/v1/auth/revoke", headers=headers, json={"token": tokens["refresh_token"]}
        ).status_code
        == 204
    )
    error_of(refresh(client, tokens["refresh_token"]), 400)
    kinds = [e.get("kind") for e in events(services, "token.revoked")]
    assert kinds == ["refresh_token", "refresh_token"]


def test_refresh_tokens_end_with_their_login(services, alice):
    """The family ends web.refresh_token_lifetime_seconds after the password login, however
    often it was renewed; 0 turns refresh tokens off."""
    services.settings.web.refresh_token_lifetime_seconds = 2
    first = sessions.login(services, "alice", PASSWORD, "test", remember_me=True)
    assert first.refresh_token is not None
    second = sessions.refresh(services, first.refresh_token, "test")
    assert second.refresh_token is not None and second.expires_in <= 2
    time.sleep(2.1)
    with pytest.raises(InvalidRequest, match="expired"):
        sessions.refresh(services, second.refresh_token, "test")
    services.settings.web.refresh_token_lifetime_seconds = 0
    assert (
        sessions.login(services, "alice", PASSWORD, "test", remember_me=True).refresh_token is None
    )


def test_multisign_is_what_authorize_enforces(csc, client, services, alice):
    csc.login()
    advertised = csc.post("credentials/info", {"credentialID": alice["ec"]}).json["multisign"]
    assert advertised == 100 == min(100, services.settings.sam.max_signatures_per_sad)
    one = [hashlib.sha256(b"multisign").digest()]
    over = csc.authorize(alice["ec"], one, num=advertised + 1)
    assert f"1 to {advertised}" in error_of(over, 400)
    assert csc.authorize(alice["ec"], one, num=advertised).status_code == 200
    v1 = csc.client.post(
        "/csc/v1/credentials/info",
        json={"credentialID": alice["ec"]},
        headers={"Authorization": f"Bearer {csc.token}"},
    ).json
    assert v1["multisign"] == advertised and v1["SCAL"] == "2"


def test_connection_stays_usable_after_an_answer_to_an_unread_body(client):
    """A 401 given before the body is read: a body the server can drain keeps the connection
    alive; a larger one closes it, and the answer says so. Either way the next request on
    the connection is answered."""
    parts = urlsplit(client.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        for size, kept in ((200 * 1024, True), (2 * 2**20, False)) * 5:
            body = json.dumps({"credentialID": "x", "pad": "a" * size}).encode()
            connection.request(
                "POST",
                "/csc/v2/credentials/info",
                body=body,
                headers={"Authorization": "Bearer nonsense", "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            assert response.status == 401
            assert json.loads(response.read())["error"] == "invalid_token"
            assert response.getheader("Connection") == ("keep-alive" if kept else "close")
            connection.request(
                "POST", "/csc/v2/info", body=b"{}", headers={"Content-Type": "application/json"}
            )
            answer = connection.getresponse()
            assert answer.status == 200 and json.loads(answer.read())["specs"] == "2.0.0.2"
    finally:
        connection.close()
