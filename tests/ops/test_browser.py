"""The live ops page in headless Chromium while replayed calls flow through the real hotline.

Debian's ``chromium`` is driven over the Chrome DevTools Protocol (``websocket-client``,
no WebDriver). The test signs in through the form, then watches the page's DOM: the
agent changes state, a call appears with what the recognizer heard, the queue grows
when a second caller waits and shrinks when the agent is free again. It saves a
screenshot (to the test's temporary folder; ``OPS_SCREENSHOT=tests/ops/ops-page.png`` refreshes the README's picture).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
import websocket

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


CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name) if not name.startswith("/") else (name if Path(name).exists() else None)
        if path:
            return path
    return None


class Browser:
    def __init__(self, binary: str, profile: Path, width: int = 1440, height: int = 1000):
        self.profile = profile
        args = [binary, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
                f"--window-size={width},{height}", "--lang=en-US", "about:blank"]
        if _root():
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        profile.mkdir(parents=True, exist_ok=True)
        self.log = profile.parent / "chromium.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        self.port = self._port()
        self.ws = websocket.create_connection(self._page_socket(), timeout=30, suppress_origin=True)
        self._id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _port(self) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited: {self.log.read_text(errors='replace')[-2000:]}")
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port within 30 s")

    def _page_socket(self) -> str:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            targets = requests.get(f"http://127.0.0.1:{self.port}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise RuntimeError("chromium has no page to drive")

    def call(self, method: str, **params) -> dict:
        self._id += 1
        mine = self._id
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == mine:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, what: str = ""):
        """Poll ``expression`` in the page until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            try:
                value = self.js(expression)
            except RuntimeError:
                value = None  # the page is between loads
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"the page never showed {what or expression!r} within {timeout} s (last: {value!r})")

    def screenshot(self, path: Path, width: int = 1440) -> None:
        height = int(self.js("Math.ceil(document.documentElement.scrollHeight)"))
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        self.call("Emulation.clearDeviceMetricsOverride")

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


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
