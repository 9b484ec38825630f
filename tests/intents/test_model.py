"""The model's features and the benchmark's out-of-scope threshold, as pure functions."""

from __future__ import annotations

import unicodedata

import numpy as np

from ivr.intents import bench
from ivr.intents.model import IntentModel, JamoNgrams, SpanNgrams, normalize, word_ngrams


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


def test_jamo_ngrams_let_forms_of_one_korean_word_share_features():
    jamo = JamoNgrams(2, 4)
    contracted, full, other = set(jamo("안 돼요")), set(jamo("안 되어요")), set(jamo("안 봐요"))
    assert contracted and not set(jamo("refund please"))  # only Hangul words give any
    # the syllables 돼 / 되 differ; their letters (ㄷ+ㅙ / ㄷ+ㅚ) share the onset, and 요 its letters
    onset, ending = " " + unicodedata.normalize("NFD", "돼")[0], unicodedata.normalize("NFD", "요") + " "
    assert {onset, ending} <= contracted & full
    assert len(contracted & full) > len(contracted & other)


def test_the_jamo_block_is_made_only_for_data_with_hangul_and_the_fast_path_uses_it():
    english = IntentModel(calibration_folds=0).fit(["refund my money", "talk to a person"], ["payment", "human"])
    assert "jamo" not in [name for name, _ in english.features_.transformer_list]
    texts = ["환불 해 주세요", "돈 을 돌려 주세요", "결제 가 안 돼요", "상담원 연결 해 주세요", "사람 이랑 얘기 할래요",
             "상담원 이요"]
    labels = ["payment"] * 3 + ["human"] * 3
    korean = IntentModel(calibration_folds=0).fit(texts, labels)
    assert [name for name, _ in korean.features_.transformer_list][-1] == "jamo"
    probe = ["환불 해줘요", "상담원 연결"]
    assert list(korean.predict(probe)) == ["payment", "human"]
    np.testing.assert_allclose(np.vstack([korean.proba_one(t) for t in probe]), korean.predict_proba(probe), atol=1e-12)


def test_span_block_can_be_switched_off_and_both_variants_learn():
    texts = ["refund my money", "i want a refund", "money back please", "agent please",
             "talk to a person", "human agent now"]
    labels = ["payment"] * 3 + ["human"] * 3
    with_spans = IntentModel(calibration_folds=0).fit(texts, labels)
    without = IntentModel(span_range=None, calibration_folds=0).fit(texts, labels)
    assert [name for name, _ in with_spans.features_.transformer_list] == ["words", "chars", "pairs", "spans", "concepts", "affect"]
    assert [name for name, _ in without.features_.transformer_list] == ["words", "chars", "pairs", "concepts", "affect"]
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


def _banking_slice(classes: int = 12, per_class: int = 40):
    """A slice of BANKING77's training split: many similar intents, as stacking is made for."""
    texts, labels, _, _ = bench.read_banking77(bench.default_folder())
    keep = sorted(set(labels))[:classes]
    texts, labels = zip(*[(t, c) for t, c in zip(texts, labels) if c in keep])
    return bench.subsample(list(texts), list(labels), per_class)


def test_a_stacked_model_folds_into_one_linear_map_that_the_fast_path_computes():
    texts, labels = _banking_slice()
    stacked = IntentModel(stacking="on", lexicons="off").fit(texts, labels)
    plain = IntentModel(stacking="off", lexicons="off").fit(texts, labels)
    assert stacked.stacked_ and not plain.stacked_
    # five views (all blocks, then each of the four blocks) weighed class by class
    assert stacked.stack_.coef_.shape == (12, 5 * 12)
    assert stacked.coef_t_.shape == plain.coef_t_.shape  # still one weight per feature and class
    assert not np.allclose(stacked.coef_t_, plain.coef_t_)
    probe = ["my card still has not arrived", "why was i charged a fee", "i want to cancel a transfer"]
    np.testing.assert_allclose(np.vstack([stacked.proba_one(t) for t in probe]), stacked.predict_proba(probe),
                               atol=1e-12)
    assert np.allclose(stacked.predict_proba(probe).sum(axis=1), 1.0)


def test_auto_stacking_follows_the_held_out_comparison_and_bad_values_are_refused():
    import pytest

    texts, labels = _banking_slice(classes=6, per_class=25)
    auto = IntentModel().fit(texts, labels)
    same = IntentModel(stacking="on" if auto.stacked_ else "off").fit(texts, labels)
    np.testing.assert_allclose(auto.coef_t_, same.coef_t_)
    assert not IntentModel(calibration_folds=0).fit(texts, labels).stacked_  # raw margins: one SVM
    with pytest.raises(ValueError, match="stacking must be"):
        IntentModel(stacking="maybe").fit(texts, labels)


