"""HTTP front: Flask app factory, blueprints, error mapping, OpenAPI."""

from signet.web.app import create_app

__all__ = ["create_app"]
