"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    services = current_app.extensions["hotline"]
    checks: dict[str, str] = {}
    checks["redis"] = "ok" if services.store.ping() else "unreachable"
    for part in ("speech", "classifier", "routing"):
        checks[part] = services.problems.get(part, "ok")
    ready = all(v == "ok" for v in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    classifier = services.classifier
    if classifier is not None:  # which model answers (it is swapped in when retrained)
        body["model"] = {"data_hash": classifier.data_hash[:12], "trained_at": round(classifier.trained_at, 3),
                         "feedback": classifier.feedback_count}
    if services.problems.get("classifier_training"):
        body["classifier_training"] = services.problems["classifier_training"]
    return jsonify(body), (200 if ready else 503)
