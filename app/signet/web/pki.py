"""`/pki/<ca>.crt` and `/pki/<ca>.crl`: the local CA's certificate and CRL for relying parties."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from signet.signing.publication import CRL_CACHE_SECONDS, ca_certificate, ca_crl
from signet.web.openapi import operation

blueprint = Blueprint("pki", __name__, url_prefix="/pki")
_NO_SUCH_CA = {"404": "no CA of that name"}


@operation(
    "The CA certificate (DER)", auth=(), answer_type="application/pkix-cert", errors=_NO_SUCH_CA
)
@blueprint.get("/<ca_name>.crt")
def certificate(ca_name: str) -> Response:
    return Response(
        ca_certificate(current_app.extensions["signet"], ca_name), mimetype="application/pkix-cert"
    )


@operation(
    "The CA's current CRL (DER)", auth=(), answer_type="application/pkix-crl", errors=_NO_SUCH_CA
)
@blueprint.get("/<ca_name>.crl")
def revocation_list(ca_name: str) -> Response:
    response = Response(
        ca_crl(current_app.extensions["signet"], ca_name), mimetype="application/pkix-crl"
    )
    response.headers["Cache-Control"] = f"max-age={CRL_CACHE_SECONDS}"
    return response
