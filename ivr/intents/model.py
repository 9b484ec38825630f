"""The intent model: one scikit-learn estimator for the hotline and the public benchmarks.

Features, built for short noisy transcripts in English, Chinese and Korean:

- word unigrams and bigrams (a Chinese character counts as a word, since Chinese is
  written without spaces and Vosk's segmentation varies), with the sentence's start and
  end as words too, so "<s> why" (a question about a reason) differs from "<s> how";
- character n-grams inside words (1-5), which survive misrecognitions, inflection and
  Korean particles glued to or split from their noun;
- character n-grams across word boundaries (2-5), which see short phrases whatever the
  recognizer's spacing ("로그인 이" / "로그인이", "log in" / "login");
- unordered pairs of prefix-stemmed content words anywhere in the utterance, so the linear
  model sees "card ... arrive" or "charged ... twice" together, whatever lies between;
- for Korean, n-grams of the letters (jamo) inside Hangul words (2-4): a syllable block
  packs 2-3 letters, so "돼요" / "되요" / "되어요" or "잊어버렸" / "잊어버려" share most of
  their letter n-grams while their syllables differ (conjugation, contraction, and the
  recognizer's spelling); the block is made only when the training data has Hangul;
- for English, WordNet concepts of each content word (``ivr.intents.wordnet``: its
  lexicographer files and hypernyms, "tomatoes" -> food, plant), so words the training
  data never had still say what they are about, and the affect of each word in VADER's
  lexicon (``ivr.intents.affect``: negative, strongly negative, positive), so a bare
  "pathetic" is as upset as "terrible"; these two lexicon blocks are made when most
  training texts are in Latin script, and kept when held-out folds say they help (the
  hotline's English keeps them always: ``LANGUAGE_PARAMS``).

Each block is TF-IDF (sublinear tf, l2-normalised). Linear SVMs separate the classes, one
over all blocks together and one over each block alone (each block is a different view of
the utterance, and they err on different utterances); a multinomial logistic regression,
fitted on their out-of-fold margins, weighs the views class by class (stacking). That
regression counts every category alike, however many lines it has (``class_prior``), so
the mix of the training files, which says how much ops staff wrote and agents corrected,
not what callers call about, does not become the model's idea of what is likely;
out-of-scope lines, a catch-all, keep their own weight. (A model that does not stack, such
as the hotline's Korean one, is the one SVM and still sees its lines as they come.) Every
step is linear in the features, so the whole model folds into one weight matrix and a
prediction costs what one linear SVM costs. Its scores become probabilities by temperature
scaling (softmax of score / T, T fitted on out-of-fold scores by log loss), so a confidence
of 0.8 means right about 8 times in 10. Single predictions take a pure-Python fast path
(dictionary look-ups and one small matrix product) that computes exactly what the
scikit-learn transform computes, at a fraction of its per-call overhead.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
import re
import unicodedata

import numpy as np
from scipy import sparse
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from ivr.intents import affect, wordnet
from ivr.intents.data import OUT_OF_SCOPE

# Bumped whenever features or training change, so saved models are retrained.
MODEL_VERSION = 10
# "auto" stacking is considered only with at least this many examples of every class.
STACK_MIN_PER_CLASS = 20

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)
_HAN_GAP = re.compile(f"(?<=[{_HAN}]) +(?=[{_HAN}])")
_TOKEN = re.compile(f"[{_HAN}]|[^\\s{_HAN}]+")
_HANGUL = re.compile("[\uac00-\ud7a3]")
_LATIN_WORD = re.compile("[a-z]{2,}")
# Words too common to carry meaning in a pair (fillers included: Vosk writes them out).
STOPWORDS = frozenset(
    "a an the i im my me is it its to of and or in on for do does did can could be was am are have has "
    "this that what how why with at you your uh um er ah oh so just like yeah okay please".split()
)


def normalize(text: str) -> str:
    """NFKC, lower case, punctuation out, and no spaces between Chinese characters."""
    text = _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).lower())
    return _HAN_GAP.sub("", " ".join(text.split()))


def words(text: str) -> list[str]:
    """Tokens of normalised text: Latin/Hangul words, and each Chinese character alone."""
    return _TOKEN.findall(text)


def word_ngrams(text: str) -> list[str]:
    """Words, and pairs of neighbours including the sentence's start ``<s>`` and end ``</s>``."""
    w = words(text)
    bounded = ["<s>", *w, "</s>"]
    return w + [f"{a} {b}" for a, b in zip(bounded, bounded[1:])]


