"""The incoming-call webhook at a fixed rate: an open-loop generator, free of coordinated omission.

Request ``i`` is *due* at ``start + i / rate`` whatever happened to earlier ones, and its
latency runs from that due time to the last byte of the answer. A server that stalls
therefore shows every request it delayed, including the ones still waiting to be sent
(a closed loop that waits for each answer before sending the next would hide them).
Each request is a new call (its own CallSid), signed exactly as Twilio signs it; the
signatures are computed before the run so the generator's own work stays small. After
the measured run every call gets its status callback (not measured), so nothing of the
benchmark is left in Redis.
"""

from __future__ import annotations

import http.client
import queue
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from ivr.bench.stats import summary


@dataclass
class Planned:
    index: int
    due: float  # perf_counter instant it should be sent
    body: bytes
    headers: dict[str, str]
    sid: str


def _params(sid: str, to: str, status: str = "ringing", **extra) -> dict[str, str]:
    base = {"AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01", "CallSid": sid, "CallStatus": status,
            "Direction": "inbound", "From": "+821055500000", "To": to, "Caller": "+821055500000", "Called": to,
            "FromCountry": "KR", "ToCountry": "KR"}
    base.update({k: str(v) for k, v in extra.items()})
    return base


def _signed(target, path: str, params: dict) -> tuple[bytes, dict[str, str]]:
    from twilio.request_validator import RequestValidator

    signature = RequestValidator(target.twilio_token).compute_signature(target.public_url + path, params)
    return urlencode(params).encode(), {"X-Twilio-Signature": signature,
                                        "Content-Type": "application/x-www-form-urlencoded",
                                        "User-Agent": "TwilioProxy/1.1"}


class _Sender(threading.Thread):
    """One keep-alive connection taking due requests from the shared queue."""

    def __init__(self, host: str, port: int, path: str, work: queue.Queue, out: list, lock: threading.Lock):
        super().__init__(daemon=True, name="bench-rate-sender")
        self.host, self.port, self.path = host, port, path
        self.work, self.out, self.lock = work, out, lock
        self.conn: http.client.HTTPConnection | None = None

    def _send(self, item: Planned) -> tuple[int | None, str]:
        for attempt in (1, 2):  # a keep-alive connection the server closed is reopened once
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
                self.conn.request("POST", self.path, body=item.body, headers=item.headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, "" if b"<Response" in data else "answer is not TwiML"
            except (OSError, http.client.HTTPException) as exc:
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    return None, f"{exc.__class__.__name__}: {exc}"
        return None, "unreachable"

    def run(self) -> None:
        while True:
            item = self.work.get()
            if item is None:
                return
            sent = time.perf_counter()
            status, problem = self._send(item)
            done = time.perf_counter()
            with self.lock:
                self.out.append((item.index, item.due, sent, done, status, problem))


def _run_open_loop(target, path: str, planned: list[Planned], senders: int) -> list[tuple]:
    parts = urlsplit(target.url)
    work: queue.Queue = queue.Queue()
    out: list[tuple] = []
    lock = threading.Lock()
    threads = [_Sender(parts.hostname, parts.port or 80, path, work, out, lock) for _ in range(senders)]
    for t in threads:
        t.start()
    start = time.perf_counter() + 0.2
    for item in planned:
        item.due += start
        delay = item.due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        work.put(item)
    for _ in threads:
        work.put(None)
    for t in threads:
        t.join()
    return out


def webhook_rate(target, rate: float, seconds: float, *, warmup_s: float = 2.0, senders: int = 32,
                 path: str = "/twilio/voice", clean_up: bool = True) -> dict:
    """POST the incoming-call webhook ``rate`` times a second for ``warmup_s + seconds``.

    Returns latency from the due time (``latency_ms``) and from the actual send
    (``service_ms``) of the measured part, the rate achieved, and errors."""
    import secrets

    total = int(round(rate * (warmup_s + seconds)))
    warm = int(round(rate * warmup_s))
    planned = []
    for i in range(total):
        sid = "CA" + secrets.token_hex(16)
        body, headers = _signed(target, path, _params(sid, target.number))
        planned.append(Planned(i, i / rate, body, headers, sid))
    out = _run_open_loop(target, path, planned, senders)
    measured = [o for o in out if o[0] >= warm]
    latency = [(done - due) * 1000 for _, due, _, done, _, _ in measured]
    service = [(done - sent) * 1000 for _, _, sent, done, _, _ in measured]
    late = [(sent - due) * 1000 for _, due, sent, _, _, _ in measured]
    errors = [f"#{i}: HTTP {status}" if status != 200 else f"#{i}: {problem}"
              for i, _, _, _, status, problem in measured if status != 200 or problem]
    first_due = min((o[1] for o in measured), default=0)
    last_done = max((o[3] for o in measured), default=0)
    result = {
        "path": path, "rate_per_s": rate, "seconds": seconds, "warmup_s": warmup_s, "senders": senders,
        "requests": len(measured),
        "achieved_per_s": round(len(measured) / (last_done - first_due), 1) if last_done > first_due else None,
        "latency_ms": summary(latency, 2), "service_ms": summary(service, 2),
        "sent_late_ms": summary(late, 2), "errors": errors[:20], "error_count": len(errors),
    }
    if clean_up:
        _hang_up_all(target, [p.sid for p in planned], senders)
    return result


def _hang_up_all(target, sids: list[str], senders: int) -> None:
    """Every call of the run ends (status callback), so the sessions leave Redis."""
    planned = []
    for i, sid in enumerate(sids):
        body, headers = _signed(target, "/twilio/status", _params(sid, target.number, "completed", CallDuration=1))
        planned.append(Planned(i, 0.0, body, headers, sid))
    _run_open_loop(target, "/twilio/status", planned, min(senders, 8))
