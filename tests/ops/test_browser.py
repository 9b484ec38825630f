"""The live ops page in headless Chromium while replayed calls flow through the real hotline.

Debian's ``chromium`` is driven over the Chrome DevTools Protocol by :mod:`ivr.ops.cdp`
(``websocket-client``, no WebDriver). The test signs in through the form, then watches
the page's DOM: the agent changes state, a call appears with what the recognizer heard, the queue grows
when a second caller waits and shrinks when the agent is free again. It saves a
screenshot (to the test's temporary folder; ``OPS_SCREENSHOT=tests/ops/ops-page.png`` refreshes the README's picture).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from ivr.ops.cdp import Browser, find_chromium

KO = "+8215880000"
SKILLS = "{account_security: 9, payment: 9, product_usage: 9, game_support: 9, technical_fault: 9, complaints: 9, general: 9}"
# Minji takes every call; the others' skills serve no queue, so they only dress the page.
ROSTER = f"""agents:
  - id: minji
    name: Kim Minji
    address: client:minji
    skills: {SKILLS}
  - id: jihoon
    name: Lee Jihoon
    address: client:jihoon
    skills: {{complaints: 1}}
  - id: seoyeon
    name: Park Seoyeon
    address: client:seoyeon
    skills: {{complaints: 1}}
  - id: dohyun
    name: Choi Dohyun
    address: sip:dohyun@pbx.example.com
    skills: {{complaints: 1}}
  - id: yuna
    name: Jung Yuna
    address: client:yuna
    skills: {{complaints: 1}}
  - id: wei
    name: Wang Wei
    address: client:wei
    skills: {{complaints: 1}}
"""

pytestmark = [pytest.mark.browser, pytest.mark.slow]


# --- the test ------------------------------------------------------------------------------

@pytest.fixture
def chromium(tmp_path):
    binary = find_chromium()
    if binary is None:
        pytest.skip("Debian's chromium is not installed (`make browser` installs it when run as root "
                    "with apt-get); the ops page browser test needs it")
    browser = Browser(binary, tmp_path / "chromium-profile")
    yield browser
    browser.close()


def agent_state(b: Browser, agent_id: str) -> str | None:
    return b.js(f"(document.querySelector('#agents .agent[data-id=\"{agent_id}\"]') || {{dataset: {{}}}}).dataset.state")


def waiting_shown(b: Browser) -> int:
    return b.js("[...document.querySelectorAll('#queues tbody td.waiting')]"
                ".reduce((n, td) => n + (parseInt(td.textContent, 10) || 0), 0)")


def calls_shown(b: Browser) -> dict[str, dict]:
    return {row["sid"]: row for row in b.js(
        "[...document.querySelectorAll('#calls tbody tr')].map(tr => ({sid: tr.dataset.sid, "
        "said: tr.querySelector('.said').textContent, heard: !tr.querySelector('.said').classList.contains('none'), "
        "step: tr.querySelector('.step').dataset.state}))")}


class Watcher:
    """Samples the page every 100 ms in the test's thread and remembers what it saw."""

    def __init__(self, b: Browser):
        self.b = b
        self.states: list[str] = []
        self.texts: dict[str, set[str]] = {}
        self.max_waiting = 0

    def sample(self) -> None:
        state = agent_state(self.b, "minji")
        if state and (not self.states or self.states[-1] != state):
            self.states.append(state)
        for sid, row in calls_shown(self.b).items():
            if row["heard"]:
                self.texts.setdefault(sid, set()).add(row["said"])
        self.max_waiting = max(self.max_waiting, waiting_shown(self.b))

    def until(self, check, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sample()
            value = check()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"the page never showed {what} within {timeout} s; minji went {self.states}, "
                             f"calls {calls_shown(self.b)}, waiting {waiting_shown(self.b)}")


