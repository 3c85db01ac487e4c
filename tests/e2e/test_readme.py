"""The README's walkthrough, run exactly as written (only the port may differ), against the
embedded default that `make run` sets up."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def walkthrough_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Walkthrough", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def test_readme_walkthrough_signs_and_verifies(tmp_path):
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNET_")}
    env.update(SIGNET_VAR=str(var), VENV=str(Path(sys.executable).parent.parent))
    init = subprocess.run([str(ROOT / "scripts/embedded-init")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert init.returncode == 0, init.stderr
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "signet"), "serve", "--listen", f"127.0.0.1:{port}"],
        env={**env, "SIGNET_CONFIG": str(var / "signet.toml")}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        # The walkthrough runs from the repository, where var/ is the embedded default.
        work = tmp_path / "checkout"
        work.mkdir()
        (work / "var").symlink_to(var)
        (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
        signing, admin = walkthrough_blocks()[:2]
        for block in (signing, admin):
            script = block.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work,
                                    env=env, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stdout + result.stderr
            if block is signing:
                assert result.stdout.strip().endswith("Verified OK"), result.stdout
            else:
                assert "audit trail intact" in result.stdout
                assert "credential" in result.stdout and "carol" in result.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
