"""/openapi.json describes every route Flask serves, with a request schema for every JSON body,
and is a valid OpenAPI 3 document; v1's operations carry v1's parameter names."""

from openapi_spec_validator import validate

from signet.web.openapi import routes

PAGES = {"/openapi.json", "/docs", "/docs/assets/{asset}", "/health"}


def test_every_route_and_method_is_described(app, client):
    spec = client.get("/openapi.json").get_json()
    served = routes(app)
    assert len(served) >= 32  # v1 and v2 CSC, signDoc, pki, health, the documentation
    missing = [
        (method.upper(), path)
        for path, method, _endpoint, _params in served
        if method not in spec["paths"].get(path, {})
    ]
    assert not missing, f"routes the document does not describe: {missing}"
    described = {(path, method) for path, methods in spec["paths"].items() for method in methods}
    assert described == {(path, method) for path, method, _e, _p in served}


def test_every_post_declares_its_json_body(client):
    spec = client.get("/openapi.json").get_json()
    posts = {path: ops["post"] for path, ops in spec["paths"].items() if "post" in ops}
    assert "/csc/v2/signatures/signHash" in posts
    for path, op in posts.items():
        content = op.get("requestBody", {}).get("content", {})
        # the OAuth 2.0 endpoints and pages read forms (RFC 6749), the CSC API JSON
        schema = content.get("application/json") or content.get(
            "application/x-www-form-urlencoded", {}
        )
        assert schema.get("schema", {}).get("type") == "object", f"{path}: no request schema"
        assert op["responses"], path


def test_the_document_is_valid_openapi_3(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"] == "3.0.3"
    validate(spec)  # raises OpenAPIValidationError naming the fault
    assert set(spec["components"]["securitySchemes"]) == {"basic", "bearer"}
    login = spec["paths"]["/csc/v2/auth/login"]["post"]
    assert login["security"] == [{"basic": []}, {}]
    assert spec["paths"]["/csc/v2/info"]["post"]["security"] == []
    assert spec["paths"]["/csc/v2/credentials/list"]["post"]["security"] == [{"bearer": []}]


def _body(spec, path):
    return spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def test_request_schemas_say_what_the_code_reads(client):
    spec = client.get("/openapi.json").get_json()
    v2 = _body(spec, "/csc/v2/signatures/signHash")
    # SAD may be left out with an OAuth 2.0 credential token (docs/oauth2.md)
    assert v2["required"] == ["credentialID", "hashes", "signAlgo"]
    assert v2["properties"]["operationMode"]["enum"] == ["S"]
    v1 = _body(spec, "/csc/v1/signatures/signHash")
    assert v1["required"] == ["credentialID", "hash", "signAlgo"]
    assert {"hash", "hashAlgo"} <= set(v1["properties"])
    assert not {"hashes", "hashAlgorithmOID", "operationMode"} & set(v1["properties"])
    assert "authData" in _body(spec, "/csc/v2/credentials/authorize")["properties"]
    v1_authorize = _body(spec, "/csc/v1/credentials/authorize")["properties"]
    assert {"PIN", "OTP", "hash"} <= set(v1_authorize) and "authData" not in v1_authorize
    # v1.0.4 reads authInfo too (default false: the PIN and OTP objects only when asked)
    assert "authInfo" in _body(spec, "/csc/v1/credentials/info")["properties"]
    listing = _body(spec, "/csc/v2/credentials/list")["properties"]
    assert listing["certificates"]["enum"] == ["none", "single", "chain"]
    # what the code answers when a parameter breaks the schema: the parameter named, a 400
    response = client.post("/csc/v2/credentials/list", json={"certificates": "all"})
    assert response.status_code == 401  # the token is checked before the body
    response = client.post("/csc/v2/info", json=[])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


def test_documented_statuses_are_csc_errors(client):
    """Every documented refusal is CSC error JSON, but the OAuth 2.0 pages' forms, whose
    refusals are HTML pages; each of those answers an empty form so."""
    spec = client.get("/openapi.json").get_json()
    pages = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            for status, response in op["responses"].items():
                if not status.startswith(("4", "5")) or path == "/health":
                    continue
                if "text/html" in response["content"]:
                    assert list(response["content"]) == ["text/html"], (path, status)
                    assert path.startswith("/oauth2/") and method == "post", (path, status)
                    pages.append((path, status))
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (path, status)
    assert len({path for path, _ in pages}) >= 6, pages
    for path, status in pages:
        if status == "400":
            answer = client.post(path, data={})
            assert answer.status_code == 400 and answer.mimetype == "text/html", path


def test_docs_page_loads_nothing_from_elsewhere(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    text = page.get_data(as_text=True)
    assert "http:" not in text and "https:" not in text and "//" not in text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "docs-init.js"):
        served = client.get(f"/docs/assets/{asset}")
        assert served.status_code == 200 and len(served.data) > 100, asset
        assert asset in text
    refused = client.get("/docs/assets/..%2Fpyproject.toml")
    assert refused.status_code == 404 and refused.get_json()["error"] == "invalid_request"
    assert client.get("/docs/assets/index.html").status_code == 404