class CharNgrams:
    """Character n-grams inside space-padded words (a class, so the model pickles)."""

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high

    def __call__(self, text: str) -> list[str]:
        grams = []
        for word in text.split():
            padded = f" {word} "
            for n in range(self.low, self.high + 1):
                grams.extend(padded[i:i + n] for i in range(len(padded) - n + 1))
        return grams


class JamoNgrams:
    """Letter (jamo) n-grams inside space-padded Hangul words: NFD splits each syllable block
    into its 2-3 letters. Words without Hangul give none."""

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high

    def __call__(self, text: str) -> list[str]:
        grams = []
        for word in text.split():
            if _HANGUL.search(word):
                padded = f" {unicodedata.normalize('NFD', word)} "
                for n in range(self.low, self.high + 1):
                    grams.extend(padded[i:i + n] for i in range(len(padded) - n + 1))
        return grams


class SpanNgrams:
    """Character n-grams of the whole space-padded utterance, across word boundaries."""

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high

    def __call__(self, text: str) -> list[str]:
        padded = f" {text} "
        return [padded[i:i + n] for n in range(self.low, self.high + 1) for i in range(len(padded) - n + 1)]


class Concepts:
    """WordNet concepts of the utterance's Latin-script content words."""

    def __call__(self, text: str) -> list[str]:
        grams: list[str] = []
        for word in words(text):
            if word not in STOPWORDS and _LATIN_WORD.fullmatch(word):
                grams.extend(wordnet.concepts(word))
        return grams


class Affect:
    """VADER's affect tokens of the utterance's words (all of them: "no" and "not" count)."""

    def __call__(self, text: str) -> list[str]:
        return [token for word in words(text) for token in affect.tokens(word)]


# Blocks drawn from English lexicons (WordNet, VADER): last in the union, kept or dropped together.
LEXICON_BLOCKS = ("concepts", "affect")


def _mostly_latin(texts) -> bool:
    return sum(bool(_LATIN_WORD.search(t)) for t in texts) > len(texts) / 2


def _stem(word: str, latin: int) -> str:
    # Korean words carry particles and endings after a 1-3 syllable stem.
    return word[:2] if _HANGUL.match(word) else word[:latin]


class WordPairs:
    """Unordered pairs of prefix-stemmed content words of one utterance."""

    def __init__(self, stem: int):
        self.stem = stem

    def __call__(self, text: str) -> list[str]:
        content = sorted({_stem(w, self.stem) for w in words(text) if w not in STOPWORDS})
        return [f"{a}|{b}" for a, b in itertools.combinations(content, 2)]


# Choices for one language of the hotline's own data, made on its cross-validation folds
# (``ivr intents eval``, seeds 0-2); the benchmarks, whose data has no language tag, and
# every other language get the defaults. English keeps WordNet's and VADER's blocks always:
# on its 4,857 lines (stop 19) they give macro-F1 0.926 against 0.919 without, higher on
# each of the three seeds, while the "auto" check, which decides on one partition of the
# training data, swings around its threshold there (z 0.5-2.0 over four partitions) and
# dropped them from the model trained on all of it.
LANGUAGE_PARAMS: dict[str, dict] = {"en": {"lexicons": "on"}}


def params_for(language: str, overrides: dict | None = None) -> dict:
    """The model parameters for a language's data: its own choices, then ``overrides``."""
    return {**LANGUAGE_PARAMS.get(language, {}), **(overrides or {})}


