"""Bearer-token access to the agent API (``Authorization: Bearer $IVR_API_TOKEN``)."""

from __future__ import annotations

import hmac
from functools import wraps

from flask import current_app, jsonify, request


def token_ok(presented: str | None) -> bool:
    expected = current_app.extensions["hotline"].config.api.token.get_secret_value()
    return bool(expected) and presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def require_token(view):
    """Refuse with 503 when no token is configured, 401 when it is missing or wrong."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_app.extensions["hotline"].config.api.token.get_secret_value():
            return jsonify(error="the API is closed: set IVR_API_TOKEN (or api.token in config.yaml)"), 503
        if not token_ok(bearer()):
            return jsonify(error="missing or wrong bearer token"), 401, {"WWW-Authenticate": "Bearer"}
        return view(*args, **kwargs)

    return wrapped
