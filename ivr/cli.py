"""The `ivr` command: serve the hotline, check it, and the tools ops and developers use.

Each concept package adds its own subcommands through ``register(subparsers)`` in its
``cli`` module (models, transcribe, intents, rules, agents, replay, calls, bench).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ivr import config as config_mod
from ivr import logs

SUBCOMMAND_MODULES = ("ivr.asr.cli", "ivr.intents.cli", "ivr.routing.cli", "ivr.telephony.cli", "ivr.ops.cli",
                      "ivr.bench.cli")


def load_config(args: argparse.Namespace) -> config_mod.Config:
    """The config named by --config (or IVR_CONFIG); exits with the one-line error."""
    try:
        return config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ivr",
        description="Hotline: an intelligent voice hotline backend (Twilio + Vosk + scikit-learn + Redis).",
    )
    parser.add_argument("--config", default=os.environ.get("IVR_CONFIG", config_mod.DEFAULT_PATH),
                        help="path to config.yaml (default: $IVR_CONFIG or ./config.yaml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    serve = sub.add_parser("serve", help="run the hotline's web server (webhooks, media streams, API, ops page)",
                           description="Serve the hotline with gunicorn. Without REDIS_URL an embedded Redis "
                                       "is started first and shared by every worker.")
    serve.add_argument("--host", help="address to bind (default: server.host)")
    serve.add_argument("--port", type=int, help="port to bind (default: server.port)")
    serve.add_argument("--workers", type=int, help="worker processes (default: server.workers); each loads the speech models once")
    serve.add_argument("--threads", type=int, help="threads per worker (default: server.threads); a live call's stream holds one")
    serve.set_defaults(func=cmd_serve)

    doctor = sub.add_parser("doctor", help="check config, Redis, speech models, classifier and rules; say how to fix each problem")
    doctor.set_defaults(func=cmd_doctor)

    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    from ivr.server import serve

    cfg = load_config(args)
    return serve(cfg, host=args.host, port=args.port, workers=args.workers, threads=args.threads,
                 config_path=args.config)


def cmd_doctor(args: argparse.Namespace) -> int:
    from ivr.doctor import render, run_checks

    from ivr.doctor import config_problem_checks

    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        # The one-line error a start-up would print, then each problem with its fix.
        print(f"ivr: {exc}", file=sys.stderr)
        print(render(config_problem_checks(exc.problems)))
        print("\nthe other checks need a config that parses; run `ivr doctor` again after fixing it")
        return 2
    checks = run_checks(cfg)
    print(render(checks))
    failed = sum(c.level == "fail" for c in checks)
    warned = sum(c.level == "warn" for c in checks)
    print(f"\n{len(checks)} checks: {failed} failed, {warned} warnings")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(os.environ.get("IVR_LOG_LEVEL", "WARNING"), json_lines=False)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
