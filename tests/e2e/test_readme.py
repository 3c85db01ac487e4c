"""The README's walkthrough, run exactly as written (only the port may differ), against the
embedded default that `make run` sets up."""

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import signet_server

ROOT = Path(__file__).resolve().parents[2]


def walkthrough_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Walkthrough", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def test_readme_walkthrough_signs_and_verifies(tmp_path):
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNET_")}
    env.update(SIGNET_VAR=str(var), VENV=str(Path(sys.executable).parent.parent))
    init = subprocess.run(
        [str(ROOT / "scripts/embedded-init")], env=env, capture_output=True, text=True, timeout=300
    )
    assert init.returncode == 0, init.stderr
    with signet_server(env={**env, "SIGNET_CONFIG": str(var / "signet.toml")}) as url:
        port = url.rsplit(":", 1)[1]
        # The walkthrough runs from the repository, where var/ is the embedded default.
        work = tmp_path / "checkout"
        work.mkdir()
        (work / "var").symlink_to(var)
        (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
        signing, admin = walkthrough_blocks()[:2]
        for block in (signing, admin):
            script = block.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            if block is signing:
                assert result.stdout.strip().endswith("Verified OK"), result.stdout
            else:
                assert "audit trail intact" in result.stdout
                assert "credential" in result.stdout and "carol" in result.stdout
