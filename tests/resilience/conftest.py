"""Fixtures for capacity and fault tests: real `ivr serve` processes and a Twilio that misbehaves."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import copy_trained_model

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_URL = "https://hotline.test"
TWILIO_TOKEN = "resilience-twilio-token"
API_TOKEN = "resilience-api-token"
KO = "+8215880000"
SPEECH = ROOT / "tests" / "fixtures" / "speech"


def write_config(folder: Path, *, agents: int = 2, edit=None, rules_edit=None) -> Path:
    """A scratch config (absolute paths, bench agents with every skill) and its own classifier
    file: a copy of the model `make setup` trained on the same data (retrained on load all the
    same if the data or libraries differ), unless the test put its own file there first."""
    from ivr.bench.target import scratch_config

    shutil.copytree(ROOT / "intents", folder / "intents", dirs_exist_ok=True)
    copy_trained_model(folder / "model.pkl")

    def own_files(data):
        data["classifier"]["data_dir"] = str(folder / "intents")
        data["classifier"]["model_path"] = str(folder / "model.pkl")
        if edit:
            edit(data)

    path = scratch_config(ROOT / "config.yaml", folder, agents=agents, edit=own_files)
    if rules_edit is not None:
        import yaml

        rules_path = folder / "rules.yaml"
        rules = yaml.safe_load(rules_path.read_text(encoding="utf-8"))
        rules_edit(rules)
        rules_path.write_text(yaml.safe_dump(rules, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def env_for(redis_url: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "IVR_PUBLIC_URL": PUBLIC_URL,
            "IVR_API_TOKEN": API_TOKEN, "IVR_LOG_LEVEL": "WARNING"}


def load(path: Path, redis_url: str):
    from ivr import config as config_mod

    return config_mod.load(path, env=env_for(redis_url))


def pretrain(path: Path, redis_url: str):
    """Train (or load) the classifier once, so servers started together do not both write it."""
    from ivr.intents.classifier import load_classifier

    return load_classifier(load(path, redis_url))


def api(base_url: str, method: str, path: str, **kw) -> requests.Response:
    headers = kw.pop("headers", {}) | {"Authorization": f"Bearer {API_TOKEN}"}
    return requests.request(method, base_url + path, headers=headers, timeout=10, **kw)


def on_shift(base_url: str, *agent_ids: str) -> None:
    for agent_id in agent_ids:
        resp = api(base_url, "POST", f"/api/agents/{agent_id}/status", json={"status": "available"})
        assert resp.status_code == 200, resp.text


def wait_for(predicate, timeout_s: float = 30.0, every_s: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def standin(connect_to: str, **kw):
    from ivr.telephony.standin import TwilioStandIn

    kw.setdefault("speed", 4.0)
    return TwilioStandIn(PUBLIC_URL, TWILIO_TOKEN, connect_to=connect_to, **kw)


@pytest.fixture
def servers(tmp_path):
    """Factory: ``servers(config_path, redis_url, workers=1)`` → a started ServerProcess (stopped after)."""
    from ivr.bench.target import ServerProcess

    started = []

    def start(config_path: Path, redis_url: str, workers: int = 1, ready: bool = True):
        n = len(started)
        # each server its own metrics folder: `ivr serve` empties it when it starts
        env = env_for(redis_url) | {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"metrics-{n}")}
        server = ServerProcess(config_path, workers=workers, threads=16, env=env, log_path=tmp_path / f"serve-{n}.log")
        started.append(server)
        return server.start(ready=ready)

    yield start
    for server in started:
        server.stop()


class Hotline:
    """The real app in this process (real Redis given by URL, Vosk, classifier, router), served over HTTP."""

    def __init__(self, folder, redis_url, engine=None, *, agents=1, edit=None, rules_edit=None, load_speech=False):
        from ivr.app import create_app
        from ivr.services import build_services
        from ivr.store import Store, connect
        from ivr.telephony.testserver import serve_in_thread

        self.path = write_config(folder, agents=agents, edit=edit, rules_edit=rules_edit)
        self.config = load(self.path, redis_url)
        self.redis = connect(redis_url)
        # the speech model is loaded once per test session (``engine``) unless the test
        # wants to see the real loader at work
        self.services = build_services(self.config, Store(self.redis, self.config.redis.key_prefix),
                                       speech=load_speech)
        if not load_speech:
            self.services.speech = engine
        self.keys = self.services.keys
        self.app = create_app(self.config, self.services)
        self.url, self._stop = serve_in_thread(self.app)

    def session(self, sid: str) -> dict:
        return self.redis.hgetall(self.keys.call(sid))

    def agents(self) -> dict[str, dict]:
        resp = api(self.url, "GET", "/api/agents")
        assert resp.status_code == 200, resp.text
        return {a["id"]: a for a in resp.json()["agents"]}

    def stop(self) -> None:
        self._stop()
        if self.services.router is not None:
            self.services.router.close()


@pytest.fixture
def hotlines(tmp_path, engine, clean_env):
    started = []

    def start(redis_url, **kw):
        h = Hotline(tmp_path / f"h{len(started)}", redis_url, engine, **kw)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop()
