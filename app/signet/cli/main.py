"""`signet`: the administration command (init, db, users, credentials, oauth2-clients, audit,
events, serve, snmp-agent)."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from signet.config import ConfigError, ConfigMissing, load_settings
from signet.errors import BackendError, SignetError

F = TypeVar("F", bound=Callable[..., Any])


def _actor() -> str:
    return f"cli:{os.environ.get('SUDO_USER') or getpass.getuser()}"


def _fail(message: str, status: int = 1) -> None:
    click.echo(f"signet: error: {message}", err=True)
    sys.exit(status)


def friendly(func: F) -> F:
    """Turn every known failure into one line on stderr and exit status 1 (2 when there is
    no configuration at all: a usage error)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from signet.pki import CAError

        try:
            return func(*args, **kwargs)
        except SignetError as exc:
            _fail(exc.description)
        except ConfigMissing as exc:
            _fail(str(exc), status=2)
        except (ConfigError, BackendError, CAError) as exc:  # BackendError: HSM, database
            _fail(str(exc))
        except Exception as exc:  # the promise: never a traceback for the operator
            if os.environ.get("SIGNET_DEBUG"):
                raise
            _fail(f"unexpected {exc.__class__.__name__}: {exc} (set SIGNET_DEBUG=1 for details)")

    return wrapper  # type: ignore[return-value]


def _services() -> Any:
    from signet.signing import Services

    return Services(load_settings())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="signet")
def main() -> None:
    """Signet remote signing engine: administration.

    Settings come from the TOML file in SIGNET_CONFIG (default /etc/signet/signet.toml) and
    SIGNET_<SECTION>__<KEY> environment variables; with no file and no SIGNET_DATABASE__URL,
    commands that need settings stop with exit status 2."""


@main.command()
@click.option("--demo", is_flag=True, help="Also create the demo users alice and bob.")
@friendly
def init(demo: bool) -> None:
    """Migrate the database, make the SAM's keys and the CA ready (idempotent); every key
    created is recorded in the audit trail."""
    from signet.signing.admin import initialise
    from signet.signing.demo import ensure_demo_users

    services = _services()
    done = initialise(services)
    click.echo(_revision_line(done.revision_before, done.revision_after))
    for label in done.keys_created:
        click.echo(f"created the SAM key {label!r} in the HSM")
    if done.ca_created:
        click.echo(f"created CA {services.ca.name!r} (key in the HSM) and its certificate")
    else:
        click.echo(f"CA {services.ca.name!r} ready")
    if demo:
        for line in ensure_demo_users(services):
            click.echo(line)


