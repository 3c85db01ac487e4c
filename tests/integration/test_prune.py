"""Pruning expired rows (signing/prune.py, `signet db prune`), on each database engine: rows
expired past the margin go in bounded batches, the others stay, each run is audited; and what
was pruned stays refused on the real paths (a SAD on signHash, an access token, a refresh
token)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select, update

from signet.auth.tokens import now, token_digest
from signet.sam import issue_sad
from signet.signing.prune import PRUNED, prune_expired
from signet.store import (
    AccessToken,
    AuditRecord,
    Credential,
    MobileRequest,
    OAuth2Code,
    OAuth2DeviceCode,
    OtpChallenge,
    RefreshToken,
    SignatureActivation,
    SpentAssertion,
    User,
)
from tests.helpers import signet_cli
from tests.integration.csc_http import PASSWORD, SHA, Csc, enrol_alice, error_of

OLD, WITHIN, FRESH = timedelta(hours=-49), timedelta(hours=-47), timedelta(hours=1)


def _row(model, owner, expires, tag):
    """A row of `model` expiring at `expires`, its key or hash made from `tag`."""
    user_id, credential_id = owner
    stamp = now()
    digest = hashlib.sha256(tag.encode()).hexdigest()
    common = {"created_at": stamp, "expires_at": expires}
    if model is OAuth2Code:
        return OAuth2Code(code_hash=digest, client_id="c", user_id=user_id, **common)
    if model is OAuth2DeviceCode:
        return OAuth2DeviceCode(
            device_code_hash=digest, user_code_hash=digest, client_id="c", poll_interval=5, **common
        )
    if model is SpentAssertion:
        return SpentAssertion(digest=digest, provider="idp", expires_at=expires)
    if model is AccessToken:
        return AccessToken(token_hash=digest, user_id=user_id, **common)
    if model is RefreshToken:
        return RefreshToken(
            token_hash=digest,
            family=digest[:32],
            user_id=user_id,
            access_token_hash=digest,
            **common,
        )
    if model is SignatureActivation:
        return SignatureActivation(
            sad_hash=digest,
            user_id=user_id,
            credential_id=credential_id,
            num_signatures=1,
            remaining=1,
            **common,
        )
    if model is OtpChallenge:
        return OtpChallenge(credential_id=credential_id, code_hash=digest, **common)
    assert model is MobileRequest
    return MobileRequest(
        id=digest[:32],
        credential_id=credential_id,
        user_id=user_id,
        device_id="d",
        hashes="",
        num_signatures=1,
        labels="[]",
        origin="https://example.test",
        nonce=digest,
        assurance="{}",
        content_mac=digest,
        **common,
    )


def _key_of(model, tag):
    digest = hashlib.sha256(tag.encode()).hexdigest()
    return digest[:32] if model is MobileRequest else digest


def _keys_left(services, model):
    key = model.__mapper__.primary_key[0]
    if model is not SpentAssertion and model is not MobileRequest:
        key = next(c for c in model.__table__.c if c.name.endswith("_hash"))
    with services.database.transaction(read_only=True) as session:
        return set(session.execute(select(key)).scalars())


def _pruned_records(services):
    with services.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(AuditRecord.actor, AuditRecord.details)
            .where(AuditRecord.event == "database.pruned")
            .order_by(AuditRecord.seq)
        ).all()
    return [(actor, json.loads(details)) for actor, details in rows]


@pytest.fixture
def owner(services):
    (credential_id,) = enrol_alice(services, "ec-p256")
    with services.database.transaction(read_only=True) as session:
        user_id = session.execute(select(User.id).where(User.username == "alice")).scalar_one()
    return user_id, credential_id


def _fill(services, owner, old=7):
    """Per table: `old` rows expired past the margin, one expired within it, one fresh."""
    stamp = now()
    with services.database.transaction() as session:
        for model in PRUNED:
            name = model.__tablename__
            for i in range(old):
                session.add(_row(model, owner, stamp + OLD, f"{name}-old-{i}"))
            session.add(_row(model, owner, stamp + WITHIN, f"{name}-within"))
            session.add(_row(model, owner, stamp + FRESH, f"{name}-fresh"))


def test_expired_rows_go_in_bounded_batches_and_the_others_stay(services, owner):
    _fill(services, owner)
    before = {m: _keys_left(services, m) for m in PRUNED}
    # The in-process run: two batches of three per table at most, so one old row is left.
    first = prune_expired(services, actor="signet", batches=2, size=3)
    assert first == {m.__tablename__: 6 for m in PRUNED}
    second = prune_expired(services, actor="signet", size=3)
    assert second == {m.__tablename__: 1 for m in PRUNED}
    for model in PRUNED:
        name = model.__tablename__
        kept = {_key_of(model, f"{name}-within"), _key_of(model, f"{name}-fresh")}
        gone = {_key_of(model, f"{name}-old-{i}") for i in range(7)}
        left = _keys_left(services, model)
        assert kept <= left and not gone & left, name
        assert left == before[model] - gone, name
    # Nothing left to prune: a periodic run records nothing, the operator's run does.
    assert prune_expired(services, actor="signet") == {m.__tablename__: 0 for m in PRUNED}
    records = _pruned_records(services)
    assert [(actor, details["rows"], details["tables"]) for actor, details in records] == [
        ("signet", 6 * len(PRUNED), first),
        ("signet", len(PRUNED), second),
    ]
    prune_expired(services, actor="cli:op", always_audit=True)
    assert _pruned_records(services)[-1][0] == "cli:op"
    assert _pruned_records(services)[-1][1]["rows"] == 0


def _age(services, model, column, value):
    """Make the row look expired past the margin, as after two days."""
    with services.database.transaction() as session:
        done = session.execute(
            update(model).where(column == value).values(expires_at=now() + OLD)
        ).rowcount
    assert done >= 1


def test_what_was_pruned_stays_refused(services, owner, client):
    user_id, credential_id = owner
    csc = Csc(client, services)
    digest = hashlib.sha256(b"a document").digest()
    hashes = [base64.b64encode(digest).decode()]
    with services.database.transaction() as session:
        credential = session.get(Credential, credential_id)
        kwargs = dict(
            user_id=user_id,
            username="alice",
            credential=credential,
            hashes=hashes,
            hash_oid=SHA["sha256"],
            count=1,
        )
        expired_sad, _ = issue_sad(session, services.hsm, lifetime_seconds=1, **kwargs)
        valid_sad, _ = issue_sad(session, services.hsm, lifetime_seconds=300, **kwargs)
    csc.login()
    remembered = client.post(
        "/csc/v2/auth/login",
        json={"rememberMe": True},
        headers={
            "Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        },
    ).json
    time.sleep(1.2)  # the first SAD's sealed expiry passes
    for sad in (expired_sad, valid_sad):
        _age(services, SignatureActivation, SignatureActivation.sad_hash, _sad_hash(sad))
    _age(services, AccessToken, AccessToken.token_hash, token_digest(remembered["access_token"]))
    _age(services, RefreshToken, RefreshToken.token_hash, token_digest(remembered["refresh_token"]))
    counts = prune_expired(services, actor="signet")
    assert counts["sads"] == 2 and counts["access_tokens"] == 1 and counts["refresh_tokens"] == 1

    ecdsa = "1.2.840.10045.4.3.2"
    # An expired SAD is refused by its sealed expiry, before its (missing) row is looked at.
    said = error_of(csc.sign(credential_id, expired_sad, [digest], ecdsa), 400)
    assert "SAD expired" in said
    # Within its validity, a SAD whose row is gone is not "unspent": it is refused.
    said = error_of(csc.sign(credential_id, valid_sad, [digest], ecdsa), 400)
    assert "record is gone" in said
    # An access token whose row is gone is no token; a refresh token's family is over.
    listed = client.post(
        "/csc/v2/credentials/list",
        json={},
        headers={"Authorization": f"Bearer {remembered['access_token']}"},
    )
    error_of(listed, 401, "invalid_token")
    again = client.post("/csc/v2/auth/login", json={"refresh_token": remembered["refresh_token"]})
    assert "refresh_token" in error_of(again, 400)
    # The token whose row stayed still works: pruning took only what had expired.
    assert csc.post("credentials/list", {}).status_code == 200
    with services.database.transaction(read_only=True) as session:
        assert session.execute(select(func.count()).select_from(AccessToken)).scalar_one() == 1


def _sad_hash(sad: str) -> str:
    return hashlib.sha256(sad.encode()).hexdigest()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_command_prints_what_each_table_lost(services, owner, settings_env):
    _fill(services, owner, old=3)
    result = signet_cli("db", "prune", env=settings_env)
    assert result.returncode == 0, result.stderr
    lines = dict(line.rsplit(None, 1) for line in result.stdout.splitlines())
    assert lines == {**{m.__tablename__: "3" for m in PRUNED}, "total": str(3 * len(PRUNED))}
    actor, details = _pruned_records(services)[-1]
    assert actor.startswith("cli:") and details["tables"] == {m.__tablename__: 3 for m in PRUNED}
    # Off: nothing deleted, said so; a margin shorter than a token's life: refused, named.
    off = signet_cli("db", "prune", env={**settings_env, "SIGNET_DATABASE__PRUNE_AFTER_HOURS": "0"})
    assert off.returncode == 0 and "pruning is off" in off.stdout
    short = {**settings_env, "SIGNET_DATABASE__PRUNE_AFTER_HOURS": "2"}
    refused = signet_cli("db", "prune", env=short)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "prune_after_hours" in refused.stderr and "25" in refused.stderr
    assert len(_pruned_records(services)) == 1


def test_a_login_prunes_when_due(services, owner, client, monkeypatch):
    from signet.signing import prune

    _fill(services, owner, old=2)
    monkeypatch.setitem(prune._last, "at", float("-inf"))  # this process has not pruned yet
    assert Csc(client, services).login()
    for model in PRUNED:
        name = model.__tablename__
        assert not {_key_of(model, f"{name}-old-{i}") for i in range(2)} & _keys_left(
            services, model
        ), name
    assert _pruned_records(services)[-1][1]["rows"] == 2 * len(PRUNED)
    # Due once per interval: the next login leaves the trail as it was.
    assert Csc(client, services).login()
    assert len(_pruned_records(services)) == 1


def test_a_pruned_code_yields_no_token(services, owner, client):
    from signet.auth.tokens import Principal
    from signet.signing.oauth2 import AuthRequest
    from signet.signing.oauth2_clients import add_client
    from signet.signing.oauth2_consent import issue_code

    user_id, _ = owner
    app, secret = add_client(services, "Acme", ["https://acme.test/cb"], public=False, actor="t")
    request = AuthRequest(app.client_id, "Acme", "https://acme.test/cb", None, "service", None)
    alice = Principal(user_id, "alice", "pwd", "low")
    used, unused = (
        parse_qs(urlsplit(issue_code(services, request, alice, None, "::1")).query)["code"][0]
        for _ in range(2)
    )

    def exchange(code):
        return client.post(
            "/oauth2/token",
            data={"grant_type": "authorization_code", "code": code},
            headers={
                "Authorization": "Basic "
                + base64.b64encode(f"{app.client_id}:{secret}".encode()).decode()
            },
        )

    assert exchange(used).status_code == 200
    for code in (used, unused):
        _age(services, OAuth2Code, OAuth2Code.code_hash, token_digest(code))
    assert prune_expired(services, actor="signet")["oauth2_codes"] == 2
    # Spent or not, a code whose row is gone is refused, however fresh its sealed grant.
    for code in (used, unused):
        refused = exchange(code)
        assert refused.status_code == 400 and refused.json["error"] == "invalid_grant"
        assert "unknown" in refused.json["error_description"]
