"""OAuth 2.0 clients declared in the settings file ([oauth2.clients.<client_id>]) as an operator
writes them: a confidential client (secret in a file of its own) and a public one complete the
code flow with Authlib as the application; a wrong secret, an unreadable secret file, a bad
redirect URI are refused clearly; `signet oauth2-clients` lists them and will not remove them."""

import json
import os
import secrets

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from signet.config import ConfigError, load_settings
from tests.helpers import app_in_thread, signet_cli
from tests.integration.csc_http import PASSWORD, enrol_alice
from tests.integration.oauth2_browser import REDIRECT_URI, Browser


@pytest.fixture
def declared(settings_env, tmp_path, monkeypatch):
    secret = secrets.token_urlsafe(32)
    secret_file = tmp_path / "acme.secret"
    secret_file.write_text(secret + "\n")
    clients = {
        "acme-sign": {
            "name": "Acme Sign (declared)",
            "redirect_uris": [REDIRECT_URI],
            "secret_file": str(secret_file),
        },
        "pocket": {"name": "Pocket (declared)", "redirect_uris": [REDIRECT_URI], "public": True},
    }
    monkeypatch.setenv("SIGNET_OAUTH2__CLIENTS", json.dumps(clients))
    return {"secret": secret, "secret_file": secret_file, "env": {**settings_env}}


@pytest.fixture
def services(declared):
    from signet.signing import Services
    from signet.signing.admin import initialise

    svc = Services(load_settings())
    initialise(svc)
    yield svc
    svc.database.dispose()


def _grant(url, client_id, secret=None):
    """The service grant through Signet's pages; the token endpoint's answer."""
    meta = requests.get(f"{url}/.well-known/oauth-authorization-server", timeout=30).json()
    client = OAuth2Session(
        client_id,
        secret,
        scope="service",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
    )
    verifier = secrets.token_urlsafe(48)
    address, _ = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier
    )
    browser = Browser(url)
    assert browser.open(address).status_code == 200, browser.text
    consent = browser.submit(username="alice", password=PASSWORD)
    assert consent.status_code == 200 and "declared" in consent.text, consent.text
    browser.submit(decision="approve")
    code = browser.redirected_to()["code"]
    auth = (client_id, secret) if secret else None
    return requests.post(
        meta["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            **({} if secret else {"client_id": client_id}),
        },
        auth=auth,
        timeout=30,
    )


def test_declared_clients_complete_the_code_flow(app, services, declared):
    enrol_alice(services, "ec-p256")
    with app_in_thread(app, range(56800, 56849)) as url:
        for client_id, secret in (("acme-sign", declared["secret"]), ("pocket", None)):
            answer = _grant(url, client_id, secret)
            assert answer.status_code == 200, answer.text
            token = answer.json()["access_token"]
            listed = requests.post(
                f"{url}/csc/v2/credentials/list",
                json={},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert listed.status_code == 200 and len(listed.json()["credentialIDs"]) == 1

        wrong = _grant(url, "acme-sign", declared["secret"][:-1] + "x")
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"

        declared["secret_file"].chmod(0)
        declared["secret_file"].unlink()
        gone = _grant(url, "acme-sign", declared["secret"])
        assert gone.status_code == 503, gone.text
        assert gone.json()["error"] == "temporarily_unavailable"
        assert "secret_file" not in gone.text and str(declared["secret_file"]) not in gone.text


def test_cli_lists_declared_clients_and_will_not_remove_them(services, declared):
    env = {**declared["env"], "SIGNET_OAUTH2__CLIENTS": os.environ["SIGNET_OAUTH2__CLIENTS"]}
    listed = json.loads(signet_cli("oauth2-clients", "list", "--json", env=env).stdout)
    assert {(c["client_id"], c["source"], c["public"]) for c in listed} == {
        ("acme-sign", "settings", False),
        ("pocket", "settings", True),
    }
    assert declared["secret"] not in signet_cli("oauth2-clients", "list", env=env).stdout
    removed = signet_cli("oauth2-clients", "remove", "acme-sign", env=env)
    assert removed.returncode == 1 and "settings file" in removed.stderr, removed.stderr
    assert "Traceback" not in removed.stderr


@pytest.mark.parametrize(
    ("client", "complaint"),
    [
        ({"name": "Evil", "redirect_uris": ["http://evil.example/cb"], "public": True}, "loopback"),
        ({"name": "Both", "redirect_uris": [REDIRECT_URI]}, "exactly one of secret_file"),
        ({"name": "None", "redirect_uris": [], "public": True}, "redirect_uris"),
    ],
)
def test_a_bad_declared_client_is_a_clear_configuration_error(
    settings_env, monkeypatch, client, complaint
):
    monkeypatch.setenv("SIGNET_OAUTH2__CLIENTS", json.dumps({"x": client}))
    with pytest.raises(ConfigError, match=complaint):
        load_settings()
    good = {"name": "Good", "redirect_uris": [REDIRECT_URI], "public": True}
    monkeypatch.setenv("SIGNET_OAUTH2__CLIENTS", json.dumps({"bad id!": good}))
    with pytest.raises(ConfigError, match="client ID"):
        load_settings()
