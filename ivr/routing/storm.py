"""The concurrency storm: 1,000 callers in flight at once over 50 agents, then audits.

Several processes (web workers, each with a pool of threads that run whichever caller is
due next) start together and all callers ring in within two seconds, so nearly all of
them are in the router at the same moment: ~50 are put through, the rest wait and ask
again as Twilio's ``<Enqueue>`` wait URL does, some hang up while waiting, agents miss
some offers (the call is routed again), and each freed agent takes the best waiting call.
With ``timers`` on, offers also lapse (reservation timeout: some callers stay silent past
it and come back), a missed call pauses the agent (two misses in a row take them offline,
and their desk sets them available again), and every call ends in a short wrap-up.

While it runs, an auditor reads consistent snapshots (MULTI/EXEC): never one agent on two
calls, never one call held by two agents. Afterwards: no call lost, every agent back in
a consistent state, nothing left in the router, the indexes matching the agents' hashes.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
import traceback
from multiprocessing import get_context
from pathlib import Path

import yaml

PREFIX = "bench"
# The timed variant. The reservation timeout stays well above how long a caller on this
# loaded machine may take to act on an offer (so only the silent callers' offers lapse).
TIMERS = {"reservation_timeout_s": 6.0, "missed_pause_s": 0.3, "max_missed": 2, "wrap_up_s": 0.05}
ARRIVAL_S = 2.0       # callers ring in over this long (all in flight together soon after)
POLL_S = 1.0          # a waiting caller asks again every 0.5-1.5 s (Twilio's wait URL loop) ...
FAR_BACK = 3.0        # ... and up to three times as seldom when far back in line (position > 50)
SILENT_SHARE = 0.2    # timed variant: of the callers put through at once, those who never
                      # report that offer's outcome (early on, so the storm goes on meanwhile)
MISS_SHARE = 0.1      # offers the agent misses (no-answer, busy, failed): routed again
ABANDON_SHARE = 0.02  # at each poll, a waiting caller may hang up
STARTUP_S, RUN_LIMIT_S = 120.0, 600.0  # give up (and say so) rather than hang


def storm_files(folder: str | Path, agents: int = 50, timers: bool = False) -> tuple[Path, Path]:
    """Rules and a roster of ``agents`` agents for the storm and the benchmark."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # No presence tracking (nobody sends heartbeats for these agents). Without timers no
    # pause after a miss and no lapsing offers: the storm then checks bookings alone.
    policy = {"heartbeat_timeout_s": 0, "reservation_timeout_s": 600, "missed_pause_s": 0, "max_missed": 1000000}
    wrap = 0
    if timers:
        policy = {k: TIMERS[k] for k in ("reservation_timeout_s", "missed_pause_s", "max_missed")}
        policy["heartbeat_timeout_s"] = 0
        wrap = TIMERS["wrap_up_s"]
    rules = {
        "timezone": "UTC", "skills": ["payment", "account_security", "general"], "agents": policy,
        "categories": {"payment": {"queue": "billing", "priority": 10},
                       "account_security": {"queue": "security", "priority": 20},
                       "human": {"queue": "general"}, "out_of_scope": {"queue": "general"}},
        "queues": {"billing": {"skills": {"payment": 1}, "wrap_up_s": wrap, "overflow": {"after_s": 2, "to": "general"}},
                   "security": {"skills": {"account_security": 1}, "wrap_up_s": wrap, "strategy": "fewest_calls"},
                   "general": {"skills": {"general": 1}, "wrap_up_s": wrap}},
    }
    roster = {"agents": [{"id": f"a{i:02d}", "name": f"Agent {i}", "address": f"client:a{i:02d}",
                          "skills": {"general": 1, **({"payment": 2} if i % 2 else {}),
                                     **({"account_security": 1} if i % 3 == 0 else {})}} for i in range(agents)]}
    rp, ap = folder / "rules.yaml", folder / "agents.yaml"
    rp.write_text(yaml.safe_dump(rules))
    ap.write_text(yaml.safe_dump(roster))
    return rp, ap


def router_on(url: str, rules_path, agents_path, cluster: bool = False, connections: int = 0):
    """A Redis client and a router on it; ``connections``: at least this many pooled
    connections (one per thread that may talk to Redis at once)."""
    from ivr.keys import Keys
    from ivr.routing.router import Router
    from ivr.store import connect

    if cluster:
        from redis.cluster import RedisCluster

        client = RedisCluster.from_url(url, decode_responses=True)
    else:
        client = connect(url)
        pool = client.connection_pool
        pool.max_connections = max(pool.max_connections, connections)
    return client, Router(client, Keys(PREFIX), rules_path, agents_path)


def all_available(router) -> None:
    for a in router.rules.roster.agents:
        router.set_status(a.id, "available")


def _tally() -> dict:
    return {"intervals": [], "served": 0, "abandoned": 0, "missed": 0, "decisions": 0, "silent": 0, "lapsed": 0,
            "late_answers": 0, "errors": []}


