"""`ivr rules ...` and `ivr agents ...`: check and try routing rules, see and set agents."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path


def register(sub) -> None:
    """Add this package's subcommands to the `ivr` parser."""
    rules = sub.add_parser("rules", help="check routing rules and the roster; simulate a call",
                           description="Routing rules (routing/rules.yaml) and the agent roster "
                                       "(routing/agents.yaml) are edited live by ops; check an edit before saving.")
    rsub = rules.add_subparsers(dest="rules_command", metavar="ACTION")
    rsub.required = True
    check = rsub.add_parser("check", help="validate rules and roster; print file:line: reason for each problem",
                            description="Validate FILE (a rules or roster file; the other one comes from "
                                        "config.yaml) or, without FILE, both configured files. Exit 1 on problems.")
    check.add_argument("file", nargs="?", metavar="FILE", help="rules.yaml or agents.yaml to check (e.g. an edited copy)")
    check.set_defaults(func=cmd_check)

    sim = rsub.add_parser("simulate", help="show category, queue, candidate agents and the decision for a call",
                          description="Classify TEXT (or take --category), then show what the router would do "
                                      "now (or --at TIME) with the agents' live state. Changes nothing.")
    sim.add_argument("text", metavar="TEXT", help="what the caller says (quote it)")
    sim.add_argument("--at", metavar="TIME", help="ISO time (2025-03-03T10:00, rules time zone if no offset) or Unix seconds")
    sim.add_argument("--from", dest="caller", metavar="NUMBER", default="", help="caller's E.164 number: VIP priority, and their last agent first "
                          "(sticky routing), as for a real call")
    sim.add_argument("--lang", metavar="L", default=None, help="language of TEXT: ko, en or zh (default: the default hotline's)")
    sim.add_argument("--category", metavar="C", help="skip the classifier and use this category")
    sim.add_argument("--json", action="store_true", help="print JSON")
    sim.set_defaults(func=cmd_simulate)

    agents = sub.add_parser("agents", help="list agents' live state or set an agent's status",
                            description="Agents' state lives in Redis: available, reserved, on_call, wrap_up, "
                                        "paused (after a missed call) or offline (with the reason).")
    asub = agents.add_subparsers(dest="agents_command", metavar="ACTION")
    asub.required = True
    lst = asub.add_parser("list", help="print every agent's state")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(func=cmd_agents_list)
    st = asub.add_parser("set-status", help="set an agent available, offline, or end their wrap-up",
                         description="Same as POST /api/agents/ID/status (heartbeat: POST /api/agents/ID/heartbeat). "
                                     "An agent who sends no heartbeat for agents.heartbeat_timeout_s (routing/rules.yaml) "
                                     "goes offline by itself: their app sends them; from a shell, send 'heartbeat'.")
    st.add_argument("agent_id", metavar="ID", help="agent id from routing/agents.yaml")
    st.add_argument("status", choices=("available", "offline", "wrap_up_done", "heartbeat"), metavar="STATUS",
                    help="available | offline | wrap_up_done | heartbeat")
    st.add_argument("--reason", default="set offline from the shell", help="reason shown for offline")
    st.set_defaults(func=cmd_agents_set)


def _config(args):
    from ivr.cli import load_config

    return load_config(args)


def _kind(path: Path) -> str:
    from ivr import yamlfile

    try:
        data = yamlfile.read(path).data
    except yamlfile.YamlFileError:
        return "agents" if "agent" in path.name else "rules"
    if isinstance(data, dict) and isinstance(data.get("agents"), list):
        return "agents"
    return "rules"


def cmd_check(args: argparse.Namespace) -> int:
    from ivr.routing import rules as rules_mod

    config = _config(args)
    rules_path, agents_path = config.path(config.routing.rules), config.path(config.routing.agents)
    target = None  # the service's own file that FILE stands in for
    if args.file:
        path = Path(args.file)
        if _kind(path) == "agents":
            target, agents_path = agents_path, path
        else:
            target, rules_path = rules_path, path
    try:
        r = rules_mod.load(rules_path, agents_path)
    except rules_mod.RulesError as exc:
        print(str(exc), file=sys.stderr)
        if target is not None and Path(args.file).resolve() != Path(target).resolve():
            tail = f"fix them before copying it over {target}"
        else:
            tail = "the running service keeps its last good version"
        print(f"refused: {len(exc.problems)} problem(s); {tail}", file=sys.stderr)
        return 1
    print(f"ok: {rules_path} and {agents_path}: {len(r.rules.categories)} categories, {len(r.rules.queues)} queues, "
          f"{len(r.roster.agents)} agents (version {r.version})")
    for note in rules_mod.advice(r):
        print(f"note: {note}")
    return 0


def parse_time(text: str | None, zone_name: str) -> float:
    if not text:
        return time.time()
    try:
        return float(text)
    except ValueError:
        pass
    from ivr.routing.hours import zone

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"ivr: --at: expected an ISO time like 2025-03-03T10:00 or Unix seconds, found {text!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(zone_name))
    return moment.timestamp()


