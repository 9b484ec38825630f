"""`ivr replay`: place a recorded call on a running hotline server, playing Twilio's side."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub) -> None:
    """Add this package's subcommands to the `ivr` parser."""
    replay = sub.add_parser(
        "replay", help="replay a recorded call (WAV) against a running server, as Twilio would, and print the trace",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Play Twilio's side of one call: POST the signed incoming-call webhook, execute the TwiML\n"
                    "(Say, Pause, Connect/Stream, Dial, Enqueue, Redirect, Hangup), stream CALL.wav as 20 ms\n"
                    "8 kHz mu-law frames, play the agents' side of <Dial>, and POST the status callback.\n\n"
                    "Requests are signed with twilio.auth_token (TWILIO_AUTH_TOKEN) over server.public_url\n"
                    "(IVR_PUBLIC_URL), exactly as Twilio signs them, and sent to --url.",
        epilog="examples:\n"
               "  ivr replay tests/fixtures/payment.wav\n"
               "  ivr replay call.wav --to +18005550100 --agent-answers no yes --speed 4\n"
               "  ivr replay call.wav --hangup-while queued --hangup-after 10 --json")
    replay.add_argument("wav", metavar="CALL.wav", nargs="+",
                        help="the caller's audio (any WAV: PCM or mu-law, any rate); give several for re-prompts, "
                             "or a recorded call's CA....json (calls.record_audio) to play all its turns")
    replay.add_argument("--to", metavar="NUMBER", help="the hotline number called (default: the default hotline's first number)")
    replay.add_argument("--from", dest="from_", default="+15551230000", metavar="NUMBER", help="the caller's number (default: %(default)s)")
    replay.add_argument("--url", help="where the server really listens (default: http://server.host:server.port)")
    replay.add_argument("--agent-answers", nargs="+", default=[], metavar="yes|no|busy|fail",
                        help="how each dialed agent behaves, in order (default: every agent answers); "
                             "add :SECONDS for talk time, e.g. yes:30")
    replay.add_argument("--speed", type=float, default=1.0,
                        help="1 = real time (default), 4 = four times faster, 0 = as fast as possible")
    replay.add_argument("--hangup-while", choices=("listening", "queued", "connected"),
                        help="the caller hangs up during this phase")
    replay.add_argument("--hangup-after", type=float, default=2.0, metavar="SECONDS",
                        help="seconds into that phase (default: %(default)s)")
    replay.add_argument("--json", action="store_true", help="print the trace as JSON instead of text")
    replay.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    from ivr.cli import load_config
    from ivr.telephony.standin import AgentBehaviour, TwilioStandIn
    from ivr.telephony.wavstream import WavError, read_wav

    cfg = load_config(args)
    token = cfg.twilio.auth_token.get_secret_value()
    if not token and cfg.twilio.validate_signatures:
        print("ivr replay: no Twilio auth token to sign with; set TWILIO_AUTH_TOKEN (the server's token)",
              file=sys.stderr)
        return 2
    try:
        wavs, recorded_to = recorded_call(args.wav)
        audio = [read_wav(path) for path in wavs]
        behaviours = [AgentBehaviour.parse(b) for b in args.agent_answers]
    except (WavError, ValueError, OSError) as exc:
        print(f"ivr replay: {exc}", file=sys.stderr)
        return 2
    to = args.to or recorded_to or next(iter(cfg.hotline(cfg.default_hotline).numbers), "+18005550100")
    url = args.url or f"http://{cfg.server.host}:{cfg.server.port}"
    # each verb as it plays, on stderr (the trace or JSON follows on stdout), so a caller left
    # waiting in a queue shows where they are rather than a silent terminal
    progress = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    standin = TwilioStandIn(cfg.server.public_url, token or "unsigned", connect_to=url, speed=args.speed,
                            progress=progress)
    trace = standin.place_call(audio, from_=args.from_, to=to, agent_behaviour=behaviours,
                               hangup_while=args.hangup_while, hangup_after_s=args.hangup_after)
    if args.json:
        print(json.dumps(trace.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(trace.render())
    if all(r.status is None for r in trace.requests):
        print(f"ivr replay: nothing answered at {url}; is the server running (`ivr serve`)? Use --url to point "
              "at it.", file=sys.stderr)
    return 1 if trace.errors else 0


def recorded_call(paths: list[str]) -> tuple[list[str], str]:
    """WAV paths to play, and the number called: a recorded call's ``.json`` (written beside
    its WAVs when ``calls.record_audio`` is on) stands for all its turns."""
    from pathlib import Path

    wavs, to = [], ""
    for name in paths:
        path = Path(name)
        if path.suffix.lower() != ".json":
            wavs.append(str(path))
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            turns = [str(path.parent / t) for t in record["recordings"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a recorded call's record ({exc.__class__.__name__}: {exc})") from None
        if not turns:
            raise ValueError(f"{path}: the record names no recordings")
        wavs.extend(turns)
        to = to or str(record.get("to") or "")
    return wavs, to
