"""The web layer: health, OpenAPI, and JSON errors only."""

import pytest

from signet.config import ConfigError, load_settings
from signet.signing import Services
from signet.web import create_app


def test_health_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["hsm"]["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"


def test_health_503_names_the_hsm(settings_env, monkeypatch):
    monkeypatch.setenv("SIGNET_HSM__TOKEN_LABEL", "gone-token")
    client = create_app(services=Services(load_settings())).test_client()
    response = client.get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["down"] == ["hsm"] and "gone-token" in body["checks"]["hsm"]["reason"]


def test_health_503_names_the_database(settings_env, monkeypatch, tmp_path):
    monkeypatch.setenv(
        "SIGNET_DATABASE__URL", "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2"
    )
    client = create_app(services=Services(load_settings())).test_client()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json()["down"] == ["database"]


def test_errors_are_json_never_html(client):
    for method, path in (("get", "/no/such/page"), ("post", "/health"), ("delete", "/docs")):
        response = getattr(client, method)(path)
        assert response.status_code in (404, 405)
        assert response.is_json
        assert set(response.get_json()) == {"error", "error_description"}
    wrong_method = client.delete("/docs")
    assert wrong_method.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert wrong_method.get_json()["error_description"] == (
        "The method DELETE is not allowed for /docs; use GET"
    )


def test_openapi_and_docs(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/health" in spec["paths"]
    page = client.get("/docs")
    assert page.status_code == 200 and b"openapi.json" in page.data


def test_info_names_the_configured_logo(settings_env, monkeypatch):
    monkeypatch.setenv("SIGNET_WEB__LOGO_URL", "https://qtsp.example/logo.jpg")
    client = create_app(services=Services(load_settings())).test_client()
    assert (
        client.post("/csc/v2/info", json={}).get_json()["logo"] == "https://qtsp.example/logo.jpg"
    )
    monkeypatch.setenv("SIGNET_WEB__LOGO_URL", "file:///etc/logo.png")
    with pytest.raises(ConfigError, match=r"web\.logo_url.*JPEG or PNG image"):
        load_settings()