def cmd_simulate(args: argparse.Namespace) -> int:
    from ivr.keys import Keys
    from ivr.routing import rules as rules_mod
    from ivr.routing.router import CallInfo, Router
    from ivr.store import open_store

    config = _config(args)
    if args.caller and not rules_mod.E164_PATTERN.match(args.caller):
        print(f"ivr: --from: expected the caller's E.164 number like +821012345678, found {args.caller!r}",
              file=sys.stderr)
        return 2
    language = args.lang or config.hotline(config.default_hotline).language
    try:
        rules = rules_mod.load(config.path(config.routing.rules), config.path(config.routing.agents))
    except rules_mod.RulesError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    at = parse_time(args.at, rules.rules.timezone)
    prediction = None
    category = args.category
    if category and category not in rules.rules.categories:
        print(f"ivr: --category: no category {category!r} in the rules "
              f"(have: {', '.join(rules.rules.categories)})", file=sys.stderr)
        return 2
    if not category:
        from ivr.intents.classifier import load_classifier

        prediction = load_classifier(config).predict(args.text, language)
        category = prediction.category
    store = open_store(config)
    try:
        router = Router.read_only(rules, store.client, Keys(config.redis.key_prefix), clock=lambda: at)
        result = router.simulate(CallInfo("SIMULATED", category, args.caller, config.default_hotline, language, at))
    finally:
        store.close()
    if prediction is not None:
        result["classifier"] = prediction.to_dict()
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    from ivr.routing.hours import zone

    when = datetime.fromtimestamp(at, zone(rules.rules.timezone)).isoformat(timespec="minutes")
    if prediction is not None:
        print(f"category:   {category} (confidence {prediction.confidence:.2f}, runner-up {prediction.runner_up})")
    else:
        print(f"category:   {category} (given)")
    print(f"queue:      {result['queue']} (priority {result['priority']}{', VIP' if result['vip'] else ''}) at {when}")
    if result.get("sticky"):
        print(f"sticky:     {result['sticky']} (this caller's agent within the last "
              f"{rules.rules.sticky.within_hours:g} h; first if free)")
    print("candidates: " + (", ".join(f"{c['id']} ({c['state']})" for c in result["candidates"]) or "none"))
    d = result["decision"]
    if d["kind"] == "agent":
        print(f"decision:   agent {d['agent']['id']} ({d['agent']['name']}, {d['agent']['address']})")
    elif d["kind"] == "queued":
        print(f"decision:   queued in {d['queue']} at position {d['position']}, expected wait {d['expected_wait_s']:.0f} s")
    else:
        print(f"decision:   {d['kind']}: {d['message']}" + (f" -> {d['fallback_number']}" if d["fallback_number"] else ""))
    return 0


def _router(config):
    from ivr.keys import Keys
    from ivr.routing.router import Router
    from ivr.store import open_store

    store = open_store(config)
    return store, Router.from_config(config, store.client, Keys(config.redis.key_prefix))


def cmd_agents_list(args: argparse.Namespace) -> int:
    config = _config(args)
    store, router = _router(config)
    try:
        agents = router.agents_snapshot()
    finally:
        store.close()
    if args.json:
        print(json.dumps(agents, ensure_ascii=False, indent=2))
        return 0
    print(f"{'ID':<12} {'NAME':<18} {'STATE':<10} {'CALLS':>5}  REASON / CALL")
    for a in agents:
        detail = a["reason"] or (a["call"] or "")
        print(f"{a['id']:<12} {a['name'][:18]:<18} {a['state']:<10} {a['calls_today']:>5}  {detail}")
    return 0


def cmd_agents_set(args: argparse.Namespace) -> int:
    config = _config(args)
    store, router = _router(config)
    try:
        result = router.set_status(args.agent_id, args.status, args.reason)
    finally:
        store.close()
    if not result["ok"]:
        print(f"ivr: {args.agent_id}: {result['message']}", file=sys.stderr)
        return 1
    print(f"{args.agent_id}: {result['state']}" + (f" ({result['message']})" if result["message"] else ""))
    timeout = router.rules.rules.agents.heartbeat_timeout_s
    if args.status in ("available", "heartbeat") and timeout > 0:
        print(f"  (offline by itself after {timeout:g} s without a heartbeat: "
              f"ivr agents set-status {args.agent_id} heartbeat)")
    return 0


def doctor_checks(config) -> list:
    from ivr.doctor import Check
    from ivr.routing import rules as rules_mod

    try:
        r = rules_mod.load(config.path(config.routing.rules), config.path(config.routing.agents))
    except rules_mod.RulesError as exc:
        more = f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return [Check("routing rules", "fail", str(exc.first) + more, "fix the line named, then `ivr rules check`")]
    checks = [Check("routing rules", "ok", f"{len(r.rules.queues)} queues, {len(r.roster.agents)} agents (version {r.version})")]
    return checks + [Check("routing rules", "warn", note, f"edit {config.routing.rules}") for note in rules_mod.advice(r)]
