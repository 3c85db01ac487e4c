"""`signet sign`, `signet verify` and `signet activate`: the desktop path (any CSC v2 service,
local files; activation on a Signet service)."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("pades", "xades", "cades", "jades")
LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
PACKAGINGS = ("enveloped", "enveloping", "detached", "attached")


def _fail(message: str, status: int = 1) -> None:
    click.echo(f"signet: error: {message}", err=True)
    sys.exit(status)


def desktop_friendly(func: F) -> F:
    """One line on stderr and exit status 1 for every failure: the desktop commands load no
    server-side package (HSM, store), so they do not use main's ``friendly``."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from signet.client import CscError, DesktopError
        from signet.formats import FormatError
        from signet.validation import VerifyError

        try:
            return func(*args, **kwargs)
        except VerifyError as exc:
            _fail(_verify_error_message(exc))
        except (DesktopError, FormatError) as exc:
            _fail(str(exc))
        except CscError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            click.echo("", err=True)
            _fail("interrupted; nothing was written", 130)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}")
        except Exception as exc:  # the promise: never a traceback for the user
            if os.environ.get("SIGNET_DEBUG"):
                raise
            _fail(f"unexpected {exc.__class__.__name__}: {exc} (set SIGNET_DEBUG=1 for details)")

    return wrapper  # type: ignore[return-value]


def _verify_error_message(exc: Any) -> str:
    """A VerifyError in this command's terms: the signed content is given with --detached."""
    from signet.validation import ContentFault

    advice = {
        ContentFault.MISSING: "{problem}: give the signed file with --detached FILE",
        ContentFault.UNEXPECTED: "{problem}: drop --detached",
        ContentFault.NOT_FOUND: "--detached {problem}",
    }
    return advice[exc.fault].format(problem=exc.problem) if exc.fault else str(exc)


def _quiet_validator_logs() -> None:
    """pyHanko logs each path it cannot build with a traceback; the report already says why a
    signature is not trusted, so those records stay out of the terminal (SIGNET_DEBUG shows
    them)."""
    import logging

    if os.environ.get("SIGNET_DEBUG"):
        return
    for name in ("pyhanko", "pyhanko_certvalidator"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())


class ConsoleTerminal:
    """Secrets from the terminal (getpass) or, when stdin is not a TTY, one line each from
    stdin; progress lines on stderr."""

    def secret(self, prompt: str) -> str:
        from signet.client import DesktopError

        if sys.stdin.isatty():
            return getpass.getpass(prompt, stream=sys.stderr)
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = sys.stdin.readline()
        sys.stderr.write("\n")
        sys.stderr.flush()
        if not line:
            raise DesktopError(
                f"{prompt.strip().rstrip(':')}: standard input ended before it was given"
            )
        return line.rstrip("\r\n")

    def progress(self, message: str) -> None:
        click.echo(f"signet: {message}", err=True)


@click.command("sign")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS, case_sensitive=False),
    required=True,
    help="Signature format.",
)
@click.option(
    "--level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="B-B",
    show_default=True,
    help="Baseline level (B-T and up need --tsa).",
)
@click.option(
    "--server",
    required=True,
    metavar="URL",
    envvar="SIGNET_SERVER",
    help="CSC v2 service: https://host (→ /csc/v2) or the full …/v2 base URL [env SIGNET_SERVER].",
)
@click.option(
    "--user",
    required=True,
    envvar="SIGNET_USER",
    help="User name at the service [env SIGNET_USER].",
)
@click.option(
    "--credential",
    "credential_id",
    metavar="ID",
    help="Credential to sign with (default: the user's only one).",
)
@click.option(
    "--packaging",
    type=click.Choice(PACKAGINGS, case_sensitive=False),
    help="PAdES enveloped; XAdES enveloped|enveloping|detached; CAdES "
    "detached|attached; JAdES attached|detached.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Where to write (default: FILE.signed.pdf, FILE.p7s, … next to FILE).",
)
@click.option(
    "--tsa",
    "tsa_url",
    metavar="URL",
    envvar="SIGNET_TSA_URL",
    help="RFC 3161 time-stamping service for B-T and up [env SIGNET_TSA_URL].",
)
@click.option(
    "--trust",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="CERT",
    help="Extra trust anchor (PEM/DER) for B-LT paths, e.g. the TSA's root; repeatable.",
)
@click.option(
    "--scheme",
    type=click.Choice(["pkcs1v15", "pss", "ecdsa"]),
    help="RSA padding (default PKCS#1 v1.5, or PSS if that is all the key offers).",
)
@desktop_friendly
def sign_command(
    file: Path,
    fmt: str,
    level: str,
    server: str,
    user: str,
    credential_id: str | None,
    packaging: str | None,
    output: Path | None,
    tsa_url: str | None,
    trust: tuple[Path, ...],
    scheme: str | None,
) -> None:
    """Sign FILE through a CSC v2 service: only its hash leaves this machine.

    Asks for the password (from stdin when it is not a terminal) and, when the credential
    needs it, for the one-time code the service sends or for the PIN."""
    from signet.client import DesktopSignRequest, sign_file

    request = DesktopSignRequest(
        path=file,
        format=fmt.lower(),
        level=level.upper(),
        server=server,
        user=user,
        credential_id=credential_id,
        packaging=packaging.lower() if packaging else None,
        output=output,
        tsa_url=tsa_url,
        trust=trust,
        scheme=scheme,
    )
    written = sign_file(request, ConsoleTerminal())
    click.echo(str(written))


