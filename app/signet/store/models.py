"""SQLAlchemy models: the whole persistent state of a Signet node (nodes hold none of their own)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so migrations read the same on every engine.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# Timestamps are stored as UTC-aware values; SQLite keeps them as text.
UtcDateTime = DateTime(timezone=True)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(256))
    email: Mapped[str | None] = mapped_column(String(320))
    # E.164 (+ and at most 15 digits): where SMS one-time codes go.
    phone: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    authenticators: Mapped[list[Authenticator]] = relationship(back_populates="user")
    credentials: Mapped[list[Credential]] = relationship(back_populates="user")


class Authenticator(Base):
    """A way for a user to prove who she is: password, email OTP, ..."""

    __tablename__ = "authenticators"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # password | email_otp | sms_otp | ...
    # Verifier (argon2id hash) or public parameters; never a clear secret.
    secret: Mapped[str | None] = mapped_column(Text)
    # Where the challenge goes (an email address, a phone number), if any.
    address: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default="active")
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    user: Mapped[User] = relationship(back_populates="authenticators")


class Credential(Base):
    """A signing key in the HSM with its certificate, owned by one user."""

    __tablename__ = "credentials"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    description: Mapped[str | None] = mapped_column(String(256))
    key_label: Mapped[str] = mapped_column(String(128), unique=True)
    key_type: Mapped[str] = mapped_column(String(8))  # rsa | ec
    key_size: Mapped[int] = mapped_column(Integer)
    curve: Mapped[str | None] = mapped_column(String(32))
    # pending (until its owner activates it) | active | disabled | revoked
    status: Mapped[str] = mapped_column(String(16), default="active")
    # Second factor that activates the key: otp (codes by e-mail) | sms_otp (by SMS) | pin
    activation: Mapped[str] = mapped_column(String(16), default="otp")
    pin_hash: Mapped[str | None] = mapped_column(Text)
    scal: Mapped[str] = mapped_column(String(4), default="2")
    multisign: Mapped[int] = mapped_column(Integer, default=100)
    # Assurance policy its signatures need ([assurance]; sealed). Rows from before policies
    # existed are "basic": nothing was asked of them beyond their own factor.
    policy: Mapped[str] = mapped_column(String(32), default="basic", server_default="basic")
    # Locked after too many failed second-factor tries, until an administrator unlocks it.
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Raised by every disable: a SAD carries the epoch it was issued in.
    epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Where one-time codes for this credential go (an e-mail address or a phone number).
    activation_address: Mapped[str | None] = mapped_column(String(320))
    # HMAC (in the HSM) over the fields that decide who may sign with the key, and how.
    seal: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    user: Mapped[User] = relationship(back_populates="credentials")
    certificates: Mapped[list[Certificate]] = relationship(
        back_populates="credential", order_by="Certificate.position"
    )


class Certificate(Base):
    """A certificate: position 0 is the credential's own, then its chain up to the root.

    Rows without a credential hold CA certificates (role "ca")."""

    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    credential_id: Mapped[str | None] = mapped_column(ForeignKey("credentials.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # end-entity | chain | ca
    position: Mapped[int] = mapped_column(Integer, default=0)
    serial: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(512))
    issuer: Mapped[str] = mapped_column(String(512))
    not_before: Mapped[datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[datetime] = mapped_column(UtcDateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    # Connector that issued it and its own name for the CA.
    ca_name: Mapped[str | None] = mapped_column(String(128))
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    credential: Mapped[Credential | None] = relationship(back_populates="certificates")


class AccessToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    scope: Mapped[str] = mapped_column(String(64), default="service")
    # How the user authenticated: methods and the assurance reached.
    auth_methods: Mapped[str] = mapped_column(String(128), default="pwd")
    loa: Mapped[str] = mapped_column(String(16), default="low")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class RefreshToken(Base):
    """A refresh token the SAM minted (only its SHA-256 is stored): each is used once, and
    the one that replaces it joins its family; `access_token_hash` is the access token issued
    with it, revoked with the family; `client_id` the OAuth 2.0 client it was issued to (None:
    auth/login's), so that the client may revoke that access token (its binding is sealed in
    the token itself)."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family: Mapped[str] = mapped_column(String(32), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    access_token_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    used: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    client_id: Mapped[str | None] = mapped_column(String(64))


