"""`/health`: 200 when the database and the HSM answer, 503 naming what is down."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from signet.signing.health import check_health
from signet.web.openapi import STRING, obj, operation

blueprint = Blueprint("health", __name__)


@operation(
    "Health of the node: database and HSM (503 names what is down)",
    auth=(),
    answer=obj(required=("status", "checks"), status=STRING, checks={"type": "object"}),
    also=("503",),
)
@blueprint.get("/health")
def health() -> ResponseReturnValue:
    report = check_health(current_app.extensions["signet"])
    return jsonify(report), 200 if report["status"] == "ok" else 503