def test_training_is_reproducible_whether_the_fits_run_in_parallel_or_not(monkeypatch):
    import os
    from concurrent.futures import ThreadPoolExecutor

    # liblinear's solver shuffles with one generator per process: fits sharing a process
    # (threads) would perturb each other's sequence and the weights would differ run to run.
    data = [_banking_slice(classes=6, per_class=25), _banking_slice(classes=4, per_class=30)]

    def train(i):
        return IntentModel(stacking="on").fit(*data[i])

    parallel = [train(0)]
    with ThreadPoolExecutor(2) as pool:  # two trainings at once in one process: neither disturbs the other
        parallel += list(pool.map(train, [0, 1]))
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    serial = [train(0), train(1)]
    for model, i in zip(parallel, [0, 0, 1]):
        np.testing.assert_array_equal(model.coef_t_, serial[i].coef_t_)
        assert model.temperature_ == serial[i].temperature_


def test_blocks_fitted_in_parallel_are_what_the_feature_union_fits():
    texts, labels = _banking_slice(classes=6, per_class=25)
    model = IntentModel(lexicons="on").fit(texts, labels)
    union = IntentModel(lexicons="on")._features([normalize(t) for t in texts])
    expected = union.fit_transform([normalize(t) for t in texts]).tocsr()
    assert [name for name, _ in model.features_.transformer_list] == [name for name, _ in union.transformer_list]
    for (_, ours), (_, theirs) in zip(model.features_.transformer_list, union.transformer_list):
        assert ours.vocabulary_ == theirs.vocabulary_
        np.testing.assert_array_equal(ours.idf_, theirs.idf_)
    again = union.transform([normalize(t) for t in texts]).tocsr()
    got = model.features_.transform([normalize(t) for t in texts]).tocsr()
    assert got.shape == expected.shape and (got != again).nnz == 0
    np.testing.assert_allclose(got.toarray(), expected.toarray(), atol=1e-12)


def _uneven_slice(classes: int = 6):
    """BANKING77 intents with 20, 35, 50 ... lines, one intent after another: a training mix
    no caller population has."""
    texts, labels = _banking_slice(classes=classes, per_class=20 + 15 * (classes - 1))
    names = sorted(set(labels))
    lines = [[t for t, c in zip(texts, labels) if c == name][:20 + 15 * i] for i, name in enumerate(names)]
    return [t for group in lines for t in group], [name for name, group in zip(names, lines) for _ in group]


def test_the_uniform_prior_gives_every_category_the_same_weight_and_out_of_scope_its_own():
    import pytest

    y = np.array(["payment"] * 30 + ["human"] * 10 + ["out_of_scope"] * 50)
    weights = IntentModel()._class_weights(*np.unique(y, return_counts=True))
    assert weights["out_of_scope"] == 1.0
    assert weights["payment"] * 30 == pytest.approx(weights["human"] * 10) == pytest.approx(20.0)  # the mean
    # the in-scope lines weigh as much in all as before: the regression's strength is unchanged
    assert weights["payment"] * 30 + weights["human"] * 10 == pytest.approx(40.0)
    assert set(IntentModel(class_prior="training")._class_weights(*np.unique(y, return_counts=True)).values()) == {1.0}
    with pytest.raises(ValueError, match="class_prior must be"):
        IntentModel(class_prior="traffic")._class_weights(*np.unique(y, return_counts=True))


def test_the_uniform_prior_lifts_the_small_categories_and_changes_nothing_on_an_even_mix():
    texts, labels = _uneven_slice()
    uniform = IntentModel(stacking="on").fit(texts, labels)
    training = IntentModel(stacking="on", class_prior="training").fit(texts, labels)
    small, big = list(uniform.classes_).index(labels[0]), list(uniform.classes_).index(labels[-1])
    lift = lambda m: m.stack_.intercept_[small] - m.stack_.intercept_[big]  # noqa: E731
    assert lift(uniform) > lift(training) + 0.1
    # scored on every line, the uniform model finds more of the smallest category's own lines
    recall = lambda m: np.mean(m.predict(texts[:20]) == labels[0])  # noqa: E731
    assert recall(uniform) >= recall(training)
    even_texts, even_labels = _banking_slice(classes=6, per_class=25)
    a = IntentModel(stacking="on").fit(even_texts, even_labels)
    b = IntentModel(stacking="on", class_prior="training").fit(even_texts, even_labels)
    np.testing.assert_allclose(a.coef_t_, b.coef_t_)
