"""Who may see the ops page: ``IVR_API_TOKEN`` given once at a login form, or as a bearer.

A good login sets a signed Flask session cookie (``SECRET_KEY`` is derived from the token
in :mod:`ivr.app`, so rotating the token signs every old cookie out), HttpOnly and
SameSite=Strict, Secure when the request came over HTTPS. The token is compared through
digests of equal length with :func:`hmac.compare_digest`, so neither its content nor its
length shows in the response time. Every route of the page asks :func:`allowed` first.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta

from flask import current_app, request, session
from flask.sessions import SecureCookieSessionInterface

CLOCK_SKEW_S = 300  # workers on several machines: how far apart their clocks may be
SESSION_HOURS = 12  # a login lasts a working shift; then the form asks again
_KEY = "ops_login_at"


def expected_token() -> str:
    return current_app.extensions["hotline"].config.api.token.get_secret_value()


def same_token(presented: str | None, expected: str) -> bool:
    """Constant-time equality of two tokens whatever their lengths."""
    if not expected or presented is None:
        return False
    a = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
    b = hashlib.sha256(expected.encode("utf-8")).digest()
    return hmac.compare_digest(a, b)


def closed() -> bool:
    """No token configured: the page stays shut (503), like the agent API."""
    return not expected_token()


def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def allowed() -> bool:
    """A valid login cookie or a correct bearer header."""
    expected = expected_token()
    if not expected:
        return False
    bearer = _bearer()
    if bearer is not None:
        return same_token(bearer, expected)
    at = session.get(_KEY)
    # a login minted by a worker whose clock runs a little ahead is still good here
    return isinstance(at, (int, float)) and -CLOCK_SKEW_S <= time.time() - at < SESSION_HOURS * 3600


def log_in(presented: str | None) -> bool:
    if not same_token(presented, expected_token()):
        return False
    session.clear()
    session.permanent = True
    session[_KEY] = time.time()
    return True


def log_out() -> None:
    session.clear()


class OpsSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request itself is HTTPS."""

    def get_cookie_secure(self, app) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def configure(app) -> None:
    app.config.update(SESSION_COOKIE_NAME="ivr_ops", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PATH="/ops",
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS))
    app.session_interface = OpsSessionInterface()
