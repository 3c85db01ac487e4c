"""Settings: one schema, read from a TOML file and SIGNET_* environment variables."""

from __future__ import annotations

import hashlib
import json
import os
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from signet.config.assurance import AssuranceSettings
from signet.config.client_certificates import ClientCertificateSettings
from signet.config.errors import ConfigError as ConfigError
from signet.config.errors import ConfigMissing as ConfigMissing
from signet.config.events import PLACEHOLDER_ENTERPRISE_NUMBER as PLACEHOLDER_ENTERPRISE_NUMBER
from signet.config.events import SINK_TYPES
from signet.config.events import EventsSettings as EventsSettings
from signet.config.events import SinkSettings as SinkSettings
from signet.config.events import SyslogSinkSettings as SyslogSinkSettings
from signet.config.identity import IdentitySettings
from signet.config.oauth2 import OAuth2ClientSettings as OAuth2ClientSettings
from signet.config.oauth2 import OAuth2Settings
from signet.config.oauth2 import redirect_uri_problem as redirect_uri_problem
from signet.config.sms import SmsSettings
from signet.config.snmp import SnmpSettings
from signet.config.snmp import SnmpSinkSettings as SnmpSinkSettings

DEFAULT_CONFIG_FILE = "/etc/signet/signet.toml"


