"""`/openapi.json` and `/docs`: the API described from the same table the blueprints use."""

from __future__ import annotations

import html
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

blueprint = Blueprint("openapi", __name__)

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}

# path -> method -> operation; blueprints add theirs with describe().
_PATHS: dict[str, dict[str, Any]] = {
    "/health": {
        "get": {
            "summary": "Health of the node: database and HSM",
            "tags": ["operations"],
            "responses": {
                "200": {"description": "database and HSM answer"},
                "503": {"description": "a dependency is down; `down` names it"},
            },
        }
    },
}


def describe(
    path: str,
    method: str,
    summary: str,
    *,
    tag: str,
    request_schema: dict[str, Any] | None = None,
    auth: str | None = "bearer",
    responses: dict[str, str] | None = None,
) -> None:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": {
            "200": {"description": "success"},
            "400": {"description": "invalid request", "content": error},
        },
    }
    for code, text in (responses or {}).items():
        operation["responses"][code] = {"description": text}
    if request_schema is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": request_schema}},
        }
    if auth:
        operation["security"] = [{auth: []}]
    _PATHS.setdefault(path, {})[method] = operation


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Signet remote signing API",
            "version": "0.1.0",
            "description": "Cloud Signature Consortium API v2 (ETSI TS 119 432) and "
            "node operations.",
        },
        "servers": [
            {
                "url": current_app.extensions["signet"].settings.web.base_url
                or request.host_url.rstrip("/")
            }
        ],
        "paths": _PATHS,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(document())


@blueprint.get("/docs")
def docs() -> Response:
    rows = []
    for path, methods in sorted(_PATHS.items()):
        for method, op in methods.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>"
                f"{html.escape(path)}</code></td><td>{html.escape(op['summary'])}</td>"
                "</tr>"
            )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Signet API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:.2em 1em}</style></head>"
        "<body><h1>Signet API</h1><p>Machine-readable: <a href='openapi.json'>"
        "openapi.json</a>.</p><table>" + "".join(rows) + "</table></body></html>"
    )
    return Response(page, mimetype="text/html")
