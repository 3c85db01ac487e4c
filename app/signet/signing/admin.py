"""Administration use cases: initialisation, credentials, the audit trail's checks and
checkpoints (users are in signing.users, re-exported here)."""

from __future__ import annotations

import re
import socket
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

from asn1crypto import x509 as asn1_x509
from sqlalchemy import select

from signet.algorithms import KeySpec
from signet.auth import assurance
from signet.auth.federation import IDP_METHOD
from signet.config import settings_digest
from signet.errors import BadGateway, Conflict, InvalidRequest, NotFound
from signet.events import (
    AuditFinding,
    Checkpoint,
    Event,
    append_checkpoint,
    append_event,
    append_events,
    export_checkpoint,
    verify_chain,
    verify_checkpoints,
)
from signet.pki import CAError, certificate_row, enrol_key
from signet.sam import check_credential, credential_seal
from signet.sam.keys import prepare_keys
from signet.signing.activation import ActivationSent, send_activation
from signet.signing.context import Services

# Users are enrolled by signing.users; administration tools reach them here too.
from signet.signing.users import (  # noqa: F401
    UserView,
    add_user,
    list_users,
    set_user_status,
)
from signet.store import Credential, User, upgrade


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CredentialView:
    credential_id: str
    username: str
    key: str
    status: str
    activation: str
    policy: str
    locked: bool
    subject: str
    not_after: datetime | None
    # Set by create_credential: where the activation code went, and until when it is valid.
    activation_sent_to: str | None = None
    activation_expires: datetime | None = None


@dataclass(frozen=True)
class Initialised:
    revision_before: str
    revision_after: str
    ca_created: bool
    keys_created: list[str]


INIT_ACTOR = "signet-init"


def initialise(services: Services) -> Initialised:
    """Migrate the database, make the SAM's keys in the HSM and the CA ready; idempotent.
    The SAM's keys come first: from then on every audit record is keyed (the audit key is
    one of them), the records of their own creation included."""
    before, after = upgrade(services.settings.database)
    keys_created = prepare_keys(services.hsm)
    if keys_created:
        with services.database.transaction() as session:
            append_events(
                session,
                [
                    Event(
                        "key.generated",
                        INIT_ACTOR,
                        label,
                        details={"key": "hmac-sha256", "purpose": "sam"},
                    )
                    for label in keys_created
                ],
            )
    ca_created = services.ca.ensure_ready()
    return Initialised(before, after, ca_created, keys_created)


def create_credential(
    services: Services,
    username: str,
    *,
    key: str,
    actor: str,
    activation: str = "otp",
    description: str | None = None,
    credential_id: str | None = None,
    policy: str | None = None,
) -> CredentialView:
    """Enrol a new credential: key generated in the HSM, certified by the CA connector. It is
    pending: an activation code goes to the user's e-mail address or, for sms_otp, her phone
    (sealed in the record), and only she activates it, choosing her PIN for a PIN credential
    (`signing.activation`). `policy` (default: [assurance] default_policy) is what its
    authorizations must reach; one its factor can never meet is refused."""
    policy = _policy_for(services, activation, policy)
    try:
        spec = KeySpec.parse(key)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    if activation not in ("otp", "sms_otp", "pin", "mobile_id", "passkey"):
        raise InvalidRequest(
            f"unknown activation {activation!r}; use otp (codes by e-mail), sms_otp (codes "
            "by SMS), pin, mobile_id (approval on a registered phone) or passkey (approval "
            "with a WebAuthn passkey)"
        )
    if activation == "sms_otp" and services.settings.notify.sms is None:
        raise InvalidRequest(
            "activation sms_otp needs an SMS gateway: set [notify.sms] (type http or smpp) "
            "in signet.toml first"
        )
    with services.database.transaction() as session:
        user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None:
            raise NotFound(f"no user named {username!r}")
        if user.status != "active":
            raise Conflict(f"user {username!r} is {user.status}")
        if activation == "sms_otp" and not user.phone:
            raise InvalidRequest(
                f"user {username!r} has no phone number, and an sms_otp credential's codes "
                "go by SMS: the number is given when a user is added "
                "(signet users add USER --phone +32470123456)"
            )
        if activation != "sms_otp" and not user.email:
            raise InvalidRequest(
                f"user {username!r} has no e-mail address, and the codes of an "
                f"{activation} credential go by e-mail: the address is given when a user "
                "is added (signet users add USER --email ADDRESS)"
            )
        common_name, email = user.display_name, user.email
        # Where its codes go, sealed in its record: a later change to the user redirects none.
        address = user.phone if activation == "sms_otp" else user.email
    credential_id = credential_id or str(uuid.uuid4())
    if not re.match(r"^[A-Za-z0-9._-]{1,64}$", credential_id) or credential_id.startswith(
        "signet-"
    ):
        # (The SAM's own keys are labelled signet-…: a credential must never share a label.)
        raise InvalidRequest(f"invalid credential id {credential_id!r}")
    try:
        chain = enrol_key(
            services.hsm,
            services.ca,
            key_label=credential_id,
            spec=spec,
            common_name=common_name,
            email=email,
            validity_days=services.settings.ca.end_entity_validity_days,
            qc_statements=services.settings.ca.qc_statements,
        )
    except CAError as exc:
        raise BadGateway(f"enrolment failed: {exc}") from exc
    stamp = now()
    try:
        with services.database.transaction() as session:
            user = session.execute(select(User).where(User.username == username)).scalar_one()
            credential = Credential(
                id=credential_id,
                user_id=user.id,
                description=description,
                key_label=credential_id,
                key_type=spec.key_type,
                key_size=spec.size,
                curve=spec.curve,
                status="pending",
                activation=activation,
                pin_hash=None,
                scal="2",
                multisign=100,
                policy=policy,
                epoch=0,
                activation_address=address,
                locked=False,
                failed_attempts=0,
                created_at=stamp,
                updated_at=stamp,
            )
            credential.seal = credential_seal(services.hsm, credential)
            session.add(credential)
            for position, cert in enumerate(chain):
                session.add(
                    certificate_row(
                        cert,
                        role="end-entity" if position == 0 else "chain",
                        ca_name=services.ca.name,
                        position=position,
                        credential_id=credential_id,
                    )
                )
            append_event(
                session,
                "key.generated",
                actor=actor,
                subject=credential_id,
                key=str(spec),
                user=username,
            )
            append_event(
                session,
                "credential.enrolled",
                actor=actor,
                subject=credential_id,
                user=username,
                serial=format(chain[0].serial_number, "x"),
                ca=services.ca.name,
                activation=activation,
            )
    except Exception:
        services.hsm.destroy_key(credential_id)
        raise
    sent = send_activation(services, credential_id, actor=actor)
    return replace(
        _credential_view(credential, username, chain[0]),
        activation_sent_to=sent.to,
        activation_expires=sent.expires_at,
    )