class OAuth2Client(Base):
    """A client of the OAuth 2.0 authorization server (`signet oauth2-clients add`): its
    redirect URIs, one a line, matched exactly; a confidential client's secret as a hash."""

    __tablename__ = "oauth2_clients"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    secret_hash: Mapped[str | None] = mapped_column(String(256))  # None: a public client
    redirect_uris: Mapped[str] = mapped_column(Text)
    seal: Mapped[str] = mapped_column(String(64))  # the SAM's, over the fields above
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OAuth2Code(Base):
    """An authorization code (only its SHA-256 is stored) and its sealed grant: used once; the
    access token issued for it is named so that a second use revokes it (RFC 6749 10.5)."""

    __tablename__ = "oauth2_codes"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    # None: a pushed request's request_uri, spent once the same way (RFC 9126 section 4)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    used: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the code grants, sealed by the SAM with the code's SHA-256 inside: a row copied,
    # edited or made up by hand grants nothing.
    grant: Mapped[str | None] = mapped_column(Text)
    access_token_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class OAuth2DeviceCode(Base):
    """A device authorization (RFC 8628): the device code and the user code are stored as
    SHA-256 only; the user's approval is a grant sealed by the SAM with the device code's
    digest inside, so a row edited to say "approved for bob" grants nothing. The access token
    issued for it is named here: one token per approval."""

    __tablename__ = "oauth2_device_codes"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    device_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    # pending, approved or denied
    status: Mapped[str] = mapped_column(String(16), default="pending")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    approval: Mapped[str | None] = mapped_column(Text)
    poll_interval: Mapped[int] = mapped_column(Integer)
    last_poll_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    access_token_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class SignatureActivation(Base):
    """Signature Activation Data: stored only as a hash, bound to what it may sign."""

    __tablename__ = "sads"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    sad_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    credential_id: Mapped[str] = mapped_column(ForeignKey("credentials.id"), index=True)
    hash_algorithm: Mapped[str | None] = mapped_column(String(64))
    # Newline-separated base64 hashes the SAD is bound to; empty means "any, up to the count"
    # (never issued at SCAL2).
    hashes: Mapped[str] = mapped_column(Text, default="")
    num_signatures: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)
    # Newline-separated base64 hashes already signed under this SAD (its spent markers).
    spent: Mapped[str] = mapped_column(Text, default="", server_default="")
    scal: Mapped[str] = mapped_column(String(4), default="2")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class OtpChallenge(Base):
    """A one-time password sent to a user for one credential; the code is stored hashed."""

    __tablename__ = "otp_challenges"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("credentials.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    # authorize (a signature) | activation (of the credential itself)
    purpose: Mapped[str] = mapped_column(
        String(16), default="authorize", server_default="authorize"
    )
    # What the code was issued for (the authorization request it approves), as JSON.
    binding: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditRecord(Base):
    """One security event; each record's hash covers the hash of the one before."""

    __tablename__ = "audit_records"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC, as hashed
    event: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str | None] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(16))  # success | failure
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, as hashed
    prev_hash: Mapped[str] = mapped_column(String(64))
    record_hash: Mapped[str] = mapped_column(String(64))
    # HMAC (in the HSM) over seq and record_hash, on the last record of each append.
    mac: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_records_event", "event"),)


