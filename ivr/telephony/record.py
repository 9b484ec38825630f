"""The call record: what happened on one call, masked, written once when it ends."""

from __future__ import annotations

import logging

from ivr.calls import Session
from ivr.telephony.context import CallContext

log = logging.getLogger(__name__)


def build(session: Session, duration_s: float) -> dict:
    from ivr.ops.masking import mask_number

    wait_s = 0.0
    if session.queued_at:
        wait_s = max(0.0, (session.ended_at if session.state == "ended" else session.updated_at) - session.queued_at)
    return {
        "sid": session.sid,
        "hotline": session.hotline,
        "language": session.language,
        "caller": mask_number(session.caller),
        "started_at": session.started_at,
        "ended_at": session.ended_at,
        "duration_s": duration_s,
        "transcript": session.transcript,
        "earlier_transcripts": session.transcripts,
        "speech": session.speech,
        "category": session.category,
        "confidence": session.confidence,
        "runner_up": session.runner_up,
        "reprompts": session.reprompts,
        "routed_on_first_utterance": session.routed_on_first_utterance,
        "queue": session.queue,
        "wait_s": round(wait_s, 3),
        "agent": session.agent,
        "dial_outcomes": session.dial_outcomes,
        "fallback": session.fallback,
        "outcome": session.outcome,
        "audio_path": session.speech.get("audio_path", ""),
    }


def write(ctx: CallContext, session: Session, duration_s: float) -> None:
    from ivr.ops.records import write_record

    record = build(session, duration_s)
    write_record(ctx.redis, ctx.keys, record, ctx.config.calls.retention_days)
    log.info("call record written", extra={"call_sid": session.sid, "outcome": session.outcome,
                                           "category": session.category, "agent": session.agent})
