"""`signet oauth2-clients add|list|remove` as an operator runs it: the secret printed once and
stored only as a hash, a bad redirect URI refused in one line, each change audited."""

import json

from sqlalchemy import create_engine, select

from signet.store import AuditRecord, OAuth2Client
from tests.helpers import signet_cli


def test_oauth2_clients_lifecycle(settings_env):
    assert signet_cli("init", env=settings_env).returncode == 0
    env = settings_env
    for args in (["oauth2-clients", "--help"], ["oauth2-clients", "add", "--help"]):
        assert "Usage:" in signet_cli(*args).stdout
    added = signet_cli(
        "oauth2-clients", "add", "Acme Sign", "--redirect-uri", "https://acme.example/cb", env=env
    )
    assert added.returncode == 0, added.stderr
    lines = dict(line.split(": ", 1) for line in added.stdout.splitlines())
    client_id, secret = lines["client_id"], lines["client_secret"]
    public = signet_cli(
        "oauth2-clients",
        "add",
        "Pocket",
        "--public",
        "--redirect-uri",
        "http://127.0.0.1:9000/cb",
        env=env,
    )
    assert public.returncode == 0 and "client_secret" not in public.stdout
    bad = signet_cli(
        "oauth2-clients", "add", "Evil", "--redirect-uri", "http://evil.example/cb", env=env
    )
    assert bad.returncode == 1 and "loopback" in bad.stderr and "Traceback" not in bad.stderr
    listed = json.loads(signet_cli("oauth2-clients", "list", "--json", env=env).stdout)
    assert {c["name"] for c in listed} == {"Acme Sign", "Pocket"}
    assert secret not in signet_cli("oauth2-clients", "list", env=env).stdout
    engine = create_engine(env["SIGNET_DATABASE__URL"])
    with engine.connect() as conn:
        stored = conn.execute(
            select(OAuth2Client.secret_hash).where(OAuth2Client.client_id == client_id)
        ).scalar_one()
        assert secret not in stored and stored.startswith("sha256$")
    assert signet_cli("oauth2-clients", "remove", client_id, env=env).returncode == 0
    again = signet_cli("oauth2-clients", "remove", client_id, env=env)
    assert again.returncode == 1 and "no OAuth 2.0 client" in again.stderr
    with engine.connect() as conn:
        audited = (
            conn.execute(select(AuditRecord.event).where(AuditRecord.event.like("oauth2.client%")))
            .scalars()
            .all()
        )
    engine.dispose()
    assert audited == ["oauth2.client_added", "oauth2.client_added", "oauth2.client_removed"]
