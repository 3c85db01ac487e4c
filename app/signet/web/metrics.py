"""`/metrics`: Prometheus exposition of this node's requests, refusals and latency per endpoint,
and of the counts every node agrees on (signet.monitoring.metrics says where each comes from)."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, current_app, g, request

from signet.monitoring.metrics import exposition, observe, registry_for
from signet.web.client_address import allowed
from signet.web.errors import error_response
from signet.web.openapi import operation

blueprint = Blueprint("metrics", __name__)


def init_app(app: Flask) -> None:
    app.extensions["signet.metrics"] = registry_for(app.extensions["signet"])

    @app.before_request
    def _started() -> None:
        g.signet_started = time.perf_counter()

    @app.after_request
    def _observed(response: Response) -> Response:
        started = g.get("signet_started")
        if started is None:
            return response
        # the route's template, not the path: bounded label values
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        error = None
        if 400 <= response.status_code < 500:
            body = None if response.is_streamed else response.get_json(silent=True)
            error = str(body.get("error")) if isinstance(body, dict) else "unknown"
        observe(
            endpoint,
            request.method,
            response.status_code,
            time.perf_counter() - started,
            error,
        )
        return response

    app.register_blueprint(blueprint)


@operation(
    "Prometheus metrics of this node, and the cluster's counts from the database",
    auth=(),
    answer={"type": "string"},
    answer_type="text/plain",
    errors={"403": "the client's address is not in web.metrics_clients"},
)
@blueprint.get("/metrics")
def metrics() -> Response:
    clients = current_app.extensions["signet"].settings.web.metrics_clients
    if not allowed(request.remote_addr, clients):
        return error_response(
            403, "access_denied", "/metrics answers the addresses of web.metrics_clients only"
        )
    body, content_type = exposition(current_app.extensions["signet.metrics"])
    return Response(body, content_type=content_type)
