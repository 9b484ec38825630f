"""The agent API: agents' status and heartbeats, and the state of agents and queues (JSON).

Every route needs ``Authorization: Bearer <api.token>`` (401 without or with a wrong
token, 503 when no token is configured).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from ivr.auth import require_token

bp = Blueprint("routing_api", __name__, url_prefix="/api")

# by how the router's message starts: "no agent 'x' on the roster" (the rules), "no such agent
# on the roster" (Redis has no hash for the id, even after indexing the roster again)
_CODES = {"no agent": 404, "no such agent": 404, "status must be": 400}


def _router():
    services = current_app.extensions["hotline"]
    router = services.router
    if router is None:
        reason = services.problems.get("routing", "the router did not load")
        return None, (jsonify(error=f"routing is unavailable: {reason}; run `ivr rules check` and `ivr doctor`"), 503)
    return router, None


@bp.get("/agents")
@require_token
def agents():
    router, failed = _router()
    if failed:
        return failed
    return jsonify(agents=router.agents_snapshot())


@bp.post("/agents/<agent_id>/status")
@require_token
def status(agent_id: str):
    router, failed = _router()
    if failed:
        return failed
    body = request.get_json(silent=True) or {}
    wanted = body.get("status") if isinstance(body, dict) else None
    if wanted not in ("available", "offline", "wrap_up_done"):
        return jsonify(error='send JSON {"status": "available" | "offline" | "wrap_up_done"}'), 400
    reason = str(body.get("reason") or "logged out")[:200]
    result = router.set_status(agent_id, wanted, reason)
    return _answer(agent_id, result)


@bp.post("/agents/<agent_id>/heartbeat")
@require_token
def heartbeat(agent_id: str):
    router, failed = _router()
    if failed:
        return failed
    return _answer(agent_id, router.heartbeat(agent_id))


@bp.post("/agents/<agent_id>/callback-done")
@require_token
def callback_done(agent_id: str):
    """``{"sid": CALL, "talk_s": 95, "reached": true}``: the agent called back the caller of a
    callback request offered to them (``callback`` in ``GET /api/agents``); they wrap up."""
    router, failed = _router()
    if failed:
        return failed
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    sid, talk = body.get("sid"), body.get("talk_s", 0)
    if not isinstance(sid, str) or not sid or not isinstance(talk, (int, float)) or isinstance(talk, bool) or talk < 0:
        return jsonify(error='send JSON {"sid": CALL_SID, "talk_s": SECONDS, "reached": true|false}'), 400
    result = router.callback_done(sid, agent_id, talk, bool(body.get("reached", True)))
    if result["ok"]:
        return jsonify(id=agent_id, sid=sid, closed=True)
    code = 404 if result["message"].startswith(("no agent", "no callback")) else 409
    return jsonify(error=result["message"], id=agent_id, sid=sid), code


@bp.get("/callbacks")
@require_token
def callbacks():
    """Open callback requests, oldest first, with the number to call back."""
    router, failed = _router()
    if failed:
        return failed
    rows = [{"sid": sid, **value} for sid, value in router.callback_requests().items()]
    return jsonify(callbacks=sorted(rows, key=lambda r: float(r.get("at") or 0)))


@bp.get("/queues")
@require_token
def queues():
    router, failed = _router()
    if failed:
        return failed
    return jsonify(queues=router.queues_snapshot())


def _answer(agent_id: str, result: dict):
    if result["ok"]:
        return jsonify(id=agent_id, state=result["state"], message=result["message"])
    code = next((c for prefix, c in _CODES.items() if result["message"].startswith(prefix)), 409)
    return jsonify(error=result["message"], id=agent_id, state=result["state"]), code


def init_app(app) -> None:
    """Register the agent API on the app."""
    app.register_blueprint(bp)
