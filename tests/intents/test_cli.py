"""`ivr intents ...` end to end on small data (fast enough for CI)."""

from __future__ import annotations

import csv
import json

from ivr.cli import main


def run(config, *argv) -> int:
    return main(["--config", str(config.path("config.yaml")), "intents", *argv])


def test_train_if_stale_trains_once_then_returns_at_once(small_config, capsys):
    assert run(small_config, "train", "--if-stale") == 0
    assert "retraining" in capsys.readouterr().out
    assert run(small_config, "train", "--if-stale") == 0
    assert capsys.readouterr().out.strip() == "intent model is current"


def test_classify_prints_one_json_line_per_text(small_config, capsys):
    assert run(small_config, "classify", "--lang", "en", "i was charged twice", "agent please") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["category"] for x in lines] == ["payment", "human"]
    assert set(lines[0]) == {"text", "language", "category", "confidence", "runner_up",
                             "runner_up_confidence", "decision"}


def test_eval_cross_validates_and_writes_confusion_png(small_config, capsys, tmp_path):
    png = tmp_path / "cm.png"
    assert run(small_config, "eval", "--folds", "2", "--png", str(png), "--json") == 0
    [report] = json.loads(capsys.readouterr().out)
    assert report["language"] == "en" and report["n"] == 16
    assert set(report["per_category"]) == {"account_security", "payment", "human", "out_of_scope"}
    assert 0.0 <= report["macro_f1"] <= 1.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_test_file_scores_held_out_lines(small_config, capsys, tmp_path):
    test = tmp_path / "held_out.tsv"
    test.write_text("en\tpayment\tplease refund me i was charged twice\n"
                    "en\thuman\tagent please i want a person\n"
                    "en\tout_of_scope\twhats the weather tomorrow\n", encoding="utf-8")
    assert run(small_config, "eval", "--test", str(test), "--png", str(tmp_path / "t.png")) == 0
    out = capsys.readouterr().out
    assert "== en: 3 utterances" in out and "accuracy" in out


def test_eval_refuses_a_bad_test_file_with_its_line(small_config, capsys, tmp_path):
    test = tmp_path / "bad.tsv"
    test.write_text("en\tpayment\trefund\nen\tweather\tsunny\n", encoding="utf-8")
    assert run(small_config, "eval", "--test", str(test)) == 2
    assert "bad.tsv:2: unknown category 'weather'" in capsys.readouterr().err


def test_doctor_checks_report_stale_then_current_model(small_config):
    from ivr.intents.cli import doctor_checks

    levels = {c.name: c.level for c in doctor_checks(small_config)}
    assert levels["intent model"] == "warn"
    assert levels["intents languages"] == "fail"  # the small data has English only
    run(small_config, "train")
    levels = {c.name: c.level for c in doctor_checks(small_config)}
    assert levels["intent model"] == "ok" and levels["intents data"] == "ok"
    assert levels["wordnet"] == "ok" and levels["affect lexicon"] == "ok"


def test_doctor_names_missing_wordnet_data_and_the_fix(small_config, monkeypatch):
    import importlib.util

    from ivr.intents import wordnet
    from ivr.intents.cli import doctor_checks

    from ivr.intents import affect

    monkeypatch.setattr(wordnet, "_database", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    affect.lexicon.cache_clear()
    try:
        checks = {c.name: c for c in doctor_checks(small_config)}
    finally:
        affect.lexicon.cache_clear()  # read again, from the real package, by whoever needs it next
    for name in ("wordnet", "affect lexicon"):
        check = checks[name]
        assert check.level == "fail" and "make setup" in check.detail and check.fix == "make setup"


def test_bench_runs_the_hotline_pipeline_on_benchmark_formats(small_config, capsys, tmp_path):
    """Tiny files in BANKING77's and CLINC150's formats: the real ones are too big for CI."""
    (tmp_path / "banking77").mkdir()
    rows = [("i am still waiting on my card", "card_arrival"), ("my card has not arrived", "card_arrival"),
            ("when will my card come", "card_arrival"), ("i was charged a fee", "card_fee"),
            ("why is there a fee on my card", "card_fee"), ("what is this extra fee", "card_fee")]
    for name in ("train.csv", "test.csv"):
        with open(tmp_path / "banking77" / name, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "category"])
            w.writerows(rows)
    (tmp_path / "clinc150").mkdir()
    split = [["what is my balance", "balance"], ["how much money do i have", "balance"],
             ["show my balance please", "balance"], ["play a song", "play_music"],
             ["put on some music", "play_music"], ["play my playlist", "play_music"]]
    oos = [["how tall is a giraffe", "oos"], ["who painted the mona lisa", "oos"]]
    (tmp_path / "clinc150" / "data_full.json").write_text(json.dumps(
        {"train": split, "val": split, "test": split, "oos_train": oos, "oos_val": oos, "oos_test": oos}))
    assert run(small_config, "bench", "--dir", str(tmp_path), "--only", "banking77", "--only", "clinc150") == 0
    out = capsys.readouterr().out
    assert "banking77  train=6  test=6  accuracy=1.0000" in out
    assert "clinc150   train=8" in out and "oos_recall=" in out and "published" in out


def test_eval_seed_reaches_the_fold_assignment(small_config, capsys, tmp_path, monkeypatch):
    from ivr.intents import evaluate

    seen = []
    real = evaluate.cross_validate

    def spy(examples, **kwargs):
        seen.append(kwargs.get("seed"))
        return real(examples, **kwargs)

    monkeypatch.setattr(evaluate, "cross_validate", spy)
    png = tmp_path / "cm.png"
    assert run(small_config, "eval", "--folds", "2", "--seed", "3", "--png", str(png), "--json") == 0
    assert run(small_config, "eval", "--folds", "2", "--png", str(png), "--json") == 0
    assert seen == [3, 0]
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(reports) == 2 and all(0.0 <= r[0]["macro_f1"] <= 1.0 for r in reports)


def test_train_waits_for_a_training_under_way_instead_of_overwriting_it(small_config):
    """A server's background retrain holds the model's lock: `ivr intents train` (agents'
    corrections folded in, say) waits for it, then trains, instead of both writing the file."""
    import fcntl
    import subprocess
    import sys
    import time

    model = small_config.path(small_config.classifier.model_path)
    model.parent.mkdir(parents=True, exist_ok=True)
    with open(str(model) + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other training, under way
        trainer = subprocess.Popen([sys.executable, "-m", "ivr", "--config", str(small_config.path("config.yaml")),
                                    "intents", "train"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first = trainer.stdout.readline()
        time.sleep(1.0)
        still_waiting = trainer.poll() is None and not model.exists()
    out, _ = trainer.communicate(timeout=120)
    assert "waiting for another training" in first and still_waiting
    assert trainer.returncode == 0 and "trained in" in out and model.exists()
