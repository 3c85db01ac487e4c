"""The `signet` command as an operator uses it: clear one-line errors, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from sqlalchemy import create_engine, text

from signet.config import DEFAULT_CONFIG_FILE
from tests.helpers import signet_cli, signet_server


@pytest.fixture
def initialised(settings_env):
    result = signet_cli("init", env=settings_env)
    assert result.returncode == 0, result.stderr
    return settings_env


def assert_clean_failure(result, *needles):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr


def test_every_command_has_help():
    for args in (
        ["--help"],
        ["init", "--help"],
        ["db", "upgrade", "--help"],
        ["db", "prune", "--help"],
        ["users", "add", "--help"],
        ["users", "list", "--help"],
        ["users", "disable", "--help"],
        ["users", "cert-add", "--help"],
        ["users", "cert-list", "--help"],
        ["users", "cert-remove", "--help"],
        ["credentials", "create", "--help"],
        ["credentials", "list", "--help"],
        ["credentials", "resend-activation", "--help"],
        ["activate", "--help"],
        ["credentials", "revoke", "--help"],
        ["audit", "verify", "--help"],
        ["audit", "checkpoint", "--help"],
        ["serve", "--help"],
    ):
        result = signet_cli(*args)
        assert result.returncode == 0 and "Usage:" in result.stdout, args


def test_client_certificate_commands_fail_cleanly(initialised, tmp_path):
    from tests.helpers import self_signed_certificate

    cert, _ = self_signed_certificate("carol")
    pem = tmp_path / "carol.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    assert_clean_failure(signet_cli("users", "cert-add", "nobody", str(pem)), "Unknown user nobody")
    carol = signet_cli(
        "users", "add", "carol", "--name", "C", "--email", "c@example.test",
        "--password-stdin", stdin="a long password\n",
    )  # fmt: skip
    assert carol.returncode == 0, carol.stderr
    assert_clean_failure(
        signet_cli("users", "cert-add", "carol", str(junk)), "not a readable X.509 certificate"
    )
    added = signet_cli("users", "cert-add", "carol", str(pem), "--label", "laptop")
    assert added.returncode == 0, added.stderr
    assert_clean_failure(signet_cli("users", "cert-add", "carol", str(pem)), "registered already")
    assert_clean_failure(
        signet_cli("users", "cert-remove", "carol", "ab" * 32), "has no certificate"
    )


def test_users_and_credentials_lifecycle(initialised):
    env = initialised
    added = signet_cli(
        "users",
        "add",
        "carol",
        "--name",
        "Carol C",
        "--email",
        "c@example.test",
        "--password-stdin",
        env=env,
        stdin="a long password\n",
    )
    assert added.returncode == 0, added.stderr
    created = signet_cli("credentials", "create", "carol", "--key", "ec-p256", env=env)
    assert created.returncode == 0, created.stderr
    credential_id = created.stdout.split()[1]
    assert "pending: an activation code was sent to c@example.test" in created.stdout
    listed = signet_cli("credentials", "list", "--user", "carol", env=env)
    assert credential_id in listed.stdout and "ec-p256" in listed.stdout
    assert "pending" in listed.stdout
    users = signet_cli("users", "list", env=env)
    assert "carol" in users.stdout and "Carol C" in users.stdout
    assert signet_cli("credentials", "revoke", credential_id, env=env).returncode == 0
    assert "revoked" in signet_cli("credentials", "list", env=env).stdout
    assert signet_cli("users", "disable", "carol", env=env).returncode == 0
    assert "disabled" in signet_cli("users", "list", env=env).stdout
    verified = signet_cli("audit", "verify", env=env)
    assert verified.returncode == 0 and "intact" in verified.stdout


def test_bad_arguments_give_one_clear_line(initialised):
    env = initialised
    assert_clean_failure(
        signet_cli("credentials", "create", "nobody", env=env), "no user named 'nobody'"
    )
    assert_clean_failure(
        signet_cli("users", "add", "dave", "--password-stdin", env=env, stdin="short\n"),
        "password too short",
    )
    assert_clean_failure(
        signet_cli("credentials", "revoke", "no-such-id", env=env), "no credential"
    )
    signet_cli("users", "add", "erin", "--password-stdin", env=env, stdin="long enough pw\n")
    assert_clean_failure(
        signet_cli("credentials", "create", "erin", "--key", "rsa-999", env=env), "unknown key type"
    )
    assert_clean_failure(
        signet_cli("users", "add", "erin", "--password-stdin", env=env, stdin="long enough pw\n"),
        "already exists",
    )
    assert_clean_failure(signet_cli("users", "add", "frank", env=env), "--password-stdin")
    assert_clean_failure(
        signet_cli(
            "credentials", "create", "erin", "--key", "rsa-2048", "--activation", "sms", env=env
        ),
        "sms",
    )


def test_phone_numbers_and_sms_credentials_give_one_clear_line(initialised):
    env = initialised
    assert_clean_failure(
        signet_cli(
            "users", "add", "gina", "--phone", "0470 12 34 56", "--password-stdin",
            env=env, stdin="long enough pw\n",
        ),
        "not international",
        "+32 470 12 34 56",
    )  # fmt: skip
    added = signet_cli(
        "users", "add", "gina", "--phone", "+32 470 12 34 56", "--password-stdin",
        env=env, stdin="long enough pw\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = signet_cli("users", "list", env=env)
    assert "+32470123456" in listed.stdout
    # No [notify.sms]: an SMS credential is refused before any key is made.
    assert_clean_failure(
        signet_cli("credentials", "create", "gina", "--activation", "sms_otp", env=env),
        "needs an SMS gateway",
        "[notify.sms]",
    )


def test_configuration_errors_name_the_setting(settings_env):
    env = {**settings_env, "SIGNET_DATABASE__URL": "mysql://nope"}
    assert_clean_failure(signet_cli("init", env=env), "database.url")
    env = {**settings_env, "SIGNET_HSM__TOKEN_LABEL": "absent-token"}
    assert_clean_failure(signet_cli("init", env=env), "absent-token")


def test_audit_verify_names_the_tampered_record(initialised, database_url):
    env = initialised
    signet_cli(
        "users",
        "add",
        "gina",
        "--email",
        "g@example.test",
        "--password-stdin",
        env=env,
        stdin="long enough pw\n",
    )
    signet_cli("users", "disable", "gina", env=env)
    # An administrator with direct database access edits a record.
    engine = create_engine(database_url)
    with engine.begin() as conn:
        seq = conn.execute(
            text("SELECT seq FROM audit_records WHERE event='user.disabled'")
        ).scalar_one()
        conn.execute(text("UPDATE audit_records SET actor='someone-else' WHERE seq=:s"), {"s": seq})
    engine.dispose()
    result = signet_cli("audit", "verify", env=env)
    assert_clean_failure(result, "audit trail broken")
    assert f"TAMPERED record {seq}: content edited (user.disabled)" in result.stdout


@pytest.mark.skipif(Path(DEFAULT_CONFIG_FILE).exists(), reason=f"{DEFAULT_CONFIG_FILE} exists")
def test_no_configuration_says_what_to_set_and_creates_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNET_")}
    env["HOME"] = str(tmp_path)
    for command in (["users", "list"], ["init"], ["db", "upgrade"]):
        result = subprocess.run(
            [str(Path(sys.executable).parent / "signet"), *command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr
        assert f"{DEFAULT_CONFIG_FILE} does not exist" in result.stderr
        assert "set SIGNET_CONFIG" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no var/signet.db, nothing at all


def test_credentials_create_without_a_terminal_names_what_exists(initialised):
    env = initialised
    signet_cli("users", "add", "hugo", "--password-stdin", env=env, stdin="long enough pw\n")
    refused = signet_cli(
        "credentials",
        "create",
        "hugo",
        "--activation",
        "pin",
        "--policy",
        "basic",
        env=env,
        stdin="",
    )
    assert_clean_failure(
        refused, "user 'hugo' has no e-mail address", "signet users add USER --email ADDRESS"
    )
    # every flag the message names exists on that command
    usage = signet_cli("users", "add", "--help").stdout
    assert "--email" in usage
    signet_cli(
        "users",
        "add",
        "iris",
        "--email",
        "i@example.test",
        "--password-stdin",
        env=env,
        stdin="long enough pw\n",
    )
    created = signet_cli(
        "credentials",
        "create",
        "iris",
        "--activation",
        "pin",
        "--policy",
        "basic",
        env=env,
        stdin="",
    )
    assert created.returncode == 0, created.stderr
    assert "pending: an activation code was sent to i@example.test" in created.stdout


def test_each_serve_keeps_no_shared_control_socket(initialised, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in {**os.environ, **initialised}.items() if k != "XDG_RUNTIME_DIR"}
    env["HOME"] = str(home)
    with signet_server(env=env, workers=1) as first:
        with signet_server(env=env, workers=1) as second:
            assert requests.get(second + "/health", timeout=10).status_code == 200
        # the second instance's exit took nothing of the first's
        assert requests.get(first + "/health", timeout=10).status_code == 200
        assert not (home / ".gunicorn").exists(), list(home.rglob("*"))
