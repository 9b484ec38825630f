"""The call flow's steps after listening: route, queue, dial, re-route, and close the call.

Each function takes the request's :class:`CallContext` and the session, talks to the
router, moves the session on, and returns the TwiML the caller gets next.
"""

from __future__ import annotations

import logging
import math
import time

from ivr.calls import Session
from ivr.config import Hotline
from ivr.routing.rules import AGENT_RING_S
from ivr.telephony import twiml
from ivr.telephony.context import CallContext, fallback_twiml

log = logging.getLogger(__name__)

WAIT_PAUSE_S = 4  # how often a queued caller's line checks for an assigned agent
ENDED_GRACE_S = 600  # an ended call's session lingers this long, for retried status callbacks


def listen_twiml(ctx: CallContext, session: Session, hotline: Hotline, prompt: str, reprompt: bool = False) -> str:
    changes = {"listen_started_at": time.time(), "speech_outcome": "", "partial": ""}
    turn = session.reprompts
    if reprompt:
        turn = changes["reprompts"] = session.reprompts + 1
        if session.transcript:
            changes["transcripts"] = session.transcripts + [session.transcript]
        # this turn's words are its own: a turn whose stream never came has heard nothing,
        # not the first turn's unsure words again (they would route the call as if confirmed)
        changes["transcript"] = ""
    ctx.sessions.update(session.sid, "listening", **changes)
    return twiml.listen(
        hotline, prompt,
        stream_url=ctx.config.server.stream_base + "/twilio/stream",
        # The turn names this listening in the action URL: a retry of it is answered from
        # memory, and a turn whose stream stored nothing is still a new turn.
        action_url=ctx.url(f"/twilio/listened?turn={turn}"),
        params={"token": session.token, "hotline": hotline.id},
    )


def _call_info(session: Session, category: str):
    from ivr.routing.router import CallInfo

    return CallInfo(sid=session.sid, category=category, caller=session.caller, hotline=session.hotline,
                    language=session.language, arrived_at=session.started_at)


def route(ctx: CallContext, session: Session, category: str, say: str = "") -> str:
    """Ask the router for an agent; answer <Dial>, <Enqueue>, closed, or the fallback."""
    if ctx.router is None:
        log.error("router not available; fallback number", extra={"call_sid": session.sid})
        return fallback_twiml(ctx, session.sid)
    started = time.perf_counter()
    decision = ctx.router.route(_call_info(session, category))
    ctx.metric("observe_routing", time.perf_counter() - started)
    session = ctx.sessions.update(session.sid, "routing", category=session.category or category) or session
    return apply_decision(ctx, session, decision, say)


def apply_decision(ctx: CallContext, session: Session, decision, say: str = "") -> str:
    hotline = ctx.config.hotline(session.hotline)
    if decision.kind == "agent" and decision.agent is not None:
        return dial_agent(ctx, session, hotline, decision, say)
    if decision.kind == "queued":
        ctx.sessions.update(session.sid, "queued", queue=decision.queue, queued_at=session.queued_at or time.time())
        return twiml.enqueue(hotline, say, decision.queue or "general",
                             wait_url=ctx.url("/twilio/wait"), action_url=ctx.url("/twilio/queued"))
    if decision.kind == "closed":
        # Tell the caller first what happens next and how long it takes.
        message = decision.message or hotline.prompts.after_hours
        if decision.fallback_number:
            ctx.sessions.update(session.sid, "routing", fallback="closed", queue=decision.queue or "")
            return twiml.transfer(hotline, message, decision.fallback_number)
        ctx.sessions.update(session.sid, "ended", outcome="after_hours", queue=decision.queue or "")
        return twiml.say_and_hangup(hotline, message + " " + hotline.prompts.goodbye)
    number = getattr(decision, "fallback_number", None) or ctx.config.fallback.dial
    ctx.sessions.update(session.sid, "routing", fallback=decision.kind, queue=decision.queue or "")
    ctx.stats("fallback_number")
    return twiml.transfer(hotline, decision.message or hotline.prompts.fallback, number)


def dial_agent(ctx: CallContext, session: Session, hotline: Hotline, decision, say: str = "") -> str:
    agent = decision.agent
    ctx.sessions.update(session.sid, "connecting", agent=agent.id, agent_address=agent.address,
                        queue=decision.queue or session.queue)
    answer_url = ctx.url(f"/twilio/answered?call={session.sid}&agent={agent.id}")
    return twiml.dial(hotline, say, agent.address, action_url=ctx.url("/twilio/dialed"),
                      answer_url=answer_url, timeout_s=AGENT_RING_S, caller_id=session.to or None)


