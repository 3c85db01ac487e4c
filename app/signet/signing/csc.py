"""CSC use cases: credentials, authorization with a second factor (logins are in sessions,
sendOTP in send_otp, signHash in sign_hash, signDoc in sign_doc)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from sqlalchemy import Connection, Table, bindparam, select

from signet import algorithms
from signet.algorithms import HASH_BY_OID, HASHES, SIGNATURE_ALGORITHMS
from signet.auth.factors import lock_for_factor_check, verify_otp, verify_pin
from signet.auth.tokens import (
    Claimed,
    Principal,
    check_token_state,
    token_digest,
    token_state_of,
    with_token_state,
)
from signet.config.assurance import PolicySettings
from signet.errors import AccessDenied, InvalidRequest, SignetError
from signet.sam import check_credential, decode_hash, extend_sad, issue_sad, pin_matches
from signet.signing import policy
from signet.signing.context import Services
from signet.signing.delivery import otp_channel, shown
from signet.signing.mobile_requests import (
    DEVICE_KINDS,
    Pending,
    create_request,
    refusals_recorded,
)
from signet.signing.otp import (
    code_verifier,
    signing_request,
)
from signet.store import Credential, Direct


def key_algorithms(credential: Credential) -> list[str]:
    """Every signAlgo OID the key signs with: the full signature algorithms (what pyHanko and
    others expect) and the bare key algorithms that take hashAlgorithmOID."""
    return algorithms.key_algorithms(credential.key_type)


def now() -> datetime:
    return datetime.now(UTC)


# -- credentials ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CredentialInfo:
    credential_id: str
    description: str | None
    key_type: str
    key_size: int
    curve: str | None
    key_enabled: bool
    algorithms: list[str]
    cert_status: str
    certificates: list[bytes]  # DER, end-entity first
    subject: str
    issuer: str
    serial: str
    valid_from: datetime
    valid_to: datetime
    activation: str
    # The channel one-time codes go by ("email", "sms"; None for a PIN) and the address as
    # messages show it (a phone number masked).
    otp_channel: str | None
    otp_to: str
    # Its assurance policy: name, and what it asks (None if the settings no longer define it).
    policy: str
    policy_terms: PolicySettings | None
    scal: str
    multisign: int
    locked: bool


def multisign(credential: Any, services: Services) -> int:
    """How many signatures one authorization of the credential may cover: its own limit,
    within the service's (sam.max_signatures_per_sad). What info says is what authorize
    enforces."""
    return min(credential.multisign, services.settings.sam.max_signatures_per_sad)


def check_count(num_signatures: int, credential: Any, services: Services) -> None:
    limit = multisign(credential, services)
    if not 1 <= num_signatures <= limit:
        raise InvalidRequest(
            f"Invalid parameter numSignatures: 1 to {limit} for this credential (its multisign)"
        )


def _info(credential: Credential, services: Services) -> CredentialInfo:
    certs = sorted(credential.certificates, key=lambda c: c.position)
    ee = asn1_x509.Certificate.load(certs[0].der)
    if certs[0].revoked_at is not None or credential.status == "revoked":
        status = "revoked"
    elif ee.not_valid_after < now() or ee.not_valid_before > now():
        status = "expired" if ee.not_valid_after < now() else "invalid"
    elif credential.status == "disabled":
        status = "suspended"
    else:
        status = "valid"
    return CredentialInfo(
        credential_id=credential.id,
        description=credential.description,
        key_type=credential.key_type,
        key_size=credential.key_size,
        curve=credential.curve,
        key_enabled=credential.status == "active" and not credential.locked,
        algorithms=key_algorithms(credential),
        cert_status=status,
        certificates=[c.der for c in certs],
        subject=ee.subject.human_friendly,
        issuer=ee.issuer.human_friendly,
        serial=format(ee.serial_number, "x"),
        valid_from=ee.not_valid_before,
        valid_to=ee.not_valid_after,
        activation=credential.activation,
        otp_channel=otp_channel(credential.activation),
        otp_to=shown(otp_channel(credential.activation), credential.activation_address),
        policy=credential.policy,
        policy_terms=policy.policy_of(services, credential),
        scal=credential.scal,
        multisign=multisign(credential, services),
        locked=credential.locked,
    )


def own_credential(session: Any, principal: Principal, credential_id: Any) -> Credential:
    if not isinstance(credential_id, str) or not credential_id:
        raise InvalidRequest("Missing (or invalid type) string parameter credentialID")
    credential = session.get(Credential, credential_id)
    if credential is None or credential.user_id != principal.user_id:
        raise InvalidRequest("Invalid parameter credentialID")
    return credential


def list_credentials(
    services: Services,
    principal: Principal,
    *,
    only_valid: bool = False,
    user_id: str | None = None,
) -> list[CredentialInfo]:
    if user_id is not None and user_id != principal.username:
        raise InvalidRequest("Invalid parameter userID")
    with services.database.transaction(read_only=True) as session:
        rows = (
            session.execute(
                select(Credential)
                .where(Credential.user_id == principal.user_id)
                .order_by(Credential.created_at, Credential.id)
            )
            .scalars()
            .all()
        )
        infos = [_info(c, services) for c in rows]
    if only_valid:
        infos = [i for i in infos if i.key_enabled and i.cert_status == "valid"]
    return infos


def credential_info(services: Services, principal: Principal, credential_id: Any) -> CredentialInfo:
    with services.database.transaction(read_only=True) as session:
        return _info(own_credential(session, principal, credential_id), services)


_CREDENTIALS = cast(Table, Credential.__table__)
_CREDENTIAL_BY_ID = select(_CREDENTIALS).where(_CREDENTIALS.c.id == bindparam("credential_id"))
# The signing hot path: the token's state and the credential in one round trip.
_CREDENTIAL_AND_TOKEN = Direct(
    with_token_state(_CREDENTIALS, _CREDENTIALS.c.id == bindparam("credential_id"))
)


def signing_credential(
    conn: Connection, hsm: Any, caller: Principal | Claimed, credential_id: Any
) -> Any:
    """The caller's usable credential, its record sealed by the SAM, read with one Core query
    on `conn` (the signing hot path): a row with the Credential columns. A `Claimed` caller's
    token is checked against the database in the same query."""
    if not isinstance(credential_id, str) or not credential_id:
        raise InvalidRequest("Missing (or invalid type) string parameter credentialID")
    if isinstance(caller, Claimed):
        principal = caller.principal
        credential = _CREDENTIAL_AND_TOKEN.first(
            conn, {"credential_id": credential_id, "digest": token_digest(caller.token)}
        )
        check_token_state(token_state_of(credential), principal.user_id)
        if credential is not None and credential.id is None:
            credential = None
    else:
        principal = caller
        credential = conn.execute(_CREDENTIAL_BY_ID, {"credential_id": credential_id}).first()
    if credential is None or credential.user_id != principal.user_id:
        raise InvalidRequest("Invalid parameter credentialID")
    check_credential(hsm, credential)
    ensure_usable(credential)
    return credential


def ensure_usable(credential: Credential) -> None:
    if credential.status == "revoked":
        raise InvalidRequest("The credential is revoked", error="invalid_request")
    if credential.status == "pending":
        raise InvalidRequest(
            "The credential is not activated yet: its owner activates it with the code sent to her"
        )
    if credential.status != "active":
        raise InvalidRequest("The credential is disabled", error="invalid_request")
    if credential.locked:
        raise AccessDenied(
            "The credential is locked after too many failed tries; "
            "ask an administrator to unlock it"
        )


def authorize(
    services: Services,
    principal: Principal,
    *,
    credential_id: Any,
    num_signatures: int,
    hashes: Sequence[str],
    hash_oid: str | None,
    pin: str | None,
    otp: str | None,
    description: str | None = None,
    labels: Sequence[str] = (),
    origin: str = "",
    asynchronous: bool = True,
) -> tuple[str, int] | Pending:
    """Check the second factor, then issue SAD bound to the hashes. A Mobile ID credential's
    factor is the phone's approval: a `Pending` request instead, its SAD given by
    `signing.mobile.authorize_check` once the phone approved (`origin`: this service's, as
    the phone is shown it; `asynchronous` False: the client cannot poll, as in CSC v1)."""
    sam = services.settings.sam
    if num_signatures < 1:
        raise InvalidRequest("Invalid parameter numSignatures: 1 or more")
    if hash_oid is not None and hash_oid not in HASH_BY_OID:
        raise InvalidRequest("Invalid parameter hashAlgorithmOID")
    check_hash_lengths(hashes, hash_oid)
    request = signing_request(
        hashes=hashes,
        hash_oid=hash_oid,
        num_signatures=num_signatures,
        description=description,
        labels=labels,
    )
    with (
        refusals_recorded(services, principal.username, credential_id),
        services.database.transaction() as session,
    ):
        credential = signing_credential(
            session.connection(), services.hsm, principal, credential_id
        )
        check_count(num_signatures, credential, services)
        if credential.scal == "2":
            if not hashes:
                raise InvalidRequest(
                    "Missing parameter hashes: this credential is SCAL2 and "
                    "its SAD must be bound to the hashes to sign"
                )
            if len(hashes) > num_signatures:
                raise InvalidRequest("Invalid parameter numSignatures: fewer than the hashes")
        # A policy this authorization cannot meet is refused before any factor is tried (no
        # code spent, no failed try counted), once the refusal's audit record is committed.
        refused = policy.refusal(services, session, principal, credential)
        if refused is None and credential.activation in DEVICE_KINDS:
            if not asynchronous:
                raise InvalidRequest(
                    "The credential is approved on its owner's device (Mobile ID or passkey), "
                    "which needs CSC v2: credentials/authorize, then credentials/authorizeCheck"
                )
            pending = create_request(
                session,
                services,
                principal,
                credential,
                request=request,
                hashes=list(hashes),
                labels=list(labels),
                origin=origin,
                assurance=policy.recorded(policy.level_of(principal, credential)),
            )
        elif refused is None:
            by_otp = otp_channel(credential.activation) is not None
            if by_otp and not otp:
                raise InvalidRequest("Missing parameter OTP")
            if not by_otp and not pin:
                raise InvalidRequest("Missing parameter PIN")
            # Tries on one credential queue here; each sees the failures and the lock before it.
            credential = lock_for_factor_check(session, credential.id)
            check_credential(services.hsm, credential)  # as read under the lock
            ensure_usable(credential)
            if by_otp:
                assert otp
                result = verify_otp(
                    session,
                    credential,
                    otp,
                    sam,
                    principal.username,
                    binding=request.binding(),
                    verifier=code_verifier(services.hsm),
                )
            else:
                assert pin
                matches = pin_matches(services.hsm, credential.pin_hash, credential.id, pin)
                result = verify_pin(session, credential, matches, sam, principal.username)
            if result.ok:
                return issue_sad(
                    session,
                    services.hsm,
                    user_id=principal.user_id,
                    username=principal.username,
                    credential=credential,
                    hashes=hashes,
                    hash_oid=hash_oid,
                    count=num_signatures,
                    lifetime_seconds=sam.sad_lifetime_seconds,
                    assurance=policy.recorded(policy.level_of(principal, credential)),
                )
    if refused is not None:
        raise AccessDenied(refused)
    if credential.activation in DEVICE_KINDS:
        services.push.announce(pending.device_id, pending.authorization_id)
        return pending
    # The failed try is committed (counted, audited) before the client hears of it.
    raise SignetError(
        result.description,
        error=result.error,
        status=403 if result.error == "access_denied" else 400,
    )


def extend_transaction(
    services: Services,
    principal: Principal,
    *,
    credential_id: Any,
    sad: Any,
    hashes: Sequence[str] = (),
    hash_oid: str | None = None,
) -> tuple[str, int]:
    """A new SAD for what is left of one: at SCAL2, bound to the hashes sent with it. The
    credential's policy is checked again, as at authorize (this login and the credential's
    factor, which the SAD proves passed): a policy raised since, or a weaker login presenting
    the SAD, gets no extension."""
    if not isinstance(sad, str) or not sad:
        raise InvalidRequest("Missing (or invalid type) string parameter SAD")
    if hash_oid is not None and hash_oid not in HASH_BY_OID:
        raise InvalidRequest("Invalid parameter hashAlgorithmOID")
    with services.database.transaction() as session:
        credential = signing_credential(
            session.connection(), services.hsm, principal, credential_id
        )
        refused = policy.refusal(services, session, principal, credential)
        if refused is None:
            return extend_sad(
                session,
                services.hsm,
                sad=sad,
                user_id=principal.user_id,
                username=principal.username,
                credential=credential,
                lifetime_seconds=services.settings.sam.sad_lifetime_seconds,
                hashes=hashes,
                hash_oid=hash_oid,
            )
    raise AccessDenied(refused)  # once its audit record is committed


def _pss_parameters(params_b64: str | None, hash_name: str | None) -> tuple[str, int]:
    if not params_b64:
        raise InvalidRequest("Missing parameter signAlgoParams: RSASSA-PSS needs them")
    try:
        params = algos.RSASSAPSSParams.load(base64.b64decode(params_b64, validate=True))
        params.native  # noqa: B018 - forces a full parse, so bad DER fails here
    except (ValueError, TypeError):
        raise InvalidRequest(
            "Invalid parameter signAlgoParams: not DER RSASSA-PSS-params"
        ) from None
    digest = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]
    mgf_hash = mgf["parameters"]["algorithm"].native
    if digest not in HASHES:
        raise InvalidRequest(f"Invalid parameter signAlgoParams: hash {digest} not offered")
    if mgf["algorithm"].native != "mgf1" or mgf_hash != digest:
        raise InvalidRequest("Invalid parameter signAlgoParams: MGF1 with the same hash only")
    if hash_name and hash_name != digest:
        raise InvalidRequest(
            "Invalid parameter signAlgoParams: its hash differs from hashAlgorithmOID"
        )
    if params["trailer_field"].native not in ("trailer_field_bc", 1):
        raise InvalidRequest("Invalid parameter signAlgoParams: trailerField must be 1")
    return digest, int(params["salt_length"].native)


def hash_name_of(hash_oid: str | None) -> str | None:
    """The registry's name of a hash OID (None for none or an unknown one)."""
    known = HASH_BY_OID.get(hash_oid or "")
    return known.name if known else None


