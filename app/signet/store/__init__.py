"""Persistent state: models, sessions, migrations; the only code that writes SQL."""

from signet.store.db import Database, StoreError, bulk_update, upgrade
from signet.store.models import (
    AccessToken,
    AuditHead,
    AuditRecord,
    Authenticator,
    Base,
    Certificate,
    Credential,
    EventCursor,
    LoginThrottle,
    OAuth2Client,
    OAuth2Code,
    OtpChallenge,
    RefreshToken,
    SignatureActivation,
    User,
)

__all__ = [
    "AccessToken",
    "AuditHead",
    "AuditRecord",
    "Authenticator",
    "Base",
    "Certificate",
    "Credential",
    "Database",
    "EventCursor",
    "LoginThrottle",
    "OAuth2Client",
    "OAuth2Code",
    "OtpChallenge",
    "RefreshToken",
    "SignatureActivation",
    "StoreError",
    "User",
    "bulk_update",
    "upgrade",
]
