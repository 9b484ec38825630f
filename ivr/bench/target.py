"""The server under test: one already running (``--url``), or ``ivr serve`` started here.

:class:`ServerProcess` runs ``ivr serve`` in a subprocess and waits for it to answer;
:func:`scratch_config` writes a config.yaml for it in a scratch folder (its own embedded
Redis, a roster of bench agents who can take any call), so a benchmark never touches
the hotline's own data. :class:`Target` is what the load needs to reach a server: where
requests go, what they are signed for, and the tokens. :class:`AgentDesk` plays the
agents' app through the agent API: on shift, heartbeats, wrap-up done after each call.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

log = logging.getLogger(__name__)

# config.yaml keys that name files, resolved against the source config's folder
PATH_KEYS = (("asr", "models_dir"), ("asr", "manifest"), ("classifier", "data_dir"), ("classifier", "model_path"),
             ("routing", "rules"), ("routing", "agents"))
ALL_SKILLS_LEVEL = 9


class BenchError(RuntimeError):
    """The benchmark cannot run; the message says what to do."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def scratch_config(source: str | Path, folder: str | Path, *, agents: int | None = 20,
                   heartbeat_timeout_s: int | None = 0, edit=None) -> Path:
    """Write ``folder/config.yaml``: ``source`` with absolute paths and a private embedded Redis.

    ``agents``: a roster of that many bench agents (``bench01``...) with every skill at
    the top level, so any call can be answered (None keeps the source roster).
    ``heartbeat_timeout_s``: written into a copy of the rules (None keeps them as they are).
    ``edit(data)`` may change the parsed config before it is written.
    """
    source, folder = Path(source).resolve(), Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    base = source.parent
    for section, key in PATH_KEYS:
        value = (data.get(section) or {}).get(key)
        default = {"asr": {"models_dir": "asr_models", "manifest": "asr_models/manifest.yaml"},
                   "classifier": {"data_dir": "intents", "model_path": "var/intents/model.pkl"},
                   "routing": {"rules": "routing/rules.yaml", "agents": "routing/agents.yaml"}}[section][key]
        path = Path(value or default)
        data.setdefault(section, {})[key] = str(path if path.is_absolute() else base / path)
    data.setdefault("redis", {})["embedded_dir"] = str(folder / "redis")
    data["redis"]["url"] = None
    data.setdefault("calls", {})["recordings_dir"] = str(folder / "recordings")
    rules_path = Path(data["routing"]["rules"])
    rules = yaml.safe_load(rules_path.read_text(encoding="utf-8"))
    if heartbeat_timeout_s is not None:
        rules.setdefault("agents", {})["heartbeat_timeout_s"] = heartbeat_timeout_s
    rules.pop("hours", None)  # a benchmark at night must not hit "closed"
    for queue in (rules.get("queues") or {}).values():
        queue.pop("hours", None)
    (folder / "rules.yaml").write_text(yaml.safe_dump(rules, allow_unicode=True, sort_keys=False), encoding="utf-8")
    data["routing"]["rules"] = str(folder / "rules.yaml")
    if agents:
        skills = {s: ALL_SKILLS_LEVEL for s in rules.get("skills", [])}
        roster = {"agents": [{"id": f"bench{k:02d}", "name": f"Bench Agent {k}", "address": f"client:bench{k:02d}",
                              "skills": skills} for k in range(1, agents + 1)]}
        (folder / "agents.yaml").write_text(yaml.safe_dump(roster, sort_keys=False), encoding="utf-8")
        data["routing"]["agents"] = str(folder / "agents.yaml")
    if edit is not None:
        edit(data)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Target:
    """How to reach a hotline server and sign for it."""

    url: str  # where requests really go (http://host:port)
    public_url: str  # IVR_PUBLIC_URL: what Twilio signs
    twilio_token: str
    api_token: str = ""
    number: str = "+8215880000"  # the hotline number called
    pid: int | None = None  # the server's process (master), for CPU and memory figures
    http: requests.Session = field(default_factory=requests.Session, repr=False)

    def standin(self, speed: float = 1.0, **kw):
        from ivr.telephony.standin import TwilioStandIn

        return TwilioStandIn(self.public_url, self.twilio_token, connect_to=self.url, speed=speed, **kw)

    def api(self, method: str, path: str, **kw) -> requests.Response:
        headers = kw.pop("headers", {}) | {"Authorization": f"Bearer {self.api_token}"}
        return self.http.request(method, self.url + path, headers=headers, timeout=kw.pop("timeout", 10), **kw)