def _caller(router, sid: str, rng: random.Random, hold_s: float, timers: bool, out: dict):
    """One caller, from the first route to the hang-up, as the webhooks would drive it: a
    generator that yields how long the caller waits (the worker runs other callers meanwhile)."""
    from ivr.routing.router import CallInfo

    category = rng.choice(["payment", "account_security", "human", "human"])
    d = router.route(CallInfo(sid, category, f"+1555{rng.randrange(10**7):07d}", "en", "en", time.time()))
    out["decisions"] += 1
    silent = timers and d.kind == "agent" and rng.random() < SILENT_SHARE
    # a waiting caller's line checks at most this long apart (timed: well within an offer's life)
    longest = POLL_S * FAR_BACK * 1.5 if not timers else TIMERS["reservation_timeout_s"] * 0.6
    while True:
        if d is None:
            out["errors"].append(f"{sid}: no decision after a miss")
            return
        if d.kind == "queued":
            if rng.random() < ABANDON_SHARE:
                router.call_ended(sid)
                out["abandoned"] += 1
                return
            # as the wait message says where they stand, callers far back ask less often
            yield min(longest, POLL_S * min(FAR_BACK, max(1.0, (d.position or 1) / 50)) * rng.uniform(0.5, 1.5))
            d = router.poll(sid)
            out["decisions"] += 1
            continue
        if d.kind != "agent":
            out["errors"].append(f"{sid}: {d.kind} {d.message}")  # lost: the router forgot the call
            return
        agent, start = d.agent.id, time.monotonic()
        if silent:  # Twilio never says how this offer went: it must lapse, the call keep its place
            silent = False
            out["silent"] += 1
            yield TIMERS["reservation_timeout_s"] + 0.5
            d = router.poll(sid)  # runs the time-outs due, if nobody did meanwhile
            out["decisions"] += 1
            out["lapsed"] += int((router.ledger.call_info(sid) or {}).get("lapsed") == 1)
            continue
        if rng.random() < MISS_SHARE:  # the agent misses the offer: routed again
            out["intervals"].append((agent, sid, start, time.monotonic()))
            d = router.dial_result(sid, agent, rng.choice(["no-answer", "busy", "failed"]))
            out["missed"] += 1
            out["decisions"] += 1
            continue
        if not router.answered(sid, agent):  # too late: the offer lapsed and the call went on
            out["late_answers"] += 1
            d = router.poll(sid)
            out["decisions"] += 1
            continue
        yield rng.random() * hold_s
        out["intervals"].append((agent, sid, start, time.monotonic()))  # recorded before the release
        if rng.random() < 0.5:
            router.dial_result(sid, agent, "completed", hold_s)
        router.call_ended(sid)
        out["served"] += 1
        return


def storm_worker(url: str, rules_path: str, agents_path: str, sids: list[str], threads: int, hold_s: float,
                 seed: int, cluster: bool = False, timers: bool = False, ready=None, results=None) -> dict:
    """One process of the storm: all of ``sids`` ring in within ARRIVAL_S and stay in flight
    until served or gone; ``threads`` workers (a web worker's pool) run whichever caller
    is due next, so a waiting caller costs no thread.

    ``ready`` (a multiprocessing barrier): the callers start when all processes are ready;
    ``results`` (a queue): where the tally goes (else it is returned)."""
    client, router = router_on(url, rules_path, agents_path, cluster, connections=threads + 4)
    rng = random.Random(seed)
    tallies = [_tally() for _ in sids]
    due: list[tuple[float, int, object]] = []
    cond = threading.Condition()
    left = [len(sids)]

    def run() -> None:
        while True:
            with cond:
                while True:
                    if not left[0]:
                        cond.notify_all()
                        return
                    if due and due[0][0] <= time.monotonic():
                        at, n, caller = heapq.heappop(due)
                        break
                    cond.wait(timeout=min(0.05, due[0][0] - time.monotonic()) if due else 0.05)
            try:
                wait = next(caller)
            except StopIteration:
                wait = None
            except Exception as exc:  # counted, never hidden: this caller is lost
                where = traceback.extract_tb(exc.__traceback__)[-1]
                tallies[n]["errors"].append(f"{sids[n]}: {exc!r} at {where.filename}:{where.lineno}")
                wait = None
            with cond:
                if wait is None:
                    left[0] -= 1
                else:
                    heapq.heappush(due, (time.monotonic() + wait, n, caller))
                cond.notify()

    if ready is not None:
        ready.wait()
    go = time.monotonic()
    with cond:
        for n, sid in enumerate(sids):
            caller = _caller(router, sid, random.Random(seed * 100000 + n), hold_s, timers, tallies[n])
            heapq.heappush(due, (go + rng.uniform(0, ARRIVAL_S), n, caller))
    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    client.close()
    out = _tally()
    for t in tallies:
        for k, v in t.items():
            out[k] = out[k] + v
    if results is not None:
        results.put(out)
    return out


