"""Prometheus metrics at ``GET /metrics``.

Events (counted where they happen, through ``CallContext.metric``):
``ivr_calls_total{outcome}``, ``ivr_routing_seconds``, ``ivr_recognition_seconds``,
``ivr_classifier_confidence`` and ``ivr_webhook_errors_total{where}``.

State (read from Redis at scrape time, so every worker reports the same truth):
``ivr_queue_waiting{queue}``, ``ivr_queue_longest_wait_seconds{queue}``,
``ivr_queue_expected_wait_seconds{queue}``, ``ivr_queue_agents_available{queue}``,
``ivr_agents{state}``, ``ivr_calls_in_progress`` and ``ivr_router_up``.

Several gunicorn workers: ``ivr serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` (emptied at
start) before the workers fork; each worker then writes its counters to files there and
a scrape of any worker adds them all up (prometheus-client's multiprocess mode; a dead
worker's files are marked by ``mark_process_dead``). Without the variable (tests,
``flask run``) the metrics live in the process.

Access: open by default, as Prometheus scrapers expect, since nothing here names a
caller (counts, queue names and agent states only). Set ``IVR_METRICS_TOKEN`` to
require ``Authorization: Bearer <token>`` (Prometheus' ``authorization`` scrape option).
"""

from __future__ import annotations

import logging
import os
import re

from prometheus_client import values as _values

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TOKEN_ENV = "IVR_METRICS_TOKEN"

if os.environ.get(MULTIPROC_ENV) and getattr(_values.ValueClass, "__name__", "") != "MmapedValue":
    # prometheus_client was imported before the variable was set: switch to files now,
    # before any metric below is created.
    _values.ValueClass = _values.MultiProcessValue()

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest  # noqa: E402
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client import disable_created_metrics  # noqa: E402

disable_created_metrics()  # the *_created series only add noise to every scrape

log = logging.getLogger(__name__)

CALLS = Counter("ivr_calls", "Finished calls by final outcome", ["outcome"])
ROUTING = Histogram("ivr_routing_seconds", "Time to decide where a classified call goes (router round trips)",
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
RECOGNITION = Histogram("ivr_recognition_seconds",
                        "Speech recognition latency: from the end of the caller's speech to the final text",
                        buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0))
CONFIDENCE = Histogram("ivr_classifier_confidence", "The classifier's confidence in its top category",
                       buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0))
WEBHOOK_ERRORS = Counter("ivr_webhook_errors", "Webhooks answered with the fallback or refused", ["where"])

_LABEL = re.compile(r"[^a-z0-9_:\-]")


def _label(value, default: str = "unknown") -> str:
    text = _LABEL.sub("_", str(value or "").lower())[:48]
    return text or default


# --- what the call flow calls (CallContext.metric) ------------------------------------------

def observe_call_outcome(outcome: str) -> None:
    CALLS.labels(outcome=_label(outcome)).inc()


def observe_routing(seconds: float) -> None:
    ROUTING.observe(max(0.0, float(seconds)))


def observe_recognition(seconds: float) -> None:
    RECOGNITION.observe(max(0.0, float(seconds)))


def observe_confidence(value: float) -> None:
    CONFIDENCE.observe(min(1.0, max(0.0, float(value))))


def count_webhook_error(where: str) -> None:
    WEBHOOK_ERRORS.labels(where=_label(where)).inc()


# --- state at scrape time -----------------------------------------------------------------

AGENT_STATES = ("available", "reserved", "on_call", "wrap_up", "paused", "offline")


def _recognizers(services):
    """This worker's pooled speech recognizers. Made minus retired is how many are alive (each
    holds 150-200 MB once warm); worn-out ones are replaced, so made keeps rising slowly, but
    alive rising after warm-up means calls keep finding none free."""
    speech = services.speech
    if speech is None:  # a process that does not listen (CLI tools)
        return
    family = GaugeMetricFamily("ivr_speech_recognizers", "This worker's speech recognizers: made so far, retired "
                               "so far (worn out, lost or beyond the idle limit), idle in the pool, finishing their "
                               "final pass", labels=["model", "kind"])
    for name, pool in speech.pools.items():
        for kind, n in (("made", pool.created), ("retired", pool.retired), ("idle", pool.idle),
                        ("finishing", pool.finishing)):
            family.add_metric([name, kind], float(n))
    yield family


class StateCollector:
    """Queue and agent gauges from the router's Redis state, read when Prometheus scrapes."""

    def __init__(self, services):
        self.services = services

    def describe(self):
        return []

    def collect(self):
        services = self.services
        up = GaugeMetricFamily("ivr_router_up", "1 when the router could be read for this scrape")
        in_progress = GaugeMetricFamily("ivr_calls_in_progress", "Calls in progress (all workers)")
        try:
            in_progress.add_metric([], float(services.redis.zcard(services.keys.live_calls())))
            yield in_progress
        except Exception as exc:
            log.warning("metrics: live calls not read", extra={"reason": str(exc)})
        yield from _recognizers(services)
        router = services.router
        if router is None:
            up.add_metric([], 0.0)
            yield up
            return
        try:
            queues = router.queues_snapshot()
            agents = router.agents_snapshot()
        except Exception as exc:
            log.warning("metrics: router state not read", extra={"reason": str(exc)})
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        families = {
            "waiting": GaugeMetricFamily("ivr_queue_waiting", "Callers waiting in the queue", labels=["queue"]),
            "longest_wait_s": GaugeMetricFamily("ivr_queue_longest_wait_seconds",
                                                "How long the longest-waiting caller has waited", labels=["queue"]),
            "expected_wait_s": GaugeMetricFamily("ivr_queue_expected_wait_seconds",
                                                 "Expected wait for a caller joining now", labels=["queue"]),
            "agents_available": GaugeMetricFamily("ivr_queue_agents_available",
                                                  "Free agents able to take the queue's calls", labels=["queue"]),
            "agents_staffed": GaugeMetricFamily("ivr_queue_agents_staffed",
                                                "Agents on shift able to take the queue's calls", labels=["queue"]),
        }
        for q in queues:
            for field, family in families.items():
                family.add_metric([str(q.get("name", ""))], float(q.get(field) or 0))
        yield from families.values()
        counts = dict.fromkeys(AGENT_STATES, 0)
        for a in agents:
            state = str(a.get("state") or "unknown")
            counts[state] = counts.get(state, 0) + 1
        by_state = GaugeMetricFamily("ivr_agents", "Agents by state", labels=["state"])
        for state, n in counts.items():
            by_state.add_metric([state], float(n))
        yield by_state


class _Scrape:
    """One scrape: the event metrics (this process, or every worker's files) and the state."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            yield from registry.collect()
        else:
            yield from REGISTRY.collect()
        if self.services is not None:
            yield from StateCollector(self.services).collect()


def exposition(services) -> bytes:
    """The metrics page in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(services))
    return generate_latest(registry)


def init_app(app) -> None:
    """Register ``GET /metrics``."""
    from flask import Response, request

    from ivr.ops.access import same_token

    def metrics():
        token = os.environ.get(TOKEN_ENV, "")
        if token:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not same_token(value.strip(), token):
                return Response("metrics need Authorization: Bearer <IVR_METRICS_TOKEN>\n", status=401,
                                mimetype="text/plain", headers={"WWW-Authenticate": "Bearer"})
        services = app.extensions.get("hotline")
        return Response(exposition(services), content_type=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