class IntentModel(ClassifierMixin, BaseEstimator):
    """Text -> intent with calibrated probabilities.

    Parameters: ``C`` the SVM's regularisation (larger fits the training data harder),
    ``char_range`` the character n-gram sizes inside words, ``span_range`` those across
    words (``None``: no such block), ``stem`` the prefix length of stemmed
    words in pairs, ``calibration_folds`` the folds of out-of-fold margins that fit the
    stacking and the temperature (0 = one SVM over all blocks, T = 1: raw margins),
    ``stacking`` whether to stack the views: ``"auto"`` when the stack predicts held-out
    folds of the training data better than the one SVM (large data sets such as BANKING77,
    and since stop 19's data the hotline's English and Chinese; not its Korean), ``"on"``,
    or ``"off"``; ``stack_C`` the
    regularisation of the stacking regression, ``jamo_range`` the letter n-gram sizes inside
    Hangul words (``None``: no such block; chosen on cross-validation folds of the Korean
    data: 2-4 over 2-5 and 3-7, and over spans across words), ``lexicons`` the blocks of WordNet
    concepts and VADER affect: ``"auto"`` when most training texts have Latin-script words and
    the blocks make held-out folds of the training data clearly more accurate (sign test),
    ``"on"``, ``"off"`` (5 senses and 8 hypernym levels chosen on the English data's
    cross-validation folds over 1/2, 2/3, 3/5, 3/8 and 10/8); ``class_prior`` how the
    stacking regression (and the check whether to stack) counts the categories:
    ``"uniform"`` every category as much as another, ``out_of_scope`` by its lines, or
    ``"training"`` every line alike. ``C`` and ``stack_C`` were
    chosen on a validation split of BANKING77's training data.
    """

    # The lexicon gate keeps the blocks when its sign test's z reaches this (one standard error).
    LEXICONS_MIN_Z = 1.0

    def __init__(self, C: float = 0.5, char_range: tuple[int, int] = (1, 5),
                 span_range: tuple[int, int] | None = (2, 5), stem: int = 4,
                 calibration_folds: int = 5, stacking: str = "auto", stack_C: float = 0.03,
                 random_state: int = 0, jamo_range: tuple[int, int] | None = (2, 4),
                 lexicons: str = "auto", class_prior: str = "uniform"):
        self.C = C
        self.class_prior = class_prior
        self.char_range = char_range
        self.span_range = span_range
        self.jamo_range = jamo_range
        self.lexicons = lexicons
        self.stem = stem
        self.calibration_folds = calibration_folds
        self.stacking = stacking
        self.stack_C = stack_C
        self.random_state = random_state

    # --- training ----------------------------------------------------------------
    def _features(self, texts: list[str] = ()) -> FeatureUnion:
        def block(analyzer):
            return TfidfVectorizer(analyzer=analyzer, sublinear_tf=True, lowercase=False, dtype=np.float64)
        blocks = [
            ("words", block(word_ngrams)),
            ("chars", block(CharNgrams(*self.char_range))),
            ("pairs", block(WordPairs(self.stem))),
        ]
        if self.span_range:
            blocks.append(("spans", block(SpanNgrams(*self.span_range))))
        if self.jamo_range and any(_HANGUL.search(t) for t in texts):
            blocks.append(("jamo", block(JamoNgrams(*self.jamo_range))))
        if self.lexicons not in ("auto", "on", "off"):
            raise ValueError(f"lexicons must be 'auto', 'on' or 'off', not {self.lexicons!r}")
        if self.lexicons == "on" or (self.lexicons == "auto" and _mostly_latin(texts)):
            if any(map(Concepts(), texts)):
                blocks.append(("concepts", block(Concepts())))
            if any(map(Affect(), texts)):
                blocks.append(("affect", block(Affect())))
            if self.lexicons == "on" and not any(name in LEXICON_BLOCKS for name, _ in blocks):
                raise ValueError("lexicons='on', but no training utterance has a word WordNet or VADER knows")
        return FeatureUnion(blocks)

    def _svm(self) -> LinearSVC:
        return LinearSVC(C=self.C, random_state=self.random_state)

    def fit(self, X, y):
        # BLAS runs single-threaded while training: the cores go to the forked SVM fits
        # (``_parallel``), which OpenBLAS's threads, spinning after each call in this process,
        # otherwise take from them (the hotline's three languages: 25 s -> 14 s), and the
        # results no longer depend on how many cores the machine has.
        with threadpool_limits(1):
            return self._fit(X, y)

    def _fit(self, X, y):
        texts = [normalize(t) for t in X]
        y = np.asarray(y)
        self.features_ = self._features(texts)
        self.lexicons_z_ = float("nan")  # the lexicon gate's sign test, when it runs
        matrix = self._fit_blocks(texts)
        self.classes_, counts = np.unique(y, return_counts=True)
        folds = min(self.calibration_folds, int(counts.min()))
        self.class_weight_ = self._class_weights(self.classes_, counts)  # the stacking regression's
        if folds < 2 or len(self.classes_) < 2:
            self.coef_, self.intercept_ = self._view_weights(matrix, y, slice(None))
            self.temperature_, self.stacked_ = 1.0, False
        else:
            if self.stacking not in ("auto", "on", "off"):
                raise ValueError(f"stacking must be 'auto', 'on' or 'off', not {self.stacking!r}")
            # A second-level fit needs data of its own: a tiny training set gets the one SVM.
            big_enough = self.stacking == "on" or int(counts.min()) >= STACK_MIN_PER_CLASS
            all_blocks = None  # out-of-fold margins of the SVM over all blocks, once the gate has them
            if self.lexicons == "auto" and self.uses_lexicons:
                matrix, all_blocks = self._keep_lexicons_if_they_help(matrix, y, folds)
            views = self._views() if self.stacking != "off" and big_enough and len(self.classes_) > 2 \
                else [slice(None)]
            oof = self._out_of_fold(matrix, y, views, folds, all_blocks)
            self.stacked_ = len(views) > 1 and (self.stacking == "on" or self._stacking_helps(oof, y, folds))
            if not self.stacked_:
                views, oof = views[:1], oof[:, :len(self.classes_)]
            # Every view's SVM on all the data: the model's weights (folded through the stack).
            weights = _parallel([lambda view=view: self._view_weights(matrix, y, view) for view in views])
            if self.stacked_:
                self._fold_stack(oof, y, views, weights, matrix.shape[1])
                scores = self.stack_.decision_function(oof)
            else:
                (self.coef_, self.intercept_), scores = weights[0], oof
            self.temperature_ = self._fit_temperature(scores, y)
        self._build_fast_path()
        return self

    def _fit_blocks(self, texts: list[str]):
        """Fit every block's vocabulary and weights, the blocks in parallel (a third of the
        hotline's training was these pure-Python analyzers, one block after another); the
        same vectorizers and matrix as ``FeatureUnion.fit_transform``."""
        blocks = self.features_.transformer_list
        fitted = _parallel([lambda vec=vec: (vec, vec.fit_transform(texts)) for _, vec in blocks])
        self.features_.transformer_list = [(name, vec) for (name, _), (vec, _) in zip(blocks, fitted)]
        return sparse.hstack([block for _, block in fitted], format="csr", dtype=np.float64)

    def _keep_lexicons_if_they_help(self, matrix, y, folds: int) -> tuple:
        """Drop the lexicon blocks (WordNet concepts, VADER affect) unless the one SVM classifies
        held-out folds of the training data better with them by more than noise: of the
        utterances only one variant gets right, the lexicons' side must win by one standard
        error of that count (z >= 1, the one-standard-error rule of model selection). They lend
        world knowledge to a few thousand lines (the hotline's English: 76 against 46,
        z = 2.7); on large one-domain data they are noise (BANKING77, CLINC150: see
        intents/README.md).

        Returns the matrix (without the blocks if dropped) and the out-of-fold margins of the
        SVM over all of its blocks, which the views' out-of-fold fits then need not repeat."""
        names = [name for name, _ in self.features_.transformer_list]
        first = next(i for i, name in enumerate(names) if name in LEXICON_BLOCKS)
        assert all(name in LEXICON_BLOCKS for name in names[first:]), names  # the lexicons come last
        cut = sum(len(vec.vocabulary_) for _, vec in self.features_.transformer_list[:first])
        oof = self._out_of_fold(matrix, y, [slice(None), slice(0, cut)], folds)
        k = len(self.classes_)
        with_block, without = (self.classes_[np.argmax(oof[:, i * k:(i + 1) * k], axis=1)] == y for i in (0, 1))
        wins, losses = int(np.sum(with_block & ~without)), int(np.sum(without & ~with_block))
        self.lexicons_z_ = (wins - losses) / math.sqrt(wins + losses) if wins + losses else 0.0
        if self.lexicons_z_ >= self.LEXICONS_MIN_Z:
            return matrix, oof[:, :k]
        del self.features_.transformer_list[first:]
        return matrix[:, :cut], oof[:, k:]

    @property
    def uses_wordnet(self) -> bool:
        return any(name == "concepts" for name, _ in self.features_.transformer_list)

    @property
    def uses_lexicons(self) -> bool:
        return any(name in LEXICON_BLOCKS for name, _ in self.features_.transformer_list)

    def _views(self) -> list[slice]:
        """All blocks together, then each block alone (column ranges of the union)."""
        views, offset = [slice(None)], 0
        for _, vec in self.features_.transformer_list:
            size = len(vec.vocabulary_)
            views.append(slice(offset, offset + size))
            offset += size
        return views

    def _view_weights(self, matrix, y, view: slice) -> tuple[np.ndarray, np.ndarray]:
        """(K x columns, K) weights of one view's SVM, one row per class (binary: both)."""
        svm = self._svm().fit(matrix[:, view], y)
        coef, intercept = svm.coef_, svm.intercept_
        if coef.shape[0] == 1:  # binary: sklearn keeps one row for the positive class
            coef, intercept = np.vstack([-coef, coef]), np.array([-intercept[0], intercept[0]])
        return np.asarray(coef), np.asarray(intercept, dtype=np.float64)

    def _out_of_fold(self, matrix, y, views: list[slice], folds: int, first: np.ndarray | None = None) -> np.ndarray:
        """Margins of every view's SVM on utterances its fold did not train on (n x V*K);
        ``first``, when given, is the first view's, already computed on the same folds."""
        k = len(self.classes_)
        index = {c: i for i, c in enumerate(self.classes_)}
        margins = np.full((len(y), len(views) * k), -10.0)
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)

        def one(fold, v, view):
            train, test, fitted, scored = fold
            svm = self._svm().fit(fitted[:, view], y[train])
            # A fold may miss a class only if it is tiny; its column then stays very negative.
            cols = [v * k + index[c] for c in svm.classes_]
            return test, cols, _margins(svm, scored[:, view])

        # Each fold's rows are cut once and shared by the views' fits.
        folds_ = [(train, test, matrix[train], matrix[test]) for train, test in splitter.split(matrix, y)]
        start = 0
        if first is not None:
            margins[:, :k], start = first, 1
        jobs = [lambda f=fold, v=v, view=view: one(f, v, view)
                for fold in folds_ for v, view in enumerate(views) if v >= start]
        for test, cols, scores in _parallel(jobs):
            margins[np.ix_(test, cols)] = scores
        return margins

    def _stacking_helps(self, oof, y, folds: int) -> bool:
        """Whether the stack classifies held-out folds more accurately than the one SVM over
        all blocks: on small data sets its extra weights can cost more than the views add.
        (Accuracy, not log loss: the temperature fixes the confidence either way.)"""
        k = len(self.classes_)
        plain = self.classes_[np.argmax(oof[:, :k], axis=1)]
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state + 1)

        def one(train, test):  # ~0.5 s each on the hotline's data: the folds run in parallel too
            return test, self._stack_regression().fit(oof[train], y[train]).predict(oof[test])

        stacked = np.empty_like(y)
        for test, predicted in _parallel([lambda tr=train, te=test: one(tr, te) for train, test in splitter.split(oof, y)]):
            stacked[test] = predicted
        weight = np.array([self.class_weight_[c] for c in y])  # accuracy under the prior the stack fits
        return float(weight @ (stacked == y)) > float(weight @ (plain == y))

    def _class_weights(self, names, counts) -> dict:
        """How much one training line of each category counts in the stacking regression.
        ``"uniform"``: every category as much as another, whatever number of lines it has
        (the lines' mix says how much ops staff wrote and agents corrected, not how often
        callers call about it), except ``out_of_scope``, everything no category covers, which
        keeps the weight of its lines; ``"training"``: every line alike. ``names`` and their
        ``counts`` of lines as ``np.unique`` gives them."""
        if self.class_prior == "training":
            return {c: 1.0 for c in names}
        if self.class_prior != "uniform":
            raise ValueError(f"class_prior must be 'uniform' or 'training', not {self.class_prior!r}")
        inside = [n for c, n in zip(names, counts) if c != OUT_OF_SCOPE]
        mean = float(np.mean(inside)) if inside else 1.0
        return {c: 1.0 if c == OUT_OF_SCOPE else mean / float(n) for c, n in zip(names, counts)}

    def _stack_regression(self) -> LogisticRegression:
        return LogisticRegression(C=self.stack_C, max_iter=5000, class_weight=self.class_weight_)

    def _fold_stack(self, oof, y, views, weights, width: int) -> None:
        """Fit the stacking regression and fold it into one K x F weight matrix."""
        k = len(self.classes_)
        self.stack_ = self._stack_regression().fit(oof, y)
        assert list(self.stack_.classes_) == list(self.classes_)
        coef = np.zeros((k, width))
        intercept = self.stack_.intercept_.astype(np.float64).copy()
        for v, (view, (w, b)) in enumerate(zip(views, weights)):
            mix = self.stack_.coef_[:, v * k:(v + 1) * k]  # K x K: how view v's margins count
            coef[:, view] += mix @ w
            intercept += mix @ b
        self.coef_, self.intercept_ = coef, intercept

    def _fit_temperature(self, scores: np.ndarray, y) -> float:
        index = {c: i for i, c in enumerate(self.classes_)}
        target = np.array([index[c] for c in y])

        def log_loss(log_t: float) -> float:
            p = _softmax(scores / math.exp(log_t))
            return -float(np.mean(np.log(p[np.arange(len(target)), target] + 1e-12)))

        best = minimize_scalar(log_loss, bounds=(-5.0, 3.0), method="bounded")
        return float(math.exp(best.x))

    def _build_fast_path(self) -> None:
        self.blocks_ = []
        offset = 0
        for _, vec in self.features_.transformer_list:
            self.blocks_.append((vec.analyzer, vec.vocabulary_, vec.idf_, offset))
            offset += len(vec.vocabulary_)
        self.coef_t_ = np.ascontiguousarray(np.asarray(self.coef_).T)
        self.intercept_ = np.asarray(self.intercept_, dtype=np.float64)
        del self.coef_  # its transpose is what predictions use

    # --- prediction --------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        matrix = self.features_.transform([normalize(t) for t in X])
        return np.asarray(matrix @ self.coef_t_) + self.intercept_

    def predict_proba(self, X) -> np.ndarray:
        return _softmax(self.decision_function(X) / self.temperature_)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def margins_one(self, text: str) -> np.ndarray:
        """Margins for one text without scikit-learn's per-call overhead (same numbers).

        Counting and vocabulary look-ups run in C (``Counter``, ``map``); the weighting
        (sublinear tf x idf, l2 per block) is a few small numpy operations per block.
        """
        text = normalize(text)
        rows: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for analyzer, vocabulary, idf, offset in self.blocks_:
            counts = Counter(analyzer(text))
            if not counts:
                continue
            index = np.fromiter(map(vocabulary.get, counts, itertools.repeat(-1)), dtype=np.intp, count=len(counts))
            known = index >= 0
            if not known.any():
                continue
            index = index[known]
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))[known]
            weights = (1.0 + np.log(tf)) * idf[index]
            rows.append(index + offset)
            values.append(weights / math.sqrt(weights @ weights))
        if not rows:
            return self.intercept_.copy()
        return np.concatenate(values) @ self.coef_t_[np.concatenate(rows)] + self.intercept_

    def proba_one(self, text: str) -> np.ndarray:
        return _softmax(self.margins_one(text) / self.temperature_)


