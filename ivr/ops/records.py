"""Call records: one masked JSON entry per finished call in a Redis stream, and the day's counters.

The stream (``keys.records()``) holds ``{"json": <record>}`` entries whose IDs are the
times they were written (Redis' own ``<ms>-<seq>`` IDs), so "since" and "until" are ID
ranges and retention is ``XADD ... MINID ~ <now - retention>``: entries older than
the retention go as new ones arrive, in whole macro-nodes (cheap). Reading pages
through the stream with XRANGE/XREVRANGE, so an export of a month never sits in memory.

Nothing unmasked is stored: :func:`write_record` masks the caller's number and the
transcripts again (masking is idempotent) in case a writer forgot.

Recorded audio (``calls.record_audio``) follows the same retention:
:func:`purge_recordings` deletes WAVs older than it; :func:`write_record` calls it at
most once an hour per process, and ``ivr calls purge`` on demand.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from ivr.ops.masking import mask, mask_number

log = logging.getLogger(__name__)

PAGE = 500  # entries per XRANGE round trip
DAILY_TTL_S = 400 * 86400  # a year of day counters, and a bit, for comparisons
PURGE_EVERY_S = 3600.0

_UNMASKED_NUMBER = re.compile(r"\d{5,}")


def _unmasked(caller: str) -> bool:
    """Whether a caller field still shows what identifies them: 5+ digits, however they are
    grouped ("+82 10-1234-5678"), or the user of a SIP/Client address (masked: ``k***``)."""
    if sum(ch.isdigit() for ch in caller) >= 5 and _UNMASKED_NUMBER.search(caller.replace(" ", "").replace("-", "")):
        return True
    scheme, colon, address = caller.partition(":")
    return bool(colon) and scheme.lower() in ("sip", "sips", "client") and "***" not in address.partition("@")[0]
_purge_lock = threading.Lock()
_last_purge: dict[str, float] = {}


# --- writing -------------------------------------------------------------------------

def sanitize(record: dict) -> dict:
    """A copy of ``record`` with the caller's number and every transcript masked."""
    record = dict(record)
    language = str(record.get("language") or "")
    caller = record.get("caller")
    if isinstance(caller, str) and _unmasked(caller):
        record["caller"] = mask_number(caller)
    for field in ("transcript", "partial"):
        if isinstance(record.get(field), str):
            record[field] = mask(record[field], language)
    earlier = record.get("earlier_transcripts")
    if isinstance(earlier, list):
        record["earlier_transcripts"] = [mask(t, language) if isinstance(t, str) else t for t in earlier]
    return record


def write_record(redis, keys, record: dict, retention_days: int | float, *, at: float | None = None) -> str:
    """Append one finished call's record; entries older than ``retention_days`` go.

    The trim is approximate (whole stream nodes, so a few entries past the retention
    may stay until a later write; ``ivr calls purge`` trims exactly). ``at`` (Unix
    seconds) dates the entry instead of now: imports and tests; it must be later than
    every entry already stored. Returns the stream ID (``<ms>-<seq>``)."""
    record = sanitize(record)
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
    now_ms = int(time.time() * 1000)
    min_id = f"{now_ms - int(retention_days * 86400 * 1000)}-0"
    entry = "*" if at is None else f"{int(at * 1000)}-{_next_seq(redis, keys, int(at * 1000))}"
    entry_id = redis.xadd(keys.records(), {"json": body}, id=entry, minid=min_id, approximate=True)
    entry_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    sid = record.get("sid")
    if sid:
        redis.set(keys.record_ref(str(sid)), entry_id, ex=max(1, int(retention_days * 86400)))
    audio = record.get("audio_path")
    if audio:
        maybe_purge(Path(audio).parent, retention_days)
    return entry_id


def amend_record(redis, keys, record: dict, retention_days: int | float) -> str | None:
    """Store ``record`` as the new version of the record of the same call (its ``sid``);
    returns that record's stream ID, or None (nothing written) when the call has none yet.

    A stream's entries cannot change, so the new version is kept beside the stream, under
    the entry's ID, and every reader (:func:`read_records`, :func:`find_record`) reads it in
    the entry's place: the record keeps its position (the time it was first written), an
    export running meanwhile has it once, and no reader ever sees two versions."""
    sid = str(record.get("sid") or "")
    entry_id = redis.get(keys.record_ref(sid)) if sid else None
    if entry_id is None:
        return None
    entry_id = _text(entry_id)
    record = dict(sanitize(record), amended_at=time.time())
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
    redis.set(keys.record_amended(entry_id), body, ex=max(1, int(retention_days * 86400)))
    return entry_id


def _next_seq(redis, keys, ms: int) -> int:
    last = redis.xrevrange(keys.records(), count=1)
    if last:
        last_ms, _, last_seq = _text(last[0][0]).partition("-")
        if int(last_ms) == ms:
            return int(last_seq) + 1
    return 0


