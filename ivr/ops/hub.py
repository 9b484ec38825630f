"""One live feed per worker, shared by every ops page viewer connected to it.

A single pump thread (started by the first viewer, gone a moment after the last leaves)
listens on ``keys.ops_channel()`` and builds the full snapshot every ``interval_s``, or
sooner (at most every ``REBUILD_GAP_S``) after an agent or queue change. Call updates and
partial transcripts are forwarded at once, coalesced per call into one ``delta`` event
every ``FLUSH_S``. Each viewer gets the same pre-encoded bytes; no viewer costs a Redis
read of its own. ``/ops/snapshot.json`` shares the same cached snapshot.

Under gunicorn's gthread workers every open stream holds one of the worker's threads, so
a worker serves at most ``max_streams`` of them (a quarter of its threads, 2 to 16): the
rest stay free for calls' Media Streams. A viewer over the cap gets a 503 and the page
falls back to polling the snapshot.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque

from ivr.ops import gather, snapshot

log = logging.getLogger(__name__)

REBUILD_GAP_S = 0.5
FLUSH_S = 0.25
IDLE_EXIT_S = 5.0
VIEWER_BACKLOG = 64
STUCK_S = 60.0  # a viewer that read nothing for this long is gone (its server never said so)


def event(kind: str, data: str) -> bytes:
    """One server-sent event; ``data`` is compact JSON (no raw newlines)."""
    return f"event: {kind}\ndata: {data}\n\n".encode()


class Viewer:
    def __init__(self):
        self.inbox: queue.Queue[bytes | None] = queue.Queue(maxsize=VIEWER_BACKLOG)
        self.full_since: float | None = None

    def offer(self, message: bytes | None) -> bool:
        """Queue a message; False when this viewer has read nothing for ``STUCK_S``."""
        try:
            self.inbox.put_nowait(message)
            self.full_since = None
        except queue.Full:
            # A slow viewer skips messages; the next full snapshot puts it right.
            now = time.monotonic()
            self.full_since = self.full_since or now
            return now - self.full_since < STUCK_S
        return True

    def close_now(self) -> None:
        """Tell the stream to end, dropping whatever it has not read yet."""
        while True:
            try:
                while True:
                    self.inbox.get_nowait()
            except queue.Empty:
                pass
            try:
                self.inbox.put_nowait(None)
                return
            except queue.Full:
                continue


class Hub:
    def __init__(self, services, interval_s: float = 2.0, max_streams: int = 8, clock=time.time):
        self.services, self.interval_s, self.max_streams, self.clock = services, interval_s, max_streams, clock
        self.viewers: set[Viewer] = set()
        self.tally = gather.DayTally()
        self.build_times_ms: deque[float] = deque(maxlen=500)
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._latest: tuple[float, str] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- the shared snapshot ------------------------------------------------------------
    def snapshot_json(self, max_age_s: float | None = None) -> str:
        """The current snapshot as JSON, rebuilt only when older than ``max_age_s``."""
        max_age_s = self.interval_s if max_age_s is None else max_age_s
        with self._build_lock:
            if self._latest is not None and time.monotonic() - self._latest[0] < max_age_s:
                return self._latest[1]
            started = time.perf_counter()
            data = snapshot.build(gather.collect(self.services, self.tally, self.clock))
            took_ms = (time.perf_counter() - started) * 1000
            self.build_times_ms.append(took_ms)
            data["built_ms"] = round(took_ms, 1)
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            self._latest = (time.monotonic(), text)
            return text

    # --- viewers --------------------------------------------------------------------------
    def join(self) -> Viewer | None:
        """A new viewer, or None when this worker already serves ``max_streams``."""
        with self._lock:
            if len(self.viewers) >= self.max_streams:
                return None
            viewer = Viewer()
            self.viewers.add(viewer)
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(target=self._pump, name="ops-hub", daemon=True)
                self._thread.start()
            return viewer

    def leave(self, viewer: Viewer) -> None:
        with self._lock:
            self.viewers.discard(viewer)

    def streams(self) -> int:
        with self._lock:
            return len(self.viewers)

    def close(self) -> None:
        """End every stream and the pump (worker shutting down)."""
        self._stopping.set()
        with self._lock:
            for viewer in self.viewers:
                viewer.close_now()
            thread = self._thread
        if thread is not None:
            thread.join(5)

    def _broadcast(self, message: bytes) -> None:
        with self._lock:
            viewers = list(self.viewers)
        stuck = [viewer for viewer in viewers if not viewer.offer(message)]
        for viewer in stuck:
            # its stream ends (the page reconnects and gets a fresh snapshot) rather than stay
            # open on keep-alives alone, looking live with its data frozen
            viewer.close_now()
            self.leave(viewer)

    # --- the pump -------------------------------------------------------------------------
    def _pump(self) -> None:
        redis, channel = self.services.redis, self.services.keys.ops_channel()
        pubsub = None
        pending: dict[str, dict] = {}
        dirty = False
        next_full = last_build = last_flush = 0.0
        idle_since = None
        while not self._stopping.is_set():
            now = time.monotonic()
            if not self.streams():
                idle_since = idle_since or now
                if now - idle_since >= IDLE_EXIT_S:
                    with self._lock:  # decided with join()'s lock: a viewer joining now starts a new pump
                        if not self.viewers:
                            self._thread = None
                            break
            else:
                idle_since = None
            try:
                if pubsub is None:
                    pubsub = redis.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(channel)
                message = pubsub.get_message(timeout=FLUSH_S)
                for _ in range(1000):  # drain what arrived, but keep building snapshots
                    if message is None:
                        break
                    dirty |= self._take(message, pending)
                    message = pubsub.get_message(timeout=0)
            except Exception as exc:  # Redis down, or its client closed under us: retry, never die
                if self._stopping.is_set():
                    break
                log.warning("ops feed lost its Redis subscription; retrying", extra={"reason": str(exc)})
                pubsub = self._drop(pubsub)
                self._stopping.wait(1.0)
            now = time.monotonic()
            if pending and now - last_flush >= FLUSH_S:
                self._broadcast(event("delta", json.dumps(list(pending.values()), ensure_ascii=False,
                                                          separators=(",", ":"))))
                pending.clear()
                last_flush = now
            if now >= next_full or (dirty and now - last_build >= REBUILD_GAP_S):
                try:
                    text = self.snapshot_json(max_age_s=REBUILD_GAP_S)
                    self._broadcast(event("snapshot", text))
                except Exception as exc:  # the page says so and keeps the last good view
                    log.exception("ops snapshot failed")
                    self._broadcast(event("problem", json.dumps({"error": f"snapshot failed: {exc}"})))
                dirty, last_build, next_full = False, now, now + self.interval_s
        self._drop(pubsub)

    @staticmethod
    def _drop(pubsub):
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:
                pass
        return None

    def _take(self, message: dict, pending: dict[str, dict]) -> bool:
        """Fold one pub/sub message into the pending delta; True if a rebuild is due."""
        try:
            body = json.loads(message["data"])
        except (TypeError, ValueError, KeyError):
            return False
        kind = body.get("type")
        if kind == "call" and body.get("sid"):
            merged = pending.setdefault("call:" + body["sid"], {"type": "call", "sid": body["sid"]})
            merged.update({k: v for k, v in body.items() if k in snapshot.CALL_FIELDS})
            return body.get("state") in ("ended", "queued", "connected")
        if kind == "agent" and body.get("id"):
            pending["agent:" + body["id"]] = {"type": "agent", "id": body["id"], "state": body.get("state"),
                                              "since": body.get("at"), "reason": body.get("reason") or "",
                                              "call": body.get("call") or None}
            return True
        return kind == "queue"
