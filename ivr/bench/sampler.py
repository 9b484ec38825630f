"""CPU and memory of the server's processes (master, workers, embedded Redis), sampled over a run.

Samples the process tree under one pid with psutil every ``every_s`` seconds: per
process its role, CPU (percent of one core, averaged over the interval) and resident
memory. Workers that die and are replaced show up as new processes.
"""

from __future__ import annotations

import threading
import time

from ivr.bench.stats import slope, summary


def find_server_pid(port: int) -> int | None:
    """The process listening on ``port`` (the gunicorn master when it is ours to see)."""
    import psutil

    try:
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                proc = psutil.Process(conn.pid)
                parent = proc.parent()
                # gunicorn workers share the master's socket; report from the master down
                if parent is not None and "python" in parent.name().lower() and "ivr" in " ".join(parent.cmdline()):
                    return parent.pid
                return proc.pid
    except (psutil.AccessDenied, psutil.NoSuchProcess, PermissionError):
        return None
    return None


def _role(proc, root_pid: int) -> str:
    name = proc.name().lower()
    if "redis" in name:
        return "redis"
    return "master" if proc.pid == root_pid else "worker"


class ProcessSampler:
    def __init__(self, root_pid: int, every_s: float = 1.0, metrics_url: str | None = None):
        """``metrics_url``: also read the server's speech recognizers alive from its /metrics
        at each sample (:func:`recognizers_alive`): each holds its own graph cache (150-200
        MB once warm), so a worker's memory follows how many are alive."""
        self.root_pid = root_pid
        self.every_s = every_s
        self.metrics_url = metrics_url
        self.samples: dict[int, dict] = {}  # pid -> {role, points: [(t, cpu%, rss_mb)]}
        self.recognizers: list[tuple[float, int]] = []  # (t, alive), with metrics_url
        self._procs: dict[int, object] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = 0.0

    def _tree(self):
        import psutil

        root = psutil.Process(self.root_pid)
        return [root] + root.children(recursive=True)

    def sample(self) -> None:
        import psutil

        now = time.monotonic() - self.started
        if self.metrics_url:
            self._sample_recognizers(now)
        try:
            procs = self._tree()
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            try:
                known = self._procs.get(proc.pid)
                if known is None:
                    proc.cpu_percent(None)  # the first call only starts the interval
                    self._procs[proc.pid] = proc
                    self.samples[proc.pid] = {"role": _role(proc, self.root_pid), "points": []}
                    continue
                cpu = known.cpu_percent(None)
                rss = known.memory_info().rss / 2**20
                self.samples[proc.pid]["points"].append((round(now, 2), cpu, round(rss, 1)))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue

    def _sample_recognizers(self, now: float) -> None:
        import requests

        try:
            alive = recognizers_alive(requests.get(self.metrics_url, timeout=5).text)
        except requests.RequestException:
            return
        if alive is not None:
            self.recognizers.append((round(now, 2), alive))

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def start(self) -> "ProcessSampler":
        self.started = time.monotonic()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.every_s + (6 if self.metrics_url else 1))  # a /metrics read may take 5 s
        self.sample()
        return self.report()

    def report(self) -> dict:
        """Per process: role, CPU mean/p95/max (% of one core), RSS start/end/max, RSS slope."""
        out = []
        for pid, data in sorted(self.samples.items()):
            pts = data["points"]
            if not pts:
                continue
            cpu = summary([p[1] for p in pts])
            rss = [p[2] for p in pts]
            per_hour = slope([(t / 3600, r) for t, _, r in pts])
            out.append({"pid": pid, "role": data["role"], "samples": len(pts), "cpu_mean_pct": cpu["mean"],
                        "cpu_p95_pct": cpu["p95"], "cpu_max_pct": cpu["max"], "rss_start_mb": rss[0],
                        "rss_end_mb": rss[-1], "rss_max_mb": max(rss),
                        "rss_slope_mb_per_h": round(per_hour, 2) if per_hour is not None else None,
                        "rss_series": [(t, r) for t, _, r in pts]})
        return {"every_s": self.every_s, "processes": out, "recognizers_alive": self.recognizers}


def recognizers_alive(text: str) -> int | None:
    """Speech recognizers alive (made minus retired, all models) in a Prometheus text page;
    None without the metric."""
    alive = None
    for line in text.splitlines():
        if line.startswith("ivr_speech_recognizers{"):
            sign = 1 if 'kind="made"' in line else -1 if 'kind="retired"' in line else 0
            if sign:
                alive = (alive or 0) + sign * int(float(line.rsplit(" ", 1)[1]))
    return alive
