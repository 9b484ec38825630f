"""The model's features and the benchmark's out-of-scope threshold, as pure functions."""

from __future__ import annotations

import numpy as np

from ivr.intents import bench
from ivr.intents.model import IntentModel, SpanNgrams, normalize, word_ngrams


def test_word_features_know_where_the_sentence_starts_and_ends():
    grams = word_ngrams(normalize("Why verify my identity?"))
    assert "<s> why" in grams and "identity </s>" in grams
    assert "why" in grams and "why verify" in grams
    assert "<s> how" not in grams


def test_span_ngrams_bridge_the_recognizers_spacing():
    glued, split = set(SpanNgrams(2, 5)("로그인이 안 돼요")), set(SpanNgrams(2, 5)("로그인 이 안 돼요"))
    assert "로그인" in glued and "로그인" in split
    assert " 안 돼" in glued & split
    assert "인이" in glued and "인이" not in split


def test_span_block_can_be_switched_off_and_both_variants_learn():
    texts = ["refund my money", "i want a refund", "money back please", "agent please",
             "talk to a person", "human agent now"]
    labels = ["payment"] * 3 + ["human"] * 3
    with_spans = IntentModel(calibration_folds=0).fit(texts, labels)
    without = IntentModel(span_range=None, calibration_folds=0).fit(texts, labels)
    assert [name for name, _ in with_spans.features_.transformer_list] == ["words", "chars", "pairs", "spans"]
    assert [name for name, _ in without.features_.transformer_list] == ["words", "chars", "pairs"]
    for model in (with_spans, without):
        assert list(model.predict(["refund please", "a person please"])) == ["payment", "human"]
        np.testing.assert_allclose(model.proba_one("refund please"), model.predict_proba(["refund please"])[0])


def test_threshold_is_the_lowest_that_reaches_the_target_out_of_scope_recall():
    y = np.array(["a", "a", "b", "oos", "oos", "oos", "oos"])
    labels = np.array(["a", "a", "b", "a", "b", "a", "b"])
    conf = np.array([0.9, 0.6, 0.8, 0.3, 0.5, 0.7, -1.0])  # -1: the model itself said out of scope
    assert bench.choose_threshold(labels, conf, y, target_recall=0.25) == 0.0
    t = bench.choose_threshold(labels, conf, y, target_recall=0.5)
    assert t == 0.5  # rejects 0.3 (and the -1): 2 of 4 out-of-scope, no in-scope lost
    acc, recall = bench.inscope_and_oos(bench.apply_threshold(labels, conf, t), y)
    assert recall == 0.5 and acc == 1.0
    t = bench.choose_threshold(labels, conf, y, target_recall=1.0)
    acc, recall = bench.inscope_and_oos(bench.apply_threshold(labels, conf, t), y)
    assert recall == 1.0 and acc < 1.0  # the last out-of-scope query costs an in-scope one
