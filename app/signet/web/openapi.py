"""`/openapi.json`: the API document built from Flask's routes, each view carrying its operation.

A view declares its operation where it is written, with :func:`operation` (or
:func:`attach` for views made by a factory): summary, request-body JSON Schema, error statuses.
The document walks ``app.url_map`` and reads each rule's view, so a route is described exactly
when it exists; a route whose view declares nothing is missing, and the test of the document
says so. The schema helpers below spell the parameter kinds `web.params` reads."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify, request

blueprint = Blueprint("openapi", __name__)

Schema = dict[str, Any]
View = TypeVar("View", bound=Callable[..., Any])

# -- schema helpers: the parameter kinds of web.params ---------------------------------------
STRING = {"type": "string", "minLength": 1}  # Params.string, required
OPTIONAL_STRING = {
    "type": "string",
    "nullable": True,
}  # Params.string(required=False): null is absent
BOOLEAN = {"type": "boolean"}
BASE64 = {"type": "string", "format": "byte", "minLength": 1}
HASHES = {"type": "array", "minItems": 1, "items": BASE64}  # Params.hash_list
LABELS = {"type": "array", "items": {"type": "string"}}  # Params.labels


def enum(*values: str, description: str | None = None) -> Schema:
    schema: Schema = {"type": "string", "enum": list(values)}
    if description:
        schema["description"] = description
    return schema


def obj(*, required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    """A JSON object with these properties. Others are let through (CSC's clientData and
    extensions), so the schema names only what Signet reads."""
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def with_description(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description}


ERROR = obj(required=("error", "error_description"), error=STRING, error_description=STRING)
_ERROR_REF = {"$ref": "#/components/schemas/Error"}


@dataclass(frozen=True)
class Operation:
    """What the document says of one route and method. ``errors`` maps an HTTP status to
    when it is answered (CSC error JSON), ``page_errors`` to when an HTML page answers it;
    ``answer`` is the success answer's JSON Schema."""

    summary: str
    request: Schema | None = None
    answer: Schema | None = None
    success: str | None = "200"  # None: the operation never succeeds (not offered)
    also: tuple[str, ...] = ()  # other statuses whose body has the answer's schema
    errors: Mapping[str, str] = field(default_factory=dict)
    # statuses answered with an HTML page saying why (the OAuth 2.0 pages' forms)
    page_errors: Mapping[str, str] = field(default_factory=dict)
    auth: tuple[str, ...] = ("bearer",)  # security schemes, any one of them; () for none
    auth_optional: bool = False
    request_types: tuple[str, ...] = ("application/json",)
    example: dict[str, Any] | None = None  # the body the explorer offers to send
    answer_type: str = "application/json"

    def with_request(self, request: Schema | None) -> Operation:
        return replace(self, request=request)


_OPERATIONS: dict[Callable[..., Any], Operation] = {}
_TAGS: dict[str, str] = {}


def attach(view: View, declared: Operation) -> View:
    """Declare the operation of a view (a function made by a factory, or shared by routes)."""
    _OPERATIONS[view] = declared
    return view


def operation(summary: str, **details: Any) -> Callable[[View], View]:
    """Decorator: the view (outermost, after its guards) serves this operation."""
    return lambda view: attach(view, Operation(summary, **details))


def operation_of(view: Callable[..., Any]) -> Operation | None:
    return _OPERATIONS.get(view)


def tag(blueprint: Blueprint, title: str) -> None:
    """Group the blueprint's operations under this title."""
    _TAGS[blueprint.name] = title


_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_ANSWERED = ("GET", "POST", "PUT", "PATCH", "DELETE")


def routes(app: Flask) -> list[tuple[str, str, str, list[str]]]:
    """Every (OpenAPI path, method, endpoint, path parameters) the application serves."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        for method in sorted(set(rule.methods or ()) & set(_ANSWERED)):
            found.append((path, method.lower(), rule.endpoint, _CONVERTER.findall(rule.rule)))
    return found


def _operation_object(
    declared: Operation, endpoint: str, path_parameters: list[str]
) -> dict[str, Any]:
    error = {"application/json": {"schema": _ERROR_REF}}
    success: dict[str, Any] = {"description": "success"}
    if declared.answer is not None:
        success["content"] = {declared.answer_type: {"schema": declared.answer}}
    elif declared.success != "204":
        success["content"] = {declared.answer_type: {}}
    responses: dict[str, Any] = {declared.success: success} if declared.success else {}
    for status in declared.also:
        responses[status] = {**success, "description": "see the body"}
    for status, when in sorted(declared.errors.items()):
        responses[status] = {"description": when, "content": error}
    for status, when in sorted(declared.page_errors.items()):
        responses[status] = {"description": when, "content": {"text/html": {}}}
    built: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_"),
        "summary": declared.summary,
        "responses": responses,
    }
    blueprint_name = endpoint.partition(".")[0]
    if blueprint_name in _TAGS:
        built["tags"] = [_TAGS[blueprint_name]]
    if path_parameters:
        built["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in path_parameters
        ]
    if declared.request is not None:
        media: dict[str, Any] = {"schema": declared.request}
        if declared.example is not None:
            media["example"] = declared.example
        built["requestBody"] = {
            "required": False,  # an empty body reads as {}
            "content": {kind: media for kind in declared.request_types},
        }
    security: list[dict[str, list[str]]] = [{scheme: []} for scheme in declared.auth]
    if declared.auth_optional:
        security.append({})
    built["security"] = security
    return built


def document(app: Flask, base_url: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for path, method, endpoint, parameters in routes(app):
        declared = operation_of(app.view_functions[endpoint])
        if declared is None:
            continue  # undescribed: the test of the document names it
        paths.setdefault(path, {})[method] = _operation_object(declared, endpoint, parameters)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Signet remote signing API",
            "version": "0.1.0",
            "description": "Cloud Signature Consortium API v2 (ETSI TS 119 432) and v1, "
            "and node operations. Errors are CSC error JSON.",
        },
        "servers": [{"url": base_url}],
        "tags": [{"name": title} for title in dict.fromkeys(_TAGS.values())],
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }


@operation(
    "This document (OpenAPI 3.0)",
    auth=(),
    answer={"type": "object", "required": ["openapi", "paths"]},
)
@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    base_url = current_app.extensions["signet"].settings.web.base_url
    return jsonify(document(current_app, base_url or request.host_url.rstrip("/")))
