"""The hotline's parts, built once per process and handed to the Flask app.

Each part is loaded at start-up, never on a call's path. A part that fails to load is
recorded in ``problems`` (and shown by ``/readyz``); the app still starts, so callers
reach a human through the fallback instead of hearing an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from ivr.config import Config
from ivr.keys import Keys
from ivr.store import Store, open_store

log = logging.getLogger(__name__)


@dataclass
class Services:
    config: Config
    store: Store
    keys: Keys
    speech: Any = None       # ivr.asr.engine.SpeechEngine
    classifier: Any = None   # ivr.intents.classifier.Classifier
    router: Any = None       # ivr.routing.router.Router
    live: Any = None         # ivr.intents.live.LiveClassifier: keeps `classifier` current in a server
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def redis(self):
        return self.store.client

    def close(self) -> None:
        for part in (self.live, self.router, self.speech):
            closer = getattr(part, "close", None)
            if closer:
                closer()
        self.store.close()


def _try(services: Services, name: str, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except Exception as exc:
        services.problems[name] = str(exc) or repr(exc)
        log.error("part failed to load", extra={"part": name, "reason": services.problems[name]})
        return None


def build_services(config: Config, store: Store | None = None, *, speech: bool = True,
                   config_path: str | None = None) -> Services:
    """Load every part. ``speech=False`` skips the speech models (CLI tools that don't listen).

    ``config_path`` (a server: the file ``config`` was read from) keeps the classifier current
    while serving (``ivr.intents.live``): a stale or missing model is retrained in a child
    process instead of before the first request, and new model files are swapped in."""
    store = store or open_store(config)
    services = Services(config=config, store=store, keys=Keys(config.redis.key_prefix))

    if speech:
        from ivr.asr.engine import load_speech

        services.speech = _try(services, "speech", lambda: load_speech(config))

    if config_path is not None:
        from ivr.intents.live import LiveClassifier

        def publish(classifier) -> None:
            services.classifier = classifier

        services.live = _try(services, "classifier",
                             lambda: LiveClassifier(config, config_path, publish, services.problems).start())
    else:
        from ivr.intents.classifier import load_classifier

        services.classifier = _try(services, "classifier", lambda: load_classifier(config))

    from ivr.routing.router import Router

    services.router = _try(services, "routing", lambda: Router.from_config(config, store.client, services.keys))
    return services
