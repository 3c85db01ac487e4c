"""The protected authentication path until the agent exists: an account's ``askpass`` command,
run with what is being signed in its environment, answers the password or second factor on
its first line of output (exit status non-zero: the user cancelled)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class Cancelled(Exception):
    pass


def application() -> str:
    """The host application's name and pid, as the prompt shows it."""
    try:
        name = Path("/proc/self/comm").read_text().strip()
    except OSError:
        name = "?"
    return f"{name} (pid {os.getpid()})"


def ask(command: str, what: str, **details: str) -> str:
    env = {**os.environ, "SIGNET_VC_PROMPT": what, "SIGNET_VC_APPLICATION": application()}
    env.update({f"SIGNET_VC_{k.upper()}": v for k, v in details.items()})
    try:
        done = subprocess.run(
            [command], capture_output=True, text=True, env=env, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Cancelled(str(exc)) from exc
    if done.returncode != 0:
        raise Cancelled(f"{command} exited {done.returncode}")
    lines = done.stdout.splitlines()
    return lines[0] if lines else ""