def check_hash_lengths(hashes: Sequence[str], hash_oid: str | None) -> None:
    """Refuse a hash that cannot be a digest of hashAlgorithmOID (without one, of any hash
    offered), so no SAD is bound to a value that no signature could use."""
    offered = [HASH_BY_OID[hash_oid]] if hash_oid else list(HASHES.values())
    for value in hashes:
        size = len(decode_hash(value))
        if all(size != algorithm.length for algorithm in offered):
            expected = " or ".join(f"{a.length} for {a.name}" for a in offered)
            wanted = "hashAlgorithmOID wants" if hash_oid else "the hashes offered want"
            # the wording of the specification's error tables, then what was wrong
            raise InvalidRequest(
                f"Invalid digest value length: hash {value[:60]!r} has {size} bytes, "
                f"where {wanted} {expected}"
            )


def check_algorithm_names(sign_algo: Any, hash_oid: Any) -> None:
    """Refuse an unknown signAlgo or hashAlgorithmOID before any credential is looked up,
    so a malformed request is named by its bad parameter."""
    if sign_algo not in SIGNATURE_ALGORITHMS:
        raise InvalidRequest("Invalid parameter signAlgo")
    if hash_oid is not None and hash_oid not in HASH_BY_OID:
        raise InvalidRequest("Invalid parameter hashAlgorithmOID")


