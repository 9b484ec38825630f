"""The call record: what happened on one call, masked, written when it ends (and again if a
media stream that outlived the hang-up brings the caller's last words)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

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
        "corrected_category": session.corrected_category,
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
        "recordings": session.recordings,
    }


def replay_command(session: Session) -> str:
    """The `ivr replay` line that plays this call again: every turn's WAV, the number called."""
    names = " ".join(Path(p).name for p in session.recordings)
    return f"ivr replay {names} --to {session.to}" if session.to else f"ivr replay {names}"


def write_sidecar(folder: Path, session: Session, record: dict) -> Path:
    """``<sid>.json`` beside the call's WAVs: its masked record and how to replay it, so a
    misrouted call becomes a regression test by copying these files into ``tests/``.
    Written whole or not at all (temporary file, then rename)."""
    path = Path(folder) / f"{session.sid}.json"
    body = dict(record, recordings=[Path(p).name for p in session.recordings],
                audio_path=Path(record["audio_path"]).name if record.get("audio_path") else "",
                to=session.to, replay=replay_command(session))
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def write(ctx: CallContext, session: Session, duration_s: float) -> None:
    from ivr.ops.records import write_record

    record = build(session, duration_s)
    write_record(ctx.redis, ctx.keys, record, ctx.config.calls.retention_days)
    _write_sidecar(session, record)
    log.info("call record written", extra={"call_sid": session.sid, "outcome": session.outcome,
                                           "category": session.category, "agent": session.agent})


# How long a late stream waits for the hang-up's record to be written before amending it: the
# call is ended already, so the writer is between its update and its write (milliseconds).
AMEND_WAIT_S = 2.0


def amend(ctx: CallContext, sid: str, wait_s: float = AMEND_WAIT_S) -> bool:
    """Write an ended call's record again from its session as it is now; whether it changed.

    For a caller who hung up mid-sentence: the hang-up wrote the record while the media
    stream was still recognising, and the words (and the turn's WAV) reached the session
    after it. The record keeps its duration and its place in the records stream."""
    from ivr.ops.records import amend_record, find_record, sanitize

    deadline = time.monotonic() + wait_s
    while ctx.redis.hget(ctx.keys.call(sid), "recorded") != "1":
        if time.monotonic() >= deadline:
            log.warning("ended call has no record to amend", extra={"call_sid": sid})
            return False
        time.sleep(0.02)
    old = find_record(ctx.redis, ctx.keys, sid, scan=False)
    session = ctx.sessions.get(sid)
    if old is None or session is None:
        return False
    record = build(session, old.get("duration_s", 0.0))
    stored = {k: v for k, v in old.items() if k not in ("record_id", "amended_at")}
    if json.loads(json.dumps(sanitize(record), ensure_ascii=False, default=str)) == stored:
        return False
    if amend_record(ctx.redis, ctx.keys, record, ctx.config.calls.retention_days) is None:
        return False
    _write_sidecar(session, record)
    log.info("call record amended", extra={"call_sid": sid, "outcome": session.outcome})
    return True


def _write_sidecar(session: Session, record: dict) -> None:
    if session.recordings:
        try:
            write_sidecar(Path(session.recordings[-1]).parent, session, record)
        except OSError:  # the record in Redis is what counts; the copy for replay is a convenience
            log.exception("recording's record file not written", extra={"call_sid": session.sid})
