"""Twilio's webhooks: the call flow from "the phone rings" to "talking to the right agent".

Every route answers valid TwiML, whatever fails behind it: the blueprint's error handler
turns any exception into a transfer to ``fallback.dial``. Signatures are checked before
any route runs (and before the WebSocket handshake) against ``IVR_PUBLIC_URL``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time

from flask import Blueprint, Response, current_app, request
from flask_sock import Sock

from ivr.calls import Session, after_utterance
from ivr.telephony import api, flow, media, protocol, signature, twiml
from ivr.telephony.context import CallContext, context, fallback_twiml

log = logging.getLogger(__name__)

bp = Blueprint("twilio", __name__, url_prefix="/twilio")
sock = Sock()

REPLAY_TTL_S = 600  # how long a webhook's answer is kept for Twilio's retries


sock.route("/stream", bp=bp)(media.stream)


def init_app(app) -> None:
    # A Media Stream message larger than any Twilio sends is refused while it arrives
    # (close 1009), not buffered whole and then parsed.
    app.config.setdefault("SOCK_SERVER_OPTIONS", {"max_message_size": protocol.MAX_MESSAGE_BYTES})
    app.register_blueprint(bp)
    api.init_app(app)


def xml(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/xml")


@bp.before_request
def check_signature():
    ctx = context()
    websocket = request.endpoint == "twilio.stream"
    if not signature.is_valid(ctx.config, request, websocket=websocket):
        log.warning("refused request with a missing or forged Twilio signature",
                    extra={"path": request.path, "call_sid": request.form.get("CallSid", "") if not websocket else ""})
        ctx.metric("count_webhook_error", request.path.rsplit("/", 1)[-1] + ":forbidden")
        return Response("Forbidden: invalid or missing X-Twilio-Signature. Check TWILIO_AUTH_TOKEN and that "
                        "IVR_PUBLIC_URL is the exact URL Twilio calls.\n", status=403, mimetype="text/plain")
    return None


@bp.errorhandler(Exception)
def on_error(exc: Exception):
    from werkzeug.exceptions import HTTPException

    if isinstance(exc, HTTPException) and exc.code and exc.code < 500 and exc.code != 400:
        return exc
    sid = request.form.get("CallSid", "")
    log.exception("webhook failed; caller sent to the fallback number",
                  extra={"call_sid": sid, "path": request.path})
    try:
        context().metric("count_webhook_error", request.path.rsplit("/", 1)[-1])
    except Exception:  # the metric is not worth a second failure
        pass
    # Not every document may <Dial>: a wait URL may only play and <Leave/> (the <Enqueue>
    # action then reaches the fallback), and the agent's leg and the status callback must
    # never ring the fallback number themselves.
    if request.endpoint == "twilio.wait":
        return xml(twiml.leave())
    if request.endpoint in ("twilio.answered", "twilio.status"):
        return xml(twiml.empty())
    try:
        return xml(fallback_twiml(context(), sid))
    except Exception:  # even our fallback failed: a bare <Dial> still reaches a human
        return xml(twiml.transfer(None, "", current_app.extensions["hotline"].config.fallback.dial))


def _remember(ctx: CallContext, sid: str, key: str, build) -> str:
    """Answer a retried webhook exactly as the first time (no second reservation).

    The first delivery claims the key before it builds the answer, so a duplicate arriving
    while it works (Twilio retrying a slow request, a proxy repeating it) waits for that
    answer instead of routing the call a second time. A claim whose builder died is let
    go (``finally``) or lapses after ``CLAIM_S``; a duplicate that waited ``CLAIM_WAIT_S``
    for nothing builds the answer itself rather than keep the caller in silence."""
    redis_key = ctx.keys.webhook_seen(sid, key)
    deadline = time.monotonic() + CLAIM_WAIT_S
    while True:
        if ctx.redis.set(redis_key, _BUILDING, nx=True, ex=CLAIM_S):
            break
        seen = ctx.redis.get(redis_key)
        if seen is not None and seen != _BUILDING:
            log.info("webhook retry answered from memory", extra={"call_sid": sid, "webhook": key})
            return seen
        if time.monotonic() >= deadline:
            log.warning("webhook's first delivery still unanswered; answering this one",
                        extra={"call_sid": sid, "webhook": key})
            break
        time.sleep(0.02)
    body = None
    try:
        body = build()
    finally:
        if body is None:
            ctx.redis.delete(redis_key)
    ctx.redis.set(redis_key, body, ex=REPLAY_TTL_S)
    return body


_BUILDING = "\x00building"  # the claim's value: never a TwiML body
CLAIM_S = 10  # a claim lapses after this, should its process die before answering
CLAIM_WAIT_S = 5.0  # a duplicate waits this long for the first delivery's answer (Twilio waits 15 s)


def _retry_key(name: str, *parts: str) -> str:
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]
    return f"{name}:{digest}"


def _request_key(name: str) -> str:
    """A retry repeats its parameters exactly, and each agent leg has its own DialCallSid.
    Not the session: answering the first attempt changed it (the agent, the dial count)."""
    form = request.form
    return _retry_key(name, *(f"{k}={v}" for k in sorted(form) for v in form.getlist(k)))


@bp.post("/voice")
def voice():
    ctx = context()
    form = request.form
    sid = form.get("CallSid", "")
    if not sid:
        log.error("voice webhook without CallSid; transferring to fallback")
        return xml(fallback_twiml(ctx, ""))
    hotline = ctx.config.hotline_for(form.get("To"))
    session, created = ctx.sessions.create(
        sid, hotline=hotline.id, language=hotline.language, caller=form.get("From", ""),
        to=form.get("To", ""), token=secrets.token_urlsafe(18),
    )
    if created:
        ctx.stats("calls")
        log.info("call answered", extra={"call_sid": sid, "hotline": hotline.id})
    if not ctx.speech_ready(hotline):
        # No ears for this language: straight to a person rather than a silent robot.
        log.error("speech model not ready; routing without listening", extra={"call_sid": sid, "model": hotline.model})
        return xml(flow.route(ctx, session, "human", say=hotline.prompts.fallback))
    return xml(flow.listen_twiml(ctx, session, hotline, hotline.prompts.greeting))


@bp.post("/listened")
def listened():
    """The <Connect> action: the stream has ended; decide what the caller gets next."""
    ctx = context()
    sid = request.form.get("CallSid", "")
    session = ctx.sessions.get(sid)
    if session is None:
        return xml(fallback_twiml(ctx, sid))
    # The turn is in the action URL (a retry repeats it); calls answered before it was there
    # fall back to the turn the stream stored.
    turn = request.args.get("turn", "") or str(session.speech.get("turn", session.reprompts))
    return xml(_remember(ctx, sid, f"listened:{turn}", lambda: _after_listening(ctx, session)))


def _after_listening(ctx: CallContext, session: Session) -> str:
    hotline = ctx.config.hotline(session.hotline)
    outcome = session.speech_outcome or "stream_lost"
    text = session.transcript
    prediction = None
    if text.strip():
        prediction = ctx.classify(session, text)
    step = after_utterance(session, outcome, text, prediction)
    changes = {}
    if prediction is not None:
        changes = dict(category=prediction.category, confidence=float(prediction.confidence),
                       runner_up=prediction.runner_up or "", runner_up_confidence=float(prediction.runner_up_confidence or 0))
    if step.action == "reprompt":
        first, second = (ctx.spoken_name(t, hotline.language) for t in step.topics)
        session = ctx.sessions.update(session.sid, "understanding", **changes) or session
        ctx.stats("reprompts")
        return flow.listen_twiml(ctx, session, hotline, hotline.prompts.reprompt.format(first=first, second=second),
                                 reprompt=True)
    if step.action == "reprompt_generic":
        session = ctx.sessions.update(session.sid, "understanding", **changes) or session
        ctx.stats("reprompts")
        prompt = hotline.prompts.no_speech if outcome == "no_speech" else hotline.prompts.reprompt_generic
        return flow.listen_twiml(ctx, session, hotline, prompt, reprompt=True)
    if step.action == "fallback_route":
        ctx.stats("fallback")
    first_time = session.reprompts == 0 and step.action == "route"
    session = ctx.sessions.update(session.sid, "understanding", routed_on_first_utterance=first_time, **changes) or session
    if first_time:
        ctx.stats("routed_first_utterance")
    return flow.route(ctx, session, step.category or "out_of_scope", say=hotline.prompts.connecting)


@bp.post("/wait")
def wait():
    """<Enqueue waitUrl>: position and expected wait, or <Leave/> once an agent is assigned."""
    ctx = context()
    sid = request.form.get("CallSid", "")
    session = ctx.sessions.get(sid)
    if session is None:
        return xml(twiml.leave())
    return xml(flow.waiting(ctx, session))


@bp.post("/queued")
def queued():
    """<Enqueue action>: the caller left the queue; dial the assigned agent or fall back."""
    ctx = context()
    form = request.form
    sid = form.get("CallSid", "")
    result = form.get("QueueResult", "")
    session = ctx.sessions.get(sid)
    if session is None:
        return xml(fallback_twiml(ctx, sid))
    if result == "hangup":
        return xml(twiml.empty())  # the status callback cleans up
    key = _retry_key("queued", result, form.get("QueueTime", ""), session.agent, str(len(session.dial_outcomes)))
    return xml(_remember(ctx, sid, key, lambda: flow.after_queue(ctx, session, result)))


@bp.post("/answered")
def answered():
    """<Client/Number/Sip url>: the agent picked up; tell them what the call is about."""
    ctx = context()
    sid = request.args.get("call", "") or request.form.get("ParentCallSid", "")
    agent_id = request.args.get("agent", "")
    session = ctx.sessions.get(sid) if sid else None
    if session is None or session.state == "ended":
        return xml(twiml.say_and_hangup(ctx.config.hotline(ctx.config.default_hotline), ""))
    hotline = ctx.config.hotline(session.hotline)
    return xml(flow.agent_answered(ctx, session, hotline, agent_id))


@bp.post("/dialed")
def dialed():
    """<Dial action>: the agent leg ended: wrap-up, or route again without starting over."""
    ctx = context()
    form = request.form
    sid = form.get("CallSid", "")
    session = ctx.sessions.get(sid)
    if session is None:
        return xml(fallback_twiml(ctx, sid))
    status = form.get("DialCallStatus", "failed")
    if status == "answered":  # Twilio's other word for a dial whose party picked up and talked
        status = "completed"
    key = _request_key("dialed")
    return xml(_remember(ctx, sid, key, lambda: flow.after_dial(
        ctx, session, status, _seconds(form, "DialCallDuration"))))


@bp.post("/status")
def status():
    """Status callback: the call is over; leave nothing behind and write its record."""
    ctx = context()
    form = request.form
    sid = form.get("CallSid", "")
    call_status = form.get("CallStatus", "")
    if sid and call_status in ("completed", "busy", "failed", "no-answer", "canceled"):
        flow.call_over(ctx, sid, call_status, _seconds(form, "CallDuration"))
    return xml(twiml.empty())


def _seconds(form, name: str) -> float:
    """A duration Twilio sends (whole seconds); one that does not parse counts as 0, so the
    call is still wrapped up, released and recorded."""
    raw = form.get(name) or "0"
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        log.warning("webhook parameter is not a duration; counted as 0",
                    extra={"call_sid": form.get("CallSid", ""), "parameter": name, "value": raw[:40]})
        return 0.0
    return value
