"""`ivr bench`: load a hotline server with simulated calls and report what one box carries."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time

import requests

EPILOG = """scenarios (against --url, or a server started here with --spawn):
  ivr bench --spawn --calls 6 --concurrency 6             6 callers speaking at the same moment
  ivr bench --spawn --arrivals random --calls 200 --over 600
                                                          a busy hour compressed into 10 minutes
  ivr bench --spawn --arrivals random --calls 200 --over 600 --accelerate 4
                                                          the same, 4x faster (audio too)
  ivr bench --spawn --webhook-rate 200 --seconds 30       incoming-call webhook at 200 requests/s
  ivr bench --spawn --soak --calls 2000                   accelerated soak: worker memory over time
  ivr bench --profile speech|router|classifier            one part alone (the part's own benchmark)

Figures are printed as a table and written as JSON (--json, default bench-results/).
Against a running server, sign with its TWILIO_AUTH_TOKEN over its IVR_PUBLIC_URL
(--public-url), and give IVR_API_TOKEN so agents can be put on shift; --pid names the
server's master process for CPU and memory figures (found from the port when possible).
"""


def register(sub) -> None:
    p = sub.add_parser("bench", help="load the hotline with simulated calls (Twilio stand-in) and measure it",
                       description="Drive simultaneous simulated calls (recorded callers streamed at real-time "
                                   "pace by the Twilio stand-in) against a hotline server and report calls per "
                                   "minute, webhook latency, end of speech to <Dial>, recognizer lag, CPU and "
                                   "memory per worker, and errors.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_argument_group("the server")
    where.add_argument("--url", help="where the server listens (default: http://server.host:server.port)")
    where.add_argument("--public-url", help="the URL requests are signed for (default: server.public_url / IVR_PUBLIC_URL)")
    where.add_argument("--twilio-token", help="the server's Twilio auth token (default: TWILIO_AUTH_TOKEN)")
    where.add_argument("--api-token", help="the server's API token, to put agents on shift (default: IVR_API_TOKEN)")
    where.add_argument("--to", help="the hotline number called (default: the default hotline's first number)")
    where.add_argument("--pid", type=int, help="the server's master process, for CPU and memory figures")
    where.add_argument("--spawn", action="store_true",
                       help="start `ivr serve` here on a scratch copy of the config (own embedded Redis, "
                            "bench agents), and stop it afterwards")
    where.add_argument("--workers", type=int, default=1, help="with --spawn: worker processes (default: 1)")
    where.add_argument("--threads", type=int, help="with --spawn: threads per worker (default: enough for the calls)")
    where.add_argument("--agents", type=int, default=20, help="with --spawn: agents on the roster (default: 20)")
    load = p.add_argument_group("the load")
    load.add_argument("--profile", choices=("calls", "router", "classifier", "speech"), default="calls",
                      help="calls (default): whole calls; router/classifier/speech: that part's own benchmark")
    load.add_argument("--calls", type=int, help="calls to place (default: 6; soak: 2000)")
    load.add_argument("--concurrency", type=int, help="callers at the same moment (default: all of --calls "
                                                      "up to 6; soak: 4)")
    load.add_argument("--arrivals", choices=("waves", "random"), default="waves",
                      help="waves: --concurrency calls start together, wave after wave; random: Poisson "
                           "arrivals over --over seconds")
    load.add_argument("--over", type=float, default=600.0, help="seconds the random arrivals spread over")
    load.add_argument("--accelerate", type=float, default=1.0,
                      help="compress time by this factor: arrivals and the calls themselves (audio included)")
    load.add_argument("--speed", type=float, help="stand-in speed: 1 = real time (default), 0 = flat out "
                                                  "(soak default)")
    load.add_argument("--callers", choices=("misheard", "understood", "all"), default="misheard",
                      help="which recorded callers speak: misheard (default: the nine phrases the small "
                           "Korean model mis-hears), understood (the four it understands, routed at once), all")
    load.add_argument("--talk", type=float, default=5.0, help="seconds each agent talks (call time)")
    load.add_argument("--seed", type=int, default=1)
    load.add_argument("--warmup", type=int, metavar="CALLS",
                      help="calls placed flat out before measuring, in waves of --concurrency, with the same "
                           "callers (default: %d x --concurrency, so each pooled recognizer has decoded about "
                           "that many calls, as on a server that has been taking calls; 0 = none: a fresh "
                           "server, whose first calls build the recognizers' graph caches)" % WARMUP_PER_RECOGNIZER)
    load.add_argument("--webhook-rate", type=float, metavar="PER_S",
                      help="instead of calls: POST the incoming-call webhook at this fixed rate (open loop)")
    load.add_argument("--seconds", type=float, default=30.0, help="length of the --webhook-rate run")
    load.add_argument("--soak", action="store_true", help="accelerated soak: worker memory over many calls")
    p.add_argument("--json", metavar="FILE", help="write the figures here (default: bench-results/MODE-TIME.json)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.profile != "calls":
        return _part(args)
    from ivr.bench import report as rep
    from ivr.bench.target import AgentDesk, BenchError, Target, spawn
    from ivr.cli import load_config

    cfg = load_config(args)
    mode = "rate" if args.webhook_rate else "soak" if args.soak else f"calls-{args.arrivals}"
    result: dict = {"mode": mode, "machine": rep.machine(), "command": "ivr " + " ".join(sys.argv[1:])}
    concurrency = args.concurrency or (4 if args.soak else min(args.calls or 6, 6))
    server = None
    scratch = tempfile.TemporaryDirectory(prefix="ivr-bench-") if args.spawn else None
    try:
        if args.spawn:
            threads = args.threads or max(32, concurrency * 2 + 16)
            print(f"starting ivr serve ({args.workers} worker(s), {threads} threads) on a scratch config...",
                  file=sys.stderr, flush=True)
            server, target = spawn(args.config, scratch.name, workers=args.workers, threads=threads,
                                   agents=args.agents)
            result["server"] = {"spawned": True, "workers": args.workers, "threads": threads, "agents": args.agents}
        else:
            target = _running_target(args, cfg)
            result["server"] = {"spawned": False, "url": target.url}
        if args.to:
            target.number = args.to
        ep = cfg.asr.endpointing  # the silence a turn waits: the full guard, or the shorter one once settled
        guard = (ep.silence_after_speech_s, min(ep.settled_silence_s or ep.silence_after_speech_s,
                                                ep.silence_after_speech_s))
        sampler = _sampler(target, metrics=args.soak)
        try:
            if args.webhook_rate:
                from ivr.bench.rate import webhook_rate

                result["webhook_rate"] = webhook_rate(target, args.webhook_rate, args.seconds)
                rows = rep.rate_rows(result["webhook_rate"])
            else:
                desk = None
                if target.api_token:
                    desk = AgentDesk(target)
                    result["agents_on_shift"] = desk.on_shift()
                else:
                    print("ivr bench: no API token; agents must already be on shift", file=sys.stderr)
                try:
                    rows = _calls(args, target, desk, guard, concurrency, result, sampler)
                finally:
                    if desk is not None:
                        desk.off_shift()
        finally:
            result["processes"] = sampler.stop() if sampler else None
    except BenchError as exc:
        print(f"ivr bench: {exc}", file=sys.stderr)
        return 2
    except requests.ConnectionError as exc:
        print(f"ivr bench: nothing answered at {exc.request.url if exc.request else 'the server'}; is the server "
              "running (`ivr serve`)? Use --url to point at it, or --spawn to start one.", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.stop()
        if scratch is not None:
            scratch.cleanup()
    title = f"ivr bench: {mode}" + (f" ({result['server'].get('workers')} worker(s))" if args.spawn else "")
    print(rep.table(title, rows + rep.process_rows(result["processes"]) + _soak_rows(result)))
    path = rep.write_json(result, args.json or rep.default_path(mode))
    print(f"\nJSON: {path}")
    failed = result.get("calls_report", {}).get("error_count") or result.get("webhook_rate", {}).get("error_count")
    return 1 if failed else 0


def _running_target(args, cfg):
    from ivr.bench.sampler import find_server_pid
    from ivr.bench.target import BenchError, Target

    token = args.twilio_token or cfg.twilio.auth_token.get_secret_value()
    if not token and cfg.twilio.validate_signatures:
        raise BenchError("no Twilio auth token to sign with; set TWILIO_AUTH_TOKEN (the server's) or --twilio-token")
    url = (args.url or f"http://{cfg.server.host}:{cfg.server.port}").rstrip("/")
    api_token = args.api_token or cfg.api.token.get_secret_value()
    number = next(iter(cfg.hotline(cfg.default_hotline).numbers), "+8215880000")
    pid = args.pid
    if pid is None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.hostname in ("127.0.0.1", "localhost"):
            pid = find_server_pid(parts.port or 80)
    return Target(url, (args.public_url or cfg.server.public_url).rstrip("/"), token or "unsigned", api_token,
                  number=number, pid=pid)


def _sampler(target, metrics: bool = False):
    """CPU and memory of the server's processes; ``metrics``: also its recognizers alive (the soak)."""
    from ivr.bench.sampler import ProcessSampler

    if not target.pid:
        return None
    return ProcessSampler(target.pid, every_s=2.0, metrics_url=target.url + "/metrics" if metrics else None).start()


# A recognizer decodes its first calls at 2-3x the CPU of one that has decoded about ten
# (its lazily composed graph cache is cold: ivr/asr/engine.py), so the default warm-up
# gives every pooled recognizer that many calls: the figures are those of a server that
# has been taking calls. --warmup 0 measures a fresh one.
WARMUP_PER_RECOGNIZER = 10


def _calls(args, target, desk, guard, concurrency, result, sampler) -> list:
    from ivr.bench import report as rep
    from ivr.bench.load import CALLER_SETS, CallDriver, caller_audio, fetch_server_speech, report

    audio = caller_audio(names=CALLER_SETS[args.callers])
    result["callers"] = args.callers
    speed = args.speed if args.speed is not None else (0.0 if args.soak else 1.0)
    calls = args.calls or (2000 if args.soak else 6)
    warmup = WARMUP_PER_RECOGNIZER * concurrency if args.warmup is None else args.warmup
    if warmup:
        print(f"warming up: {warmup} calls, not measured...", file=sys.stderr, flush=True)
        warm = CallDriver(target, desk, speed=0.0, talk_s=0.0, audio=audio)
        warm.waves(warmup, min(warmup, concurrency))
        result["warmup"] = {"calls": warmup, "errors": sum(len(r.errors) for r in warm.results)}
    progress = {"done": 0, "marks": []}
    started = time.perf_counter()

    def on_call(r) -> None:
        progress["done"] += 1
        progress["marks"].append((time.monotonic() - (sampler.started if sampler else 0), progress["done"]))
        if progress["done"] % max(1, calls // 20) == 0 or progress["done"] == calls:
            print(f"  {progress['done']}/{calls} calls, {time.perf_counter() - started:.0f} s", file=sys.stderr,
                  flush=True)

    if args.arrivals == "random" and not args.soak:
        speed = speed * args.accelerate if speed else 0.0
        driver = CallDriver(target, desk, speed=speed, talk_s=args.talk, on_call=on_call, audio=audio)
        over = args.over / args.accelerate
        result["scenario"] = {"arrivals": "random", "calls": calls, "over_s": over, "accelerate": args.accelerate,
                              "speed": speed, "seed": args.seed}
        driver.arrivals(calls, over, args.seed)
    else:
        driver = CallDriver(target, desk, speed=speed, talk_s=args.talk, on_call=on_call, audio=audio)
        if args.soak:
            result["scenario"] = {"soak": True, "calls": calls, "concurrency": concurrency, "speed": speed}
            driver.closed_loop(calls, concurrency)
        else:
            result["scenario"] = {"arrivals": "waves", "calls": calls, "concurrency": concurrency, "speed": speed}
            driver.waves(calls, concurrency)
    elapsed = time.perf_counter() - started
    if target.api_token:
        fetch_server_speech(target, driver.results)
    result["calls_report"] = report(driver.results, elapsed, guard[0], speed, guard[1])
    # every call's own figures, to find out which callers a percentile comes from
    result["calls"] = [dataclasses.asdict(r) for r in driver.results]
    if desk is not None and desk.errors:
        result["agent_desk_errors"] = desk.errors[:10]
    if args.soak:
        result["soak_marks"] = progress["marks"]
    return rep.calls_rows(result["calls_report"])


def _soak_rows(result: dict) -> list:
    """Worker memory against calls completed, after the first tenth (warm-up)."""
    if result.get("mode") != "soak" or not result.get("processes"):
        return []
    from ivr.bench.report import soak_memory

    rows, soak = [], []
    workers = [p for p in result["processes"]["processes"] if p["role"] == "worker"]
    for proc in workers:
        # the recognizer counts come from whichever worker answered /metrics: one worker's own
        alive = result["processes"].get("recognizers_alive") if len(workers) == 1 else None
        m = {"pid": proc["pid"], **soak_memory(result.get("soak_marks") or [], proc["rss_series"], alive)}
        soak.append(m)
        rows.append((f"worker {proc['pid']} RSS after warm-up -> end, slope",
                     f"{m['rss_after_warmup_mb']} -> {m['rss_end_mb']} MB, {m['slope_mb_per_1000_calls']} MB per "
                     f"1000 calls"))
        rows.append(("  slope over the second half of the calls", f"{m['second_half_slope_mb_per_1000_calls']} MB "
                     "per 1000 calls"))
        rows.append(("  RSS per fifth of the calls after warm-up: mean / max MB",
                     ", ".join(f"{a} / {b}" for a, b in zip(m["fifths_mean_mb"], m["fifths_max_mb"]))))
        if "recognizers_end" in m:
            grew = m["pool_last_grew_at_call"]
            rows.append(("  speech recognizers alive: after warm-up -> end (max)",
                         f"{m['recognizers_after_warmup']} -> {m['recognizers_end']} ({m['recognizers_max']}; "
                         + (f"reached at call {grew})" if grew is not None else "no growth after warm-up)")))
            rows.append(("  slope after the pool last grew",
                         f"{m['slope_after_pool_grew_mb_per_1000_calls']} MB per 1000 calls over "
                         f"{m['calls_after_pool_grew']} calls"))
    result["soak"] = soak
    return rows


def _part(args: argparse.Namespace) -> int:
    """The part benchmarks live with their parts; run the one asked for."""
    if args.profile == "speech":
        from ivr.asr import bench

        argv = ["--config", args.config] + (["--json", args.json] if args.json else [])
        return bench.main(argv)
    if args.profile == "router":
        from ivr.routing import bench

        return bench.main([])
    from ivr.cli import load_config
    from ivr.intents import bench

    return bench.main(load_config(args), only=["hotline"])
