"""Who may see the ops page: ``IVR_API_TOKEN`` given once at a login form, or as a bearer.

A good login sets a signed Flask session cookie (``SECRET_KEY`` is derived from the token
in :mod:`ivr.app` through scrypt, so rotating the token signs every old cookie out and a
captured cookie is no quick way to guess the token), HttpOnly and SameSite=Strict, Secure
when the request came over HTTPS. The cookie names a login kept in Redis for the shift
(``keys.ops_login``): signing out deletes it, so a copy of the cookie is refused too. The
token is compared through digests of equal length with :func:`hmac.compare_digest`, so
neither its content nor its length shows in the response time. Every route of the page
asks :func:`allowed` first.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from datetime import timedelta

from flask import current_app, request, session
from flask.sessions import SecureCookieSessionInterface

CLOCK_SKEW_S = 300  # workers on several machines: how far apart their clocks may be
SESSION_HOURS = 12  # a login lasts a working shift; then the form asks again
_KEY = "ops_login_at"
_ID = "ops_login"

log = logging.getLogger(__name__)


class LoginUnavailable(RuntimeError):
    """The token is right, but the login cannot be recorded (Redis unreachable)."""


def _services():
    return current_app.extensions["hotline"]


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
    at, login_id = session.get(_KEY), session.get(_ID)
    # a login minted by a worker whose clock runs a little ahead is still good here
    if not (isinstance(at, (int, float)) and -CLOCK_SKEW_S <= time.time() - at < SESSION_HOURS * 3600):
        return False
    if not isinstance(login_id, str) or not login_id:
        return False  # a cookie from before logins were kept, or forged without one
    services = _services()
    try:
        return bool(services.redis.exists(services.keys.ops_login(login_id)))
    except Exception:  # Redis unreachable: the page has nothing to show anyway; say why there
        log.warning("ops login not checked: Redis unreachable")
        return False


def login_check():
    """For a response that outlives its request (the live stream): a callable saying whether
    this request's login still stands (signed out elsewhere: no); None for a bearer request."""
    login_id = session.get(_ID)
    if _bearer() is not None or not isinstance(login_id, str) or not login_id:
        return None
    services = _services()
    redis, key = services.redis, services.keys.ops_login(login_id)

    def still() -> bool:
        try:
            return bool(redis.exists(key))
        except Exception:  # Redis unreachable: no news reaches the stream anyway; not a sign-out
            return True
    return still


def log_in(presented: str | None) -> bool:
    """Whether the token is right; raises :class:`LoginUnavailable` when it is but the login
    cannot be kept (Redis unreachable)."""
    if not same_token(presented, expected_token()):
        return False
    login_id = secrets.token_urlsafe(18)
    services = _services()
    try:
        services.redis.set(services.keys.ops_login(login_id), str(time.time()), ex=SESSION_HOURS * 3600)
    except Exception as exc:
        raise LoginUnavailable(str(exc)) from None
    session.clear()
    session.permanent = True
    session[_KEY] = time.time()
    session[_ID] = login_id
    return True


def log_out() -> None:
    """Sign this login out everywhere: the cookie and every copy of it."""
    login_id = session.get(_ID)
    if isinstance(login_id, str) and login_id:
        services = _services()
        try:
            services.redis.delete(services.keys.ops_login(login_id))
        except Exception:
            log.warning("ops sign-out: Redis unreachable; the login lapses with its shift")
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
