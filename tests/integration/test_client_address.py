"""Behind the role's nginx: the audit trail records the client's address from X-Forwarded-For
only when the peer is a trusted proxy, and /metrics answers web.metrics_clients only."""

from __future__ import annotations

import json
from ipaddress import ip_network

from sqlalchemy import select

from signet.store import AuditRecord
from signet.web import create_app


def _client(services, **web):
    services.settings = services.settings.model_copy(
        update={"web": services.settings.web.model_copy(update=web)}
    )
    app = create_app(services=services)
    app.testing = True
    return app.test_client()


def _failed_login_source(services, client, **request) -> str:
    reply = client.post("/csc/v2/auth/login", json={}, auth=("mallory", "a-guess"), **request)
    assert reply.status_code in (400, 401), reply.json
    with services.database.transaction(read_only=True) as session:
        record = session.execute(
            select(AuditRecord)
            .where(AuditRecord.event == "login.failed")
            .order_by(AuditRecord.seq.desc())
            .limit(1)
        ).scalar_one()
        return json.loads(record.details)["source"]


def test_the_source_of_a_login_behind_a_trusted_proxy(services) -> None:
    through_nginx = {
        "environ_base": {"REMOTE_ADDR": "127.0.0.1"},
        "headers": {"X-Forwarded-For": "198.51.100.66, 203.0.113.9"},
    }
    trusting = _client(services, trusted_proxies=[ip_network("127.0.0.1/32")])
    assert _failed_login_source(services, trusting, **through_nginx) == "203.0.113.9"
    # a client reaching gunicorn directly cannot name itself another address
    direct = {"environ_base": {"REMOTE_ADDR": "192.0.2.7"}, "headers": through_nginx["headers"]}
    assert _failed_login_source(services, trusting, **direct) == "192.0.2.7"
    # without trusted proxies the header is ignored
    plain = _client(services, trusted_proxies=[])
    assert _failed_login_source(services, plain, **through_nginx) == "127.0.0.1"


def test_metrics_answer_their_clients_only(services) -> None:
    client = _client(
        services,
        trusted_proxies=[ip_network("127.0.0.1/32")],
        metrics_clients=[ip_network("10.20.0.0/16")],
    )
    nms = client.get(
        "/metrics",
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
        headers={"X-Forwarded-For": "10.20.3.4"},
    )
    assert nms.status_code == 200 and b"signet_http_requests_total" in nms.data
    outsider = client.get(
        "/metrics",
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert outsider.status_code == 403
    assert outsider.json["error"] == "access_denied"
    assert "web.metrics_clients" in outsider.json["error_description"]
    nobody = _client(services, metrics_clients=[]).get("/metrics")
    assert nobody.status_code == 403
