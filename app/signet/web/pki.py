"""`/pki/<ca>.crt` and `/pki/<ca>.crl`: the local CA's certificate and CRL for relying parties."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from signet.signing.publication import CRL_CACHE_SECONDS, ca_certificate, ca_crl
from signet.web.openapi import describe

blueprint = Blueprint("pki", __name__, url_prefix="/pki")


@blueprint.get("/<ca_name>.crt")
def certificate(ca_name: str) -> Response:
    return Response(
        ca_certificate(current_app.extensions["signet"], ca_name), mimetype="application/pkix-cert"
    )


@blueprint.get("/<ca_name>.crl")
def revocation_list(ca_name: str) -> Response:
    response = Response(
        ca_crl(current_app.extensions["signet"], ca_name), mimetype="application/pkix-crl"
    )
    response.headers["Cache-Control"] = f"max-age={CRL_CACHE_SECONDS}"
    return response


describe("/pki/{ca}.crt", "get", "The CA certificate (DER)", tag="pki", auth=None)
describe("/pki/{ca}.crl", "get", "The CA's current CRL (DER)", tag="pki", auth=None)