class _Section(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    url: str = "sqlite:///var/signet.db"
    # Connection pool size per worker process (ignored for SQLite).
    pool_size: int = Field(default=5, ge=1, le=100)
    echo: bool = False
    # Rows of one-time values (codes, SADs, tokens, challenges...) are deleted this many hours
    # after they expire (`signet db prune`, and every few minutes in-process); 0 keeps them.
    # At least 25: longer than any lifetime a deleted row still guards (docs/security.md).
    prune_after_hours: int = Field(default=48, ge=0, le=24 * 366)

    @field_validator("prune_after_hours")
    @classmethod
    def _past_every_lifetime(cls, hours: int) -> int:
        if 0 < hours < 25:
            raise ValueError("must be 0 (never prune) or at least 25 hours")
        return hours

    @field_validator("url")
    @classmethod
    def _known_engine(cls, url: str) -> str:
        engines = ("sqlite", "postgresql", "oracle", "mssql")
        if url.split(":", 1)[0].split("+", 1)[0] not in engines:
            raise ValueError(f"unsupported database URL scheme; use one of {', '.join(engines)}")
        return url


class HsmSettings(_Section):
    module: str = "/usr/lib/softhsm/libsofthsm2.so"
    token_label: str = "signet"
    # The user PIN comes from a file or an environment variable, never from the database.
    pin_file: str | None = None
    pin_env: str | None = None
    # Environment to set before the PKCS#11 library loads (e.g. SOFTHSM2_CONF, CKNFAST_*).
    library_env: dict[str, str] = Field(default_factory=dict)
    # Sessions each process keeps for concurrent calls. 1: one session, every call serialised
    # (what SoftHSM loaded directly needs). More only on a module declared thread-safe.
    sessions: int = Field(default=1, ge=1, le=256)
    # The operator's word that the module may be called from several threads at once although
    # python-pkcs11 initialises it with C_Initialize(NULL): true of network HSMs' client
    # libraries (nShield, Luna), false of SoftHSM2 loaded directly (docs/scale.md).
    thread_safe: bool = False

    @model_validator(mode="after")
    def _one_pin_source(self) -> HsmSettings:
        if bool(self.pin_file) == bool(self.pin_env):
            raise ValueError("set exactly one of hsm.pin_file or hsm.pin_env")
        if self.sessions > 1 and not self.thread_safe:
            raise ValueError(
                "hsm.sessions > 1 needs hsm.thread_safe = true: a module that is not safe for "
                "concurrent threads (SoftHSM2 loaded directly) must keep one session"
            )
        return self

    def read_pin(self) -> str:
        if self.pin_file:
            try:
                pin = Path(self.pin_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"hsm.pin_file: cannot read {self.pin_file}: {exc.strerror}"
                ) from exc
        else:
            assert self.pin_env
            pin = os.environ.get(self.pin_env, "")
        if not pin:
            source = self.pin_file or "$" + str(self.pin_env)
            raise ConfigError(f"hsm: the PIN source ({source}) is empty")
        return pin


class CaSettings(_Section):
    # Name of an entry point in the group signet.ca_connectors.
    connector: str = "local"
    # Options passed to the connector (the local CA reads subject, validity and key label).
    options: dict[str, Any] = Field(default_factory=dict)
    # Add the ETSI QC statements (QcCompliance, QcSSCD) to end-entity certificates.
    qc_statements: bool = False
    end_entity_validity_days: int = Field(default=730, ge=1, le=3650)


class SmtpSettings(_Section):
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password_file: str | None = None
    sender: str = "signet@localhost"
    timeout_seconds: float = Field(default=10.0, gt=0)
    # CA bundle to verify the SMTP server; None means the system store.
    ca_file: str | None = None


class WebPushSettings(_Section):
    """Web Push (RFC 8030, message encryption RFC 8291, VAPID RFC 8292) to Mobile ID devices
    that subscribed (docs/mobile-id.md, "Push channels")."""

    # The VAPID key: a P-256 private key in PEM (`openssl ecparam -name prime256v1 -genkey
    # -noout -out vapid.pem`), readable by Signet only. Its public half is the
    # applicationServerKey devices subscribe with (GET /mobile/v1/push/key).
    vapid_key_file: str
    # Whom the push service may contact about Signet's messages (RFC 8292 `sub`).
    contact: str = Field(pattern=r"^(mailto:[^@\s]+@[^@\s]+|https://\S+)$")
    # How long the push service keeps a message for an unreachable device: no longer than a
    # request waits for the phone.
    ttl_seconds: int = Field(default=120, ge=0, le=900)
    timeout_seconds: float = Field(default=5.0, gt=0, le=30)


class NotifySettings(_Section):
    # "smtp" sends mail; "maildir" writes it into a Maildir (the embedded default).
    email_backend: Literal["smtp", "maildir"] = "maildir"
    maildir: str = "var/mail"
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    # One-time codes by SMS (signet.config.sms): type "http" or "smpp"; None: no SMS channel,
    # and credentials that need one cannot be enrolled.
    sms: SmsSettings | None = None
    # Web Push to Mobile ID devices (RFC 8030/8291/8292); None: devices long-poll only.
    web_push: WebPushSettings | None = None


class SamSettings(_Section):
    sad_lifetime_seconds: int = Field(default=300, ge=10, le=3600)
    max_signatures_per_sad: int = Field(default=1000, ge=1)
    otp_digits: int = Field(default=6, ge=6, le=8)
    otp_lifetime_seconds: int = Field(default=300, ge=30, le=3600)
    otp_max_attempts: int = Field(default=5, ge=1, le=20)
    # How long the code that activates a new credential stays valid (it travels by e-mail
    # and waits for its owner; an administrator can send a fresh one).
    activation_lifetime_hours: int = Field(default=72, ge=1, le=720)
    # Mobile ID (docs/mobile-id.md): how long a request waits for the phone's answer, and
    # how long one long-poll of the phone's `pending` call is held open at most.
    mobile_request_lifetime_seconds: int = Field(default=120, ge=5, le=900)
    mobile_poll_seconds: int = Field(default=25, ge=1, le=60)
    # Passkeys (docs/passkeys.md): the WebAuthn relying party id; None: the host of
    # web.base_url (else of the request). Passkeys are bound to it: changing it orphans them.
    passkey_rp_id: str | None = None


class LoginSettings(_Section):
    """Failed logins, counted in the database (so every node sees them) per user name and per
    client address; at the limit within the window, that key is refused for block_seconds."""

    window_seconds: int = Field(default=900, ge=10, le=86400)
    max_failures_per_user: int = Field(default=10, ge=1, le=1000)
    # Higher than per user: many users may share one address (a proxy, a NAT).
    max_failures_per_address: int = Field(default=50, ge=1, le=100000)
    block_seconds: int = Field(default=900, ge=1, le=86400)


class FormatsSettings(_Section):
    """Document signatures: the RFC 3161 TSA and how revocation data is fetched."""

    # Without a TSA, only B-B is offered (info lists what really is).
    tsa_url: str | None = None
    tsa_username: str | None = None
    tsa_password_file: str | None = None
    tsa_bearer_token_file: str | None = None
    tsa_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    tsa_retries: int = Field(default=2, ge=0, le=10)
    ocsp_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    crl_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    revocation_retries: int = Field(default=2, ge=0, le=10)
    # B-LT and up: seconds after the signature time-stamp before the revocation data to embed
    # is fetched, so that OCSP responses and CRLs (whole seconds) postdate the time-stamp.
    revocation_grace_seconds: float = Field(default=2.0, ge=0, le=60)
    # Extra trust anchors (PEM or DER files), e.g. the TSA's root, for B-LT validation data.
    trust_roots: list[str] = Field(default_factory=list)
    max_document_mb: int = Field(default=256, ge=1, le=4096)

    @field_validator("tsa_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return url or None


def _loopback() -> list[IPv4Network | IPv6Network]:
    return [IPv4Network("127.0.0.1/32"), IPv6Network("::1/128")]


class WebSettings(_Section):
    listen: str = "127.0.0.1:8080"
    workers: int = Field(default=2, ge=1, le=64)
    # Threads per worker: they overlap database round trips; PKCS#11 calls stay serialised.
    threads: int = Field(default=4, ge=1, le=64)
    # gunicorn's access log: a line a request on standard output (the journal under
    # systemd). About 0.05 ms of CPU a request (docs/scale.md); an operator whose nginx in
    # front logs every request may turn it off.
    access_log: bool = True
    # How long a thread that answered a kept-alive request waits on that connection for the
    # next one before handing it back to the worker's main loop (docs/scale.md): a request
    # served so skips two hand-offs between threads. Given up at once when other requests
    # wait for a thread. 0: every request goes through the main loop.
    linger_ms: float = Field(default=5, ge=0, le=100)
    access_token_lifetime_seconds: int = Field(default=3600, ge=60, le=86400)
    # How long a password login may be renewed with refresh tokens (auth/login with
    # rememberMe, then refresh_token): each is used once and replaced, and no replacement
    # outlives the login that began it. 0: no refresh tokens are issued.
    refresh_token_lifetime_seconds: int = Field(default=86400, ge=0, le=30 * 86400)
    # Public base URL, used in info and OpenAPI; None derives it from the request.
    base_url: str | None = None
    name: str = "Signet"
    # info's logo (CSC: a JPEG or PNG image of at most 256x256 pixels); None names Signet's
    # own, served by the node at /static/logo.png.
    logo_url: str | None = None
    region: str = "EU"
    lang: str = "en-US"
    # Reverse proxies whose X-Forwarded-For names the client (nginx in front of gunicorn, as
    # the signet_app role sets it up: 127.0.0.1 and ::1). From a request through them, the
    # nearest address they did not add is the client's: what the audit trail records as the
    # source, what login bursts count, what /metrics checks. Empty: the peer is the client.
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    # Who may read /metrics (addresses or networks); empty: nobody.
    metrics_clients: list[IPvAnyNetwork] = Field(default_factory=lambda: _loopback())
    # TLS terminated by gunicorn itself (PEM files); None: plain HTTP (nginx in front).
    tls_certificate: str | None = None
    tls_key: str | None = None
    # With TLS here: ask clients for a certificate (optional: a login may still use a
    # password) and offer the CAs of this PEM file as acceptable; Signet verifies what comes
    # itself (client_certificates). None: no certificate is asked for.
    tls_client_ca: str | None = None

    @field_validator("logo_url")
    @classmethod
    def _logo_url(cls, url: str | None) -> str | None:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL of a JPEG or PNG image")
        return url or None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8080")
        return listen

    @model_validator(mode="after")
    def _tls_pair(self) -> WebSettings:
        if bool(self.tls_certificate) != bool(self.tls_key):
            raise ValueError("set both web.tls_certificate and web.tls_key, or neither")
        if self.tls_client_ca and not self.tls_certificate:
            raise ValueError("web.tls_client_ca needs web.tls_certificate and web.tls_key")
        return self


class AuditSettings(_Section):
    """The audit trail's checkpoints (docs/audit.md)."""

    # Each checkpoint is appended here as one JSON line once its record is committed, and
    # `signet audit verify` checks the trail against the file. Keep it where the database's
    # writers cannot reach, and copy it off the host.
    checkpoint_file: str = Field(default="var/audit-checkpoints.jsonl", min_length=1)


class Settings(BaseSettings):
    """Signet's settings. Environment: SIGNET_<SECTION>__<KEY>, e.g. SIGNET_DATABASE__URL."""

    model_config = SettingsConfigDict(
        env_prefix="SIGNET_", env_nested_delimiter="__", extra="forbid"
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    hsm: HsmSettings = Field(default_factory=lambda: HsmSettings(pin_env="SIGNET_HSM_PIN"))
    ca: CaSettings = Field(default_factory=CaSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    sam: SamSettings = Field(default_factory=SamSettings)
    login: LoginSettings = Field(default_factory=LoginSettings)
    # Policies: the level and factor kinds each credential's signatures need.
    assurance: AssuranceSettings = Field(default_factory=AssuranceSettings)
    formats: FormatsSettings = Field(default_factory=FormatsSettings)
    # Logins with a TLS client certificate (signet.config.client_certificates).
    client_certificates: ClientCertificateSettings = Field(
        default_factory=ClientCertificateSettings
    )
    web: WebSettings = Field(default_factory=WebSettings)
    oauth2: OAuth2Settings = Field(default_factory=OAuth2Settings)
    # Identity providers users may log in with (signet.config.identity): OIDC and SAML 2.0.
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    # The SNMP agent snmpd runs; receivers of traps are sinks of [events].
    snmp: SnmpSettings = Field(default_factory=SnmpSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def _without_password(url: str) -> str:
    """A database URL with its password masked (read as the database layer reads it)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url.split(":", 1)[0] + ":<unparsable>"
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True)


def settings_digest(settings: Settings) -> str:
    """SHA-256 (hex) of the effective settings, recorded when the service starts: every value,
    as canonical JSON, but the database URL's password. The schema holds no other secret:
    PINs and passwords are named by a file or a variable, and their content is never read
    here."""
    values = settings.model_dump(mode="json")
    values["database"]["url"] = _without_password(settings.database.url)
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _config_path() -> Path | None:
    explicit = os.environ.get("SIGNET_CONFIG")
    if explicit:
        return Path(explicit)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.exists() else None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        # a discriminated table's errors are located under its type's tag, which is no
        # setting: events.sinks.<name>.<type>.<key>, notify.sms.<type>.<key>
        loc = [
            p
            for i, p in enumerate(loc)
            if not (i >= 2 and loc[i - 2] == "sinks" and p in SINK_TYPES)
            and not (loc[:2] == ["notify", "sms"] and i == 2 and p in ("http", "smpp"))
        ]
        where = ".".join(loc) or "settings"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings; raise ConfigError naming each bad setting."""
    path = _config_path()
    if path is not None and not path.exists():
        raise ConfigError(f"SIGNET_CONFIG: file not found: {path}")
    if path is None and "database" not in overrides and not os.environ.get("SIGNET_DATABASE__URL"):
        # Defaults alone would open a database relative to the working directory.
        raise ConfigMissing(
            f"no configuration: {DEFAULT_CONFIG_FILE} does not exist and "
            "SIGNET_CONFIG is not set; set SIGNET_CONFIG to your signet.toml "
            "(or give the settings as SIGNET_<SECTION>__<KEY> variables, "
            "SIGNET_DATABASE__URL at least)"
        )
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid configuration ({path or 'environment'}): {_describe(exc)}"
        ) from exc
    except (OSError, ValueError) as exc:  # TOML syntax errors
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
