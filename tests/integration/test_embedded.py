"""The embedded default of `make run`: initialised once, reused on every start."""

import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.helpers import signet_server

ROOT = Path(__file__).resolve().parents[2]


def embedded_env(var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNET_")}
    env.update(
        SIGNET_VAR=str(var),
        VENV=str(Path(sys.executable).parent.parent),
        SOFTHSM2_CONF=str(var / "softhsm2.conf"),
    )
    return env


def serve_and_check(var: Path, env: dict[str, str]) -> dict:
    with signet_server(env={**env, "SIGNET_CONFIG": str(var / "signet.toml")}) as url:
        response = requests.get(f"{url}/health", timeout=5)
        assert response.status_code == 200, response.text
        return response.json()


def test_state_survives_a_restart(tmp_path):
    var = tmp_path / "var"
    env = embedded_env(var)
    first = subprocess.run(
        [str(ROOT / "scripts/embedded-init")], env=env, capture_output=True, text=True, timeout=300
    )
    assert first.returncode == 0, first.stderr
    assert "created user alice" in first.stdout and "created user bob" in first.stdout
    assert first.stdout.count("created credential") == 4
    listing = [str(Path(sys.executable).parent / "signet"), "credentials", "list"]
    cfg_env = {**env, "SIGNET_CONFIG": str(var / "signet.toml")}
    before = subprocess.run(listing, env=cfg_env, capture_output=True, text=True).stdout
    assert serve_and_check(var, env)["status"] == "ok"

    # Second start: nothing is created again, the same keys and users are served.
    second = subprocess.run(
        [str(ROOT / "scripts/embedded-init")], env=env, capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout and "initialised" not in second.stdout
    after = subprocess.run(listing, env=cfg_env, capture_output=True, text=True).stdout
    assert before == after and before.count("rsa-3072") == 2
    assert serve_and_check(var, env)["status"] == "ok"
    assert (var / "hsm.pin").stat().st_mode & 0o077 == 0
