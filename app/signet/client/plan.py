"""Choosing the credential a desktop signature uses and planning how it is made.

Before any document is hashed the client reads what the service offers — the user's
credentials, the chosen one's certificate chain, algorithms and activation factor — and fixes
the hash, the scheme and the CSC ``signAlgo``. Faults come back as :class:`DesktopError`, worded
for the user of ``signet sign``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509

from signet.algorithms import (
    CURVE_BY_ASN1_NAME,
    HASH_NAMES,
    RSA_ENCRYPTION,
    RSA_PSS,
    algorithm_name,
    bare_algorithm_oid,
    signature_algorithm_oid,
)
from signet.client.csc import AuthFactor, CscClient, CscError, auth_factor, pss_params_der


class DesktopError(Exception):
    """Something the user can fix; the message says what failed and what to do."""


@dataclass
class SigningPlan:
    """What the credential offers and how this signature will be made, decided up front."""

    credential_id: str
    factor: AuthFactor
    hash_name: str
    scheme: str
    sign_algo: str
    sign_algo_params: bytes | None
    certificates: list[asn1_x509.Certificate]


def explain(exc: CscError, doing: str) -> DesktopError:
    if exc.error in ("invalid_otp", "invalid_pin"):
        factor = "OTP" if exc.error == "invalid_otp" else "PIN"
        return DesktopError(
            f"the service refused the {factor}: {exc.description}; nothing "
            "was signed, run the command again"
        )
    if exc.error == "access_denied":
        return DesktopError(f"the service refused {doing}: {exc.description}")
    if exc.error == "invalid_token":
        return DesktopError(
            f"the session ended while {doing} ({exc.description}); run the command again"
        )
    if exc.status == 0:
        return DesktopError(exc.description)
    return DesktopError(
        f"{doing} failed: {exc.description} ({exc.method}: {exc.error}, HTTP {exc.status})"
    )


def choose_credential(client: CscClient, wanted: str | None, user: str) -> str:
    """``wanted`` if given, else the user's only credential; several → a listing and an error."""
    if wanted:
        return wanted
    try:
        listing = client.list_credentials(with_info=True)
    except CscError as exc:
        if exc.status != 400:
            raise explain(exc, "listing the credentials") from exc
        listing = client.list_credentials()  # a service without the v2 listing options
    ids = [i for i in listing.get("credentialIDs") or [] if isinstance(i, str)]
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise DesktopError(
            f"{user} has no signing credential at {client.base_url}; ask an "
            "administrator to create one"
        )
    infos = {
        i.get("credentialID"): i
        for i in listing.get("credentialInfos") or []
        if isinstance(i, dict)
    }
    lines = []
    for credential_id in ids:
        info = infos.get(credential_id, {})
        key = info.get("key") or {}
        cert = info.get("cert") or {}
        details = ", ".join(
            str(x)
            for x in (
                cert.get("subjectDN"),
                f"{key.get('len')}-bit key" if key.get("len") else None,
                key.get("status"),
                info.get("description"),
            )
            if x
        )
        lines.append(f"  {credential_id}" + (f"  ({details})" if details else ""))
    raise DesktopError(
        f"{user} has {len(ids)} credentials; choose one with --credential ID:\n" + "\n".join(lines)
    )


def plan_signature(
    client: CscClient,
    credential_id: str,
    *,
    user: str,
    scheme: str | None = None,
    hash_name: str | None = None,
) -> SigningPlan:
    """Read the credential (certificate chain, algorithms, OTP or PIN) and pick the algorithm."""
    try:
        info = client.credential_info(credential_id)
    except CscError as exc:
        if exc.status == 400 and "credentialid" in exc.description.lower():
            raise DesktopError(
                f"credential {credential_id} is unknown to {client.base_url} "
                f"for {user}; run without --credential to list yours"
            ) from exc
        raise explain(exc, "reading the credential") from exc
    key = info.get("key") or {}
    cert = info.get("cert") or {}
    if key.get("status") == "disabled":
        raise DesktopError(
            f"credential {credential_id} cannot sign: its key is disabled "
            "(locked after failed OTP/PIN tries, disabled or revoked); ask an "
            "administrator"
        )
    if cert.get("status") not in (None, "valid"):
        raise DesktopError(
            f"credential {credential_id} cannot sign: its certificate is {cert.get('status')}"
        )
    try:
        certificates = [
            asn1_x509.Certificate.load(base64.b64decode(c, validate=True))
            for c in cert.get("certificates") or []
        ]
        for certificate in certificates:
            certificate.native  # noqa: B018 - parse fully now, not inside formats
    except (ValueError, TypeError) as exc:
        raise DesktopError(
            f"credential {credential_id}: the service returned a certificate "
            f"that does not parse ({exc})"
        ) from exc
    if not certificates:
        raise DesktopError(f"credential {credential_id}: the service returned no certificate")
    leaf_key = certificates[0].public_key
    key_type = "ec" if leaf_key.algorithm == "ec" else "rsa"
    scheme = scheme or ("ecdsa" if key_type == "ec" else None)
    offered = [a for a in key.get("algo") or [] if isinstance(a, str)]
    if scheme is None:
        only_pss = RSA_PSS in offered and not any(
            a in offered
            for a in (RSA_ENCRYPTION, *(signature_algorithm_oid("pkcs1v15", h) for h in HASH_NAMES))
        )
        scheme = "pss" if only_pss else "pkcs1v15"
    if (key_type == "ec") != (scheme == "ecdsa"):
        raise DesktopError(
            f"--scheme {scheme} does not fit the credential's {key_type.upper()} key"
        )
    hash_name = hash_name or (_curve_hash(leaf_key.curve[1]) if key_type == "ec" else "sha256")
    sign_algo, params = _sign_algorithm(scheme, hash_name, offered, credential_id)
    return SigningPlan(
        credential_id=credential_id,
        factor=auth_factor(info),
        hash_name=hash_name,
        scheme=scheme,
        sign_algo=sign_algo,
        sign_algo_params=params,
        certificates=certificates,
    )


def _curve_hash(asn1_name: str) -> str:
    """The hash of the curve's strength (sha256 for a curve the registry does not know)."""
    curve = CURVE_BY_ASN1_NAME.get(asn1_name)
    return curve.hash if curve else "sha256"


def _sign_algorithm(
    scheme: str, hash_name: str, offered: list[str], credential_id: str
) -> tuple[str, bytes | None]:
    if scheme == "pss":
        candidates = [RSA_PSS]
        params: bytes | None = pss_params_der(hash_name)
    else:
        # the full signature algorithm, else the bare key algorithm plus hashAlgorithmOID
        candidates = [
            signature_algorithm_oid(scheme, hash_name),
            bare_algorithm_oid(scheme),
        ]
        params = None
    if not offered:
        return candidates[0], params
    for oid in candidates:
        if oid in offered:
            return oid, params
    names = ", ".join(algorithm_name(a) for a in offered)
    raise DesktopError(
        f"credential {credential_id} does not offer {scheme} with {hash_name} (it offers: {names})"
    )


def describe_key(plan: SigningPlan) -> str:
    public_key = plan.certificates[0].public_key
    if public_key.algorithm == "ec":
        return f"EC {public_key.curve[1]}"
    return f"RSA-{public_key.bit_size}"