def waiting(ctx: CallContext, session: Session) -> str:
    hotline = ctx.config.hotline(session.hotline)
    if session.state != "queued" or ctx.router is None:
        return twiml.leave()
    decision = ctx.router.poll(session.sid, caller=session.caller)
    if decision.kind == "agent" and decision.agent is not None:
        ctx.sessions.update(session.sid, "connecting", agent=decision.agent.id, agent_address=decision.agent.address)
        return twiml.leave()
    if decision.kind == "queued":
        minutes = max(1, math.ceil((decision.expected_wait_s or 60) / 60))
        say = hotline.prompts.queued.format(position=decision.position or 1, minutes=minutes)
        return twiml.wait_message(hotline, say, WAIT_PAUSE_S)
    # max wait passed (callback or fallback number): leave; the <Enqueue> action says what's next
    if getattr(decision, "callback", False):
        ctx.sessions.update(session.sid, "queued", fallback="callback", agent_address="",
                            callback_message=decision.message or "")
    else:
        ctx.sessions.update(session.sid, "queued", fallback=decision.kind,
                            agent_address=getattr(decision, "fallback_number", "") or "")
    return twiml.leave()


def after_queue(ctx: CallContext, session: Session, result: str) -> str:
    hotline = ctx.config.hotline(session.hotline)
    if session.state == "connecting" and session.agent_address:
        from types import SimpleNamespace

        decision = SimpleNamespace(agent=SimpleNamespace(id=session.agent, address=session.agent_address),
                                   queue=session.queue)
        return dial_agent(ctx, session, hotline, decision, hotline.prompts.connecting)
    if session.fallback == "callback":
        # The caller keeps their place; tell them what happens next and when, then hang up.
        ctx.sessions.update(session.sid, "ended", outcome="callback_requested")
        message = session.callback_message or hotline.prompts.callback
        return twiml.say_and_hangup(hotline, message + " " + hotline.prompts.goodbye)
    if session.fallback:
        number = session.agent_address or ctx.config.fallback.dial
        ctx.sessions.update(session.sid, "routing", agent_address="")
        ctx.stats("fallback_number")
        return twiml.transfer(hotline, hotline.prompts.fallback, number)
    log.warning("caller left the queue without an agent", extra={"call_sid": session.sid, "queue_result": result})
    return fallback_twiml(ctx, session.sid)


def agent_answered(ctx: CallContext, session: Session, hotline: Hotline, agent_id: str) -> str:
    if ctx.router is not None and agent_id and not ctx.router.answered(session.sid, agent_id):
        # By the router's books another agent is on this call, it ended, or this agent was
        # not free: the caller is with this one now (in this dial), so connect them, and say
        # so for ops to look into.
        log.warning("agent answered a call the router does not give them",
                    extra={"call_sid": session.sid, "agent": agent_id})
    ctx.sessions.update(session.sid, "connected", agent=agent_id or session.agent)
    spoken = ctx.spoken_name(session.category, hotline.language) if session.category else ""
    return twiml.agent_whisper(hotline, spoken)


def after_dial(ctx: CallContext, session: Session, status: str, duration_s: float) -> str:
    hotline = ctx.config.hotline(session.hotline)
    outcomes = session.dial_outcomes + [{"agent": session.agent, "status": status, "duration_s": duration_s}]
    decision = None
    if ctx.router is not None and session.agent:
        decision = ctx.router.dial_result(session.sid, session.agent, status, duration_s)
    if status == "completed":
        ctx.sessions.update(session.sid, "connected", dial_outcomes=outcomes, outcome="answered")
        return twiml.say_and_hangup(hotline, hotline.prompts.goodbye)
    log.info("agent did not take the call; routing again",
             extra={"call_sid": session.sid, "agent": session.agent, "dial_status": status})
    session = ctx.sessions.update(session.sid, "routing", dial_outcomes=outcomes, agent="", agent_address="") or session
    if decision is None:
        return fallback_twiml(ctx, session.sid)
    return apply_decision(ctx, session, decision, hotline.prompts.connecting)


def call_over(ctx: CallContext, sid: str, call_status: str, duration_s: float) -> None:
    session = ctx.sessions.get(sid)
    if ctx.router is not None:
        ctx.router.call_ended(sid)
    if session is None or ctx.redis.hget(ctx.keys.call(sid), "recorded") == "1":
        return  # unknown call, or a retried callback: the record is written once
    outcome = session.outcome or {
        "listening": "hung_up_while_listening",
        "greeting": "hung_up_at_greeting",
        "understanding": "hung_up_while_listening",
        "routing": "hung_up_while_routing",
        "queued": "abandoned",
        "connecting": "abandoned_while_ringing",
        "connected": "answered",
    }.get(session.state, call_status)
    session = ctx.sessions.update(sid, "ended", outcome=outcome) or session
    if outcome == "abandoned":
        ctx.stats("abandoned")
    if outcome == "answered":
        ctx.stats("answered")
    ctx.metric("observe_call_outcome", outcome)
    from ivr.telephony import record

    record.write(ctx, session, duration_s)
    # The record is the call's memory now: keep the session only long enough to answer
    # Twilio's retries of this callback, then nothing of the call is left in Redis.
    pipe = ctx.redis.pipeline(transaction=True)
    pipe.hset(ctx.keys.call(sid), "recorded", "1")
    pipe.expire(ctx.keys.call(sid), ENDED_GRACE_S)
    pipe.expire(ctx.keys.call_events(sid), ENDED_GRACE_S)
    pipe.zrem(ctx.keys.live_calls(), sid)
    pipe.execute()