def test_ops_page_follows_replayed_calls(live_hotline, chromium, tmp_path):
    h = live_hotline(agents=lambda _: ROSTER)
    h.available("minji", "jihoon", "yuna", "seoyeon")
    h.router.set_status("seoyeon", "offline", reason="on a break")
    b = chromium

    # Signing in: the page first shows only the form.
    b.goto(h.base_url + "/ops")
    b.wait_for("!!document.getElementById('login-form')", what="the login form")
    assert b.js("document.querySelectorAll('#agents').length") == 0
    b.js(f"document.getElementById('token').value = {json.dumps(h.api_token)};"
         "document.getElementById('login-form').submit(); true")
    b.wait_for("document.querySelectorAll('#agents .agent').length === 6", what="six agents")
    b.wait_for("document.getElementById('status').dataset.mode === 'live'", what="the live stream")
    assert agent_state(b, "minji") == "available" and agent_state(b, "seoyeon") == "offline"
    assert "on a break" in b.js("document.querySelector('.agent[data-id=\"seoyeon\"] .agent-why').textContent")
    watch = Watcher(b)

    standin = h.standin()
    traces: dict[str, object] = {}

    def call(name, wav, behaviour, caller):
        traces[name] = standin.place_call([wav, wav], to=KO, agent_behaviour=behaviour, from_=caller)

    first = threading.Thread(target=call, args=("first", h.fixtures / "ko_payment.wav", "yes:60", "+821011110000"))
    first.start()
    # The agent changes state on the page, and the call shows what the recognizer heard.
    watch.until(lambda: agent_state(b, "minji") in ("reserved", "on_call"), 60, "Minji taking the first call")
    heard = watch.until(lambda: [sid for sid, row in calls_shown(b).items() if row["heard"] and row["said"].strip()],
                        30, "the first call with its transcript")
    first_sid = heard[0]
    watch.until(lambda: agent_state(b, "minji") == "on_call", 30, "Minji on the call")

    # A second caller has nobody free: the queue grows.
    second = threading.Thread(target=call, args=("second", h.fixtures / "ko_game.wav", "yes:4", "+821022220000"))
    second.start()
    watch.until(lambda: waiting_shown(b) >= 1, 60, "a caller waiting in a queue")
    watch.until(lambda: any(r["step"] == "queued" for r in calls_shown(b).values()), 10, "the waiting call's row")
    time.sleep(1.5)  # let the clocks tick once more before the picture
    shot = Path(os.environ.get("OPS_SCREENSHOT", tmp_path / "ops-page.png"))
    shot.parent.mkdir(parents=True, exist_ok=True)
    b.screenshot(shot)

    # The first call ends: wrap-up; the agent says they are done; the waiting caller is put through.
    watch.until(lambda: agent_state(b, "minji") == "wrap_up", 90, "Minji in wrap-up")
    assert waiting_shown(b) >= 1
    h.router.set_status("minji", "wrap_up_done")
    watch.until(lambda: waiting_shown(b) == 0, 30, "the queue emptying")
    watch.until(lambda: first_sid not in calls_shown(b), 30, "the finished call leaving the list")
    first.join(60)
    second.join(60)
    assert traces["first"].ok and traces["second"].ok, (traces["first"].render(), traces["second"].render())
    assert traces["second"].queues and traces["second"].connected_to == "client:minji"

    assert watch.states[0] == "available" and "on_call" in watch.states and "wrap_up" in watch.states
    assert watch.states.index("wrap_up") > watch.states.index("on_call")
    assert watch.max_waiting >= 1
    # What the page showed for the first call is what the hotline kept as its transcript.
    record = h.api("GET", f"/api/calls/{first_sid}").json()["call"]
    assert record["transcript"] and record["transcript"] in watch.texts[first_sid], (record, watch.texts)

    # A hostile transcript stays text in the browser.
    from ivr.telephony.sessions import SessionStore

    store = SessionStore(h.redis, h.keys, 600)
    store.create("CAhostile", hotline="ko", language="ko")
    store.update("CAhostile", "listening")
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    store.set_partial("CAhostile", hostile)
    b.wait_for("[...document.querySelectorAll('#calls .said')].some(n => n.textContent === "
               + json.dumps(hostile) + ")", what="the hostile transcript as text")
    assert b.js("document.querySelectorAll('#calls img, #calls script').length") == 0
    assert b.js("window.pwned === undefined")
