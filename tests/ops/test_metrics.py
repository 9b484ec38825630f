"""GET /metrics: Prometheus families, values that move with real calls, workers adding up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from ivr.ops import metrics, multiproc
from tests.conftest import copy_trained_model

KO = "+8215880000"


def scrape(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def app_client(config_file, redis, redis_url, clean_env, monkeypatch):
    """The real app on the test Redis with the configured rules and roster (no speech)."""
    from ivr import config as config_mod
    from ivr.app import create_app
    from ivr.keys import Keys
    from ivr.routing.router import Router
    from ivr.services import Services
    from ivr.store import Store

    monkeypatch.delenv(metrics.TOKEN_ENV, raising=False)
    monkeypatch.delenv(multiproc.ENV, raising=False)
    cfg = config_mod.load(config_file, env={"REDIS_URL": redis_url})
    keys = Keys(cfg.redis.key_prefix)
    services = Services(config=cfg, store=Store(redis, cfg.redis.key_prefix), keys=keys,
                        router=Router.from_config(cfg, redis, keys))
    app = create_app(cfg, services)
    return app.test_client(), services


def test_families_in_prometheus_text_format(app_client):
    client, services = app_client
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    names = {f.name: f.type for f in text_string_to_metric_families(resp.get_data(as_text=True))}
    for name, kind in [("ivr_calls", "counter"), ("ivr_routing_seconds", "histogram"),
                       ("ivr_recognition_seconds", "histogram"), ("ivr_classifier_confidence", "histogram"),
                       ("ivr_webhook_errors", "counter"), ("ivr_queue_waiting", "gauge"),
                       ("ivr_queue_longest_wait_seconds", "gauge"), ("ivr_queue_expected_wait_seconds", "gauge"),
                       ("ivr_agents", "gauge"), ("ivr_calls_in_progress", "gauge"), ("ivr_router_up", "gauge")]:
        assert names.get(name) == kind, (name, names.get(name))


def test_confidence_buckets_are_tenths(app_client):
    client, _ = app_client
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    les = sorted(float(dict(k[1])["le"]) for k in samples if k[0] == "ivr_classifier_confidence_bucket")
    assert les == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, float("inf")]


def test_observed_events_move_the_numbers(app_client):
    client, _ = app_client
    before = scrape(client.get("/metrics").get_data(as_text=True))
    metrics.observe_call_outcome("answered")
    metrics.observe_call_outcome("answered")
    metrics.observe_call_outcome("abandoned")
    metrics.observe_routing(0.004)
    metrics.observe_recognition(0.42)
    metrics.observe_confidence(0.73)
    metrics.observe_confidence(7)  # clamped into [0, 1], never a crash
    metrics.count_webhook_error("voice")
    metrics.count_webhook_error("gather/../<script>")  # a label stays a short safe word
    after = scrape(client.get("/metrics").get_data(as_text=True))

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("ivr_calls_total", outcome="answered") == 2
    assert delta("ivr_calls_total", outcome="abandoned") == 1
    assert delta("ivr_routing_seconds_count") == 1
    assert delta("ivr_routing_seconds_bucket", le="0.005") == 1 and delta("ivr_routing_seconds_bucket", le="0.0025") == 0
    assert delta("ivr_recognition_seconds_bucket", le="0.5") == 1 and delta("ivr_recognition_seconds_bucket", le="0.3") == 0
    assert delta("ivr_classifier_confidence_bucket", le="0.8") == 1 and delta("ivr_classifier_confidence_bucket", le="0.7") == 0
    assert delta("ivr_classifier_confidence_bucket", le="1.0") == 2
    assert delta("ivr_webhook_errors_total", where="voice") == 1
    assert delta("ivr_webhook_errors_total", where="gather_____script_") == 1


def test_agents_and_queues_come_from_redis_at_scrape_time(app_client):
    client, services = app_client
    roster = [a.id for a in services.router.rules.roster.agents]
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    assert value(samples, "ivr_router_up") == 1
    assert value(samples, "ivr_agents", state="offline") == len(roster)
    assert value(samples, "ivr_agents", state="available") == 0
    for queue in services.router.rules.rules.queues:
        assert ("ivr_queue_waiting", (("queue", queue),)) in samples
    # another process (a worker, the agents API) changes Redis: the next scrape shows it
    services.router.set_status(roster[0], "available")
    services.router.set_status(roster[1], "available")
    services.redis.zadd(services.keys.live_calls(), {"CAlive1": time.time(), "CAlive2": time.time()})
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    assert value(samples, "ivr_agents", state="available") == 2
    assert value(samples, "ivr_agents", state="offline") == len(roster) - 2
    assert value(samples, "ivr_calls_in_progress") == 2


def test_router_missing_still_serves_the_event_metrics(app_client):
    client, services = app_client
    services.router = None
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    assert value(samples, "ivr_router_up") == 0
    assert not any(k[0] == "ivr_agents" for k in samples)


def test_optional_bearer_token(app_client, monkeypatch):
    client, _ = app_client
    monkeypatch.setenv(metrics.TOKEN_ENV, "scrape-secret-1")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    resp = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-1"})
    assert resp.status_code == 200 and b"# TYPE ivr_calls_total counter" in resp.data


def test_worker_processes_add_up(app_client, tmp_path, monkeypatch):
    """Two processes count into the multiprocess folder; a scrape anywhere sees the sum."""
    client, _ = app_client
    monkeypatch.setenv(multiproc.ENV, "")  # whatever prepare() sets is undone after the test
    folder = multiproc.prepare(tmp_path / "prom")
    assert os.environ[multiproc.ENV] == str(folder)
    script = textwrap.dedent("""
        import sys
        from ivr.ops import metrics
        for _ in range(int(sys.argv[1])):
            metrics.observe_call_outcome("answered")
            metrics.observe_confidence(0.95)
        metrics.count_webhook_error("voice")
    """)
    for n in (3, 4):
        done = subprocess.run([sys.executable, "-c", script, str(n)], env=dict(os.environ), timeout=60,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert len(list(folder.glob("counter_*.db"))) == 2
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    assert value(samples, "ivr_calls_total", outcome="answered") == 7
    assert value(samples, "ivr_classifier_confidence_count") == 7
    assert value(samples, "ivr_webhook_errors_total", where="voice") == 2
    assert value(samples, "ivr_router_up") == 1  # the state gauges come along
    multiproc.worker_exited(os.getpid() + 10**6)  # a dead worker's pid: harmless
    # a new server start empties the folder
    multiproc.prepare(folder)
    assert not list(folder.glob("*.db"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ivr_serve_with_two_workers_reports_one_truth(config_file, redis, redis_url, clean_env, tmp_path):
    """`ivr serve --workers 2`: refused webhooks counted by whichever worker took them add up."""
    port = free_port()
    env = dict(os.environ, REDIS_URL=redis_url, TWILIO_AUTH_TOKEN="tw-secret-token",
               IVR_PUBLIC_URL=f"http://127.0.0.1:{port}", IVR_LOG_LEVEL="WARNING")
    env.pop(multiproc.ENV, None)
    env.pop(metrics.TOKEN_ENV, None)
    log_file = tmp_path / "serve.log"  # a file, not a pipe: a full pipe would stall the workers
    # two workers training at once on a busy machine can take minutes
    copy_trained_model(config_file.parent / "var" / "intents" / "model.pkl")
    with open(log_file, "w") as log_out:
        server = subprocess.Popen([sys.executable, "-m", "ivr", "--config", str(config_file), "serve",
                                   "--port", str(port), "--workers", "2", "--threads", "4"],
                                  env=env, stdout=log_out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        prom = config_file.parent / "var" / "prometheus"
        while True:  # both workers up: each has written its histogram file and one answers
            try:
                if len(list(prom.glob("histogram_*.db"))) >= 2 and \
                        requests.get(base + "/metrics", timeout=10).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or a worker still loading
                pass
            assert server.poll() is None, log_file.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.5)
        sent = 0
        # unsigned webhooks: refused (403) and counted by whichever worker took the connection;
        # keep sending until both workers have counted some
        while len(list(prom.glob("counter_*.db"))) < 2 or sent < 20:
            assert sent < 400, "one worker took every connection"
            with requests.Session() as s:  # a new connection each time
                assert s.post(base + "/twilio/voice", data={"CallSid": "CAx"}, timeout=30).status_code == 403
            sent += 1
        readings = [value(scrape(requests.get(base + "/metrics", timeout=30).text),
                          "ivr_webhook_errors_total", where="voice:forbidden") for _ in range(6)]
        assert readings == [sent] * 6, readings
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.mark.slow
def test_a_real_call_moves_the_metrics(live_hotline):
    """Scrape the served app before and after a call played by the Twilio stand-in."""
    h = live_hotline()
    h.available("minji", "jihoon")
    before = scrape(requests.get(h.base_url + "/metrics", timeout=10).text)
    assert value(before, "ivr_agents", state="available") == 2
    wav = h.fixtures / "ko_payment.wav"
    trace = h.standin().place_call([wav, wav], to=KO, agent_behaviour="yes:2")
    assert trace.ok, trace.render()
    after = scrape(requests.get(h.base_url + "/metrics", timeout=10).text)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    outcomes = {dict(k[1])["outcome"]: v - value(before, k[0], **dict(k[1]))
                for k, v in after.items() if k[0] == "ivr_calls_total"}
    assert sum(outcomes.values()) == 1, outcomes
    assert delta("ivr_recognition_seconds_count") >= 1
    assert delta("ivr_classifier_confidence_count") >= 1
    assert trace.outcome.startswith("talked to"), trace.render()
    assert delta("ivr_routing_seconds_count") >= 1
    assert value(after, "ivr_agents", state="available") == 1  # the agent who took it is wrapping up
    assert value(after, "ivr_agents", state="wrap_up") == 1
    assert value(after, "ivr_calls_in_progress") == 0
