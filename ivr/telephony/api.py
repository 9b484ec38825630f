"""Agent API for calls: look a call up, and correct its category (the feedback loop)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ivr.auth import require_token
from ivr.ops.records import amend_record, find_record
from ivr.telephony.context import context

bp = Blueprint("calls_api", __name__, url_prefix="/api/calls")


def init_app(app) -> None:
    app.register_blueprint(bp)


@bp.get("/<sid>")
@require_token
def get_call(sid: str):
    """A call in progress as the agent needs it (the caller's real number, to call back);
    once it is over, its record, where the number is masked."""
    ctx = context()
    session = ctx.sessions.get(sid)
    if session is not None and session.live:
        body = session.__dict__.copy()
        body.pop("token", None)
        return jsonify(call=body, live=True)
    record = find_record(ctx.redis, ctx.keys, sid, scan=False)
    if record is not None:
        return jsonify(call=record, live=False)
    if session is not None:  # over, its record not written yet: masked already, like the record
        from ivr.ops.masking import mask_number

        body = session.__dict__.copy()
        body.pop("token", None)
        body["caller"] = mask_number(session.caller)
        return jsonify(call=body, live=False)
    return jsonify(error=f"no call {sid}"), 404


@bp.post("/<sid>/category")
@require_token
def correct_category(sid: str):
    """``{"category": "payment"}``: the agent says what the call was really about."""
    ctx = context()
    body = request.get_json(silent=True)
    category = body.get("category") if isinstance(body, dict) else None
    known = _known_categories(ctx)
    if not isinstance(category, str) or not category:
        return jsonify(error='send JSON {"category": C} with C one of ' + ", ".join(sorted(known or ["..."]))), 400
    if known is not None and category not in known:
        return jsonify(error=f"unknown category {category!r}: use one of " + ", ".join(sorted(known))), 400
    session = ctx.sessions.get(sid)
    record = None
    if session is None:
        record = find_record(ctx.redis, ctx.keys, sid, scan=False)
        if record is None:
            return jsonify(error=f"no call {sid}"), 404
    language = session.language if session else record.get("language", "")
    text = session.transcript if session else record.get("transcript", "")
    predicted = session.category if session else record.get("category", "")
    from ivr.intents.feedback import record_correction

    try:
        record_correction(ctx.redis, ctx.keys, sid, language, text, predicted, category)
    except ValueError as exc:  # e.g. the caller said nothing the recognizer understood
        return jsonify(error=f"call {sid}: {exc}; nothing to learn from", sid=sid), 422
    # On the session while there is one (the record written at the hang-up has it; no key is
    # made for a call that just went), and on the record once it is written: rebuilt from the
    # session while it lingers (the late words of a stream are on it too), else amended as stored.
    updated = ctx.sessions.update(sid, corrected_category=category) if session is not None else None
    if updated is not None and updated.state == "ended":
        from ivr.telephony import record as call_record

        call_record.amend(ctx, sid)  # waits for the hang-up's record if it is being written
    elif updated is None:
        record = record or find_record(ctx.redis, ctx.keys, sid, scan=False)
        if record is not None:
            amended = {k: v for k, v in record.items() if k not in ("record_id", "amended_at")}
            amend_record(ctx.redis, ctx.keys, dict(amended, corrected_category=category),
                         ctx.config.calls.retention_days)
    return jsonify(sid=sid, predicted=predicted, corrected=category, stored=True)


def _known_categories(ctx) -> set[str] | None:
    """The categories a correction may name: the model's, or (no model loaded yet, or it
    failed) the taxonomy file's, so a typo is refused either way instead of stored; None
    when neither can be read (a broken taxonomy edit): the correction is kept unchecked, and
    training later drops a label its data does not have."""
    classifier = ctx.services.classifier
    names = set(getattr(classifier, "categories", []) or [])
    if not names:
        from ivr.intents.data import DataError, load_taxonomy

        try:
            names = set(load_taxonomy(ctx.config.path(ctx.config.classifier.data_dir)).names)
        except (DataError, OSError):
            return None
    return names | {"out_of_scope"}