def _audit(client, keys, ids: list[str], stop: threading.Event, found: list, peak: list) -> None:
    """Consistent snapshots (MULTI/EXEC) during the storm: one call per agent, one agent per
    call; ``peak[0]`` = the most calls the router knew at once (callers in flight)."""
    while not stop.is_set():
        pipe = client.pipeline(transaction=True)
        for i in ids:
            pipe.hmget(keys.route_agent(i), "state", "call")
        pipe.hgetall(keys.route_held())
        pipe.hlen(keys.route_calls())
        *states, held, known = pipe.execute()
        peak[0] = max(peak[0], known)
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
        time.sleep(0.02)


def _desk(client, router, ids: list[str], stop: threading.Event, back: list) -> None:
    """The agents' desks: an agent taken offline after repeated misses comes back."""
    keys = router.keys
    while not stop.is_set():
        pipe = client.pipeline(transaction=False)
        for i in ids:
            pipe.hget(keys.route_agent(i), "state")
        for agent, state in zip(ids, pipe.execute()):
            if state == "offline" and router.set_status(agent, "available")["ok"]:
                back[0] += 1
        time.sleep(0.2)


def _collect(workers, results) -> list[dict]:
    """Every worker's tally; a worker that died without one fails the storm (no hang)."""
    import queue

    tallies, deadline = [], time.monotonic() + RUN_LIMIT_S
    while len(tallies) < len(workers):
        try:
            tallies.append(results.get(timeout=1.0))
        except queue.Empty:
            dead = [w.pid for w in workers if w.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"storm workers failed (pids {dead}) or ran past {RUN_LIMIT_S} s") from None
    return tallies


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


def storm(url: str, folder: str | Path, calls: int = 1000, processes: int = 4, threads: int = 16,
          hold_s: float = 0.3, agents: int = 50, seed: int = 7, timers: bool = False) -> dict:
    """Run the storm and return its figures and every invariant it checked.

    All ``calls`` ring in within ARRIVAL_S, so nearly all are in flight at once (the
    router knows them: reserved, talking or waiting); ``threads`` per process run them."""
    from ivr.keys import Keys
    from ivr.routing.ledger import index_problems
    from ivr.store import connect

    rp, ap = storm_files(folder, agents, timers)
    client, router = router_on(url, rp, ap)
    all_available(router)
    keys = Keys(PREFIX)
    ids = [a.id for a in router.rules.roster.agents]
    stop, found, peak, back = threading.Event(), [], [0], [0]
    helpers = [threading.Thread(target=_audit, args=(connect(url), keys, ids, stop, found, peak))]
    if timers:
        helpers.append(threading.Thread(target=_desk, args=(connect(url), router, ids, stop, back)))
    sids = [f"CAstorm{seed}x{i:05d}" for i in range(calls)]
    ctx = get_context("spawn")
    ready, results = ctx.Barrier(processes + 1), ctx.Queue()
    workers = [ctx.Process(target=storm_worker, args=(url, str(rp), str(ap), sids[p::processes], threads, hold_s,
                                                      seed + p, False, timers, ready, results))
               for p in range(processes)]
    for w in workers:
        w.start()
    started = time.perf_counter()
    try:
        ready.wait(timeout=STARTUP_S)  # every process has its callers lined up: go
        started = time.perf_counter()
        for h in helpers:
            h.start()
        tallies = _collect(workers, results)
    finally:
        elapsed = time.perf_counter() - started
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.terminate()
        stop.set()
        for h in helpers:
            if h.is_alive():
                h.join()
    total = _tally()
    for t in tallies:
        for k, v in t.items():
            total[k] = total[k] + v
    if timers:  # the last pauses and wrap-ups run out by themselves
        time.sleep(max(TIMERS["missed_pause_s"], TIMERS["wrap_up_s"]) + 0.1)
    router.tick()
    final = router.agents_snapshot()
    index_issues = index_problems(client, keys, ids)
    leftovers = {"waiting": client.zcard(keys.route_waiting()), "held": client.hlen(keys.route_held()),
                 "calls": client.hlen(keys.route_calls())}
    client.close()
    return {
        "calls": calls, "processes": processes, "threads_per_process": threads, "agents": agents, "timers": timers,
        "max_in_flight": peak[0], "seconds": round(elapsed, 2), "calls_per_s": round(calls / elapsed, 1),
        "decisions": total["decisions"], "served": total["served"], "abandoned": total["abandoned"],
        "missed_offers": total["missed"], "silent_offers": total["silent"], "lapsed_offers": total["lapsed"],
        "late_answers": total["late_answers"], "agents_back_from_offline": back[0], "errors": total["errors"][:10],
        "lost_calls": calls - total["served"] - total["abandoned"],
        "double_bookings": overlaps(total["intervals"], 0), "two_agents_one_caller": overlaps(total["intervals"], 1),
        "audit_violations": found[:10], "audits_failed": len(found),
        "final_states": sorted({a["state"] for a in final}),
        "agents_with_a_call_left": [a["id"] for a in final if a["call"]], "leftovers": leftovers,
        "index_problems": index_issues[:10],
    }