@click.command("verify")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--detached",
    type=click.Path(path_type=Path),
    metavar="CONTENT",
    help="The signed file of a detached CAdES, XAdES or JAdES signature.",
)
@click.option(
    "--trust",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="CERT",
    help="Trust anchor (PEM/DER; the signer's and the TSA's roots); repeatable. "
    "Without one no signature is trusted.",
)
@desktop_friendly
def verify_command(file: Path, detached: Path | None, trust: tuple[Path, ...]) -> None:
    """Verify the signatures in FILE and report what holds and what was not checked.

    Exit status 0 only if every signature is intact, valid and trusted."""
    from signet.validation import VerifyError, load_certificates, verify_file

    anchors = []
    for path in trust:
        try:
            anchors.extend(load_certificates(path))
        except (OSError, ValueError) as exc:
            raise VerifyError(f"--trust {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    _quiet_validator_logs()
    report = verify_file(file, detached=detached, trust=anchors)
    for line in report.lines():
        click.echo(line)
    if not anchors:
        click.echo(
            "signet: no --trust given, so no signature can be trusted: name the root "
            "certificate of the signer (and of the TSA) with --trust CERT",
            err=True,
        )
    if not report.ok:
        sys.exit(1)


@click.command("activate")
@click.option(
    "--server",
    required=True,
    metavar="URL",
    envvar="SIGNET_SERVER",
    help="Signet service: https://host (→ /csc/v2) or the full …/v2 base URL [env SIGNET_SERVER].",
)
@click.option(
    "--user",
    required=True,
    envvar="SIGNET_USER",
    help="Your user name at the service [env SIGNET_USER].",
)
@click.option(
    "--credential",
    "credential_id",
    required=True,
    metavar="ID",
    help="The credential named in the activation mail.",
)
@desktop_friendly
def activate_command(server: str, user: str, credential_id: str) -> None:
    """Activate your new credential with the code e-mailed to you.

    Asks for your password, the activation code and, for a PIN credential, the PIN you
    choose (twice). When standard input is not a terminal, reads them one a line in that
    order: password, code, PIN, PIN again (no PIN lines for an OTP credential). Only you ever
    know the PIN: the service keeps a verifier made in its HSM."""
    from signet.client import CscClient, DesktopError
    from signet.client.csc import auth_factor

    terminal = ConsoleTerminal()
    client = CscClient(server)
    client.login(user, terminal.secret(f"password for {user}: "))
    try:
        factor = auth_factor(client.credential_info(credential_id))
        code = terminal.secret("activation code (from the e-mail): ").strip()
        if not code:
            raise DesktopError("no activation code given")
        pin = None
        if factor.kind == "PIN":
            pin = terminal.secret("new PIN (6 to 16 digits): ")
            if terminal.secret("new PIN again: ") != pin:
                raise DesktopError("the two PINs differ; nothing was changed")
        client.activate(credential_id, code, pin)
    finally:
        client.revoke()
    how = "your PIN" if pin is not None else "one-time codes sent to your e-mail"
    click.echo(f"credential {credential_id} is active: it signs with {how}")
