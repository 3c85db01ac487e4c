"""Users: enrolment (a password, an e-mail address and a phone number for one-time codes,
each checked), listing, disabling and enabling."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from signet.auth.passwords import check_password_policy, hash_secret
from signet.errors import Conflict, InvalidRequest, NotFound
from signet.events import append_event
from signet.notify.sms import e164, mask_phone
from signet.signing.context import Services
from signet.store import Authenticator, Credential, User

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,127}$")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class UserView:
    username: str
    display_name: str
    email: str | None
    status: str
    credentials: int
    phone: str | None = None


def add_user(
    services: Services,
    username: str,
    *,
    password: str,
    display_name: str | None,
    email: str | None,
    actor: str,
    phone: str | None = None,
) -> UserView:
    if not USERNAME.match(username):
        raise InvalidRequest(
            f"invalid user name {username!r}: use lower-case letters, digits "
            "and . _ @ -, starting with a letter or digit"
        )
    try:
        check_password_policy(password)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    if email is not None and not re.match(r"^[^@\s]+@[^@\s]+$", email):
        raise InvalidRequest(f"invalid email address {email!r}")
    if phone is not None:
        try:
            phone = e164(phone)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
    stamp = now()
    try:
        with services.database.transaction() as session:
            if session.execute(select(User.id).where(User.username == username)).first():
                raise Conflict(f"user {username!r} already exists")
            user = User(
                username=username,
                display_name=display_name or username,
                email=email,
                phone=phone,
                status="active",
                created_at=stamp,
                updated_at=stamp,
            )
            session.add(user)
            session.flush()
            session.add(
                Authenticator(
                    user_id=user.id,
                    kind="password",
                    secret=hash_secret(password),
                    status="active",
                    failed_attempts=0,
                    created_at=stamp,
                )
            )
            for kind, address in (("email_otp", email), ("sms_otp", phone)):
                if address:
                    session.add(
                        Authenticator(
                            user_id=user.id,
                            kind=kind,
                            address=address,
                            status="active",
                            failed_attempts=0,
                            created_at=stamp,
                        )
                    )
            append_event(
                session,
                "user.created",
                actor=actor,
                subject=username,
                email=email,
                phone=mask_phone(phone) if phone else None,
                display_name=user.display_name,
            )
    except IntegrityError:
        raise Conflict(f"user {username!r} already exists") from None
    return UserView(username, display_name or username, email, "active", 0, phone)


def list_users(services: Services) -> list[UserView]:
    with services.database.transaction() as session:
        counts = dict(
            session.execute(
                select(Credential.user_id, func.count()).group_by(Credential.user_id)
            ).all()
        )
        users = session.execute(select(User).order_by(User.username)).scalars().all()
        return [
            UserView(u.username, u.display_name, u.email, u.status, counts.get(u.id, 0), u.phone)
            for u in users
        ]


def set_user_status(services: Services, username: str, status: str, *, actor: str) -> None:
    if status not in ("active", "disabled"):
        raise InvalidRequest(f"unknown user status {status!r}")
    with services.database.transaction() as session:
        user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None:
            raise NotFound(f"no user named {username!r}")
        if user.status == status:
            return
        user.status = status
        user.updated_at = now()
        append_event(
            session,
            f"user.{'disabled' if status == 'disabled' else 'enabled'}",
            actor=actor,
            subject=username,
        )
