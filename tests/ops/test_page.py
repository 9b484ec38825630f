"""The live ops page against the real app: real Redis, the real router and session store.

Covers who may see it (every route), what its snapshot says, that the event stream
delivers a change, and that a hostile transcript stays text.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import requests

API_TOKEN = "ops-page-token-1234"
ROSTER = """agents:
  - id: ana
    name: Ana Agent
    address: client:ana
    skills: {account_security: 9, payment: 9, product_usage: 9, game_support: 9,
             technical_fault: 9, complaints: 9, general: 9}
  - id: bo
    name: Bo Backup
    address: client:bo
    skills: {general: 1, payment: 2}
"""
HOSTILE = '</script><script>alert(1)</script><img src=x onerror="alert(2)"> & 카드'


@pytest.fixture
def ops(config_file, redis_server, clean_env):
    """The real app (no speech model: the page does not listen) on a local port."""
    from ivr import config as config_mod
    from ivr.app import create_app
    from ivr.keys import Keys
    from ivr.routing.router import Router
    from ivr.services import Services
    from ivr.store import Store, connect
    from ivr.telephony.testserver import serve_in_thread

    folder = config_file.parent
    (folder / "routing" / "agents.yaml").write_text(ROSTER, encoding="utf-8")
    rules = folder / "routing" / "rules.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("heartbeat_timeout_s: 60", "heartbeat_timeout_s: 0"),
                     encoding="utf-8")
    cfg = config_mod.load(config_file, env={"REDIS_URL": redis_server.url, "IVR_API_TOKEN": API_TOKEN,
                                            "TWILIO_AUTH_TOKEN": "twilio-token-for-tests"})
    client = connect(redis_server.url)
    client.flushall()
    keys = Keys(cfg.redis.key_prefix)
    services = Services(config=cfg, store=Store(client, cfg.redis.key_prefix), keys=keys,
                        router=Router.from_config(cfg, client, keys))
    app = create_app(cfg, services)
    base_url, stop = serve_in_thread(app)

    class Ops:
        pass

    o = Ops()
    o.app, o.base, o.redis, o.keys, o.router, o.config, o.services = app, base_url, client, keys, services.router, cfg, services
    o.folder = folder
    yield o
    app.extensions["hotline.ops_hub"].close()
    stop()
    client.close()


def logged_in(o) -> requests.Session:
    s = requests.Session()
    r = s.post(o.base + "/ops/login", data={"token": API_TOKEN}, allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text
    return s


def sessions(o):
    from ivr.telephony.sessions import SessionStore

    return SessionStore(o.redis, o.keys, 600)


# --- access ----------------------------------------------------------------------------

DATA_ROUTES = ["/ops/snapshot.json", "/ops/rules.json", "/ops/events"]


def test_every_ops_route_is_guarded(ops):
    """Each route of the blueprint is in the lists this file checks (a new one must be added)."""
    routes = {r.rule for r in ops.app.url_map.iter_rules() if r.rule.startswith("/ops")}
    assert routes == {"/ops", "/ops/login", "/ops/logout", "/ops/static/<path:filename>", *DATA_ROUTES}


@pytest.mark.parametrize("path", DATA_ROUTES)
def test_data_routes_refuse_without_login(ops, path):
    r = requests.get(ops.base + path, timeout=10, stream=True)
    assert r.status_code == 401
    assert "log in" in r.json()["error"]
    assert "agents" not in r.text


@pytest.mark.parametrize("path", DATA_ROUTES)
def test_data_routes_refuse_a_wrong_bearer_and_accept_the_right_one(ops, path):
    bad = requests.get(ops.base + path, headers={"Authorization": "Bearer " + API_TOKEN + "x"}, timeout=10)
    assert bad.status_code == 401
    good = requests.get(ops.base + path, headers={"Authorization": "Bearer " + API_TOKEN}, timeout=10, stream=True)
    assert good.status_code == 200
    good.close()


def test_page_without_login_shows_the_login_form_and_no_data(ops):
    ops.router.set_status("ana", "available")
    r = requests.get(ops.base + "/ops", timeout=10)
    assert r.status_code == 401
    assert 'name="token"' in r.text and "Ana Agent" not in r.text


def test_wrong_token_is_refused_and_sets_no_cookie(ops):
    s = requests.Session()
    r = s.post(ops.base + "/ops/login", data={"token": "guess"}, allow_redirects=False, timeout=10)
    assert r.status_code == 401 and "not right" in r.text
    assert "Set-Cookie" not in r.headers
    assert s.get(ops.base + "/ops/snapshot.json", timeout=10).status_code == 401
    r = s.post(ops.base + "/ops/login", data={}, allow_redirects=False, timeout=10)
    assert r.status_code == 401


def test_login_sets_a_strict_httponly_cookie_that_opens_every_route(ops):
    s = requests.Session()
    r = s.post(ops.base + "/ops/login", data={"token": API_TOKEN}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"].endswith("/ops")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ops" in cookie
    assert API_TOKEN not in cookie
    page = s.get(ops.base + "/ops", timeout=10)
    assert page.status_code == 200 and 'id="initial-snapshot"' in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    for path in DATA_ROUTES:
        r = s.get(ops.base + path, timeout=10, stream=True)
        assert r.status_code == 200, path
        r.close()


def test_logout_ends_the_session(ops):
    s = logged_in(ops)
    assert s.get(ops.base + "/ops/snapshot.json", timeout=10).status_code == 200
    r = s.post(ops.base + "/ops/logout", allow_redirects=False, timeout=10)
    assert r.status_code == 303
    assert s.get(ops.base + "/ops/snapshot.json", timeout=10).status_code == 401
    assert s.get(ops.base + "/ops", timeout=10).status_code == 401


def test_a_cookie_signed_with_another_key_is_refused(ops):
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface

    forger = Flask("forger")
    forger.secret_key = "not-the-hotline-secret"
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    forged = serializer.dumps({"ops_login_at": time.time()})
    r = requests.get(ops.base + "/ops/snapshot.json", cookies={"ivr_ops": forged}, timeout=10)
    assert r.status_code == 401


@pytest.mark.parametrize("minted, allowed", [(2.0, True), (-3600.0, True), (3600.0, False), (-13 * 3600.0, False)])
def test_a_login_from_a_worker_whose_clock_is_a_little_ahead_is_good(ops, minted, allowed):
    from flask.sessions import SecureCookieSessionInterface

    serializer = SecureCookieSessionInterface().get_signing_serializer(ops.app)
    ops.redis.set(ops.keys.ops_login("L1"), "1", ex=60)
    cookie = serializer.dumps({"ops_login_at": time.time() + minted, "ops_login": "L1"})  # the hotline's own key
    r = requests.get(ops.base + "/ops/snapshot.json", cookies={"ivr_ops": cookie}, timeout=10)
    assert r.status_code == (200 if allowed else 401)


def test_signing_out_refuses_every_copy_of_the_cookie(ops):
    from flask.sessions import SecureCookieSessionInterface

    s = logged_in(ops)
    copy = dict(s.cookies)  # a copy kept elsewhere (another tab, a shared machine, a thief)
    assert requests.get(ops.base + "/ops/snapshot.json", cookies=copy, timeout=10).status_code == 200
    assert s.post(ops.base + "/ops/logout", allow_redirects=False, timeout=10).status_code == 303
    assert requests.get(ops.base + "/ops/snapshot.json", cookies=copy, timeout=10).status_code == 401
    # a well-signed cookie that names no kept login is refused too
    serializer = SecureCookieSessionInterface().get_signing_serializer(ops.app)
    bare = serializer.dumps({"ops_login_at": time.time()})
    assert requests.get(ops.base + "/ops/snapshot.json", cookies={"ivr_ops": bare}, timeout=10).status_code == 401


def test_signing_in_while_redis_is_unreachable_says_so(ops, tmp_path):
    from ivr.store import Store, connect

    real = ops.services.store
    ops.services.store = Store(connect(f"unix://{tmp_path}/no-such-redis.sock"), ops.config.redis.key_prefix)
    try:
        r = requests.post(ops.base + "/ops/login", data={"token": API_TOKEN}, allow_redirects=False, timeout=10)
        assert r.status_code == 503 and "Redis cannot be reached" in r.text and "ivr_ops" not in r.cookies
    finally:
        ops.services.store = real


def test_without_a_configured_token_the_page_is_closed(config_file, redis_server, clean_env):
    from ivr import config as config_mod
    from ivr.app import create_app
    from ivr.keys import Keys
    from ivr.services import Services
    from ivr.store import Store, connect

    cfg = config_mod.load(config_file, env={"REDIS_URL": redis_server.url})
    client = connect(redis_server.url)
    app = create_app(cfg, Services(config=cfg, store=Store(client, "ivr"), keys=Keys("ivr")))
    web = app.test_client()
    assert web.get("/ops").status_code == 503
    assert web.post("/ops/login", data={"token": ""}).status_code == 503
    assert web.get("/ops/snapshot.json", headers={"Authorization": "Bearer "}).status_code == 503
    client.close()


# --- what the page shows --------------------------------------------------------------------

def test_snapshot_reports_agents_queues_calls_figures_and_rules(ops):
    from ivr.ops.records import bump_daily, write_record
    from ivr.routing.router import CallInfo

    ops.router.set_status("ana", "available")
    store = sessions(ops)
    store.create("CAlive1", hotline="ko", language="ko", caller="+821012345678")
    store.update("CAlive1", "listening")
    store.set_partial("CAlive1", "결제가 두 번")
    # A second caller the router cannot place (bo is offline, ana is taken): it queues.
    first = ops.router.route(CallInfo("CAtalk", "payment", "+821011112222", "ko", "ko"))
    assert first.kind == "agent"
    queued = ops.router.route(CallInfo("CAwait", "payment", "+821033334444", "ko", "ko"))
    assert queued.kind == "queued"
    for field, count in {"calls": 10, "answered": 6, "abandoned": 2, "fallback": 3, "fallback_number": 1,
                         "reprompts": 3, "routed_first_utterance": 7}.items():
        bump_daily(ops.redis, ops.keys, field, count)
    for outcome, wait in (("answered", 5), ("answered", 600), ("abandoned", 9)):
        write_record(ops.redis, ops.keys, {"sid": f"CA{wait}", "outcome": outcome, "queue": "billing",
                                           "category": "payment", "wait_s": wait, "caller": "+821055556666"}, 30)

    snap = logged_in(ops).get(ops.base + "/ops/snapshot.json", timeout=10).json()

    agents = {a["id"]: a for a in snap["agents"]}
    assert agents["ana"]["state"] == "reserved" and agents["ana"]["call"] == "CAtalk"
    assert agents["ana"]["since"] and agents["bo"]["state"] == "offline"
    assert snap["agent_counts"]["reserved"] == 1 and snap["agent_counts"]["offline"] == 1
    billing = next(q for q in snap["queues"] if q["name"] == "billing")
    assert billing["waiting"] == 1 and billing["longest_wait_s"] >= 0 and billing["expected_wait_s"] > 0
    assert snap["waiting"] == 1
    (call,) = snap["calls"]
    assert call["sid"] == "CAlive1" and call["state"] == "listening" and call["partial"] == "결제가 두 번"
    assert "+821012345678" not in json.dumps(snap)  # the page never shows a caller's number
    today = snap["today"]
    assert today["calls"] == 10 and today["abandoned_share"] == 0.2 and today["fallback_rate"] == 0.3
    assert today["fallback"] == 3 and today["fallback_number"] == 1
    assert today["reprompt_rate"] == 0.3 and today["routed_first_utterance_share"] == 0.7
    assert today["answered_measured"] == 2 and today["answered_within_target"] == 1
    assert today["answered_within_target_share"] == 0.5
    rules = snap["rules"]
    assert rules["in_force"] == ops.router.rules.version == rules["version"]
    assert rules["loaded_at"] and rules["agents_on_roster"] == 2 and rules["refused"] == ""
    assert {q["name"] for q in rules["queues"]} >= {"billing", "general"}


def test_snapshot_shows_a_refused_rules_edit_and_the_version_still_in_force(ops):
    good = ops.router.rules.version
    roster = ops.folder / "routing" / "agents.yaml"
    roster.write_text(ROSTER.replace("skills: {general: 1, payment: 2}", "skills: {general: 1, paymnt: 2}"),
                      encoding="utf-8")
    ops.router.source.refresh()
    s = logged_in(ops)
    rules = s.get(ops.base + "/ops/snapshot.json", timeout=10).json()["rules"]
    assert "paymnt" in rules["refused"] and "agents.yaml" in rules["refused"] and rules["refused_at"]
    assert rules["in_force"] == good
    texts = s.get(ops.base + "/ops/rules.json", timeout=10).json()
    assert texts["version"] == good and "Ana Agent" in texts["agents_yaml"] and "paymnt" not in texts["agents_yaml"]


def test_the_paused_agent_shows_why(ops):
    from ivr.routing.router import CallInfo

    ops.router.set_status("ana", "available")
    ops.router.route(CallInfo("CAmiss", "general", "+821099990000", "ko", "ko"))
    ops.router.dial_result("CAmiss", "ana", "no-answer")
    snap = logged_in(ops).get(ops.base + "/ops/snapshot.json", timeout=10).json()
    ana = next(a for a in snap["agents"] if a["id"] == "ana")
    assert ana["state"] == "paused" and "missed" in ana["reason"] and ana["until"] and ana["misses"] == 1


# --- live updates ----------------------------------------------------------------------------

class EventReader:
    """Reads server-sent events from a streaming response in a thread."""

    def __init__(self, response):
        self.response = response
        self.events: list[tuple[str, str]] = []
        self.comments = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        kind, data = "message", []
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line is None:
                    continue
                if line == "":
                    if data:
                        self.events.append((kind, "\n".join(data)))
                    kind, data = "message", []
                elif line.startswith(":"):
                    self.comments += 1
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
        except Exception:
            pass

    def wait_for(self, predicate, timeout=15.0):
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for kind, data in self.events[seen:]:
                seen += 1
                if predicate(kind, json.loads(data)):
                    return kind, json.loads(data)
            time.sleep(0.05)
        raise AssertionError(f"no matching event in {timeout} s; got {[k for k, _ in self.events]}")

    def close(self):
        self.response.close()


def open_stream(o, session=None):
    s = session or logged_in(o)
    r = s.get(o.base + "/ops/events", stream=True, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    return EventReader(r)


def test_stream_starts_with_a_snapshot_then_delivers_a_partial_transcript_and_an_agent_change(ops):
    stream = open_stream(ops)
    try:
        kind, first = stream.wait_for(lambda k, d: k == "snapshot")
        assert first["calls"] == []
        store = sessions(ops)
        store.create("CApart", hotline="ko", language="ko")
        store.update("CApart", "listening")
        store.set_partial("CApart", "비밀번호를 잊어")
        stream.wait_for(lambda k, d: k == "delta" and any(x.get("sid") == "CApart" and x.get("partial") == "비밀번호를 잊어"
                                                          for x in d))
        ops.router.set_status("ana", "available")
        stream.wait_for(lambda k, d: k == "delta" and {"type": "agent", "id": "ana"}.items() <= next(
            (x for x in d if x.get("id") == "ana"), {}).items() and any(x.get("state") == "available" for x in d))
        # ... and the periodic snapshot carries the same state.
        stream.wait_for(lambda k, d: k == "snapshot" and any(c["sid"] == "CApart" for c in d["calls"])
                        and any(a["id"] == "ana" and a["state"] == "available" for a in d["agents"]))
    finally:
        stream.close()


def test_viewers_share_one_snapshot_per_interval(ops):
    hub = ops.app.extensions["hotline.ops_hub"]
    s = logged_in(ops)
    streams = [open_stream(ops, s) for _ in range(3)]
    try:
        for st in streams:
            st.wait_for(lambda k, d: k == "snapshot")

        def delivered():
            return sum(1 for st in streams for k, _ in st.events if k == "snapshot")

        built0, delivered0 = len(hub.build_times_ms), delivered()
        time.sleep(8)  # a window of about four intervals
        built, got = len(hub.build_times_ms) - built0, delivered() - delivered0
        # Every build reached all three viewers: one snapshot per interval, not one per viewer.
        assert built >= 1 and got >= 2 * built, (built, got)
    finally:
        for st in streams:
            st.close()


def test_streams_over_the_cap_are_refused_and_a_closed_stream_frees_its_place(ops):
    hub = ops.app.extensions["hotline.ops_hub"]
    s = logged_in(ops)
    streams = [open_stream(ops, s) for _ in range(hub.max_streams)]
    try:
        for st in streams:
            st.wait_for(lambda k, d: k == "snapshot")
        over = s.get(ops.base + "/ops/events", stream=True, timeout=10)
        assert over.status_code == 503 and over.headers["Retry-After"]
        assert "polls" in over.json()["error"]
        streams.pop().close()
        deadline = time.monotonic() + 10
        while hub.streams() >= hub.max_streams:  # the server notices at its next write
            assert time.monotonic() < deadline, "a closed stream kept its place"
            time.sleep(0.1)
        again = open_stream(ops, s)
        streams.append(again)
        again.wait_for(lambda k, d: k == "snapshot")
    finally:
        for st in streams:
            st.close()


def test_an_idle_stream_sends_heartbeat_comments_and_ends_when_the_hub_closes(ops, monkeypatch):
    from ivr.ops import page
    from ivr.ops.hub import Hub

    monkeypatch.setattr(page, "HEARTBEAT_S", 0.05)
    hub = Hub(ops.services)
    viewer = hub.join()
    body = page.Stream(hub, viewer, '{"first":1}')
    chunks = iter(body)
    assert next(chunks).endswith(b'event: snapshot\ndata: {"first":1}\n\n')
    seen = []
    while b": keep-alive\n\n" not in seen and len(seen) < 100:  # whatever else the feed sends meanwhile
        seen.append(next(chunks))
    assert b": keep-alive\n\n" in seen
    hub.close()
    rest = list(chunks)  # the stream ends by itself ...
    assert rest is not None
    body.close()  # ... and closing it lets the viewer go
    assert hub.streams() == 0


# --- escaping ----------------------------------------------------------------------------------

def test_a_hostile_transcript_cannot_break_out_of_the_page(ops):
    store = sessions(ops)
    store.create("CAxss", hotline="ko", language="ko")
    store.update("CAxss", "listening")
    store.set_partial("CAxss", HOSTILE)
    html = logged_in(ops).get(ops.base + "/ops", timeout=10).text
    start = html.index('<script type="application/json" id="initial-snapshot">')
    end = html.index("</script>", start)
    embedded = html[start:end].split(">", 1)[1]
    assert "<" not in embedded and ">" not in embedded and "&" not in embedded.replace("\\u0026", "")
    snap = json.loads(embedded)
    assert snap["calls"][0]["partial"] == HOSTILE  # the browser gets the exact text back
    assert "<img" not in html and "alert(1)</script>" not in html
    import ivr.ops

    # ... and the script that draws it only ever sets text, never markup.
    script = (Path(ivr.ops.__file__).parent / "static" / "ops.js").read_text(encoding="utf-8")
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "document.write" not in script


def test_vip_callers_numbers_are_masked_on_the_page_and_in_the_log_of_a_refused_edit(ops, caplog):
    import logging

    from ivr.logs import JsonFormatter

    rules_file = ops.folder / "routing" / "rules.yaml"
    text = rules_file.read_text(encoding="utf-8")
    rules_file.write_text(text.replace("numbers: []", 'numbers: ["+821099998888"]'), encoding="utf-8")
    ops.router.source.refresh()
    s = logged_in(ops)
    served = s.get(ops.base + "/ops/rules.json", timeout=10).json()["rules_yaml"]
    assert "+821099998888" in ops.router.rules.rules_text  # in force
    assert "99998888" not in served and "+82******8888" in served
    # an edit refused for a number in the wrong form quotes it: masked on the page and in the log
    rules_file.write_text(text.replace("numbers: []", 'numbers: ["010-9999-8888"]'), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        ops.router.source.refresh()
    refused = s.get(ops.base + "/ops/snapshot.json", timeout=10).json()["rules"]["refused"]
    assert refused and "9999" not in refused and "8888" not in refused
    logged = [JsonFormatter().format(r) for r in caplog.records]
    assert any("refused" in line or "rules" in line for line in logged)
    assert not any("9999" in line for line in logged)


def test_a_viewer_dropped_as_stuck_has_its_stream_ended_so_the_page_reconnects(ops, monkeypatch):
    import itertools
    import time

    from ivr.ops import hub as hub_mod, page

    monkeypatch.setattr(page, "HEARTBEAT_S", 0.05)

    h = hub_mod.Hub(ops.services)
    viewer = hub_mod.Viewer()
    h.viewers.add(viewer)
    for _ in range(hub_mod.VIEWER_BACKLOG):
        viewer.inbox.put_nowait(b"old")
    viewer.full_since = time.monotonic() - hub_mod.STUCK_S - 1  # its socket blocked for a minute
    h._broadcast(b"new")
    assert viewer not in h.viewers
    # what it had not read is dropped and its stream ends (EventSource reconnects: a fresh snapshot)
    chunks = list(itertools.islice(page.Stream(h, viewer, "{}"), hub_mod.VIEWER_BACKLOG + 5))
    assert len(chunks) == 1 and chunks[0].startswith(b"retry:")


def test_a_viewer_joining_as_the_idle_pump_exits_still_gets_a_pump(ops, monkeypatch):
    import queue
    import threading
    import time

    from ivr.ops import hub as hub_mod

    monkeypatch.setattr(hub_mod, "IDLE_EXIT_S", 0.3)
    h = hub_mod.Hub(ops.services, interval_s=0.5)
    exiting, real_drop = threading.Event(), hub_mod.Hub._drop

    def slow_drop(pubsub):  # the pump on its way out (closing its subscription takes a moment)
        if pubsub is not None:
            exiting.set()
            time.sleep(0.5)
        return real_drop(pubsub)

    monkeypatch.setattr(hub_mod.Hub, "_drop", staticmethod(slow_drop))
    first = h.join()
    h.leave(first)  # the only viewer goes: the pump idles out
    assert exiting.wait(5)
    late = h.join()  # while the old pump's thread is still alive, leaving
    try:
        assert late.inbox.get(timeout=5).startswith(b"event: snapshot")
    except queue.Empty:
        raise AssertionError("a viewer that joined as the pump left never got a snapshot") from None
    finally:
        h.close()


def test_the_days_answered_tally_starts_over_when_redis_lost_the_records(ops):
    import datetime as dt

    from ivr.ops.gather import DayTally
    from ivr.ops.records import write_record

    day = dt.date.today().isoformat()
    for wait in (5, 600):
        write_record(ops.redis, ops.keys, {"sid": f"CA{wait}", "outcome": "answered", "queue": "billing",
                                           "category": "payment", "wait_s": wait}, 30)
    tally = DayTally()
    assert tally.refresh(ops.redis, ops.keys, ops.router.rules, day)["answered"] == 2
    assert tally.refresh(ops.redis, ops.keys, ops.router.rules, day)["answered"] == 2  # counted once
    ops.redis.flushall()  # restarted without its data: "answered within target 2 of 2" would stay all day
    # a call ends before anyone looks again (the stream's newest entry is newer than the last counted)
    write_record(ops.redis, ops.keys, {"sid": "CAnew", "outcome": "answered", "queue": "billing",
                                       "category": "payment", "wait_s": 1}, 30)
    assert tally.refresh(ops.redis, ops.keys, ops.router.rules, day) == {"answered": 1, "within_target": 1, "wait_s": 1.0}
    ops.redis.flushall()
    assert tally.refresh(ops.redis, ops.keys, ops.router.rules, day)["answered"] == 0


def test_an_open_live_stream_ends_when_its_login_is_signed_out(ops, monkeypatch):
    from ivr.ops import page

    monkeypatch.setattr(page, "LOGIN_CHECK_S", 0.2, raising=False)
    monkeypatch.setattr(page, "HEARTBEAT_S", 0.1)
    s = logged_in(ops)
    stream = open_stream(ops, s)
    try:
        stream.wait_for(lambda k, d: k == "snapshot")
        copy = logged_in(ops)  # another tab of the same person stays signed in
        other = open_stream(ops, copy)
        assert s.post(ops.base + "/ops/logout", allow_redirects=False, timeout=10).status_code == 303
        stream._thread.join(10)
        assert not stream._thread.is_alive()  # the server ended it: EventSource reconnects to a 401
        assert other._thread.is_alive()
        other.close()
    finally:
        stream.close()
