"""`/docs`: Swagger UI on `/openapi.json`, its assets served from the swagger-ui-bundle package.

Nothing on the page comes from another origin: the page, Swagger UI's script and stylesheet and
the small script that starts it are all served here, under a Content-Security-Policy that allows
only this origin (and data: images, which Swagger UI's stylesheet embeds)."""

from __future__ import annotations

from importlib.resources import files

from flask import Blueprint, Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from signet.errors import NotFound
from signet.web.openapi import operation

blueprint = Blueprint("apidocs", __name__)

# The files the page loads: from the package, and our initializer from signet.web
SWAGGER_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")
INITIALIZER = "docs-init.js"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Signet API</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
</head>
<body>
<noscript>The explorer needs JavaScript; the document itself is
<a href="openapi.json">openapi.json</a>.</noscript>
<div id="swagger-ui" data-spec="openapi.json"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/docs-init.js"></script>
</body>
</html>
"""


def _strict(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@operation("Interactive API explorer (Swagger UI)", auth=(), answer_type="text/html")
@blueprint.get("/docs")
def docs() -> Response:
    return _strict(Response(PAGE, mimetype="text/html"))


@operation(
    "The explorer's script, stylesheet and icon",
    auth=(),
    answer_type="application/octet-stream",
    errors={"404": "not one of the explorer's files"},
)
@blueprint.get("/docs/assets/<asset>")
def asset(asset: str) -> Response:
    if asset == INITIALIZER:
        directory = str(files("signet.web") / "static")
    elif asset in SWAGGER_ASSETS:
        directory = swagger_ui_path
    else:
        raise NotFound(f"No such file of the API explorer: {asset}")
    response = send_from_directory(directory, asset, max_age=3600)
    return _strict(response)
