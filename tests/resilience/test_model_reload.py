"""A running `ivr serve` keeps its classifier current: it answers at once on a stale model,
retrains in one child process for all its workers, swaps the new model in, and refuses a
broken edit of the data without losing the model in use. Real gunicorn workers, Redis,
Vosk and `ivr intents train`; Twilio is the stand-in."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import requests

from tests.resilience.conftest import KO, SPEECH, api, env_for, on_shift, standin, wait_for, write_config

PAYMENT = SPEECH / "ko_payment.wav"
FEE = SPEECH / "ko_kw_fee.wav"  # "요금이 이상해요", which the test speech model gets right
RETRAIN = "retraining the intent model in the background"


def _shrink(folder, per_category: int = 30) -> None:
    """English and Chinese cut to a few lines per category (quick retrains); Korean, which
    the calls speak, kept whole."""
    for lang in ("en", "zh"):
        path = folder / f"{lang}.tsv"
        kept, seen = [], Counter()
        for line in path.read_text(encoding="utf-8").splitlines():
            category = line.split("\t", 1)[0]
            if line.strip() and not line.startswith("#") and seen[category] < per_category:
                seen[category] += 1
                kept.append(line)
        path.write_text("\n".join(kept) + "\n", encoding="utf-8")


def _digest(folder) -> str:
    from ivr.intents.data import data_hash

    return data_hash(folder)[:12]


def _every_worker(url: str, check, samples: int = 12) -> bool:
    """``check(readyz body)`` holds on every one of several answers (any worker may answer)."""
    bodies = [requests.get(url + "/readyz", timeout=5).json() for _ in range(samples)]
    return all(check(b) for b in bodies)


def test_serve_keeps_the_model_current_without_a_restart(tmp_path, redis_server, redis, servers):
    folder = tmp_path / "h"
    folder.mkdir()
    path = write_config(folder, agents=2)  # with a copy of the model trained on all the data
    data = folder / "intents"
    _shrink(data)
    server = servers(path, redis_server.url, workers=2, ready=True)  # ready on the stale model

    # one retrain for both workers, then both answer with its model
    first = _digest(data)
    wait_for(lambda: _every_worker(server.url, lambda b: b.get("model", {}).get("data_hash") == first),
             timeout_s=180, every_s=0.5, what="both workers on the retrained model")
    assert server.log_tail(400).count(RETRAIN) == 1, server.log_tail(60)

    # ops edit the data while calls come in: retrained and swapped in, calls routed meanwhile
    with (data / "en.tsv").open("a", encoding="utf-8") as fh:
        fh.write("payment\tthe app charged my card for a plan i cancelled last week\n")
    second = _digest(data)
    on_shift(server.url, "bench01", "bench02")
    during = standin(server.url).place_call([PAYMENT], to=KO)  # while the child trains
    assert during.ok and during.connected_to in ("client:bench01", "client:bench02"), during.render()
    wait_for(lambda: _every_worker(server.url, lambda b: b.get("model", {}).get("data_hash") == second),
             timeout_s=180, every_s=0.5, what="both workers on the model of the edited data")
    after = standin(server.url).place_call([FEE], to=KO)
    assert after.ok and after.connected_to in ("client:bench01", "client:bench02"), after.render()
    record = api(server.url, "GET", f"/api/calls/{after.call_sid}").json()["call"]
    assert record["category"] == "payment", (json.dumps(record, ensure_ascii=False), after.render())

    # ops retrain by hand (`ivr intents train`): the new file is picked up, no restart
    before = requests.get(server.url + "/readyz", timeout=5).json()["model"]["trained_at"]
    done = subprocess.run([sys.executable, "-m", "ivr", "--config", str(path), "intents", "train"],
                          env=env_for(redis_server.url) | {"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: _every_worker(server.url, lambda b: b["model"]["trained_at"] > before),
             timeout_s=60, every_s=0.5, what="both workers on the hand-trained model")

    # a broken edit: refused with file and line on every worker, the model in use kept, still ready
    lines = (data / "en.tsv").read_text(encoding="utf-8").count("\n")
    with (data / "en.tsv").open("a", encoding="utf-8") as fh:
        fh.write("paymnt\ta label with a typo\n")
    wait_for(lambda: _every_worker(server.url, lambda b: f"en.tsv:{lines + 1}" in b.get("classifier_training", "")),
             timeout_s=180, every_s=0.5, what="the refused edit on every worker")
    ready = requests.get(server.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["model"]["data_hash"] == second, ready.text
    assert "unknown category 'paymnt'" in ready.json()["classifier_training"]
    assert server.log_tail(400).count(RETRAIN) == 3, server.log_tail(60)  # once per edit, not per worker