@main.group()
def db() -> None:
    """Database schema and housekeeping."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@friendly
def db_upgrade(revision: str) -> None:
    """Apply the migrations up to REVISION."""
    from signet.store import upgrade

    settings = load_settings()
    click.echo(_revision_line(*upgrade(settings.database, revision)))


def _revision_line(before: str, after: str) -> str:
    if before == after:
        return f"database at revision {after}"
    return f"database upgraded from {before} to {after}"


@main.group()
def users() -> None:
    """Signing users."""


def _read_secret(prompt: str, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise SignetError(f"{prompt}: no terminal to ask on; use --password-stdin")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@users.command("add")
@click.argument("username")
@click.option("--name", "display_name", help="Full name, used in certificates.")
@click.option("--email", help="Address that receives one-time passwords.")
@click.option(
    "--phone",
    help="Mobile number (E.164, e.g. +32470123456) that receives one-time passwords by SMS.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@friendly
def users_add(
    username: str,
    display_name: str | None,
    email: str | None,
    phone: str | None,
    password_stdin: bool,
) -> None:
    """Add a user (asks for the password)."""
    from signet.signing.admin import add_user

    password = _read_secret(f"password for {username}", password_stdin)
    add_user(
        _services(),
        username,
        password=password,
        display_name=display_name,
        email=email,
        phone=phone,
        actor=_actor(),
    )
    click.echo(f"user {username} added")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def users_list(as_json: bool) -> None:
    """List users."""
    from signet.signing.admin import list_users

    rows = list_users(_services())
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], indent=2))
        return
    click.echo(f"{'USER':<20} {'STATUS':<9} {'CREDS':>5}  NAME <EMAIL> PHONE")
    for r in rows:
        click.echo(
            f"{r.username:<20} {r.status:<9} {r.credentials:>5}  {r.display_name}"
            f"{' <' + r.email + '>' if r.email else ''}{' ' + r.phone if r.phone else ''}"
        )


@users.command("disable")
@click.argument("username")
@friendly
def users_disable(username: str) -> None:
    """Disable a user: she can no longer log in or sign."""
    from signet.signing.admin import set_user_status

    set_user_status(_services(), username, "disabled", actor=_actor())
    click.echo(f"user {username} disabled")


@users.command("cert-add")
@click.argument("username")
@click.argument("certificate", type=click.File("rb"))
@click.option("--label", default="", help="What the certificate is (e.g. the card's name).")
@friendly
def users_cert_add(username: str, certificate: Any, label: str) -> None:
    """Register a client certificate (PEM or DER file, - for stdin) to a user: with
    client_certificates.mapping = "fingerprint", it logs her in."""
    from signet.signing.certificate_login import add_certificate

    digest = add_certificate(_services(), username, certificate.read(), label, actor=_actor())
    click.echo(f"certificate {digest} registered to {username}")


@users.command("cert-list")
@click.argument("username", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def users_cert_list(username: str | None, as_json: bool) -> None:
    """List the client certificates registered to users (or to one)."""
    from signet.signing.certificate_login import list_certificates

    rows = list_certificates(_services(), username)
    if as_json:
        click.echo(
            json.dumps([{**r.__dict__, "created_at": r.created_at.isoformat()} for r in rows])
        )
        return
    for r in rows:
        click.echo(f"{r.username:<20} {r.fingerprint}  {r.label}  {r.subject}")


@users.command("cert-remove")
@click.argument("username")
@click.argument("fingerprint")
@friendly
def users_cert_remove(username: str, fingerprint: str) -> None:
    """Unregister a client certificate (its SHA-256, as cert-list shows it)."""
    from signet.signing.certificate_login import remove_certificate

    remove_certificate(_services(), username, fingerprint, actor=_actor())
    click.echo(f"certificate {fingerprint} removed from {username}")


@users.command("enable")
@click.argument("username")
@friendly
def users_enable(username: str) -> None:
    """Enable a disabled user."""
    from signet.signing.admin import set_user_status

    set_user_status(_services(), username, "active", actor=_actor())
    click.echo(f"user {username} enabled")


@main.group()
def credentials() -> None:
    """Signing credentials (a key in the HSM and its certificate)."""


@credentials.command("create")
@click.argument("username")
@click.option(
    "--key",
    default="rsa-3072",
    show_default=True,
    help="rsa-2048, rsa-3072, rsa-4096, ec-p256 or ec-p384.",
)
@click.option(
    "--activation",
    type=click.Choice(["otp", "sms_otp", "pin", "mobile_id", "passkey"]),
    default="otp",
    show_default=True,
    help="Second factor that activates the key: one-time codes by e-mail (otp) or by SMS "
    "to the user's phone (sms_otp, needs [notify.sms]), or a PIN the user chooses when she "
    "activates the credential, or Mobile ID (mobile_id: each authorization approved on the "
    "user's phone, registered with the activation code; docs/mobile-id.md), or a passkey "
    "(passkey: each authorization approved with a WebAuthn passkey on Signet's page; "
    "docs/passkeys.md).",
)
@click.option(
    "--policy",
    help="Assurance policy its authorizations must reach: basic, advanced, qualified or one "
    "of [assurance.policies] (default: [assurance] default_policy). See docs/assurance.md.",
)
@click.option("--description", help="Free text shown to the user.")
@friendly
def credentials_create(
    username: str, key: str, activation: str, policy: str | None, description: str | None
) -> None:
    """Generate a key in the HSM for USERNAME and have the CA certify it.

    The credential is pending: an activation code is sent to the user's address (by SMS
    to her phone for sms_otp), and
    only she activates it (`signet activate`), choosing her PIN for a PIN credential. Nobody
    else ever learns or sets it."""
    from signet.signing.admin import create_credential

    view = create_credential(
        _services(),
        username,
        key=key,
        activation=activation,
        description=description,
        policy=policy,
        actor=_actor(),
    )
    click.echo(
        f"credential {view.credential_id} created for {username}: {view.key}, "
        f"policy {view.policy}, "
        f"{view.subject}, valid until {view.not_after:%Y-%m-%d}"
    )
    click.echo(
        f"pending: an activation code was sent to {view.activation_sent_to} (valid "
        f"until {view.activation_expires:%Y-%m-%d %H:%M} UTC); {username} activates "
        "it with `signet activate`"
    )


@credentials.command("resend-activation")
@click.argument("credential_id")
@friendly
def credentials_resend_activation(credential_id: str) -> None:
    """Send a fresh activation code for a pending credential (earlier codes stop working)."""
    from signet.signing.admin import resend_activation

    sent = resend_activation(_services(), credential_id, actor=_actor())
    click.echo(
        f"credential {credential_id}: a new activation code was sent to {sent.to} "
        f"(valid until {sent.expires_at:%Y-%m-%d %H:%M} UTC)"
    )


@credentials.command("list")
@click.option("--user", "username", help="Only this user's credentials.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def credentials_list(username: str | None, as_json: bool) -> None:
    """List credentials."""
    from signet.signing.admin import list_credentials

    rows = list_credentials(_services(), username)
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], indent=2, default=str))
        return
    header = f"{'CREDENTIAL':<38} {'USER':<12} {'KEY':<9} {'STATUS':<9} {'ACTIVATION':<10}"
    click.echo(f"{header} POLICY")
    for r in rows:
        click.echo(
            f"{r.credential_id:<38} {r.username:<12} {r.key:<9} "
            f"{r.status + (' locked' if r.locked else ''):<9} {r.activation:<10} {r.policy}"
        )


def _status_command(name: str, status: str, help_text: str) -> None:
    @credentials.command(name, help=help_text)
    @click.argument("credential_id")
    @click.option("--reason", default="unspecified", show_default=True)
    @friendly
    def command(credential_id: str, reason: str) -> None:
        from signet.signing.admin import set_credential_status

        set_credential_status(_services(), credential_id, status, actor=_actor(), reason=reason)
        click.echo(f"credential {credential_id}: {name} done")


_status_command("revoke", "revoked", "Revoke a credential and its certificate (final).")
_status_command("disable", "disabled", "Disable a credential (reversible).")
_status_command("enable", "active", "Enable a disabled credential.")
_status_command("unlock", "unlock", "Unlock a credential locked by failed OTP/PIN tries.")


@main.group()
def audit() -> None:
    """The tamper-evident audit trail (docs/audit.md)."""


@audit.command("verify")
@click.option(
    "--checkpoints",
    "checkpoint_file",
    metavar="FILE",
    help="Checkpoint file to check against (default: audit.checkpoint_file).",
)
@friendly
def audit_verify(checkpoint_file: str | None) -> None:
    """Check the trail: every record's hash, link and MAC (in the HSM), and the checkpoints
    exported to FILE; name every edited, rewritten, deleted or cut-off record."""
    from signet.signing.admin import verify_audit

    check = verify_audit(_services(), checkpoint_file)
    if check.checkpoints is None:
        click.echo(
            f"signet: warning: no checkpoint file {check.checkpoint_file}: a cut-off "
            "tail cannot be found",
            err=True,
        )
    if check.findings:
        for finding in check.findings:
            click.echo(f"TAMPERED {finding}")
        _fail(f"audit trail broken: {len(check.findings)} problem(s) in {check.records} records")
    anchored = (
        ""
        if check.checkpoints is None
        else f", {check.checkpoints} checkpoint(s) in {check.checkpoint_file} hold"
    )
    click.echo(f"audit trail intact: {check.records} records{anchored}")


@audit.command("checkpoint")
@friendly
def audit_checkpoint() -> None:
    """Anchor the trail's newest record: a keyed checkpoint, in the trail and appended to
    audit.checkpoint_file (run it from a timer)."""
    from signet.signing.admin import checkpoint_audit

    services = _services()
    checkpoint = checkpoint_audit(services, actor=_actor())
    click.echo(
        f"checkpoint {checkpoint.record} anchors record {checkpoint.seq}; "
        f"appended to {services.settings.audit.checkpoint_file}"
    )


@main.group()
def events() -> None:
    """Forwarding the audit trail and operational events to sinks (monitoring/README.md)."""


@events.command("forward")
@click.option("--once", is_flag=True, help="One round for every sink, then exit.")
@friendly
def events_forward(once: bool) -> None:
    """Forward the audit trail and this node's operational events to the sinks of [events]
    (run it as a service on every node: a lease per sink makes one node send each record)."""
    import signal
    import threading

    from signet.signing.forwarding import build_forwarder

    services = _services()
    if not services.settings.events.sinks:
        _fail("no sinks configured: add an [events.sinks.<name>] table (monitoring/README.md)")
    forwarder = build_forwarder(services)
    try:
        if once:
            click.echo(f"{forwarder.run_once()} audit record(s) forwarded")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        forwarder.run(stop)
    finally:
        forwarder.close()


@main.command()
@click.option("--listen", help="HOST:PORT (default: web.listen).")
@click.option("--workers", type=int, help="Worker processes (default: web.workers).")
@friendly
def serve(listen: str | None, workers: int | None) -> None:
    """Serve the API with gunicorn (recording service.started and a checkpoint first, and
    service.stopped and a checkpoint at the end)."""
    from signet.web.server import record_start, record_stop, run_gunicorn

    settings = load_settings()
    checkpoint = record_start(settings, actor=_actor())
    click.echo(
        f"signet: service.started recorded; checkpoint {checkpoint} appended to "
        f"{settings.audit.checkpoint_file}",
        err=True,
    )
    master = os.getpid()
    try:
        run_gunicorn(settings, listen=listen, workers=workers)
    finally:
        # gunicorn ends with SystemExit, in the master and in every worker it forked (they
        # unwind this same stack): only the master records the stop. A node that is killed
        # records none: the SIEM sees the start without a stop.
        if os.getpid() == master:
            try:
                checkpoint = record_stop(settings, actor=_actor())
                click.echo(f"signet: service.stopped recorded; checkpoint {checkpoint}", err=True)
            except SignetError as exc:
                click.echo(f"signet: warning: {exc.description}", err=True)


@main.command("snmp-agent")
@friendly
def snmp_agent() -> None:
    """Serve SIGNET-MIB to snmpd (pass_persist on stdin/stdout): status probed in the
    background, answers from cached values (monitoring/README.md, "SNMP")."""
    from signet.monitoring.agent import run_agent

    run_agent(load_settings())


from signet.cli.desktop import activate_command, sign_command, verify_command  # noqa: E402

main.add_command(activate_command)
main.add_command(sign_command)
main.add_command(verify_command)

from signet.cli.oauth2_clients import oauth2_clients  # noqa: E402

main.add_command(oauth2_clients)

from signet.cli.identity import identity_group  # noqa: E402

main.add_command(identity_group)

import signet.cli.prune  # noqa: E402, F401  (adds `signet db prune`)

if __name__ == "__main__":  # pragma: no cover
    main()