class ServerProcess:
    """``ivr serve`` in a subprocess (its own process group); :meth:`stop` ends it and its workers.

    ``env`` is added to this process's environment (REDIS_URL, TWILIO_AUTH_TOKEN, ...).
    Output goes to ``log_path``.
    """

    def __init__(self, config_path: str | Path, *, port: int | None = None, workers: int = 1,
                 threads: int | None = None, env: dict[str, str] | None = None, log_path: str | Path | None = None,
                 host: str = "127.0.0.1"):
        self.config_path = Path(config_path)
        self.host = host
        self.port = port or free_port(host)
        self.workers, self.threads = workers, threads
        self.env = dict(env or {})
        self.log_path = Path(log_path) if log_path else self.config_path.parent / f"serve-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout_s: float = 180.0, ready: bool = False) -> "ServerProcess":
        cmd = [sys.executable, "-m", "ivr", "--config", str(self.config_path), "serve", "--host", self.host,
               "--port", str(self.port), "--workers", str(self.workers)]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        env = dict(os.environ, **self.env)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_up(timeout_s, ready=ready)
        return self

    def wait_up(self, timeout_s: float = 180.0, ready: bool = False) -> None:
        """Until every worker has loaded the app (``/healthz``, or ``/readyz`` 200 when ``ready``)."""
        deadline = time.monotonic() + timeout_s
        path = "/readyz" if ready else "/healthz"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchError(f"ivr serve exited with code {self.proc.returncode}; see {self.log_path}:\n"
                                 + self.log_tail())
            try:
                if requests.get(self.url + path, timeout=2).status_code == 200 and self._workers_up():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise BenchError(f"ivr serve did not answer {path} within {timeout_s:.0f} s; see {self.log_path}:\n"
                         + self.log_tail())

    def _workers_up(self) -> bool:
        # Each gunicorn worker loads the app (and the speech model) itself; one answering
        # is not all of them. The master prints nothing per worker, so count Python children.
        return len(self.worker_pids()) >= self.workers

    def worker_pids(self) -> list[int]:
        import psutil

        if self.proc is None:
            return []
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        return [c.pid for c in children if "redis" not in c.name().lower()]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the whole server (master and workers): a crashed machine or container."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def spawn(config: str | Path, folder: str | Path, *, workers: int = 1, threads: int | None = None,
          agents: int = 20) -> tuple[ServerProcess, Target]:
    """Start ``ivr serve`` on a scratch copy of ``config`` (its own embedded Redis); wait for /readyz."""
    path = scratch_config(config, folder, agents=agents)
    twilio_token, api_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = {"TWILIO_AUTH_TOKEN": twilio_token, "IVR_API_TOKEN": api_token, "IVR_PUBLIC_URL": public,
           "IVR_LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    server = ServerProcess(path, port=port, workers=workers, threads=threads, env=env)
    server.env["REDIS_URL"] = ""  # empty = unset for the config loader: the embedded Redis
    server.start(ready=True)
    number = _first_number(path)
    return server, Target(server.url, public, twilio_token, api_token, number=number, pid=server.pid)


def _first_number(config_path: Path) -> str:
    from ivr import config as config_mod

    cfg = config_mod.load(config_path, env={})
    return next(iter(cfg.hotline(cfg.default_hotline).numbers), "+8215880000")


class AgentDesk:
    """The agents' app, played through the agent API for the duration of a benchmark.

    Puts every agent of the roster on shift, keeps them present with heartbeats, ends
    wrap-up as soon as a call is over (a benchmark measures the server, not wrap-up
    time), and takes back off shift the agents it put on.
    """

    HEARTBEAT_EVERY_S = 15.0

    def __init__(self, target: Target):
        self.target = target
        self.ids: list[str] = []
        self.by_address: dict[str, str] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_shift(self) -> int:
        resp = self.target.api("GET", "/api/agents")
        if resp.status_code != 200:
            raise BenchError(f"GET /api/agents answered {resp.status_code}: {resp.text[:200]}; "
                             "give the server's API token (--api-token or IVR_API_TOKEN)")
        agents = resp.json()["agents"]
        for agent in agents:
            r = self.target.api("POST", f"/api/agents/{agent['id']}/status", json={"status": "available"})
            if r.status_code == 200:
                self.ids.append(agent["id"])
                if agent.get("address"):
                    self.by_address[agent["address"]] = agent["id"]
            else:
                self.errors.append(f"agent {agent['id']} not on shift: {r.status_code} {r.text[:120]}")
        self._thread = threading.Thread(target=self._heartbeats, name="bench-heartbeats", daemon=True)
        self._thread.start()
        return len(self.ids)

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.HEARTBEAT_EVERY_S):
            for agent_id in self.ids:
                try:
                    self.target.api("POST", f"/api/agents/{agent_id}/heartbeat")
                except requests.RequestException:
                    pass

    def call_over(self, address: str | None) -> None:
        """The agent who talked on a call ends wrap-up at once."""
        agent_id = self.by_address.get(address or "")
        if agent_id is None:  # the fallback number, or an agent we did not put on shift
            return
        try:
            self.target.api("POST", f"/api/agents/{agent_id}/status", json={"status": "wrap_up_done"})
        except requests.RequestException as exc:
            self.errors.append(f"wrap_up_done for {agent_id}: {exc}")

    def off_shift(self) -> None:
        self._stop.set()
        for agent_id in self.ids:
            try:
                self.target.api("POST", f"/api/agents/{agent_id}/status", json={"status": "offline",
                                                                               "reason": "benchmark over"})
            except requests.RequestException:
                pass
