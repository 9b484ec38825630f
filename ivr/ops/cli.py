"""`ivr calls ...`: export, list and show call records; purge what retention says is too old."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def register(sub) -> None:
    """Add this package's subcommands to the `ivr` parser."""
    calls = sub.add_parser("calls", help="export, list or show call records (masked); purge old recordings",
                           description="Every finished call leaves one record (masked: no caller numbers, "
                                       "no card, ID or phone numbers in transcripts) in Redis, kept for "
                                       "calls.retention_days.")
    csub = calls.add_subparsers(dest="calls_command", metavar="ACTION")
    csub.required = True

    exp = csub.add_parser("export", help="write records as JSON lines or CSV",
                          description="Stream the records written between --since and --until, oldest first. "
                                      "TIME is a date (2026-11-01), an ISO time (2026-11-01T08:00, "
                                      "local time unless it has an offset), Unix seconds, or an age such "
                                      "as 24h, 7d, 30m.")
    exp.add_argument("--since", metavar="TIME", help="first record time (default: the oldest kept)")
    exp.add_argument("--until", metavar="TIME", help="last record time (default: now)")
    exp.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                     help="jsonl: one JSON object per line; csv: nested fields as dotted columns")
    exp.add_argument("--output", "-o", metavar="FILE", help="write FILE (complete or not at all) instead of stdout")
    exp.set_defaults(func=cmd_export)

    lst = csub.add_parser("list", help="the latest records as a table")
    lst.add_argument("--limit", "-n", type=_positive, default=20, metavar="N", help="how many (default 20)")
    lst.add_argument("--since", metavar="TIME", help="only records since TIME (as for export)")
    lst.set_defaults(func=cmd_list)

    show = csub.add_parser("show", help="one call's record as JSON")
    show.add_argument("sid", metavar="SID", help="the Twilio call SID (CA...)")
    show.set_defaults(func=cmd_show)

    purge = csub.add_parser("purge", help="delete records and recordings older than calls.retention_days",
                            description="Trim the records stream and delete recorded WAVs older than the "
                                        "retention. Runs on its own too (hourly, as calls end).")
    purge.set_defaults(func=cmd_purge)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("expected 1 or more")
    return value


def parse_when(text: str | None, *, now: float | None = None, option: str = "--since") -> float | None:
    """Unix seconds from a date, an ISO time, Unix seconds or an age (``24h``); None stays None.

    A date alone means the start of that day for ``--since`` and its end for ``--until``, so
    ``--since 2026-11-01 --until 2026-11-01`` is that whole day. A date is read as a date
    even when written without dashes (``20261101``, not Unix seconds in 1970)."""
    if text is None or text == "":
        return None
    now = time.time() if now is None else now
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        return now - float(m.group(1)) * _UNIT_S[m.group(2).lower()]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is not None:
        date_only = len(text.rstrip("Zz")) in (8, 10) and "T" not in text and ":" not in text
        if date_only and option == "--until":
            moment += timedelta(days=1)
            return moment.timestamp() - 0.001  # the day's last millisecond: the bounds are inclusive
        return moment.timestamp()  # naive: local time
    try:
        value = float(text)
    except ValueError:
        raise SystemExit(f"ivr: {option}: expected a date (2026-11-01), an ISO time (2026-11-01T08:00), "
                         f"Unix seconds or an age (24h, 7d), found {text!r}") from None
    if not math.isfinite(value) or not 0 <= value <= now + 366 * 86400:
        raise SystemExit(f"ivr: {option}: {text!r} is not a time the records could have "
                         f"(Unix seconds from 0 until a year from now)")
    return value


