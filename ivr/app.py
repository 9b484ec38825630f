"""The Flask app factory: ``create_app(config)`` wires the parts and the blueprints."""

from __future__ import annotations

from flask import Flask, current_app

from ivr import logs
from ivr.config import Config
from ivr.services import Services, build_services


def create_app(config: Config, services: Services | None = None) -> Flask:
    """Build the WSGI app. Pass ``services`` to share parts (tests, benchmarks)."""
    logs.hide(config.twilio.auth_token.get_secret_value(), config.api.token.get_secret_value())
    app = Flask("ivr")
    app.config["MAX_CONTENT_LENGTH"] = config.server.max_request_bytes
    app.config["SECRET_KEY"] = _session_secret(config)
    app.extensions["hotline"] = services or build_services(config)

    from ivr import health
    from ivr.ops import blueprints as ops_blueprints
    from ivr.routing import api as routing_api
    from ivr.telephony import webhooks

    app.register_blueprint(health.bp)
    webhooks.init_app(app)
    routing_api.init_app(app)
    ops_blueprints.init_app(app)
    return app


def services() -> Services:
    """The parts of the app serving the current request."""
    return current_app.extensions["hotline"]


def _session_secret(config: Config) -> str:
    import hashlib

    # Derived, not random, so every worker signs the ops login cookie the same way.
    material = (config.api.token.get_secret_value() or "no-token") + "|ivr-ops-session"
    return hashlib.sha256(material.encode()).hexdigest()
