"""Asking the user: an ``askpass`` command (the account's in the module, or the agent's), the
agent's terminal, and desktop notifications. Every prompt says what it is for — a login, or
the application, credential, mechanism and hash of the one signature it authorizes."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, TextIO


class Cancelled(Exception):
    pass


def application() -> str:
    """The host application's name and pid, as the prompt shows it."""
    try:
        name = Path("/proc/self/comm").read_text().strip()
    except OSError:
        name = "?"
    return f"{name} (pid {os.getpid()})"


def describe(what: str, details: dict[str, str]) -> str:
    """One prompt's text: for a signature, who signs what before the factor it needs."""
    if "hash" in details:
        digest = details["hash"]
        shown = digest if len(digest) <= 24 else f"{digest[:16]}...{digest[-8:]}"
        return (
            f"{details.get('application', '?')} signs with {details.get('credential', '?')} "
            f"({details.get('mechanism', '?')}), hash {shown}. {what}:"
        )
    return f"Signet {what} for {details.get('user', '?')} ({details.get('application', '?')}):"


def ask(command: str, what: str, **details: str) -> str:
    """Run ``command`` as ssh-askpass is run (the prompt's text as its argument) with the
    details as ``SIGNET_VC_*`` variables; its first line of output is the answer."""
    env = {**os.environ, "SIGNET_VC_PROMPT": what, "SIGNET_VC_APPLICATION": application()}
    env.update({f"SIGNET_VC_{k.upper()}": v for k, v in details.items()})
    if what == "confirm":
        env["SSH_ASKPASS_PROMPT"] = "confirm"  # ssh-askpass's yes/no dialogue
    try:
        done = subprocess.run(
            [command, describe(what, {"application": env["SIGNET_VC_APPLICATION"], **details})],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Cancelled(str(exc)) from exc
    if done.returncode != 0:
        raise Cancelled(f"{command} exited {done.returncode}")
    lines = done.stdout.splitlines()
    return lines[0] if lines else ""


class Prompter:
    """How the agent asks: its ``askpass`` command when given, else its terminal (standard
    input, with echo off) when it has one; neither means it cannot ask (Cancelled). Prompts
    are one at a time. ``notify`` (a notify-send-like command) is told of every signature."""

    def __init__(
        self,
        askpass: str | None = None,
        *,
        terminal: TextIO | None = None,
        out: TextIO | None = None,
        notify: str | None = None,
    ) -> None:
        self.askpass = askpass
        self.terminal = terminal if terminal is not None else _tty_stdin()
        self.out = out or sys.stderr
        self.notify_command = notify
        self.lock = threading.Lock()

    @property
    def can_ask(self) -> bool:
        return bool(self.askpass or self.terminal)

    def secret(self, what: str, **details: str) -> str:
        with self.lock:
            if self.askpass:
                return ask(self.askpass, what, **details)
            if self.terminal is None:
                raise Cancelled("the agent has no askpass command and no terminal to ask on")
            with _echo_off(self.terminal):  # before the prompt: what is typed is never shown
                self.out.write(describe(what, details) + " ")
                self.out.flush()
                line = self.terminal.readline()
            self.out.write("\n")
            if not line:
                raise Cancelled("the terminal closed")
            return line.rstrip("\r\n")

    def tell(self, text: str) -> None:
        """A line for the user on the agent's terminal, when it has one."""
        if self.terminal is not None:
            with self.lock:
                self.out.write(text + "\n")
                self.out.flush()

    def confirm(self, **details: str) -> bool:
        """A yes/no question before a signature that needs no factor."""
        try:
            if self.askpass:
                with self.lock:
                    ask(self.askpass, "confirm", **details)  # exit 0: yes
                return True
            return self.secret("sign? [y/N]", **details).strip().lower() in ("y", "yes")
        except Cancelled:
            return False

    def notify(self, text: str) -> None:
        """A desktop notification, sent in the background; failures are ignored."""
        command = self.notify_command
        if not command:
            return
        threading.Thread(
            target=_run_quietly, args=([command, "Signet", text],), daemon=True
        ).start()


def default_notifier() -> str | None:
    """notify-send, where a desktop session bus is there to take it."""
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return None
    return shutil.which("notify-send")


def _run_quietly(argv: list[str]) -> None:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(argv, capture_output=True, timeout=30, check=False)


def _tty_stdin() -> TextIO | None:
    try:
        return sys.stdin if sys.stdin is not None and sys.stdin.isatty() else None
    except (AttributeError, ValueError):
        return None


@contextlib.contextmanager
def _echo_off(stream: TextIO) -> Any:
    try:
        import termios

        fd = stream.fileno()
        old = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):
        yield
        return
    new = list(old)
    new[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSADRAIN, new)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)
