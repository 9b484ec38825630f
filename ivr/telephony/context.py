"""What a webhook needs for one request: the parts, the session store, and safe helpers.

The helpers never raise for a missing or failing part: a classifier or metrics problem
must not turn into a caller hearing an error.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from flask import current_app

from ivr.calls import Session
from ivr.config import Config, Hotline
from ivr.services import Services
from ivr.telephony import twiml
from ivr.telephony.sessions import SessionStore

log = logging.getLogger(__name__)


@dataclass
class CallContext:
    services: Services
    sessions: SessionStore

    @property
    def config(self) -> Config:
        return self.services.config

    @property
    def keys(self):
        return self.services.keys

    @property
    def redis(self):
        return self.services.redis

    @property
    def router(self):
        return self.services.router

    def url(self, path: str) -> str:
        return self.config.server.public_url + path

    def speech_ready(self, hotline: Hotline) -> bool:
        speech = self.services.speech
        try:
            return speech is not None and speech.ready(hotline.model)
        except Exception:
            return False

    def classify(self, session: Session, text: str):
        classifier = self.services.classifier
        if classifier is None:
            return None
        try:
            prediction = classifier.predict(text, session.language)
        except Exception:
            log.exception("classifier failed; the caller goes to the general queue", extra={"call_sid": session.sid})
            return None
        self.metric("observe_confidence", float(prediction.confidence))
        return prediction

    def spoken_name(self, category: str, language: str) -> str:
        try:
            return self.services.classifier.spoken_name(category, language)
        except Exception:
            return category.replace("_", " ")

    def metric(self, name: str, *args) -> None:
        try:
            from ivr.ops import metrics

            getattr(metrics, name)(*args)
        except Exception:  # metrics are never worth a failed call
            log.debug("metric not recorded", extra={"metric": name})

    def stats(self, field: str, by: int = 1) -> None:
        try:
            from ivr.ops.records import bump_daily

            bump_daily(self.redis, self.keys, field, by)
        except Exception:
            try:
                day = dt.date.today().isoformat()
                self.redis.hincrby(self.keys.daily_stats(day), field, by)
            except Exception:
                log.debug("daily stat not recorded", extra={"field": field})


def context() -> CallContext:
    app = current_app
    ctx = app.extensions.get("hotline.telephony")
    services = app.extensions["hotline"]
    if ctx is None or ctx.services is not services:
        ctx = CallContext(services, SessionStore(services.redis, services.keys, services.config.calls.session_ttl_s))
        app.extensions["hotline.telephony"] = ctx
    return ctx


def fallback_twiml(ctx: CallContext, sid: str) -> str:
    """Straight to the configured human number, in the call's language when we know it."""
    hotline = None
    try:
        session = ctx.sessions.get(sid) if sid else None
        hotline = ctx.config.hotline(session.hotline) if session else ctx.config.hotline(ctx.config.default_hotline)
    except Exception:
        hotline = ctx.config.hotline(ctx.config.default_hotline)
    return twiml.transfer(hotline, hotline.prompts.fallback if hotline else "", ctx.config.fallback.dial)
