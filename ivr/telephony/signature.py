"""Twilio request signatures, checked against the public URL Twilio used.

Twilio signs the URL exactly as it requested it (scheme, host, port, path, query) plus
the POST parameters. Behind a proxy the server sees another scheme or host, so the URL
is rebuilt from ``server.public_url`` (IVR_PUBLIC_URL) and the request's path and query.
The WebSocket upgrade is signed over the stream URL as written in the TwiML (wss://...),
with no parameters.
"""

from __future__ import annotations

from flask import Request
from twilio.request_validator import RequestValidator

from ivr.config import Config


def public_url(config: Config, request: Request, websocket: bool = False) -> str:
    base = config.server.stream_base if websocket else config.server.public_url
    # public_url may carry a path prefix (a proxy mounting us under /hotline)
    path = request.full_path if request.query_string else request.path
    return base + path


def is_valid(config: Config, request: Request, websocket: bool = False) -> bool:
    if not config.twilio.validate_signatures:
        return True
    token = config.twilio.auth_token.get_secret_value()
    signature = request.headers.get("X-Twilio-Signature", "")  # header lookup ignores case
    if not token or not signature:
        return False
    params = {} if websocket else request.form.to_dict(flat=False)
    params = {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in params.items()}
    return RequestValidator(token).validate(public_url(config, request, websocket), params, signature)
