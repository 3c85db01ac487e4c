"""Shared fixtures: a real SoftHSM token per test session, a fresh database per test (SQLite,
and PostgreSQL when `make test` started one), Signet services and a Flask client on them."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

SOFTHSM_MODULES = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
]
PG_URL = os.environ.get("SIGNET_TEST_PG_URL")
USER_PIN = "246810"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A SoftHSM token of our own (its own SOFTHSM2_CONF), shared by the whole session:
    python-pkcs11 loads the library once per process."""
    module = next((m for m in SOFTHSM_MODULES if os.path.exists(m)), None)
    if module is None:
        pytest.fail("SoftHSM2 is not installed: run `make test` (it installs softhsm2)")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "signet-test",
            "--so-pin",
            "13579135",
            "--pin",
            USER_PIN,
        ],
        check=True,
        capture_output=True,
    )
    pin_file = base / "user.pin"
    pin_file.write_text(USER_PIN)
    return {
        "module": module,
        "conf": str(conf),
        "pin_file": str(pin_file),
        "token_label": "signet-test",
        "dir": str(base),
    }


def _fresh_postgres_url() -> str:
    assert PG_URL
    name = f"signet_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_URL.rsplit("/", 1)[0] + "/" + name


def _drop_postgres(url: str) -> None:
    assert PG_URL
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'signet.db'}"
        return
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("SIGNET_TEST_PG_URL unset in CI: run the tests through `make test`")
        pytest.skip("PostgreSQL tests need SIGNET_TEST_PG_URL (make test sets it)")
    url = _fresh_postgres_url()
    yield url
    _drop_postgres(url)


@pytest.fixture(scope="session")
def ca_key_label() -> str:
    """The local CA's key label, one for the whole session: the first test's `signet init`
    generates the RSA-3072 key (about 0.7 s in SoftHSM), every later one finds it in the token
    and self-signs its own root with it in its own database."""
    return "ca-" + secrets.token_hex(6)


@pytest.fixture
def settings_env(
    softhsm: dict[str, str],
    database_url: str,
    ca_key_label: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """Environment that points Signet (in-process or a subprocess) at the test token and DB."""
    env = {
        "SIGNET_DATABASE__URL": database_url,
        "SIGNET_HSM__MODULE": softhsm["module"],
        "SIGNET_HSM__TOKEN_LABEL": softhsm["token_label"],
        "SIGNET_HSM__PIN_FILE": softhsm["pin_file"],
        "SIGNET_HSM__PIN_ENV": "",
        "SIGNET_NOTIFY__EMAIL_BACKEND": "maildir",
        "SIGNET_NOTIFY__MAILDIR": str(tmp_path / "mail"),
        "SIGNET_CA__OPTIONS": json.dumps({"key_label": ca_key_label}),
        "SIGNET_AUDIT__CHECKPOINT_FILE": str(tmp_path / "audit-checkpoints.jsonl"),
        "SIGNET_EVENTS__SPOOL_DIR": str(tmp_path / "events-spool"),
        "SOFTHSM2_CONF": softhsm["conf"],
    }
    monkeypatch.delenv("SIGNET_CONFIG", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def services(settings_env: dict[str, str]):  # type: ignore[no-untyped-def]
    from signet.config import load_settings
    from signet.signing import Services
    from signet.signing.admin import initialise

    svc = Services(load_settings())
    initialise(svc)
    yield svc
    svc.database.dispose()


@pytest.fixture
def app(services):  # type: ignore[no-untyped-def]
    from signet.web import create_app

    flask_app = create_app(services=services)
    flask_app.testing = True
    return flask_app


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()
