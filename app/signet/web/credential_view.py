"""What credentials/list and credentials/info say of a credential, and its JSON Schema."""

from __future__ import annotations

import base64
from datetime import datetime

from signet.algorithms import CURVES
from signet.signing import csc as usecases
from signet.signing.delivery import CHANNEL_NAMES
from signet.web.openapi import BASE64, STRING, enum, obj
from signet.web.params import Json, services

STRINGS = {"type": "array", "items": {"type": "string"}}
CREDENTIAL_ANSWER = obj(
    required=("key", "cert", "SCAL", "multisign"),
    description={"type": "string"},
    key=obj(
        required=("status", "algo", "len"),
        status=enum("enabled", "disabled"),
        algo=STRINGS,
        len={"type": "integer"},
        curve=STRING,
    ),
    cert=obj(required=("status",), status=STRING, certificates={"type": "array", "items": BASE64}),
    SCAL=enum("1", "2"),
    multisign={"type": "integer", "minimum": 1},
    lang=STRING,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def generalized(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%SZ")


def certificates_of(info: usecases.CredentialInfo, which: str) -> list[str]:
    if which == "none":
        return []
    ders = info.certificates if which == "chain" else info.certificates[:1]
    return [b64(d) for d in ders]


def cert_block(info: usecases.CredentialInfo, which: str, cert_info: bool) -> Json:
    block: Json = {"status": info.cert_status}
    if which != "none":
        block["certificates"] = certificates_of(info, which)
    if cert_info:
        block.update(
            issuerDN=info.issuer,
            serialNumber=info.serial,
            subjectDN=info.subject,
            validFrom=generalized(info.valid_from),
            validTo=generalized(info.valid_to),
        )
    return block


def key_block(info: usecases.CredentialInfo) -> Json:
    key: Json = {
        "status": "enabled" if info.key_enabled else "disabled",
        "algo": info.algorithms,
        "len": info.key_size,
    }
    if info.curve:
        key["curve"] = CURVES[info.curve].oid
    return key


def policy_block(info: usecases.CredentialInfo) -> Json:
    """The assurance policy its authorizations must reach (a Signet member of `auth`;
    docs/assurance.md): with the login, the factor above has to get there."""
    terms = info.policy_terms
    if terms is None:
        return {"name": info.policy, "description": "not defined: cannot be authorized"}
    return {
        "name": info.policy,
        "eidas": terms.eidas,
        "aal": terms.aal,
        "factors": terms.factors,
        "description": terms.description,
    }


def described(info: usecases.CredentialInfo, which: str, cert_info: bool, auth_info: bool) -> Json:
    out: Json = {
        "description": info.description or "",
        "key": key_block(info),
        "cert": cert_block(info, which, cert_info),
    }
    if auth_info:
        factor = (
            {
                "type": "OTP",
                "id": "OTP",
                "format": "N",
                "label": "OTP",
                "generator": info.otp_channel,
                "description": f"One-time code sent by {CHANNEL_NAMES[info.otp_channel]} "
                f"to {info.otp_to} (credentials/sendOTP)",
            }
            if info.otp_channel
            else {
                "type": "Password",
                "id": "PIN",
                "format": "N",
                "label": "PIN",
                "description": "The credential's PIN",
            }
        )
        out["auth"] = {
            "mode": "explicit",
            "expression": factor["id"],
            "objects": [factor],
            "policy": policy_block(info),
        }
        if info.activation in ("mobile_id", "passkey"):
            # Approved on the signer's phone: nothing for the client to collect
            # (credentials/authorize answers pending; docs/mobile-id.md).
            out["auth"] = {"mode": "implicit", "policy": policy_block(info)}
    # The specification's tables name the field SCAL (docs/csc.md)
    out.update(SCAL=info.scal, multisign=info.multisign, lang=services().settings.web.lang)
    return out