def _open(args):
    from ivr.cli import load_config
    from ivr.keys import Keys
    from ivr.store import StoreError, open_store

    config = load_config(args)
    try:
        store = open_store(config)
        store.client.ping()
    except (StoreError, Exception) as exc:  # any connection problem: one clear line
        print(f"ivr: cannot reach Redis: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    return config, store, Keys(config.redis.key_prefix)


def _range(args) -> tuple[float | None, float | None]:
    since = parse_when(getattr(args, "since", None), option="--since")
    until = parse_when(getattr(args, "until", None), option="--until")
    if since is not None and until is not None and until < since:
        raise SystemExit("ivr: --until is before --since")
    return since, until


def export(redis, keys, out, fmt: str, since: float | None, until: float | None) -> int:
    """Write the records in [since, until] to ``out`` oldest first; returns how many.

    Reads the stream page by page, up to the newest record there was when it began (calls
    ending meanwhile are in the next export), so CSV's two readings, once for the column
    names and once for the rows, see the same records; memory stays one page either way."""
    from ivr.ops.records import csv_columns, flatten, last_record_id, read_records

    last = last_record_id(redis, keys, until)

    def records():
        return iter(()) if last is None else read_records(redis, keys, since, newest_first=False, last_id=last)

    n = 0
    if fmt == "jsonl":
        for record in records():
            out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            n += 1
        return n
    seen: set[str] = {"amended_at"}  # a record amended between the two readings still has its column
    for record in records():
        seen.update(flatten(record))
    writer = csv.DictWriter(out, fieldnames=csv_columns(seen), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records():
        writer.writerow(flatten(record))
        n += 1
    return n


def cmd_export(args: argparse.Namespace) -> int:
    since, until = _range(args)
    config, store, keys = _open(args)
    try:
        if not args.output:
            n = export(store.client, keys, sys.stdout, args.format, since, until)
            sys.stdout.flush()
        else:
            target = Path(args.output)
            partial = target.with_name(target.name + ".partial")
            try:
                with open(partial, "w", encoding="utf-8", newline="") as out:
                    n = export(store.client, keys, out, args.format, since, until)
                os.replace(partial, target)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
    finally:
        store.close()
    print(f"{n} record{'s' if n != 1 else ''} exported", file=sys.stderr)
    return 0


def _clock(ts) -> str:
    try:
        return datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OSError):
        return "-"


def table(records: list[dict]) -> str:
    """Records as a fixed-width table, one line each."""
    head = ("ENDED", "SID", "HOTLINE", "CATEGORY", "CONF", "QUEUE", "WAIT", "AGENT", "OUTCOME", "DUR")
    rows = [head]
    for r in records:
        conf = r.get("confidence")
        rows.append((_clock(r.get("ended_at") or r.get("started_at")), str(r.get("sid", "")),
                     str(r.get("hotline") or "-"), str(r.get("category") or "-"),
                     f"{conf:.2f}" if isinstance(conf, (int, float)) else "-", str(r.get("queue") or "-"),
                     f"{float(r.get('wait_s') or 0):.0f}s", str(r.get("agent") or "-"),
                     str(r.get("outcome") or "-"), f"{float(r.get('duration_s') or 0):.0f}s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def cmd_list(args: argparse.Namespace) -> int:
    from ivr.ops.records import read_records

    since = parse_when(args.since, option="--since")
    config, store, keys = _open(args)
    try:
        records = list(read_records(store.client, keys, since, None, limit=args.limit))
    finally:
        store.close()
    if not records:
        print("no call records" + (" in that time" if since else ""))
        return 0
    print(table(records))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ivr.ops.records import find_record

    config, store, keys = _open(args)
    try:
        record = find_record(store.client, keys, args.sid)
    finally:
        store.close()
    if record is None:
        print(f"ivr: no record of call {args.sid} (unknown, still in progress, or older than "
              f"{config.calls.retention_days} days)", file=sys.stderr)
        return 1
    print(json.dumps(record, ensure_ascii=False, indent=2, default=str))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from ivr.ops.records import purge_recordings, trim_records

    config, store, keys = _open(args)
    days = config.calls.retention_days
    try:
        trimmed = trim_records(store.client, keys, days)
    finally:
        store.close()
    deleted = purge_recordings(config.path(config.calls.recordings_dir), days)
    print(f"{trimmed} record{'s' if trimmed != 1 else ''} and {len(deleted)} recording"
          f"{'s' if len(deleted) != 1 else ''} older than {days} days deleted")
    return 0
