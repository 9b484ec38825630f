"""The Flask app factory: ``create_app(config)`` wires the parts and the blueprints."""

from __future__ import annotations

import functools

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
    return _derive_secret(config.api.token.get_secret_value() or "no-token")


@functools.lru_cache(maxsize=8)
def _derive_secret(token: str) -> str:
    """The ops cookie's signing key. Derived, not random, so every worker signs the same way;
    through scrypt (about 0.1 s, once per process and token), so a captured cookie costs that per guess
    of the token offline instead of a nanosecond hash."""
    import hashlib

    return hashlib.scrypt(token.encode(), salt=b"ivr-ops-session", n=2**14, r=8, p=1, dklen=32).hex()