def offered_logins(services: Services) -> tuple[str, ...]:
    """The login methods this service offers: the password, client certificates (in
    software or on a card) when [client_certificates] is enabled, and a login at each
    enabled identity provider at every level its mapping credits."""
    logins = ["pwd"]
    if services.settings.client_certificates.enabled:
        logins += ["x509", "x509_card"]
    for provider in services.settings.identity.enabled().values():
        levels = {*provider.levels.values(), provider.default_level} - {None}
        logins += sorted(IDP_METHOD[level] for level in levels if level is not None)
    return tuple(dict.fromkeys(logins))


def _policy_for(services: Services, activation: str, name: str | None) -> str:
    """The policy a new credential gets, checked: known, and reachable with its factor after
    a login by some method Signet offers."""
    settings = services.settings.assurance
    name = name or settings.default_policy
    policy = settings.policy(name)
    if policy is None:
        known = ", ".join(sorted(settings.all_policies()))
        raise InvalidRequest(f"unknown policy {name!r}; use one of {known}")
    factor = assurance.ACTIVATION_METHOD.get(activation)
    if factor is None:
        return name  # the activation is refused next, naming the choices
    logins = offered_logins(services)
    if any(not assurance.shortfall(policy, assurance.reached((m, factor))) for m in logins):
        return name
    best = assurance.reached(("pwd", factor))
    missing = assurance.shortfall(policy, best)
    if missing:
        fits = sorted({f for m in logins for f in assurance.step_ups(policy, (m,))})
        raise InvalidRequest(
            f"policy {name!r} needs {', '.join(missing)} where a {activation} credential "
            f"reaches {best.describe()}; choose another policy"
            + (f" or a credential activated by {' or '.join(fits)}" if fits else "")
        )
    return name


def resend_activation(services: Services, credential_id: str, *, actor: str) -> ActivationSent:
    """A fresh activation code for a pending credential, to its sealed address."""
    return send_activation(services, credential_id, actor=actor)


def _credential_view(
    c: Credential, username: str, cert: asn1_x509.Certificate | None
) -> CredentialView:
    return CredentialView(
        credential_id=c.id,
        username=username,
        key=f"rsa-{c.key_size}" if c.key_type == "rsa" else f"ec-p{c.key_size}",
        status=c.status,
        activation=c.activation,
        policy=c.policy,
        locked=c.locked,
        subject=cert.subject.human_friendly if cert else "",
        not_after=cert.not_valid_after if cert else None,
    )


def list_credentials(services: Services, username: str | None = None) -> list[CredentialView]:
    with services.database.transaction() as session:
        query = (
            select(Credential, User.username)
            .join(User)
            .order_by(User.username, Credential.created_at)
        )
        if username:
            if not session.execute(select(User.id).where(User.username == username)).first():
                raise NotFound(f"no user named {username!r}")
            query = query.where(User.username == username)
        views = []
        for credential, name in session.execute(query).all():
            ee = next((c for c in credential.certificates if c.position == 0), None)
            cert = asn1_x509.Certificate.load(ee.der) if ee else None
            views.append(_credential_view(credential, name, cert))
        return views