def trim_records(redis, keys, retention_days: int | float, now: float | None = None) -> int:
    """Delete records older than the retention exactly (not by macro-node); returns how many."""
    now = time.time() if now is None else now
    min_id = f"{int((now - retention_days * 86400) * 1000)}-0"
    return int(redis.xtrim(keys.records(), minid=min_id, approximate=False))


def bump_daily(redis, keys, field: str, by: int = 1, day: str | None = None) -> int:
    """Add ``by`` to the day's counter ``field`` (calls, answered, abandoned, fallback (not
    understood), fallback_number, reprompts, routed_first_utterance). ``day`` is the server's local date by default."""
    day = day or dt.date.today().isoformat()
    key = keys.daily_stats(day)
    pipe = redis.pipeline(transaction=False)
    pipe.hincrby(key, field, by)
    pipe.expire(key, DAILY_TTL_S)
    value, _ = pipe.execute()
    return int(value)


def read_daily(redis, keys, day: str | None = None) -> dict[str, int]:
    """The day's counters as ``{field: int}`` (empty when nothing happened)."""
    day = day or dt.date.today().isoformat()
    raw = redis.hgetall(keys.daily_stats(day))
    return {_text(k): int(v) for k, v in raw.items()}


# --- reading -------------------------------------------------------------------------

def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(entry_id, fields) -> dict[str, Any] | None:
    raw = fields.get(b"json", fields.get("json")) if isinstance(fields, dict) else None
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        log.warning("unreadable call record skipped", extra={"record_id": _text(entry_id)})
        return None
    if not isinstance(record, dict):
        return None
    record.setdefault("record_id", _text(entry_id))
    return record


def _amended(redis, keys, batch: list) -> list:
    """The entries of ``batch`` with each amended record in place of the entry's own (one MGET)."""
    if not batch:
        return batch
    bodies = redis.mget([keys.record_amended(_text(entry_id)) for entry_id, _ in batch])
    return [(entry_id, fields if body is None else {"json": body}) for (entry_id, fields), body in zip(batch, bodies)]


def stream_id(at: float | None, *, end: bool = False) -> str:
    """The stream ID bound for Unix time ``at`` (None: the stream's first or last entry)."""
    if at is None:
        return "+" if end else "-"
    ms = int(at * 1000)
    return f"{ms}-{2**64 - 1}" if end else f"{ms}-0"


def read_records(redis, keys, since: float | None = None, until: float | None = None, *,
                 newest_first: bool = True, limit: int | None = None, page: int = PAGE,
                 last_id: str | None = None) -> Iterator[dict]:
    """Records written in ``[since, until]`` (Unix seconds), newest first by default;
    ``last_id`` (a stream ID, from :func:`last_record_id`) bounds them instead of ``until``.

    A generator reading ``page`` entries per round trip, so it can run over the whole
    retention without holding it in memory. Each record carries its ``record_id``.
    """
    key = keys.records()
    low, high = stream_id(since), last_id or stream_id(until, end=True)
    given = 0
    while limit is None or given < limit:
        count = page if limit is None else min(page, limit - given)
        if newest_first:
            batch = redis.xrevrange(key, max=high, min=low, count=count)
        else:
            batch = redis.xrange(key, min=low, max=high, count=count)
        if not batch:
            return
        for entry_id, fields in _amended(redis, keys, batch):
            record = _decode(entry_id, fields)
            if record is not None:
                given += 1
                yield record
        last = _text(batch[-1][0])
        if len(batch) < count:
            return
        # exclusive continuation from the last ID seen
        if newest_first:
            high = "(" + last
        else:
            low = "(" + last


def last_record_id(redis, keys, until: float | None = None) -> str | None:
    """The stream ID of the newest record written by ``until`` (None: there is none): a reader
    that stops there sees the records as they were when it began, however many arrive."""
    last = redis.xrevrange(keys.records(), max=stream_id(until, end=True), count=1)
    return _text(last[0][0]) if last else None


def find_record(redis, keys, sid: str, scan: bool = True) -> dict | None:
    """The record of call ``sid``: by its reference key, else (``scan``) by reading newest first.

    Every record written by :func:`write_record` has a reference key that lives as long as
    the record, so request paths pass ``scan=False``: an unknown call costs one GET, not a
    walk through a month of records.
    """
    ref = redis.get(keys.record_ref(sid))
    if ref is not None:
        ref = _text(ref)
        for entry_id, fields in _amended(redis, keys, redis.xrange(keys.records(), min=ref, max=ref, count=1)):
            record = _decode(entry_id, fields)
            if record is not None and record.get("sid") == sid:
                return record
    if not scan:
        return None
    return next((r for r in read_records(redis, keys) if r.get("sid") == sid), None)


def count_records(redis, keys) -> int:
    return int(redis.xlen(keys.records()))