class AuditHead(Base):
    """The single row naming the newest audit record; appends lock it to keep the chain linear."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    last_hash: Mapped[str] = mapped_column(String(64))


class LoginThrottle(Base):
    """Failed logins counted per key (a user name or a client address), shared by all nodes."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime)
    blocked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class EventCursor(Base):
    """How far each sink has received the audit trail, and which node forwards to it now (a
    lease: one node per sink at a time, so a cluster sends each record once)."""

    __tablename__ = "event_cursors"

    sink: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The newest record the sink has acknowledged (TCP/TLS: written to the socket), and its hash.
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    last_hash: Mapped[str] = mapped_column(String(64))
    holder: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ClientCertificate(Base):
    """A TLS client certificate registered to a user (its SHA-256): with the `fingerprint`
    mapping of [client_certificates], presenting it logs that user in. The row gives one
    factor at most (docs/security.md): it is no SAM-sealed record."""

    __tablename__ = "client_certificates"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)  # lower-case hex
    label: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class MobileDevice(Base):
    """A phone registered for a Mobile ID credential: its P-256 public key (SPKI), sealed by
    the SAM together with the credential it approves for (`signet.sam.mobile`)."""

    __tablename__ = "mobile_devices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("credentials.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    label: Mapped[str] = mapped_column(String(128))
    public_key: Mapped[str] = mapped_column(Text)  # base64 of the DER SubjectPublicKeyInfo
    # What the device sent as attestation (base64), kept for review; not verified (see docs).
    attestation: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    seal: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # mobile: a phone of the Mobile ID protocol (public_key: P-256 SPKI); passkey: a WebAuthn
    # credential (public_key: its COSE key, webauthn_id: its credential id, both base64url),
    # sealed with both (docs/passkeys.md).
    kind: Mapped[str] = mapped_column(String(16), default="mobile", server_default="mobile")
    webauthn_id: Mapped[str | None] = mapped_column(String(1400))
    # The authenticator's signature counter as last seen: outside the seal (it moves with
    # every approval); it serves clone detection only and decides no approval.
    sign_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class MobileRequest(Base):
    """One authorization waiting for (or decided on) the user's phone. Its content is MACed by
    the SAM (`content_mac`), so the database cannot change what the device is asked, or what
    its approval makes the SAD cover; `approval` keeps the device's signature."""

    __tablename__ = "mobile_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("credentials.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    device_id: Mapped[str] = mapped_column(String(32), index=True)
    hash_algorithm: Mapped[str | None] = mapped_column(String(64))
    hashes: Mapped[str] = mapped_column(Text)  # newline-separated base64url, as asked
    num_signatures: Mapped[int] = mapped_column(Integer)
    labels: Mapped[str] = mapped_column(Text)  # JSON list of document labels
    description: Mapped[str | None] = mapped_column(String(512))
    origin: Mapped[str] = mapped_column(String(320))
    nonce: Mapped[str] = mapped_column(String(64))
    # The authorization's level (JSON: methods, eidas, aal), recorded when the SAD is issued.
    assurance: Mapped[str] = mapped_column(Text)
    content_mac: Mapped[str] = mapped_column(String(64))
    # pending | approved | denied | expired | issued (its SAD collected)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    approval: Mapped[str | None] = mapped_column(Text)  # base64url DER ECDSA signature
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SpentAssertion(Base):
    """A federated login's one-time value (OIDC nonce, SAML Assertion ID), by its SHA-256, kept
    until the message it came in expires: the same message presented twice is a replay. The
    primary key makes two nodes racing on one message insert it once."""

    __tablename__ = "federation_spent"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class MobilePushSubscription(Base):
    """Where Web Push reaches a Mobile ID device (its browser's or OS's PushSubscription),
    set by the device's signed `push` call. Not sealed: a message through it carries no
    request content, only "look at pending"; a row changed by SQL can only make a device miss
    (or a stranger receive) that nudge, never approve anything (docs/mobile-id.md)."""

    __tablename__ = "mobile_push_subscriptions"

    device_id: Mapped[str] = mapped_column(ForeignKey("mobile_devices.id"), primary_key=True)
    endpoint: Mapped[str] = mapped_column(Text)
    p256dh: Mapped[str] = mapped_column(String(128))  # base64url uncompressed P-256 point
    auth: Mapped[str] = mapped_column(String(64))  # base64url 16-byte auth secret
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
