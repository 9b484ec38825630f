"""How well the classifier knows what callers want: cross-validation and held-out scoring.

Used by ``ivr intents eval``. Metrics per language: accuracy, macro-F1, per-category
precision/recall/F1, a reliability table (does confidence 0.8 mean right 8 in 10?) and
the Brier score; a confusion-matrix PNG is written with matplotlib's Agg backend.

Cross-validation is group-aware: utterances that are near-duplicates of each other
("my card keeps getting declined" / "card keeps getting declined") are linked into one
group and always land in the same fold, so a model is never scored on a sentence it has
practically seen. Without that, adding variations of a template would inflate the score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import StratifiedGroupKFold

from ivr.intents.data import Example
from ivr.intents.model import IntentModel, params_for
from ivr.intents.neardup import NEAR_DUPLICATE, near_duplicate_groups


@dataclass
class Report:
    language: str
    labels: list[str]
    y_true: list[str]
    y_pred: list[str]
    confidence: list[float]
    brier: float = 0.0
    per_category: dict[str, dict[str, float]] = field(default_factory=dict)
    groups: int = 0  # cross-validation groups (near-duplicates kept together); 0 = not grouped

    @property
    def accuracy(self) -> float:
        return float(np.mean(np.array(self.y_true) == np.array(self.y_pred))) if self.y_true else 0.0

    @property
    def macro_f1(self) -> float:
        return float(np.mean([m["f1"] for m in self.per_category.values()])) if self.per_category else 0.0

    def reliability(self, bins=(0.0, 0.25, 0.55, 0.8, 0.9, 1.0001)) -> list[tuple[float, float, int, float]]:
        """(low, high, count, accuracy) per confidence bin."""
        conf = np.array(self.confidence)
        right = np.array(self.y_true) == np.array(self.y_pred)
        rows = []
        for low, high in zip(bins, bins[1:]):
            inside = (conf >= low) & (conf < high)
            rows.append((low, min(high, 1.0), int(inside.sum()), float(right[inside].mean()) if inside.any() else 0.0))
        return rows

    def calibration_error(self, bins: int = 10) -> float:
        """Expected calibration error: the mean |confidence - accuracy| over equal-width
        confidence bins, weighted by how many predictions fall in each (0 = perfectly calibrated)."""
        conf = np.array(self.confidence)
        right = np.array(self.y_true) == np.array(self.y_pred)
        if not len(conf):
            return 0.0
        which = np.minimum((conf * bins).astype(int), bins - 1)
        gap = sum(abs(conf[which == b].mean() - right[which == b].mean()) * np.sum(which == b)
                  for b in range(bins) if np.any(which == b))
        return float(gap / len(conf))

    def matrix(self) -> np.ndarray:
        return confusion_matrix(self.y_true, self.y_pred, labels=self.labels)


def score(language: str, y_true: list[str], y_pred: list[str], proba: np.ndarray, classes: list[str]) -> Report:
    labels = sorted(set(y_true) | set(y_pred))
    p, r, f, n = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per = {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(n[i])}
           for i, lab in enumerate(labels) if n[i] > 0}
    index = {c: i for i, c in enumerate(classes)}
    onehot = np.zeros_like(proba)
    for row, label in enumerate(y_true):
        if label in index:
            onehot[row, index[label]] = 1.0
    brier = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    conf = [float(proba[i].max()) for i in range(len(y_true))]
    return Report(language, labels, list(y_true), list(y_pred), conf, brier, per)


def cross_validate(examples: list[Example], folds: int = 5, seed: int = 0, model_params: dict | None = None,
                   near_duplicate: float = NEAR_DUPLICATE) -> list[Report]:
    """Stratified, group-aware k-fold per language: every utterance is scored by a model that
    saw neither it nor any near-duplicate of it (``near_duplicate`` > 1 disables grouping),
    with the parameters the hotline trains that language with (``params_for``), then
    ``model_params``."""
    reports = []
    for lang in sorted({ex.language for ex in examples}):
        items = [ex for ex in examples if ex.language == lang]
        texts = [ex.text for ex in items]
        y = np.array([ex.category for ex in items])
        classes = sorted(set(y))
        _, counts = np.unique(y, return_counts=True)
        k = min(folds, int(counts.min()))
        if k < 2:
            raise ValueError(f"{lang}: every category needs at least 2 utterances for cross-validation")
        groups = near_duplicate_groups(texts, near_duplicate) if near_duplicate <= 1 else np.arange(len(texts))
        proba = np.zeros((len(y), len(classes)))
        for train, test in StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(texts, y, groups):
            model = IntentModel(**params_for(lang, model_params)).fit([texts[i] for i in train], y[train])
            cols = [classes.index(c) for c in model.classes_]
            proba[np.ix_(test, cols)] = model.predict_proba([texts[i] for i in test])
        pred = [classes[i] for i in proba.argmax(axis=1)]
        report = score(lang, list(y), pred, proba, classes)
        report.groups = len(set(groups.tolist()))
        reports.append(report)
    return reports


def test_file(classifier, examples: list[Example]) -> list[Report]:
    """Score a trained classifier on held-out examples (``out_of_scope`` includes fallbacks)."""
    reports = []
    for lang in sorted({ex.language for ex in examples}):
        items = [ex for ex in examples if ex.language == lang]
        model = classifier.models.get(lang)
        if model is None:
            raise ValueError(f"no model for language {lang!r} in the test file")
        classes = list(model.classes_)
        proba = np.vstack([model.proba_one(ex.text) for ex in items])
        pred = [classifier.predict(ex.text, lang).category for ex in items]
        reports.append(score(lang, [ex.category for ex in items], pred, proba, classes))
    return reports


def render(reports: list[Report]) -> str:
    lines = []
    for rep in reports:
        grouped = f" in {rep.groups} near-duplicate groups" if rep.groups and rep.groups < len(rep.y_true) else ""
        lines.append(f"== {rep.language}: {len(rep.y_true)} utterances{grouped}  accuracy {rep.accuracy:.3f}  "
                     f"macro-F1 {rep.macro_f1:.3f}  Brier {rep.brier:.3f}  ECE {rep.calibration_error():.3f}")
        lines.append(f"   {'category':<18} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>5}")
        for label, m in rep.per_category.items():
            lines.append(f"   {label:<18} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>5}")
        lines.append("   reliability: " + "  ".join(
            f"[{lo:.2f},{hi:.2f}) n={n} acc={acc:.2f}" for lo, hi, n, acc in rep.reliability() if n))
    return "\n".join(lines)


def write_confusion_png(reports: list[Report], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(reports), figsize=(6.5 * len(reports), 6), squeeze=False)
    for ax, rep in zip(axes[0], reports):
        m = rep.matrix()
        ax.imshow(m, cmap="Blues")
        ax.set_xticks(range(len(rep.labels)), rep.labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(rep.labels)), rep.labels, fontsize=8)
        for (i, j), v in np.ndenumerate(m):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                        color="white" if v > m.max() / 2 else "black")
        ax.set_title(f"{rep.language}: accuracy {rep.accuracy:.3f}, macro-F1 {rep.macro_f1:.3f}")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
