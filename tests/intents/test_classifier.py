"""Training, saving and loading the classifier; decisions from thresholds; out of scope."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ivr.intents import classifier as clf
from ivr.intents.classifier import Prediction, decide, load_classifier


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The hotline model trained once on the shipped data (module-wide: it is pure)."""
    from pathlib import Path

    from ivr.intents import data

    root = Path(__file__).resolve().parents[2] / "intents"
    taxonomy = data.load_taxonomy(root)
    return clf.train(data.load_examples(root, taxonomy), taxonomy)


def test_round_trip_saves_and_loads_the_same_model(small_config):
    trained = load_classifier(small_config)
    path = small_config.path(small_config.classifier.model_path)
    assert path.exists()
    mtime = path.stat().st_mtime_ns
    loaded = load_classifier(small_config)
    assert path.stat().st_mtime_ns == mtime  # loaded, not retrained
    for text in ("i forgot my password", "refund me", "hello is anyone there"):
        assert loaded.predict(text, "en") == trained.predict(text, "en")
    artifact = clf.read_artifact(path)
    assert artifact["data_hash"] == trained.data_hash
    assert artifact["versions"]["sklearn"] == clf.library_versions()["sklearn"]
    assert sorted(artifact["models"]) == trained.languages
    header = clf.read_artifact(path, header_only=True)
    assert header["data_hash"] == trained.data_hash and "models" not in header


def test_changed_data_retrains_on_load(small_config):
    first = load_classifier(small_config)
    assert clf.staleness(small_config) is None
    tsv = small_config.path("intents/en.tsv")
    with open(tsv, "a", encoding="utf-8") as f:
        f.write("payment\tthe vending machine ate my coins\n")
    assert "changed" in clf.staleness(small_config)
    second = load_classifier(small_config)
    assert second.data_hash != first.data_hash
    assert clf.staleness(small_config) is None


