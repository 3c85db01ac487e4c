"""A real Signet (gunicorn, SQLite, SoftHSM, mail into a Maildir) with alice's RSA and EC PIN
credentials, the module built by `make vc`, and a signet-vc configuration naming the server.
Ports 56951-56999 only (SIGNET_VC_TEST_PORTS moves them)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from asn1crypto import pem

from tests.helpers import (
    activate_over_api,
    activation_code_in_mail,
    port_in,
    signet_cli,
    signet_server,
)

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "build" / "vc" / "libsignet-vc.so"
# pkcs11-tool and OpenSSL's engine answer CKA_ALWAYS_AUTHENTICATE with the PIN they logged in
# with: alice's password and her credentials' PIN are the same digits here.
SECRET = "246813579753"
# The first free one of these (another checkout's vc tests may hold some); SIGNET_VC_TEST_PORTS
# ("first-last") moves the range for a run beside another.
_FIRST, _LAST = os.environ.get("SIGNET_VC_TEST_PORTS", "56951-56999").split("-")
PORTS = range(int(_FIRST), int(_LAST) + 1)


@dataclass
class Card:
    url: str
    env: dict[str, str]  # what a consumer process runs with (SIGNET_VC_CONFIG)
    rsa: str
    ec: str
    tmp: Path
    root_pem: Path  # Signet's CA, which issued alice's certificates
    askpass_env: dict[str, str]  # the same account with an askpass command (protected path)
    askpass_log: Path  # what that command was shown, one SIGNET_VC_* line per variable
    sign_ask_env: dict[str, str]  # askpass at every C_Sign, no CKA_ALWAYS_AUTHENTICATE
    server_env: dict[str, str]  # the service's own settings, for the admin CLI

    def certificate(self, credential_id: str) -> Path:
        """The credential's certificate (PEM), as the service hands it out."""
        session = requests.Session()
        token = session.post(f"{self.url}/csc/v2/auth/login", auth=("alice", SECRET), timeout=30)
        session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        info = session.post(
            f"{self.url}/csc/v2/credentials/info",
            json={"credentialID": credential_id, "certificates": "single"},
            timeout=30,
        ).json()
        path = self.tmp / f"{credential_id}.pem"
        path.write_bytes(
            pem.armor("CERTIFICATE", base64.b64decode(info["cert"]["certificates"][0]))
        )
        return path

    def run(
        self, *args: str, check: bool = True, env_extra: dict[str, str] | None = None, **kw
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            env={**self.env, **(env_extra or {})},
            **{"timeout": 120, **kw},
        )
        if check:
            assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done


def _build() -> None:
    if not MODULE.exists():
        built = subprocess.run(
            [sys.executable, "-m", "signet.vc.build", str(MODULE.parent)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "app")},
        )
        assert built.returncode == 0, built.stderr[-3000:]


def _credential(url: str, env: dict[str, str], maildir: Path, key: str) -> str:
    made = signet_cli(
        "credentials", "create", "alice", "--key", key, "--activation", "pin",
        "--policy", "basic", "--description", f"alice {key}", env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    credential_id = made.stdout.split()[1]
    code = activation_code_in_mail(maildir, credential_id)
    activate_over_api(url, "alice", SECRET, credential_id, code, SECRET)
    return credential_id


@pytest.fixture(scope="session")
def card(softhsm, tmp_path_factory) -> Card:
    _build()
    tmp = tmp_path_factory.mktemp("vc")
    maildir = tmp / "mail"
    port = port_in(PORTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNET_")}
    env.update(
        {
            "SIGNET_WEB__BASE_URL": f"http://127.0.0.1:{port}",
            "SIGNET_DATABASE__URL": f"sqlite:///{tmp / 'signet.db'}",
            "SIGNET_HSM__MODULE": softhsm["module"],
            "SIGNET_HSM__TOKEN_LABEL": softhsm["token_label"],
            "SIGNET_HSM__PIN_FILE": softhsm["pin_file"],
            "SIGNET_HSM__PIN_ENV": "",
            "SIGNET_CA__OPTIONS": '{"key_label": "vc-ca-' + uuid.uuid4().hex[:8] + '"}',
            "SIGNET_NOTIFY__EMAIL_BACKEND": "maildir",
            "SIGNET_NOTIFY__MAILDIR": str(maildir),
            "SIGNET_AUDIT__CHECKPOINT_FILE": str(tmp / "audit-checkpoints.jsonl"),
            "SOFTHSM2_CONF": softhsm["conf"],
        }
    )
    assert signet_cli("init", env=env).returncode == 0
    added = signet_cli(
        "users", "add", "alice", "--email", "alice@example.test", "--password-stdin",
        env=env, stdin=SECRET + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    with signet_server(env=env, workers=2, port=port) as url:
        rsa = _credential(url, env, maildir, "rsa-2048")
        ec = _credential(url, env, maildir, "ec-p256")
        config = tmp / "signet-vc.toml"
        config.write_text(f'[[account]]\nserver = "{url}"\nuser = "alice"\nlabel = "alice"\n')
        consumer = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNET_", "PYTHON"))}
        consumer["SIGNET_VC_CONFIG"] = str(config)
        consumer["XDG_CACHE_HOME"] = str(tmp / "cache")
        session = requests.Session()
        token = session.post(f"{url}/csc/v2/auth/login", auth=("alice", SECRET), timeout=30)
        session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        chain = session.post(
            f"{url}/csc/v2/credentials/info",
            json={"credentialID": rsa, "certificates": "chain"},
            timeout=30,
        ).json()["cert"]["certificates"]
        root_pem = tmp / "signet-root.pem"
        root_pem.write_bytes(pem.armor("CERTIFICATE", base64.b64decode(chain[-1])))
        log = tmp / "askpass.log"
        askpass = tmp / "askpass"
        askpass.write_text(f"#!/bin/sh\nenv | grep ^SIGNET_VC_ | sort >> {log}\necho {SECRET}\n")
        askpass.chmod(0o755)
        asking = tmp / "signet-vc-askpass.toml"
        asking.write_text(
            f'[[account]]\nserver = "{url}"\nuser = "alice"\nlabel = "alice"\n'
            f'askpass = "{askpass}"\n'
        )
        at_sign = tmp / "signet-vc-at-sign.toml"
        at_sign.write_text(asking.read_text() + "context_login = false\n")
        yield Card(
            url,
            consumer,
            rsa,
            ec,
            tmp,
            root_pem,
            {**consumer, "SIGNET_VC_CONFIG": str(asking)},
            log,
            {**consumer, "SIGNET_VC_CONFIG": str(at_sign)},
            env,
        )
