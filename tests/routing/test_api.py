"""The agent API over HTTP (Flask test client), on a real Redis."""

from __future__ import annotations

import pytest

from ivr.app import create_app
from ivr.config import load
from ivr.keys import Keys
from ivr.services import Services
from ivr.store import Store, connect

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(build, config_file, redis_url, clean_env):
    def make(token=TOKEN, router="build"):
        cfg = load(config_file, env={"REDIS_URL": redis_url, **({"IVR_API_TOKEN": token} if token else {})})
        r = build() if router == "build" else router
        services = Services(config=cfg, store=Store(connect(redis_url), "t"), keys=Keys("t"),
                            speech=object(), classifier=object(), router=r)
        if r is None:
            services.problems["routing"] = "routing/rules.yaml:3: bad"
        return create_app(cfg, services).test_client(), r
    return make


@pytest.mark.parametrize("method, path", [("get", "/api/agents"), ("post", "/api/agents/ann/status"),
                                          ("post", "/api/agents/ann/heartbeat"), ("get", "/api/queues"),
                                          ("post", "/api/agents/ann/callback-done"), ("get", "/api/callbacks"),
                                          ("get", "/api/calls/CA1"), ("post", "/api/calls/CA1/category")])
def test_every_route_needs_the_bearer_token(api, method, path):
    client, _ = api()
    assert getattr(client, method)(path).status_code == 401
    assert getattr(client, method)(path, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_api_is_closed_with_a_clear_message_when_no_token_is_configured(api):
    client, _ = api(token="")
    response = client.get("/api/agents", headers=AUTH)
    assert response.status_code == 503 and "IVR_API_TOKEN" in response.json["error"]


def test_agents_list_shows_state_and_reason(api):
    client, router = api()
    router.set_status("bob", "offline", "lunch")
    response = client.get("/api/agents", headers=AUTH)
    assert response.status_code == 200
    agents = {a["id"]: a for a in response.json["agents"]}
    assert agents["ann"]["state"] == "available" and agents["ann"]["address"] == "client:ann"
    assert (agents["bob"]["state"], agents["bob"]["reason"]) == ("offline", "lunch")


def test_status_changes_through_the_api(api, mk):
    client, router = api()
    r = client.post("/api/agents/ann/status", json={"status": "offline"}, headers=AUTH)
    assert r.status_code == 200 and r.json["state"] == "offline"
    r = client.post("/api/agents/ann/status", json={"status": "available"}, headers=AUTH)
    assert r.json["state"] == "available"
    router.route(mk.call("CA1", "payment"))
    router.answered("CA1", "ann")
    router.dial_result("CA1", "ann", "completed", 10)
    r = client.post("/api/agents/ann/status", json={"status": "wrap_up_done"}, headers=AUTH)
    assert r.status_code == 200 and r.json["state"] == "available"


def test_status_api_refuses_bad_requests_with_the_right_code(api, mk):
    client, router = api()
    assert client.post("/api/agents/ann/status", json={"status": "sleeping"}, headers=AUTH).status_code == 400
    assert client.post("/api/agents/zed/status", json={"status": "available"}, headers=AUTH).status_code == 404
    router.route(mk.call("CA1", "account_security"))
    r = client.post("/api/agents/cat/status", json={"status": "available"}, headers=AUTH)
    assert r.status_code == 409 and r.json["state"] == "reserved"


def test_heartbeat_keeps_an_agent_present(api, clock):
    client, router = api()
    clock.advance(50)
    assert client.post("/api/agents/ann/heartbeat", headers=AUTH).status_code == 200
    clock.advance(20)
    agents = {a["id"]: a["state"] for a in client.get("/api/agents", headers=AUTH).json["agents"]}
    assert agents["ann"] == "available" and agents["bob"] == "offline"


def test_queues_show_waiting_and_abandoned(api, mk):
    client, router = api()
    router.set_status("cat", "offline")
    router.route(mk.call("CA1", "account_security"))
    router.route(mk.call("CA2", "account_security"))
    router.call_ended("CA2")
    queues = {q["name"]: q for q in client.get("/api/queues", headers=AUTH).json["queues"]}
    assert queues["security"]["waiting"] == 1 and queues["security"]["abandoned_today"] == 1


def test_agent_calls_back_a_caller_through_the_api(api, mk, clock):
    client, router = api()
    for agent in ("ann", "bob", "dan"):
        router.set_status(agent, "offline")
    router.route(mk.call("CA1", "payment", arrived=clock.now))
    clock.advance(301)
    assert router.poll("CA1", caller="+821099998888").callback
    router.call_ended("CA1")
    listed = client.get("/api/callbacks", headers=AUTH).json["callbacks"]
    assert [(c["sid"], c["number"]) for c in listed] == [("CA1", "+821099998888")]
    client.post("/api/agents/ann/status", json={"status": "available"}, headers=AUTH)
    ann = next(a for a in client.get("/api/agents", headers=AUTH).json["agents"] if a["id"] == "ann")
    assert ann["callback"] == {"sid": "CA1", "at": listed[0]["at"], "number": "+821099998888"}
    bad = client.post("/api/agents/ann/callback-done", json={"sid": "CA1", "talk_s": -3}, headers=AUTH)
    assert bad.status_code == 400
    assert client.post("/api/agents/bob/callback-done", json={"sid": "CA1"}, headers=AUTH).status_code == 409
    assert client.post("/api/agents/ann/callback-done", json={"sid": "CA9"}, headers=AUTH).status_code == 404
    done = client.post("/api/agents/ann/callback-done", json={"sid": "CA1", "talk_s": 80}, headers=AUTH)
    assert done.status_code == 200 and done.json["closed"]
    assert client.get("/api/callbacks", headers=AUTH).json["callbacks"] == []
    assert router.agents_snapshot()[0]["state"] == "wrap_up"


def test_api_says_why_when_the_router_did_not_load(api):
    client, _ = api(router=None)
    response = client.get("/api/agents", headers=AUTH)
    assert response.status_code == 503 and "routing/rules.yaml:3: bad" in response.json["error"]


def test_an_agent_logs_in_through_the_api_right_after_redis_lost_everything(api, redis):
    client, router = api()
    redis.flushall()  # Redis restarted without persistence
    r = client.post("/api/agents/ann/status", json={"status": "available"}, headers=AUTH)
    assert r.status_code == 200 and r.json["state"] == "available"
    assert client.post("/api/agents/bob/heartbeat", headers=AUTH).status_code == 200


def test_an_agent_redis_has_no_hash_for_is_not_found_not_a_conflict(api):
    class NoHash:
        def set_status(self, agent_id, status, reason=""):
            return {"ok": False, "state": "unknown", "message": "no such agent on the roster"}

        def heartbeat(self, agent_id):
            return self.set_status(agent_id, "heartbeat")

    client, _ = api(router=NoHash())
    assert client.post("/api/agents/ann/status", json={"status": "available"}, headers=AUTH).status_code == 404
    assert client.post("/api/agents/ann/heartbeat", headers=AUTH).status_code == 404
