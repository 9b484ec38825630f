"""A small driver for headless Chromium over the Chrome DevTools Protocol.

Used by the ops page's browser test (``tests/ops/test_browser.py``) and by
``python -m ivr.ops.page_bench --browser`` to open the live page in Debian's
``/usr/bin/chromium`` and read its DOM and performance metrics. It speaks CDP over
one page's WebSocket (``websocket-client``); no WebDriver, no Selenium. Each
:class:`Browser` runs its own Chromium with a fresh ``--user-data-dir``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

import requests
import websocket

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
        self.handlers: dict[str, Callable[[dict], None]] = {}  # CDP event name -> called with its params
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
            handler = self.handlers.get(message.get("method", ""))
            if handler is not None:
                handler(message.get("params", {}))

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, what: str = "", every: float = 0.1):
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
            time.sleep(every)
        raise AssertionError(f"the page never showed {what or expression!r} within {timeout} s (last: {value!r})")

    def metrics(self) -> dict[str, float]:
        """``Performance.getMetrics`` as a dict (call ``Performance.enable`` first); durations in seconds."""
        return {m["name"]: m["value"] for m in self.call("Performance.getMetrics")["metrics"]}

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
