"""auth.oidc's ID token checks one by one, on tokens made here (the end-to-end tests run a real
OP in tests/integration/test_oidc.py): the times and their skew, nbf, max_age and auth_time,
azp with several audiences, a missing sub, and what the assertion carries."""

from __future__ import annotations

import hashlib
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from signet.auth import oidc
from signet.config.identity import OidcProviderSettings

ISSUER = "https://op.example"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


def settings(**extra):
    base = {"kind": "oidc", "label": "OP", "issuer": ISSUER, "client_id": "signet"}
    return OidcProviderSettings(**{**base, **extra})


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setattr(oidc, "_keys", lambda s, refresh: KeySet([KEY]))


class In(int):
    """A time `int` seconds from when the token is made (parameters are made at collection)."""


def token(key=KEY, alg="RS256", **claims):
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "signet", "sub": "alice", "nonce": "n1"}
    body.update(iat=now, exp=now + 300)
    body.update({k: now + v if isinstance(v, In) else v for k, v in claims.items()})
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": "k1"}, body, key, algorithms=[alg])


def check(value, nonce="n1", **extra):
    return oidc.verify_id_token(settings(**extra), "op", value, nonce)


def test_a_good_token_makes_the_assertion():
    asserted = check(token(acr="urn:mfa", amr=["pwd", "otp"], auth_time=100, email="a@x"))
    assert asserted.subject == "alice" and asserted.context == "urn:mfa"
    assert asserted.methods == ("pwd", "otp") and asserted.authenticated_at == 100
    assert asserted.one_time == hashlib.sha256(b"n1").hexdigest()
    assert asserted.claims["email"] == "a@x" and asserted.valid_until > time.time()


@pytest.mark.parametrize(
    ("claims", "extra", "named"),
    [
        ({"exp": In(-61)}, {}, "expired"),
        ({"exp": In(-20)}, {"max_skew_seconds": 10}, "expired"),
        ({"nbf": In(120)}, {}, "not valid yet"),
        ({"iat": None}, {}, "no iat"),
        ({"exp": "tomorrow"}, {}, "exp is not a time"),
        ({"sub": None}, {}, "no sub"),
        ({"aud": ["signet", "other"]}, {}, "azp None"),
        ({"aud": "signet", "azp": "other"}, {}, "azp 'other'"),
        ({"auth_time": None}, {"max_age_seconds": 60}, "no auth_time"),
        ({"auth_time": In(-600)}, {"max_age_seconds": 60}, "max_age"),
    ],
)
def test_each_check_refuses_naming_itself(claims, extra, named):
    with pytest.raises(oidc.OidcError, match=named):
        check(token(**claims), **extra)


def test_several_audiences_pass_with_azp_ours_and_within_skew():
    check(token(aud=["signet", "other"], azp="signet"))
    check(token(exp=int(time.time()) - 5), max_skew_seconds=10)
    check(token(auth_time=int(time.time()) - 30), max_age_seconds=60)


def test_an_algorithm_not_allowed_is_refused_even_with_a_published_key(monkeypatch):
    ec = ECKey.generate_key("P-384", parameters={"kid": "k1"})
    monkeypatch.setattr(oidc, "_keys", lambda s, refresh: KeySet([ec]))
    with pytest.raises(oidc.OidcError, match="ES384"):
        check(token(key=ec, alg="ES384"))
    assert check(token(key=ec, alg="ES384"), allowed_algorithms=["ES384"]).subject == "alice"


def test_the_nonce_must_be_the_one_sent():
    with pytest.raises(oidc.OidcError, match="nonce"):
        check(token(), nonce="n2")
    with pytest.raises(oidc.OidcError, match="nonce"):
        check(token(nonce=None))