# --- flattening for CSV ------------------------------------------------------------------

CSV_FIRST = ["record_id", "sid", "hotline", "language", "caller", "started_at", "ended_at", "duration_s",
             "transcript", "category", "confidence", "runner_up", "reprompts", "routed_on_first_utterance",
             "queue", "wait_s", "agent", "dial_outcomes", "fallback", "outcome", "audio_path", "recordings"]


def flatten(record: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted columns (``speech.outcome``); lists become JSON text."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value, ensure_ascii=False, default=str)
        elif value is None:
            flat[name] = ""
        else:
            flat[name] = value
    return flat


def csv_columns(seen: Iterable[str]) -> list[str]:
    """The fixed leading columns, then any other column in sorted order."""
    seen = set(seen)
    return [c for c in CSV_FIRST if c in seen or c in ("record_id", "sid")] + sorted(seen - set(CSV_FIRST))


# --- recordings retention -------------------------------------------------------------

def purge_recordings(folder: str | Path, retention_days: int | float, now: float | None = None) -> list[Path]:
    """Delete the recordings (``*.wav``, and the ``*.json`` record beside them) in ``folder``
    last written more than ``retention_days`` ago.

    Returns the deleted paths. A missing folder is nothing to purge."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - retention_days * 86400
    deleted = []
    for path in [*folder.glob("*.wav"), *folder.glob("*.json")]:
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                deleted.append(path)
        except FileNotFoundError:  # another worker got there first
            continue
        except OSError as exc:
            log.warning("recording not purged", extra={"path": str(path), "reason": str(exc)})
    if deleted:
        log.info("old recordings purged", extra={"count": len(deleted), "folder": str(folder)})
    return deleted


def maybe_purge(folder: str | Path, retention_days: int | float) -> None:
    """:func:`purge_recordings` at most once per :data:`PURGE_EVERY_S` per folder and process."""
    name = str(folder)
    now = time.monotonic()
    with _purge_lock:
        last = _last_purge.get(name)
        if last is not None and now - last < PURGE_EVERY_S:
            return
        _last_purge[name] = now
    try:
        purge_recordings(folder, retention_days)
    except Exception:
        log.exception("recording purge failed", extra={"folder": name})


# --- benchmark: `python -m ivr.ops.records [N]` ----------------------------------------------

def _bench(n: int = 60000) -> None:  # pragma: no cover - a measuring tool
    """Write N records (a month at 2,000 calls a day by default) into a scratch embedded
    Redis, export them both ways and find one: times, and memory growth while exporting."""
    import os
    import resource
    import tempfile

    from ivr.keys import Keys
    from ivr.ops.cli import export
    from ivr.store import EmbeddedRedis, connect

    sample = {"sid": "", "hotline": "ko", "language": "ko", "caller": "+82******5678", "started_at": 1.0,
              "ended_at": 2.0, "duration_s": 61.0, "transcript": "결제가 두 번 됐어요 환불해 주세요",
              "earlier_transcripts": [], "speech": {"outcome": "ok", "turn": 0, "words": 5, "decode_latency_ms": 210},
              "category": "payment", "confidence": 0.8, "runner_up": "refund", "reprompts": 0,
              "routed_on_first_utterance": True, "queue": "billing", "wait_s": 3.2, "agent": "minji",
              "dial_outcomes": [{"agent": "minji", "status": "completed"}], "fallback": False,
              "outcome": "answered", "audio_path": ""}
    with tempfile.TemporaryDirectory() as folder, EmbeddedRedis(folder) as server:
        redis, keys = connect(server.url), Keys("bench")
        t0 = time.perf_counter()
        for i in range(n):
            write_record(redis, keys, dict(sample, sid=f"CA{i:032d}"), 31)
        took = time.perf_counter() - t0
        print(f"write_record: {n} records in {took:.1f} s ({took / n * 1e6:.0f} us each)")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for fmt in ("jsonl", "csv"):
            with open(os.devnull, "w") as out:
                t0 = time.perf_counter()
                count = export(redis, keys, out, fmt, None, None)
                took = time.perf_counter() - t0
            print(f"export {fmt}: {count} records in {took:.1f} s ({count / took:.0f}/s)")
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(f"peak memory grew by {grown:.1f} MB while exporting")
        t0 = time.perf_counter()
        find_record(redis, keys, f"CA{0:032d}")
        print(f"find_record (oldest, by its reference key): {(time.perf_counter() - t0) * 1e3:.2f} ms")
        redis.delete(keys.record_ref(f"CA{0:032d}"))
        t0 = time.perf_counter()
        find_record(redis, keys, f"CA{0:032d}")
        print(f"find_record (oldest, by scanning): {(time.perf_counter() - t0) * 1e3:.0f} ms")


if __name__ == "__main__":  # pragma: no cover
    import sys

    _bench(int(sys.argv[1]) if len(sys.argv) > 1 else 60000)
