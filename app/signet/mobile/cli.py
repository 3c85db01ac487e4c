"""`signet-mobile`: the reference device as a command (register, pending, approve, deny)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from signet.mobile.sdk import Device, MobileError

DEFAULT_FILE = "signet-mobile.json"


def _friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MobileError as exc:
            raise click.ClickException(str(exc)) from exc

    return run


def _pin(confirm: bool = False) -> str:
    return str(click.prompt("Device PIN", hide_input=True, confirmation_prompt=confirm, err=True))


device_file = click.option(
    "--device-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_FILE,
    show_default=True,
    help="The device's file: its key, encrypted under the device PIN, and its registration.",
)


@click.group()
def main() -> None:
    """A reference Mobile ID device for Signet: register this device for a credential, then
    list, approve or deny the signing requests sent to it (docs/mobile-id.md). The PIN is
    asked for on the terminal (or read from standard input) and unlocks the device key."""


@main.command()
@click.option("--server", required=True, help="Signet's address, e.g. https://sign.example.")
@click.option("--credential", "credential_id", required=True, help="The credential's id.")
@click.option("--label", default="signet-mobile", show_default=True, help="This device's name.")
@device_file
@_friendly
def register(server: str, credential_id: str, label: str, device_file: Path) -> None:
    """Register this device with the activation code from the enrolment mail; choose the
    device PIN that will unlock its key."""
    code = click.prompt("Activation code", err=True).strip()
    pin = _pin(confirm=True)
    device = Device.register(server, credential_id, code, label=label)
    device.save(device_file, pin)
    click.echo(f"device {device.device_id} registered for credential {credential_id}")


@main.command()
@click.option("--wait", default=0, show_default=True, help="Seconds to wait for a request.")
@device_file
@_friendly
def pending(wait: int, device_file: Path) -> None:
    """List the requests waiting for this device (labels, count, fingerprint)."""
    device = Device.load(device_file, _pin())
    found = device.pending(wait)
    if not found:
        click.echo("no request is waiting")
    for request in found:
        click.echo(request.describe())


def _decide(request_id: str, device_file: Path, decision: str) -> None:
    device = Device.load(device_file, _pin())
    found = {r.id: r for r in device.pending(0)}
    if request_id not in found:
        raise click.ClickException(f"no pending request {request_id} for this device")
    request = found[request_id]
    click.echo(request.describe(), err=True)
    state = device.approve(request) if decision == "approve" else device.deny(request)
    click.echo(f"request {request_id}: {state}")


@main.command()
@click.argument("request_id")
@device_file
@_friendly
def approve(request_id: str, device_file: Path) -> None:
    """Approve one pending request: sign exactly what it shows with the device key."""
    _decide(request_id, device_file, "approve")


@main.command()
@click.argument("request_id")
@device_file
@_friendly
def deny(request_id: str, device_file: Path) -> None:
    """Deny one pending request (signed too, so nobody else can deny for you)."""
    _decide(request_id, device_file, "deny")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