def resolve_algorithm(
    credential: Credential, sign_algo: str, hash_oid: str | None, sign_algo_params: str | None
) -> tuple[str, str, int | None]:
    """(hash name, scheme, PSS salt length) for a signAlgo on this credential's key."""
    check_algorithm_names(sign_algo, hash_oid)
    algorithm = SIGNATURE_ALGORITHMS[sign_algo]
    scheme, implied = algorithm.scheme, algorithm.hash
    if algorithm.key_type != credential.key_type:
        raise InvalidRequest(
            "Invalid parameter signAlgo: it does not fit the "
            f"credential's {credential.key_type.upper()} key"
        )
    requested = hash_name_of(hash_oid)
    salt = None
    if scheme == "pss":
        hash_name, salt = _pss_parameters(sign_algo_params, requested)
        max_salt = (credential.key_size + 7) // 8 - HASHES[hash_name].length - 2
        if not 0 <= salt <= max_salt:
            raise InvalidRequest(
                f"Invalid parameter signAlgoParams: salt length {salt} outside 0..{max_salt}"
            )
    elif implied:
        if requested and requested != implied:
            raise InvalidRequest(
                "Invalid parameter hashAlgorithmOID: it differs from the hash of signAlgo"
            )
        hash_name = implied
    else:
        if not requested:
            raise InvalidRequest(
                f"Missing parameter hashAlgorithmOID: signAlgo {sign_algo} needs it"
            )
        hash_name = requested
    return hash_name, scheme, salt
