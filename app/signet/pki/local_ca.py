"""The built-in local CA: a self-signed root whose RSA-3072 key lives in the HSM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asn1crypto import x509 as asn1_x509
from sqlalchemy import select

from signet.algorithms import KeySpec
from signet.config import Settings
from signet.events import Event, append_events
from signet.hsm import Hsm
from signet.pki.connector import CAError, IssueRequest
from signet.pki.x509build import (
    DigestSigner,
    build_certificate,
    build_crl,
    make_name,
    public_key_info,
)
from signet.store import Certificate, Database

DEFAULT_KEY_LABEL = "signet-local-ca"
INIT_ACTOR = "signet-init"  # ensure_ready runs for `signet init` only


class LocalCAConnector:
    """Options (ca.options): common_name, organization, country, key_label, key_type,
    validity_days, crl_url and issuer_url (published in end-entity certificates; by default
    the node's own /pki/local.crl and /pki/local.crt), crl_validity_hours."""

    name = "local"

    def __init__(self, settings: Settings, hsm: Hsm, database: Database) -> None:
        self.settings = settings
        self.hsm = hsm
        self.database = database
        options = settings.ca.options
        self.common_name = str(options.get("common_name", "Signet Local CA"))
        self.organization = str(options.get("organization", "Signet"))
        self.country = options.get("country")
        self.key_label = str(options.get("key_label", DEFAULT_KEY_LABEL))
        self.key_spec = KeySpec.parse(str(options.get("key_type", "rsa-3072")))
        self.validity_days = int(options.get("validity_days", 3650))
        base = settings.web.base_url or f"http://{settings.web.listen}"
        self.crl_url = options.get("crl_url", f"{base.rstrip('/')}/pki/{self.name}.crl") or None
        self.issuer_url = (
            options.get("issuer_url", f"{base.rstrip('/')}/pki/{self.name}.crt") or None
        )
        self.crl_validity = timedelta(hours=float(options.get("crl_validity_hours", 24)))
        self._root: asn1_x509.Certificate | None = None

    def _signer(self) -> DigestSigner:
        return lambda digest, hash_name, scheme: self.hsm.sign_digest(
            self.key_label, digest, hash_name, scheme
        )

    def _stored_root(self) -> asn1_x509.Certificate | None:
        with self.database.transaction() as session:
            row = (
                session.execute(
                    select(Certificate)
                    .where(Certificate.role == "ca", Certificate.ca_name == self.name)
                    .order_by(Certificate.id.desc())
                )
                .scalars()
                .first()
            )
            return asn1_x509.Certificate.load(row.der) if row else None

    def ensure_ready(self) -> bool:
        """Generate the CA key in the HSM and self-sign the root certificate, whichever is
        missing; both are recorded in the audit trail (`key.generated`, `ca.created`)."""
        root = self._stored_root()
        created = root is None
        if not self.hsm.key_exists(self.key_label):
            if root is not None:
                raise CAError(
                    f"local CA: its certificate is in the database but key "
                    f"{self.key_label!r} is not in the token; restore the token"
                )
            self.hsm.generate_key(self.key_label, self.key_spec)
            with self.database.transaction() as session:
                append_events(
                    session,
                    [
                        Event(
                            "key.generated",
                            INIT_ACTOR,
                            self.key_label,
                            details={"key": str(self.key_spec), "purpose": "ca", "ca": self.name},
                        )
                    ],
                )
        if root is None:
            spki = public_key_info(self.hsm.public_key(self.key_label))
            name = make_name(self.common_name, self.organization, self.country)
            root = build_certificate(
                subject=name,
                spki=spki,
                issuer=name,
                issuer_spki=spki,
                sign=self._signer(),
                validity_days=self.validity_days,
                is_ca=True,
            )
            with self.database.transaction() as session:
                session.add(_certificate_row(root, role="ca", ca_name=self.name))
                append_events(
                    session,
                    [
                        Event(
                            "ca.created",
                            INIT_ACTOR,
                            self.name,
                            details={
                                "key_label": self.key_label,
                                "serial": format(root.serial_number, "x"),
                                "subject": root.subject.human_friendly,
                                "not_after": root.not_valid_after.isoformat(),
                                "sha256": root.sha256.hex(),
                            },
                        )
                    ],
                )
        self._root = root
        return created

    def chain(self) -> list[asn1_x509.Certificate]:
        if self._root is None:
            self._root = self._stored_root()
        if self._root is None:
            raise CAError("local CA is not initialised; run `signet init`")
        return [self._root]

    def issue(self, request: IssueRequest) -> list[asn1_x509.Certificate]:
        root = self.chain()[0]
        info = request.csr["certification_request_info"]
        cert = build_certificate(
            subject=make_name(
                request.common_name, self.organization, self.country, email=request.email
            ),
            spki=info["subject_pk_info"],
            issuer=root.subject,
            issuer_spki=root.public_key,
            sign=self._signer(),
            validity_days=request.validity_days,
            is_ca=False,
            qc_statements=request.qc_statements,
            crl_url=self.crl_url,
            issuer_url=self.issuer_url,
        )
        return [cert, root]

    def crl(self) -> bytes:
        """The current CRL (DER), signed now by the CA key in the HSM."""
        root = self.chain()[0]
        with self.database.transaction() as session:
            rows = session.execute(
                select(Certificate.serial, Certificate.revoked_at).where(
                    Certificate.ca_name == self.name,
                    Certificate.role == "end-entity",
                    Certificate.revoked_at.is_not(None),
                )
            ).all()
        revoked = [(int(serial, 16), _aware(when)) for serial, when in rows if when]
        # CRL numbers must grow: the issue time in seconds does, across nodes too.
        number = int(datetime.now(UTC).timestamp())
        return build_crl(
            issuer=root,
            revoked=revoked,
            sign=self._signer(),
            number=number,
            validity=self.crl_validity,
        ).dump()

    def revoke(self, serial: int, reason: str = "unspecified") -> None:
        # The local CA publishes no CRL yet; revocation is recorded on the certificate row.
        with self.database.transaction() as session:
            rows = (
                session.execute(
                    select(Certificate).where(Certificate.serial == format(serial, "x"))
                )
                .scalars()
                .all()
            )
            for row in rows:
                row.revoked_at = datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _certificate_row(
    cert: asn1_x509.Certificate,
    *,
    role: str,
    ca_name: str,
    position: int = 0,
    credential_id: str | None = None,
) -> Certificate:
    return Certificate(
        credential_id=credential_id,
        role=role,
        position=position,
        serial=format(cert.serial_number, "x"),
        subject=cert.subject.human_friendly[:512],
        issuer=cert.issuer.human_friendly[:512],
        not_before=cert.not_valid_before,
        not_after=cert.not_valid_after,
        der=cert.dump(),
        ca_name=ca_name,
    )


certificate_row = _certificate_row
