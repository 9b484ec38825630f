"""The live ops page: ``/ops`` (HTML), ``/ops/snapshot.json``, ``/ops/events`` (SSE), ``/ops/rules.json``.

Every route but the login form and the page's own static files answers only a logged-in
viewer (session cookie) or a correct ``Authorization: Bearer`` header; see
:mod:`ivr.ops.access`. The page is server-rendered HTML carrying the current snapshot;
``static/ops.js`` draws it and keeps it live from the event stream.
"""

from __future__ import annotations

import logging
import queue
import re
import time

from flask import Blueprint, Response, current_app, jsonify, redirect, render_template, request, url_for
from markupsafe import Markup

from ivr.ops import access
from ivr.ops.hub import Hub, Viewer, event

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__, url_prefix="/ops", template_folder="templates", static_folder="static")

HEARTBEAT_S = 15.0      # a comment line keeps proxies from closing an idle stream
MAX_STREAM_S = 1800.0   # then the browser reconnects (EventSource does it by itself)
LOGIN_CHECK_S = 15.0    # how often an open stream looks whether its login was signed out
PUBLIC = {"ops.login", "ops.static"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def hub() -> Hub:
    return current_app.extensions["hotline.ops_hub"]


def max_streams(threads: int) -> int:
    """A quarter of a worker's threads may hold live page streams (2 to 16)."""
    return max(2, min(16, threads // 4))


def init_app(app) -> None:
    access.configure(app)
    services = app.extensions["hotline"]
    app.extensions["hotline.ops_hub"] = Hub(services, interval_s=2.0,
                                            max_streams=max_streams(services.config.server.threads))
    app.register_blueprint(bp)


@bp.before_request
def _guard():
    if request.endpoint in PUBLIC:
        return None
    if access.closed():
        return _closed()
    if access.allowed():
        return None
    if request.endpoint == "ops.page":
        return _login_page("", 401)
    return jsonify(error="log in at /ops or send Authorization: Bearer <IVR_API_TOKEN>"), 401, \
        {"WWW-Authenticate": "Bearer"}


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if request.endpoint != "ops.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def _closed():
    text = "The ops page is closed: set IVR_API_TOKEN (or api.token in config.yaml) and restart."
    if request.endpoint in ("ops.page", "ops.login"):
        return render_template("ops/closed.html", message=text), 503
    return jsonify(error=text), 503


def _login_page(error: str, status: int):
    return render_template("ops/login.html", error=error), status


def script_json(text: str) -> Markup:
    """JSON safe inside <script type="application/json">: no '<', '>' or '&' left raw."""
    return Markup(text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))


@bp.get("")
def page():
    return render_template("ops/page.html", snapshot=script_json(hub().snapshot_json()))


@bp.route("/login", methods=["GET", "POST"])
def login():
    if access.closed():
        return _closed()
    if request.method == "GET":
        return redirect(url_for("ops.page")) if access.allowed() else _login_page("", 200)
    try:
        signed_in = access.log_in(request.form.get("token", ""))
    except access.LoginUnavailable:
        log.error("ops page sign-in failed: Redis unreachable", extra={"remote": request.remote_addr})
        return _login_page("The token is right, but the hotline's Redis cannot be reached to keep "
                           "the login. Try again in a moment (`ivr doctor` says what is wrong).", 503)
    if signed_in:
        log.info("ops page sign-in", extra={"remote": request.remote_addr})
        return redirect(url_for("ops.page"), 303)
    log.warning("ops page sign-in refused: wrong token", extra={"remote": request.remote_addr})
    return _login_page("That token is not right. Use the hotline's IVR_API_TOKEN.", 401)


@bp.post("/logout")
def logout():
    access.log_out()
    return redirect(url_for("ops.login"), 303)


@bp.get("/snapshot.json")
def snapshot_json():
    return Response(hub().snapshot_json(), mimetype="application/json")


@bp.get("/rules.json")
def rules_json():
    router = current_app.extensions["hotline"].router
    if router is None:
        return jsonify(error="routing is not loaded"), 503
    rules = router.rules
    return jsonify(version=rules.version, rules_yaml=mask_phone_numbers(rules.rules_text), agents_yaml=rules.agents_text)


_E164 = re.compile(r"\+\d{6,15}\b")


def mask_phone_numbers(text: str) -> str:
    """The rules file as the page shows it: callers' numbers (the VIP list) masked as in
    records (``+82******5678``). The agents' own numbers in the roster are staff data, shown."""
    from ivr.ops.masking import mask_number

    return _E164.sub(lambda m: mask_number(m.group(0)), text)


@bp.get("/events")
def events():
    h = hub()
    viewer = h.join()
    if viewer is None:
        return jsonify(error=f"this worker already serves {h.max_streams} live streams; the page polls instead"), \
            503, {"Retry-After": "30"}
    try:
        first = h.snapshot_json()
    except Exception:
        h.leave(viewer)
        raise
    return Response(Stream(h, viewer, first, access.login_check()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class Stream:
    """The response body of one viewer's event stream; ``close()`` (called by the server
    when the client goes away, even before the first byte) always lets the viewer go."""

    def __init__(self, hub: Hub, viewer: Viewer, first: str, still_signed_in=None):
        self.hub, self.viewer, self.first = hub, viewer, first
        self.still_signed_in = still_signed_in  # None: a bearer's stream

    def __iter__(self):
        yield b"retry: 3000\n\n" + event("snapshot", self.first)
        deadline = time.monotonic() + MAX_STREAM_S
        checked = time.monotonic()
        while time.monotonic() < deadline:
            if self.still_signed_in is not None and time.monotonic() - checked >= LOGIN_CHECK_S:
                checked = time.monotonic()
                if not self.still_signed_in():
                    return  # signed out (here or on another tab): the page reconnects to the login form
            try:
                message = self.viewer.inbox.get(timeout=HEARTBEAT_S)
            except queue.Empty:
                yield b": keep-alive\n\n"
                continue
            if message is None:
                return
            yield message

    def close(self) -> None:
        self.hub.leave(self.viewer)
