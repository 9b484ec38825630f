"""Confidence means something: reliability and Brier score on data the model never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from ivr.intents import data
from ivr.intents.model import IntentModel

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("lang", ["en", "zh", "ko"])
def test_confidence_is_reliable_on_held_out_utterances(lang):
    examples = [e for e in data.load_examples(ROOT / "intents") if e.language == lang]
    texts = [e.text for e in examples]
    labels = [e.category for e in examples]
    X_train, X_test, y_train, y_test = train_test_split(texts, labels, test_size=0.3, stratify=labels, random_state=1)
    model = IntentModel().fit(X_train, y_train)
    proba = model.predict_proba(X_test)
    y = np.array(y_test)
    pred = model.classes_[proba.argmax(axis=1)]
    conf = proba.max(axis=1)
    right = pred == y

    sure = conf >= 0.8
    assert sure.sum() >= len(y) // 3  # the model is sure about a good share of calls...
    assert right[sure].mean() >= 0.8  # ...and then it is right
    assert right[sure].mean() > right.mean()
    assert right[conf < 0.55].mean() < right[sure].mean()  # unsure predictions are worse

    onehot = (model.classes_[None, :] == y[:, None]).astype(float)
    brier = np.mean(np.sum((proba - onehot) ** 2, axis=1))
    prior = np.array([np.mean(np.array(y_train) == c) for c in model.classes_])
    baseline = np.mean(np.sum((prior[None, :] - onehot) ** 2, axis=1))
    assert brier < 0.6 * baseline

    # Mean confidence tracks accuracy (expected calibration gap), not 1.0 everywhere.
    assert abs(conf.mean() - right.mean()) < 0.15


def test_temperature_is_fitted_not_left_at_one():
    examples = [e for e in data.load_examples(ROOT / "intents") if e.language == "en"]
    model = IntentModel().fit([e.text for e in examples], [e.category for e in examples])
    uncalibrated = IntentModel(calibration_folds=0).fit([e.text for e in examples], [e.category for e in examples])
    assert uncalibrated.temperature_ == 1.0
    assert model.temperature_ != pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("lang", ["en", "zh", "ko"])
def test_expected_calibration_error_on_held_out_utterances_is_small(lang):
    from ivr.intents import evaluate

    examples = [e for e in data.load_examples(ROOT / "intents") if e.language == lang]
    texts = [e.text for e in examples]
    labels = [e.category for e in examples]
    X_train, X_test, y_train, y_test = train_test_split(texts, labels, test_size=0.3, stratify=labels, random_state=2)

    def ece(model):
        proba = model.predict_proba(X_test)
        pred = list(model.classes_[proba.argmax(axis=1)])
        return evaluate.score(lang, y_test, pred, proba, list(model.classes_)).calibration_error()

    calibrated = ece(IntentModel().fit(X_train, y_train))
    raw = ece(IntentModel(calibration_folds=0).fit(X_train, y_train))  # softmax of raw SVM margins
    assert calibrated < 0.12
    assert calibrated < raw / 3
