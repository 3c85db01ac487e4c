"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from signet.config import Settings, load_settings
from signet.signing import Services
from signet.web.client_address import ClientAddress


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    app = Flask("signet.web")
    app.config["JSON_SORT_KEYS"] = False
    app.config["MAX_CONTENT_LENGTH"] = 256 * 1024 * 1024
    services = services or Services(settings or load_settings())
    app.extensions["signet"] = services

    from signet.web import (
        apidocs,
        csc,
        errors,
        federation,
        health,
        metrics,
        mobile,
        oauth2,
        openapi,
        passkey,
        passkey_login,
        pki,
        saml,
    )

    errors.init_app(app)
    metrics.init_app(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(pki.blueprint)
    app.register_blueprint(openapi.blueprint)
    app.register_blueprint(apidocs.blueprint)
    csc.init_app(app)
    mobile.init_app(app)
    passkey.init_app(app)
    oauth2.init_app(app)
    federation.init_app(app)
    passkey_login.init_app(app)
    saml.init_app(app)
    proxies = services.settings.web.trusted_proxies
    if proxies:
        app.wsgi_app = ClientAddress(app.wsgi_app, proxies)  # type: ignore[method-assign]
    return app
