"""The Signet extension `credentials/activate` under /csc/v2 and /csc/v1: the owner of a
pending credential activates it with the code she was sent (and sets her PIN)."""

from __future__ import annotations

from flask import jsonify
from flask.typing import ResponseReturnValue

from signet.signing import activation as usecase
from signet.web.csc import v1, v2
from signet.web.params import Params, authenticated, body, principal, services

REQUEST_SCHEMA = {
    "type": "object",
    "required": ["credentialID", "activationCode"],
    "properties": {
        "credentialID": {"type": "string"},
        "activationCode": {
            "type": "string",
            "description": "the code e-mailed to the owner (case, spaces and dashes ignored)",
        },
        "PIN": {
            "type": "string",
            "description": "PIN credentials only: the PIN the owner chooses, 6 to 16 "
            "digits, not the same digit throughout",
        },
    },
}


@authenticated
def activate_view() -> ResponseReturnValue:
    params = Params(body())
    activation = usecase.activate(
        services(),
        principal(),
        params.string("credentialID"),
        params.string("activationCode"),
        params.string("PIN", required=False),
    )
    return jsonify(
        {"credentialID": params.get("credentialID"), "status": "active", "activation": activation}
    )


v2.add_url_rule("/credentials/activate", "activate", activate_view, methods=["POST"])
v1.add_url_rule("/credentials/activate", "activate", activate_view, methods=["POST"])


def describe_activate() -> None:
    from signet.web.openapi import describe

    for version, title in (("v2", "CSC v2.0.0.2"), ("v1", "CSC v1.0.4")):
        describe(
            f"/csc/{version}/credentials/activate",
            "post",
            f"{title} (Signet extension): the owner activates her pending credential with "
            "the code e-mailed to her, and for a PIN credential chooses her PIN "
            "(docs/csc.md)",
            tag=title,
            request_schema=REQUEST_SCHEMA,
            responses={
                "401": "no or invalid access token",
                "403": "the credential is locked (too many wrong codes)",
                "409": "the credential is already active",
            },
        )
