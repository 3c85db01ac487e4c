"""The Signet extension `credentials/activate` under /csc/v2 and /csc/v1: the owner of a
pending credential activates it with the code she was sent (and sets her PIN)."""

from __future__ import annotations

from flask import jsonify
from flask.typing import ResponseReturnValue

from signet.signing import activation as usecase
from signet.web.csc import TOKEN_ERRORS, v1, v2
from signet.web.openapi import OPTIONAL_STRING, STRING, enum, obj, operation, with_description
from signet.web.params import Params, authenticated, body, principal, services


@operation(
    "(Signet extension) the owner activates her pending credential with the code e-mailed to "
    "her, and for a PIN credential chooses her PIN (docs/csc.md)",
    request=obj(
        required=("credentialID", "activationCode"),
        credentialID=STRING,
        activationCode=with_description(
            STRING, "the code e-mailed to the owner (case, spaces and dashes ignored)"
        ),
        PIN=with_description(
            OPTIONAL_STRING,
            "PIN credentials only: the PIN the owner chooses, 6 to 16 digits, not the same "
            "digit throughout",
        ),
    ),
    answer=obj(
        required=("credentialID", "status", "activation"),
        credentialID=STRING,
        status=enum("active"),
        activation=STRING,
    ),
    errors={
        **TOKEN_ERRORS,
        "403": "the credential is locked (too many wrong codes)",
        "409": "the credential is already active",
    },
)
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