def test_corrupt_model_file_is_retrained_and_logged(small_config, caplog):
    path = small_config.path(small_config.classifier.model_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a model file")
    with caplog.at_level(logging.WARNING, logger="ivr.intents.classifier"):
        model = load_classifier(small_config)
    assert model.predict("i was charged twice", "en").category == "payment"
    assert any("retraining" in r.getMessage() and "unreadable" in r.reason for r in caplog.records)
    assert clf.staleness(small_config) is None


def test_model_from_other_library_versions_is_retrained(small_config):
    load_classifier(small_config)
    path = small_config.path(small_config.classifier.model_path)
    artifact = clf.read_artifact(path)
    artifact["versions"] = {**artifact["versions"], "sklearn": "0.0.1"}
    clf.write_artifact(path, artifact)
    assert "built with" in clf.staleness(small_config)
    load_classifier(small_config)
    assert clf.staleness(small_config) is None


def test_model_file_cut_short_is_stale_and_retrained(small_config):
    # Whether a model is current is read from the file's small header; a file whose models
    # were cut off (a copy that stopped, a full disk) must not pass for current all the same.
    load_classifier(small_config)
    path = small_config.path(small_config.classifier.model_path)
    whole = path.read_bytes()
    path.write_bytes(whole[:-100])
    assert "unreadable" in clf.staleness(small_config) and "the file holds" in clf.staleness(small_config)
    with pytest.raises(ValueError, match="unreadable"):
        clf.read_artifact(path)
    model = load_classifier(small_config)
    assert model.predict("i was charged twice", "en").category == "payment"
    assert clf.staleness(small_config) is None and path.stat().st_size == len(whole)


def test_models_bytes_damaged_at_their_length_fail_the_quick_look_too(small_config):
    load_classifier(small_config)
    path = small_config.path(small_config.classifier.model_path)
    whole = path.read_bytes()
    header = clf.read_artifact(path, header_only=True)
    start = len(whole) - header["body_bytes"]
    path.write_bytes(whole[:start] + b"\x00" * header["body_bytes"])
    assert "checksum" in clf.staleness(small_config)  # the header is whole, the models are not
    with pytest.raises(ValueError, match="unreadable model file"):
        clf.read_artifact(path)
    load_classifier(small_config)
    assert clf.staleness(small_config) is None


def test_a_model_path_that_cannot_be_read_is_unusable_not_a_crash(small_config):
    path = small_config.path(small_config.classifier.model_path)
    path.mkdir(parents=True)  # a directory where the file should be (IsADirectoryError)
    with pytest.raises(ValueError, match="unreadable model file.*IsADirectoryError"):
        clf.read_artifact(path)
    assert "IsADirectoryError" in clf.staleness(small_config)


def test_a_write_cut_off_long_ago_leaves_no_temporary_file_behind(small_config, tmp_path):
    import os
    import time

    first = load_classifier(small_config)
    path = small_config.path(small_config.classifier.model_path)
    old = path.with_name(path.name + "abc123.tmp")  # what a trainer killed mid-write leaves
    recent = path.with_name(path.name + "def456.tmp")  # another write, still under way
    for tmp in (old, recent):
        tmp.write_bytes(b"half a model")
    long_ago = time.time() - clf.STALE_TMP_S - 60
    os.utime(old, (long_ago, long_ago))
    clf.save(first, path)
    assert not old.exists() and recent.exists()
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # the callers' masked transcripts stay private


def test_the_joblib_model_of_earlier_versions_goes_once_its_successor_is_written(small_config):
    first = load_classifier(small_config)
    path = small_config.path(small_config.classifier.model_path)
    assert path.suffix == ".pkl"
    legacy = path.with_suffix(".joblib")
    legacy.write_bytes(b"a joblib model nothing reads any more")
    clf.save(first, path)
    assert not legacy.exists() and path.exists()
    # a model path named .joblib by config is the model itself, never removed as old
    named = path.with_name("custom.joblib")
    clf.save(first, named)
    clf.save(first, named)
    assert clf.read_artifact(named, header_only=True)["format"] == clf.ARTIFACT_FORMAT


def test_bad_data_fails_training_with_the_line_to_fix(small_config):
    with open(small_config.path("intents/en.tsv"), "a", encoding="utf-8") as f:
        f.write("billing\tmy bill is wrong\n")
    with pytest.raises(clf.ClassifierError, match=r"en.tsv:17: unknown category 'billing'"):
        load_classifier(small_config)


@pytest.mark.parametrize("category,confidence,expected", [
    ("payment", 0.90, "route"),
    ("payment", 0.55, "route"),
    ("payment", 0.54, "reprompt"),
    ("payment", 0.25, "reprompt"),
    ("payment", 0.24, "fallback"),
    ("out_of_scope", 0.95, "reprompt"),
    ("out_of_scope", 0.10, "fallback"),
])
def test_thresholds_decide_route_reprompt_or_fallback(category, confidence, expected):
    assert decide(category, confidence, confident=0.55, reprompt=0.25) == expected


def test_config_thresholds_reach_predictions(shipped):
    strict = shipped.with_thresholds(confident=1.01, reprompt=1.01)
    assert strict.predict("i forgot my password", "en").decision == "fallback"
    relaxed = shipped.with_thresholds(confident=0.0, reprompt=0.0)
    assert relaxed.predict("i forgot my password", "en").decision == "route"


@pytest.mark.parametrize("lang,text,category", [
    ("en", "uh yeah i forgot the password for my account", "account_security"),
    ("en", "they charged my card two times for one order", "payment"),
    ("en", "the game keeps crashing when i open it", "technical_fault"),
    ("en", "can i talk to a real person please", "human"),
    ("zh", "我 的 密码 忘记 了 登录 不 上", "account_security"),
    ("zh", "充值 了 一百 块 没有 到账", "payment"),
    ("ko", "결제 가 두 번 됐어요 환불 해 주세요", "payment"),
    ("ko", "상담원 좀 연결 해 주세요", "human"),
])
def test_unseen_paraphrases_are_understood(shipped, lang, text, category):
    prediction = shipped.with_thresholds(0.55, 0.25).predict(text, lang)
    assert prediction.category == category
    assert prediction.runner_up != category and prediction.runner_up != "out_of_scope"
    assert 0.0 <= prediction.runner_up_confidence <= prediction.confidence <= 1.0


@pytest.mark.parametrize("lang,text", [
    ("en", "what is the weather going to be like tomorrow"),
    ("en", "my neighbour plays loud music every night"),
    ("zh", "明天 会 下雨 吗"),
    ("ko", "내일 날씨 어때요"),
])
def test_out_of_scope_is_answered_instead_of_a_confident_guess(shipped, lang, text):
    prediction = shipped.with_thresholds(0.55, 0.25).predict(text, lang)
    assert prediction.category == "out_of_scope" or prediction.confidence < 0.55
    assert prediction.decision != "route"


def test_empty_transcript_goes_to_fallback(shipped):
    prediction = shipped.predict("   ", "en")
    assert prediction == Prediction("out_of_scope", 0.0, "human", 0.0, "fallback")
    assert prediction.to_dict()["decision"] == "fallback"


def test_language_variants_map_to_the_base_model_and_unknown_languages_say_how_to_fix(shipped):
    assert shipped.predict("refund please", "en-US").category == "payment"
    with pytest.raises(clf.ClassifierError, match="intents/fr.tsv"):
        shipped.predict("je veux un remboursement", "fr")


def test_categories_and_spoken_names_for_reprompts(shipped):
    assert shipped.categories == ["account_security", "payment", "product_usage", "game_support",
                                  "technical_fault", "complaint", "human"]
    assert shipped.spoken_name("payment", "ko") == "결제"
    assert shipped.spoken_name("game_support", "zh") == "游戏"


def test_fast_single_prediction_matches_the_sklearn_transform(shipped):
    for lang, model in shipped.models.items():
        texts = ["i was charged twice please refund", "我 的 账号 被盗 了", "게임 이 자꾸 튕겨요", "zzz qqq"]
        batch = model.predict_proba(texts)
        single = np.vstack([model.proba_one(t) for t in texts])
        np.testing.assert_allclose(single, batch, rtol=1e-9, atol=1e-12)