_JOBS: list = []  # in a worker process: the jobs of the _parallel call that forked it


def _take_jobs(jobs: list) -> None:
    global _JOBS
    _JOBS = jobs


def _run_job(i: int):
    return _JOBS[i]()


def _parallel(jobs: list) -> list:
    """Run independent SVM fits on every core, each in a forked worker process.

    Not threads, though liblinear releases the GIL: its solver draws from one random
    generator per process (sklearn's ``set_seed``), so fits in concurrent threads reseed and
    consume each other's sequence and the same data trains a (slightly) different model
    from run to run. A forked worker inherits the jobs and the matrix they close over without
    copying or pickling them (a fork start passes the initializer's arguments as they are) and
    sends back only the weights or margins. Where fork is unavailable, or inside a worker, the
    jobs run one after another: same results, one core."""
    import multiprocessing
    import os

    workers = min(len(jobs), os.cpu_count() or 1)
    if (workers <= 1 or "fork" not in multiprocessing.get_all_start_methods()
            or multiprocessing.current_process().daemon):
        return [job() for job in jobs]
    with multiprocessing.get_context("fork").Pool(workers, initializer=_take_jobs, initargs=(jobs,)) as pool:
        return pool.map(_run_job, range(len(jobs)), chunksize=1)


def _margins(svm: LinearSVC, matrix) -> np.ndarray:
    scores = svm.decision_function(matrix)
    return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)
