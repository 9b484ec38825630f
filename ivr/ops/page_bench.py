"""How long the live page's snapshot takes to build with a big roster and a busy day.

    python -m ivr.ops.page_bench [--agents 500] [--records 2000] [--live 40] [--runs 200]

Starts a scratch embedded Redis (or uses ``--redis-url``), writes a roster of N agents
with the shipped rules, and puts the hotline in a busy moment through the real router
and session store: most agents on shift, calls reserved, answered, missed and queued,
calls in progress with transcripts, a day of call records and counters. Then it builds
the snapshot exactly as the page's hub does (read + shape + JSON) and prints p50/p95/max
of the build time, the first build (which reads the whole day's records once) apart,
and the size of the JSON every viewer receives. One build per interval (2 s) per worker
is shared by all viewers, so this is the page's whole Redis and CPU cost.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.ops.page_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--records", type=int, default=2000, help="call records written today")
    parser.add_argument("--live", type=int, default=40, help="calls in progress (listening, with transcripts)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--redis-url", default=None, help="a Redis to use (FLUSHED!); default: a scratch one")
    args = parser.parse_args(argv)

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
            services.store.client.close()
        finally:
            if embedded is not None:
                embedded.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