def set_credential_status(
    services: Services, credential_id: str, status: str, *, actor: str, reason: str = "unspecified"
) -> None:
    """disable (reversible; every SAD issued before it stops working), enable, unlock, or
    revoke: final — the private key is destroyed in the HSM and the certificate revoked."""
    if status not in ("active", "disabled", "revoked", "unlock"):
        raise InvalidRequest(f"unknown credential status {status!r}")
    with services.database.transaction() as session:
        credential = session.get(Credential, credential_id, with_for_update=True)
        if credential is None:
            raise NotFound(f"no credential {credential_id!r}")
        check_credential(services.hsm, credential)
        if credential.status == "revoked" and status != "revoked":
            raise Conflict(f"credential {credential_id!r} is revoked; it cannot change again")
        if credential.status == "pending" and status == "active":
            raise Conflict(f"credential {credential_id!r} is pending: only its owner activates it")
        serial = next((c.serial for c in credential.certificates if c.position == 0), None)
        if status == "unlock":
            if not credential.locked:
                return
            credential.locked = False
            credential.failed_attempts = 0
            event, details = "credential.unlocked", dict[str, Any]()
        else:
            if credential.status == status:
                return
            if status == "disabled":
                credential.epoch += 1  # SADs carry the epoch they were issued in
            credential.status = status
            event = {
                "active": "credential.enabled",
                "disabled": "credential.disabled",
                "revoked": "credential.revoked",
            }[status]
            details = {"epoch": credential.epoch}
        credential.updated_at = now()
        credential.seal = credential_seal(services.hsm, credential)
        if status == "revoked":
            # Destroyed before the commit: if it fails, the credential stays as it was.
            services.hsm.destroy_key(credential.key_label)
            details = {"key_label": credential.key_label, "serial": serial, "key_destroyed": True}
        append_event(session, event, actor=actor, subject=credential_id, reason=reason, **details)
    if status == "revoked" and serial is not None:
        services.ca.revoke(int(serial, 16), reason)
        from signet.signing.publication import forget_crl_cache

        forget_crl_cache()


class AuditCheck(NamedTuple):
    records: int
    findings: list[AuditFinding]
    checkpoint_file: str
    checkpoints: int | None  # None: there is no checkpoint file (yet)


def verify_audit(services: Services, checkpoint_file: str | None = None) -> AuditCheck:
    """Check every record's hash, link and MAC (in the HSM), then the trail against the
    exported checkpoints: `checkpoint_file`, or the configured one (which may not exist yet:
    nothing has been checkpointed before `signet serve` first starts)."""
    path = checkpoint_file or services.settings.audit.checkpoint_file
    try:
        lines: list[str] | None = (
            Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        )
    except FileNotFoundError:
        if checkpoint_file:
            raise NotFound(f"checkpoint file {path} not found") from None
        lines = None
    except OSError as exc:
        raise InvalidRequest(f"cannot read checkpoint file {path}: {exc.strerror}") from exc
    with services.database.transaction(read_only=True) as session:
        records, findings = verify_chain(session)
        checkpoints = None
        if lines is not None:
            checkpoints, against = verify_checkpoints(session, path, lines)
            findings += against
    return AuditCheck(records, findings, path, checkpoints)


def checkpoint_audit(services: Services, *, actor: str) -> Checkpoint:
    """Anchor the trail's head: the `audit.checkpoint` record, then (once it is committed)
    its line in the checkpoint file."""
    with services.database.transaction() as session:
        checkpoint = append_checkpoint(session, actor=actor)
    path = services.settings.audit.checkpoint_file
    try:
        export_checkpoint(path, checkpoint)
    except OSError as exc:
        raise InvalidRequest(
            f"audit.checkpoint_file: cannot append to {path}: "
            f"{exc.strerror} (record {checkpoint.record} is in the "
            "trail)"
        ) from exc
    return checkpoint


def record_service_start(services: Services, *, actor: str) -> Checkpoint:
    """`service.started`, with the version and a digest of the effective settings, then a
    checkpoint anchoring it."""
    with services.database.transaction() as session:
        append_event(
            session,
            "service.started",
            actor=actor,
            subject=socket.gethostname(),
            version=version("signet"),
            settings_sha256=settings_digest(services.settings),
        )
    return checkpoint_audit(services, actor=actor)


def record_service_stop(services: Services, *, actor: str) -> Checkpoint:
    """`service.stopped` (the serving processes have ended), then a checkpoint anchoring it."""
    with services.database.transaction() as session:
        append_event(
            session,
            "service.stopped",
            actor=actor,
            subject=socket.gethostname(),
            version=version("signet"),
        )
    return checkpoint_audit(services, actor=actor)
