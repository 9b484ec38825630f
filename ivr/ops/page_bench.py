"""How long the live page's snapshot takes to build with a big roster and a busy day.

    python -m ivr.ops.page_bench [--agents 500] [--records 2000] [--live 40] [--runs 200]
    python -m ivr.ops.page_bench --browser [--seconds 20] [--churn 4]

Starts a scratch embedded Redis (or uses ``--redis-url``), writes a roster of N agents
with the shipped rules, and puts the hotline in a busy moment through the real router
and session store: most agents on shift, calls reserved, answered, missed and queued,
calls in progress with transcripts, a day of call records and counters. Then it builds
the snapshot exactly as the page's hub does (read + shape + JSON) and prints p50/p95/max
of the build time, the first build (which reads the whole day's records once) apart,
and the size of the JSON every viewer receives. One build per interval (2 s) per worker
is shared by all viewers, so this is the page's whole Redis and CPU cost.

``--browser`` then measures the other end: it serves the app on a local port, opens
``/ops`` in headless Chromium (Debian's ``/usr/bin/chromium``, driven over the DevTools
protocol by :mod:`ivr.ops.cdp`), signs in through the form and times navigation until
every agent tile is in the DOM. It then watches ``--seconds`` of live updates while a
thread keeps changing agents and calls through the real router (new calls, answers,
hang-ups into wrap-up, wrap-up done, breaks, partial transcripts), and reports from
CDP's Performance domain the page's main-thread busy time (script, layout, style
recalculation, all tasks) per second and per snapshot received, its JS heap and its
DOM size. Without Chromium it says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKILLS = ("account_security", "payment", "product_usage", "game_support", "technical_fault", "complaints", "general")
CATEGORIES = ("account_security", "payment", "product_usage", "game_support", "technical_fault", "complaint",
              "human", "out_of_scope")


def roster(n: int, rng: random.Random) -> str:
    lines = ["agents:"]
    for i in range(n):
        skills = {"general": rng.randint(1, 3)}
        for s in rng.sample(SKILLS[:-1], 2):
            skills[s] = rng.randint(2, 4)
        lines += [f"  - id: a{i:04d}", f"    name: Agent {i:04d}", f"    address: client:a{i:04d}",
                  "    skills: {" + ", ".join(f"{k}: {v}" for k, v in skills.items()) + "}"]
    return "\n".join(lines) + "\n"


def build_services(folder: Path, redis_url: str, agents: int, seed: int = 7):
    from ivr import config as config_mod
    from ivr.keys import Keys
    from ivr.routing.router import Router
    from ivr.services import Services
    from ivr.store import Store, connect

    rng = random.Random(seed)
    shutil.copy(ROOT / "config.yaml", folder / "config.yaml")
    (folder / "routing").mkdir(exist_ok=True)
    rules = (ROOT / "routing" / "rules.yaml").read_text(encoding="utf-8")
    (folder / "routing" / "rules.yaml").write_text(rules.replace("heartbeat_timeout_s: 60", "heartbeat_timeout_s: 0"),
                                                   encoding="utf-8")
    (folder / "routing" / "agents.yaml").write_text(roster(agents, rng), encoding="utf-8")
    cfg = config_mod.load(folder / "config.yaml", env={"REDIS_URL": redis_url, "IVR_API_TOKEN": "bench-token"})
    client = connect(redis_url)
    client.flushall()
    keys = Keys(cfg.redis.key_prefix)
    return Services(config=cfg, store=Store(client, cfg.redis.key_prefix), keys=keys,
                    router=Router.from_config(cfg, client, keys))


def populate(services, records: int, live: int, seed: int = 7) -> dict:
    """A busy moment: agents in every state, calls queued and in progress, a day of records."""
    from ivr.ops.records import bump_daily, write_record
    from ivr.routing.router import CallInfo
    from ivr.telephony.sessions import SessionStore

    rng = random.Random(seed)
    router, redis, keys = services.router, services.redis, services.keys
    ids = [a.id for a in router.rules.roster.agents]
    on_shift = ids[: int(len(ids) * 0.85)]
    for agent_id in on_shift:
        router.set_status(agent_id, "available")
    for agent_id in on_shift[-len(on_shift) // 20:]:
        router.set_status(agent_id, "offline", reason="on a break")
    placed = {"agent": 0, "queued": 0}
    for i in range(len(on_shift) + 30):  # more calls than agents on shift: the rest queue
        d = router.route(CallInfo(f"CAbench{i:05d}", rng.choice(CATEGORIES), f"+8210{rng.randint(10**7, 10**8 - 1)}",
                                  "ko", "ko"))
        placed[d.kind] = placed.get(d.kind, 0) + 1
        if d.kind == "agent":
            roll = rng.random()
            if roll < 0.85:
                router.answered(f"CAbench{i:05d}", d.agent.id)
            elif roll < 0.92:
                router.dial_result(f"CAbench{i:05d}", d.agent.id, "no-answer")
    sessions = SessionStore(redis, keys, 3600)
    for i in range(live):
        sid = f"CAlive{i:04d}"
        sessions.create(sid, hotline="ko", language="ko")
        sessions.update(sid, "listening")
        sessions.set_partial(sid, "결제가 두 번 된 것 같아요 " * rng.randint(1, 3))
    now = time.time()
    for i in range(records):
        outcome = rng.choices(("answered", "abandoned", "hung_up_while_listening"), (85, 10, 5))[0]
        write_record(redis, keys, {"sid": f"CAday{i:05d}", "outcome": outcome, "queue": "billing",
                                   "category": "payment", "wait_s": rng.expovariate(1 / 40), "language": "ko",
                                   "transcript": "결제가 두 번 됐어요", "started_at": now, "ended_at": now}, 30)
    for field, share in (("calls", 1.0), ("answered", 0.85), ("abandoned", 0.1), ("fallback", 0.04),
                         ("reprompts", 0.12), ("routed_first_utterance", 0.8)):
        bump_daily(redis, keys, field, int(records * share))
    return placed


def measure(services, runs: int) -> dict:
    from ivr.ops.hub import Hub

    hub = Hub(services)
    started = time.perf_counter()
    text = hub.snapshot_json(max_age_s=0)
    first_ms = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        text = hub.snapshot_json(max_age_s=0)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"first_ms": first_ms, "p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))],
            "max_ms": times[-1], "json_bytes": len(text.encode()), "runs": runs}


# --- in the browser ------------------------------------------------------------------------

# Runs in the page before ops.js: counts what the event stream delivers and the long tasks
# (over 50 ms) the main thread runs. Injected over CDP, so the page's CSP does not apply.
PAGE_PROBE = """
(() => {
  const c = window.__bench = {snapshots: 0, deltas: 0, snapshot_chars: 0, long_tasks: []};
  const Native = window.EventSource;
  if (Native) {
    window.EventSource = class extends Native {
      constructor(url, options) {
        super(url, options);
        this.addEventListener("snapshot", (e) => { c.snapshots++; c.snapshot_chars += e.data.length; });
        this.addEventListener("delta", () => { c.deltas++; });
      }
    };
  }
  try {
    new PerformanceObserver((list) => { for (const e of list.getEntries()) c.long_tasks.push(e.duration); })
      .observe({type: "longtask", buffered: true});
  } catch (e) {}
})();
"""
BUSY = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")


class Churn(threading.Thread):
    """Keeps the hotline moving through the real router so every snapshot differs."""

    def __init__(self, services, rate: float, seed: int = 11):
        super().__init__(name="page-bench-churn", daemon=True)
        self.services, self.rate, self.rng = services, rate, random.Random(seed)
        self.stopping = threading.Event()
        self.done: dict[str, int] = {}
        self.errors = 0

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)

    def run(self) -> None:
        from ivr.routing.router import CallInfo
        from ivr.telephony.sessions import SessionStore

        router, rng = self.services.router, self.rng
        sessions = SessionStore(self.services.redis, self.services.keys, 3600)
        live = [f"CAlive{i:04d}" for i in range(40)]
        n, refreshed, by_state = 0, 0.0, {}
        while not self.stopping.wait(1 / self.rate):
            try:
                if time.monotonic() - refreshed > 2.0:
                    by_state = {}
                    for a in router.agents_snapshot():
                        by_state.setdefault(a["state"], []).append(a)
                    refreshed = time.monotonic()
                kind = rng.choices(("new_call", "answer", "hang_up", "wrap_up_done", "break", "back", "partial"),
                                   (3, 3, 3, 3, 1, 1, 2))[0]
                pool = {"answer": "reserved", "hang_up": "on_call", "wrap_up_done": "wrap_up", "break": "available",
                        "back": "offline"}.get(kind)
                agent = by_state[pool].pop(rng.randrange(len(by_state[pool]))) if by_state.get(pool) else None
                if pool and agent is None:
                    continue
                if kind == "new_call":
                    n += 1
                    router.route(CallInfo(f"CAchurn{n:05d}", rng.choice(CATEGORIES),
                                          f"+8210{rng.randint(10**7, 10**8 - 1)}", "ko", "ko"))
                elif kind == "answer":
                    router.answered(agent["call"], agent["id"])
                elif kind == "hang_up":
                    router.dial_result(agent["call"], agent["id"], "completed", rng.uniform(30, 600))
                elif kind == "wrap_up_done":
                    router.set_status(agent["id"], "wrap_up_done")
                elif kind == "break":
                    router.set_status(agent["id"], "offline", reason="on a break")
                elif kind == "back":
                    router.set_status(agent["id"], "available")
                else:
                    sessions.set_partial(rng.choice(live), "결제가 두 번 된 것 같아요 " * rng.randint(1, 4))
                self.done[kind] = self.done.get(kind, 0) + 1
            except Exception:  # keep churning; the count says if something went wrong
                self.errors += 1


def browser_bench(services, agents: int, seconds: float, churn_rate: float, binary: str, folder: Path,
                  time_domain: str = "timeTicks") -> dict:
    from ivr.app import create_app
    from ivr.ops.cdp import Browser
    from ivr.telephony.testserver import serve_in_thread

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(services.config, services)
    base_url, stop_server = serve_in_thread(app)
    browser = None
    churn = Churn(services, churn_rate)
    out: dict = {"time_domain": time_domain}
    try:
        browser = Browser(binary, folder / "chromium-profile")
        browser.call("Page.addScriptToEvaluateOnNewDocument", source=PAGE_PROBE)
        browser.call("Performance.enable", timeDomain=time_domain)
        browser.goto(base_url + "/ops")
        browser.wait_for("!!document.getElementById('login-form')", what="the login form")
        browser.js("document.getElementById('token').value = " + json.dumps(services.config.api.token.get_secret_value())
                   + "; document.getElementById('login-form').submit(); true")
        started = time.perf_counter()
        browser.wait_for(f"document.querySelectorAll('#agents .agent').length === {agents}", timeout=120,
                         what=f"{agents} agent tiles", every=0.02)
        out["tiles_wall_ms"] = (time.perf_counter() - started) * 1000
        out["nav"] = browser.js("""(() => {
            const n = performance.getEntriesByType('navigation')[0] || {};
            const fcp = performance.getEntriesByName('first-contentful-paint')[0];
            return {response_end: n.responseEnd, dom_loaded: n.domContentLoadedEventEnd, load: n.loadEventEnd,
                    html_bytes: n.encodedBodySize, fcp: fcp ? fcp.startTime : null};
        })()""")
        browser.wait_for("document.getElementById('status').dataset.mode === 'live'", what="the live stream")
        browser.wait_for("window.__bench && window.__bench.snapshots >= 1", what="the first streamed snapshot")
        out["probe"] = browser.js("!!window.__bench")
        churn.start()
        time.sleep(2.0)  # let the churn get going before the window opens
        before, seen_before = browser.metrics(), browser.js("window.__bench")
        t0 = time.perf_counter()
        per_second = []
        last = before
        while time.perf_counter() - t0 < seconds:
            time.sleep(1.0)
            now = browser.metrics()
            per_second.append((now["TaskDuration"] - last["TaskDuration"]) * 1000)
            last = now
        elapsed = time.perf_counter() - t0
        after, seen_after = last, browser.js("window.__bench")
        churn.stop()
        out["elapsed_s"] = elapsed
        out["busy_ms"] = {k: (after[k] - before[k]) * 1000 for k in BUSY}
        out["busiest_second_ms"] = max(per_second) if per_second else 0.0
        out["snapshots"] = seen_after["snapshots"] - seen_before["snapshots"]
        out["deltas"] = seen_after["deltas"] - seen_before["deltas"]
        out["snapshot_kib"] = ((seen_after["snapshot_chars"] - seen_before["snapshot_chars"])
                               / max(1, out["snapshots"]) / 1024)
        window_long = seen_after["long_tasks"][len(seen_before["long_tasks"]):]
        out["long_tasks"] = (len(window_long), max(window_long) if window_long else 0.0)
        out["heap_mib"] = after["JSHeapUsedSize"] / 2**20
        out["heap_total_mib"] = after["JSHeapTotalSize"] / 2**20
        out["nodes_metric"] = int(after["Nodes"])
        out["dom_elements"] = browser.js("document.getElementsByTagName('*').length")
        browser.call("HeapProfiler.collectGarbage")
        out["heap_after_gc_mib"] = browser.metrics()["JSHeapUsedSize"] / 2**20
        out["churn"], out["churn_errors"] = dict(churn.done), churn.errors
        out["agents_shown"] = browser.js("document.querySelectorAll('#agents .agent').length")
    finally:
        churn.stopping.set()
        if browser is not None:
            browser.close()
        hub = app.extensions.get("hotline.ops_hub")
        if hub is not None:
            hub.close()
        stop_server()
    return out


def print_browser(r: dict, agents: int, command: str) -> None:
    nav, busy, snaps = r["nav"], r["busy_ms"], max(1, r["snapshots"])
    per_s = {k: v / r["elapsed_s"] for k, v in busy.items()}
    print(f"\nbrowser (headless Chromium, {agents} agents): all {agents} tiles in the DOM "
          f"{r['tiles_wall_ms']:.0f} ms after signing in (page timing: HTML received {nav['response_end']:.0f} ms, "
          f"drawn by DOMContentLoaded {nav['dom_loaded']:.0f} ms, first paint {nav['fcp'] or 0:.0f} ms; "
          f"HTML {nav['html_bytes'] / 1024:.0f} KiB)")
    print(f"live updates over {r['elapsed_s']:.1f} s: {r['snapshots']} snapshots "
          f"({r['snapshot_kib']:.0f} KiB each) and {r['deltas']} delta events received; hotline changes made: "
          + ", ".join(f"{k} {v}" for k, v in sorted(r["churn"].items())) + (f" ({r['churn_errors']} failed)"
                                                                            if r["churn_errors"] else ""))
    print(f"main thread busy ({'CPU' if r['time_domain'] == 'threadTicks' else 'wall'} time): {per_s['TaskDuration']:.0f} ms/s (script {per_s['ScriptDuration']:.0f}, "
          f"layout {per_s['LayoutDuration']:.0f}, style {per_s['RecalcStyleDuration']:.0f}); "
          f"busiest second {r['busiest_second_ms']:.0f} ms")
    print(f"per snapshot received: {busy['TaskDuration'] / snaps:.0f} ms of tasks (script "
          f"{busy['ScriptDuration'] / snaps:.0f}, layout {busy['LayoutDuration'] / snaps:.0f}, style "
          f"{busy['RecalcStyleDuration'] / snaps:.0f}); long tasks (>50 ms) {r['long_tasks'][0]}, "
          f"longest {r['long_tasks'][1]:.0f} ms")
    print(f"at the end: JS heap {r['heap_mib']:.1f} MiB used of {r['heap_total_mib']:.1f} MiB "
          f"({r['heap_after_gc_mib']:.1f} MiB after GC); DOM {r['dom_elements']} elements, "
          f"{r['nodes_metric']} nodes (CDP 'Nodes', includes text and not-yet-collected nodes); "
          f"{r['agents_shown']} agent tiles")
    print(f"reproduce: {command}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.ops.page_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--records", type=int, default=2000, help="call records written today")
    parser.add_argument("--live", type=int, default=40, help="calls in progress (listening, with transcripts)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--redis-url", default=None, help="a Redis to use (FLUSHED!); default: a scratch one")
    parser.add_argument("--browser", action="store_true", help="also measure the page in headless Chromium")
    parser.add_argument("--seconds", type=float, default=20.0, help="with --browser: how long to watch live updates")
    parser.add_argument("--churn", type=float, default=4.0,
                        help="with --browser: hotline changes per second (agents and calls) while watching")
    parser.add_argument("--time-domain", choices=("timeTicks", "threadTicks"), default="timeTicks",
                        help="with --browser: busy time as wall time on the main thread (timeTicks) or as its "
                             "CPU time (threadTicks, steadier on a loaded machine)")
    args = parser.parse_args(argv)

    binary = None
    if args.browser:
        from ivr.ops.cdp import find_chromium

        binary = find_chromium()
        if binary is None:
            print("--browser needs Chromium (Debian's /usr/bin/chromium; `make browser` installs it as root), "
                  "and none was found")
            return 2

    from ivr.store import EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix="ivr-page-bench-") as tmp:
        embedded = None if args.redis_url else EmbeddedRedis(Path(tmp) / "redis").start()
        try:
            services = build_services(Path(tmp), args.redis_url or embedded.url, args.agents)
            placed = populate(services, args.records, args.live)
            counts: dict[str, int] = {}
            for a in services.router.agents_snapshot():
                counts[a["state"]] = counts.get(a["state"], 0) + 1
            waiting = sum(q["waiting"] for q in services.router.queues_snapshot())
            print(f"agents {args.agents}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                  + f"; calls routed {placed.get('agent', 0)}, waiting {waiting}; in progress {args.live}; "
                  f"records today {args.records}")
            r = measure(services, args.runs)
            print(f"snapshot build (read + shape + JSON), {r['runs']} runs: p50 {r['p50_ms']:.1f} ms, "
                  f"p95 {r['p95_ms']:.1f} ms, max {r['max_ms']:.1f} ms; first build (reads the day's records) "
                  f"{r['first_ms']:.1f} ms; JSON {r['json_bytes'] / 1024:.0f} KiB per viewer per interval")
            if binary is not None:
                load = os.getloadavg()
                b = browser_bench(services, args.agents, args.seconds, args.churn, binary, Path(tmp), args.time_domain)
                command = (f"python -m ivr.ops.page_bench --browser --agents {args.agents} --records {args.records} "
                           f"--live {args.live} --seconds {args.seconds:g} --churn {args.churn:g}"
                           + ("" if args.time_domain == "timeTicks" else f" --time-domain {args.time_domain}"))
                print_browser(b, args.agents, command)
                end = os.getloadavg()
                print(f"load average (1 min) {load[0]:.2f} before, {end[0]:.2f} after; "
                      f"{os.cpu_count()} CPUs: the browser shares them with this process's server and Redis")
            services.store.client.close()
        finally:
            if embedded is not None:
                embedded.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
