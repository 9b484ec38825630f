"""The hotline's intent classifier: transcript + language -> category, confidence, decision.

One :class:`~ivr.intents.model.IntentModel` per language (the scripts share no features,
and a per-language model keeps each language's confidences calibrated on that
language's own data). The trained models are saved together with the hash of the data
they learned from and the library versions that built them; :func:`load_classifier` loads
that file and retrains when the data changed or the file is missing, corrupt or from other
library versions.

The file is two pickles (protocol 5) one after the other: a small header (format, versions,
data hash, the body's length and CRC32) and the body (taxonomy and models). Whether a saved model is
current is read from the header, with the body's bytes checked against the length and CRC
it records (27 ms), where unpickling the ~85 MB body takes 0.4 s (joblib, which wrote these
files until stop 20, took 3.8 s: its unpickler runs in Python).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import logging
import os
import pickle
import platform
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy
import sklearn

from ivr.intents import data as data_mod
from ivr.intents import affect, wordnet
from ivr.intents.data import OUT_OF_SCOPE, Example, Taxonomy
from ivr.intents.model import MODEL_VERSION, IntentModel, params_for

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = 3
# What the header holds; the body holds the rest of the artifact.
HEADER_KEYS = ("format", "versions", "data_hash", "trained_at", "feedback_count")


class ClassifierError(RuntimeError):
    """The classifier cannot be built (bad data, unknown language); the message says how to fix it."""


@dataclass(frozen=True)
class Prediction:
    category: str                 # a category, or "out_of_scope"
    confidence: float             # calibrated probability of `category`
    runner_up: str                # the likeliest real category other than `category`
    runner_up_confidence: float
    decision: str                 # "route" | "reprompt" | "fallback"

    def to_dict(self) -> dict:
        return asdict(self)


def decide(category: str, confidence: float, confident: float, reprompt: float) -> str:
    """Thresholds -> what the call flow does.

    A category at or above ``confident`` is routed; at or above ``reprompt`` the caller is
    asked once more; below, the call goes to the fallback queue. ``out_of_scope`` is never
    routed as such: a clear "none of these" earns one re-prompt, an unclear one the fallback.
    """
    if category == OUT_OF_SCOPE:
        return "reprompt" if confidence >= reprompt else "fallback"
    if confidence >= confident:
        return "route"
    return "reprompt" if confidence >= reprompt else "fallback"


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "wordnet": wordnet.package_version(),
        "vader": affect.package_version(),
        "model": str(MODEL_VERSION),
    }


@dataclass
class Classifier:
    taxonomy: Taxonomy
    models: dict[str, IntentModel]
    confident: float = 0.55
    reprompt: float = 0.25
    data_hash: str = ""
    trained_at: float = 0.0
    feedback_count: int = 0
    versions: dict[str, str] = field(default_factory=library_versions)

    def __post_init__(self) -> None:
        # WordNet's tables load in ~0.5 s: at start-up, not on the first English caller.
        if any(model.uses_wordnet for model in self.models.values()):
            wordnet.database()
        if any(model.uses_lexicons for model in self.models.values()):
            affect.lexicon()

    @property
    def categories(self) -> list[str]:
        return self.taxonomy.names

    @property
    def languages(self) -> list[str]:
        return sorted(self.models)

    def spoken_name(self, category: str, language: str) -> str:
        return self.taxonomy.spoken_name(category, language)

    def predict(self, text: str, language: str) -> Prediction:
        lang = data_mod.base_language(language)
        model = self.models.get(lang)
        if model is None:
            raise ClassifierError(f"no intent model for language {language!r} (have {', '.join(self.languages)}); "
                                  f"add intents/{lang}.tsv and run `ivr intents train`")
        if not data_mod.clean_text(text):
            # Nothing was understood: say so plainly rather than report the class prior.
            runner = "human" if "human" in self.categories else self.categories[0]
            return Prediction(OUT_OF_SCOPE, 0.0, runner, 0.0, "fallback")
        proba = model.proba_one(text)
        return self._prediction(model.classes_, proba)

    def _prediction(self, classes: np.ndarray, proba: np.ndarray) -> Prediction:
        order = np.argsort(-proba)
        best = int(order[0])
        category = str(classes[best])
        runner = next((int(i) for i in order[1:] if classes[i] != OUT_OF_SCOPE), None)
        runner_up = str(classes[runner]) if runner is not None else category
        runner_conf = float(proba[runner]) if runner is not None else 0.0
        confidence = float(proba[best])
        return Prediction(category, round(confidence, 4), runner_up, round(runner_conf, 4),
                          decide(category, confidence, self.confident, self.reprompt))

    def with_thresholds(self, confident: float, reprompt: float) -> "Classifier":
        self.confident, self.reprompt = confident, reprompt
        return self


def train(examples: list[Example], taxonomy: Taxonomy, *, data_hash: str = "", feedback_count: int = 0,
          confident: float = 0.55, reprompt: float = 0.25, model_params: dict | None = None) -> Classifier:
    """Fit one model per language present in ``examples``."""
    by_lang: dict[str, list[Example]] = {}
    for ex in examples:
        by_lang.setdefault(ex.language, []).append(ex)
    models = {}
    for lang, items in sorted(by_lang.items()):
        labels = {ex.category for ex in items}
        if len(labels) < 2:
            raise ClassifierError(f"{lang}: training needs at least two categories, found {sorted(labels)}")
        models[lang] = IntentModel(**params_for(lang, model_params)).fit([ex.text for ex in items],
                                                                         [ex.category for ex in items])
    return Classifier(taxonomy, models, confident, reprompt, data_hash, time.time(), feedback_count)


def save(classifier: Classifier, path: str | Path) -> None:
    write_artifact(path, {
        "format": ARTIFACT_FORMAT,
        "versions": classifier.versions,
        "data_hash": classifier.data_hash,
        "trained_at": classifier.trained_at,
        "feedback_count": classifier.feedback_count,
        "taxonomy": classifier.taxonomy,
        "models": classifier.models,
    })


# A write's temporary file left by a trainer that was killed mid-write (after this long,
# no write is still under way: one takes about a second) is removed by the next write.
STALE_TMP_S = 600


# Set by a process that holds the training lock for the child it starts (the server's
# background retrain runs `ivr intents train` under its own lock: the child must not wait on it).
LOCK_HELD_ENV = "IVR_TRAINING_LOCK_HELD"


@contextlib.contextmanager
def training_lock(model_path: str | Path, on_wait=None):
    """One training of this model file at a time on the machine (``<model>.lock``, flock):
    ``ivr intents train`` and the server's background retrains take turns, so neither
    overwrites the other's file (agents' corrections folded in by one, say). ``on_wait`` is
    called once if another holds it."""
    lock_path = Path(str(model_path) + ".lock")
    if os.environ.get(LOCK_HELD_ENV) == str(lock_path):
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def write_artifact(path: str | Path, artifact: dict) -> None:
    """Write atomically and durably: a worker loading at the same moment sees the old file or
    the new one, and after a crash the file is whole, or the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp_files(path)
    body = pickle.dumps({k: v for k, v in artifact.items() if k not in HEADER_KEYS}, protocol=5)
    header = {k: artifact[k] for k in HEADER_KEYS} | {"body_bytes": len(body), "body_crc32": zlib.crc32(body)}
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(header, f, protocol=5)
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)  # the rename itself survives a crash
        finally:
            os.close(folder)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _remove_legacy_file(path)


def _remove_legacy_file(path: Path) -> None:
    """Before stop 20 the model was saved with joblib as ``model.joblib`` (92 MB); once its
    successor is written beside it, nothing reads it again."""
    legacy = path.with_suffix(".joblib")
    if path.suffix == ".pkl" and legacy.is_file():
        try:
            legacy.unlink()
            log.info("old model file removed", extra={"path": str(legacy)})
        except OSError:
            pass  # not ours to remove: it only takes room


def _remove_stale_tmp_files(path: Path) -> None:
    for tmp in path.parent.glob(f"{glob.escape(path.name)}*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink()
        except OSError:
            pass  # gone already, or not ours to remove: the write goes on


def read_artifact(path: str | Path, *, header_only: bool = False) -> dict:
    """The saved artifact; ``header_only``: only its header (format, versions, data hash),
    the models' bytes checked against the header's length and CRC but not unpickled (27 ms
    against 0.4 s). Raises ``ValueError`` when the file is unusable (corrupt, cut short,
    foreign, old, unreadable) and ``FileNotFoundError`` when there is none."""
    try:
        with open(path, "rb") as f:
            return _read(f, path, header_only)
    except FileNotFoundError:
        raise
    except OSError as exc:  # a directory, no permission, an I/O error: unusable, and say why
        raise ValueError(f"{path}: unreadable model file ({type(exc).__name__}: {exc.strerror or exc})") from None


def _unpickle(f, path):
    try:
        return pickle.load(f)
    except Exception as exc:  # unpickling garbage raises anything from EOFError to KeyError
        raise ValueError(f"{path}: unreadable model file ({type(exc).__name__}: {exc})") from None


def _read(f, path, header_only: bool) -> dict:
    header = _unpickle(f, path)
    if not isinstance(header, dict) or header.get("format") != ARTIFACT_FORMAT:
        raise ValueError(f"{path}: not a model file of format {ARTIFACT_FORMAT}")
    if header.get("versions") != library_versions():
        raise ValueError(f"{path}: built with {header.get('versions')}, running {library_versions()}")
    body_bytes = os.fstat(f.fileno()).st_size - f.tell()
    if body_bytes != header.get("body_bytes"):
        raise ValueError(f"{path}: unreadable model file (its models take {header.get('body_bytes')} bytes, "
                         f"the file holds {body_bytes})")
    if header_only:
        crc = 0
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
        if crc != header.get("body_crc32"):
            raise ValueError(f"{path}: unreadable model file (its models' bytes fail their checksum)")
        return header
    return header | _unpickle(f, path)


def _saved_artifact(config, *, header_only: bool = False) -> tuple[dict | None, str | None]:
    """The saved artifact if it is current, else None and why it must be retrained."""
    path = config.path(config.classifier.model_path)
    try:
        artifact = read_artifact(path, header_only=header_only)
    except FileNotFoundError:
        return None, f"{path} does not exist"
    except ValueError as exc:
        return None, str(exc)
    if artifact["data_hash"] != data_mod.data_hash(config.path(config.classifier.data_dir)):
        return None, f"the data in {config.classifier.data_dir}/ changed since the model was trained"
    return artifact, None


def staleness(config) -> str | None:
    """Why the saved model must be retrained, or None when it is current (from its header)."""
    return _saved_artifact(config, header_only=True)[1]


def train_from_config(config, feedback: list[Example] | None = None) -> Classifier:
    """Train on ``intents/`` (plus agents' corrections, if given) and save to the model path."""
    data_dir = config.path(config.classifier.data_dir)
    # The digest first: an edit while training makes the saved model look stale, not current.
    digest = data_mod.data_hash(data_dir)
    try:
        taxonomy = data_mod.load_taxonomy(data_dir)
        examples = data_mod.load_examples(data_dir, taxonomy)
    except data_mod.DataError as exc:
        raise ClassifierError(f"cannot train, fix the data first:\n{exc}") from None
    # An agent's correction outranks a written example with the same text.
    feedback = [fb for fb in (feedback or []) if fb.category in taxonomy.labels]
    corrected = {(fb.language, data_mod.clean_text(fb.text)) for fb in feedback}
    kept = [ex for ex in examples if (ex.language, data_mod.clean_text(ex.text)) not in corrected]
    thresholds = config.classifier.thresholds
    started = time.perf_counter()
    classifier = train(kept + feedback, taxonomy, data_hash=digest,
                       feedback_count=len(feedback), confident=thresholds.confident, reprompt=thresholds.reprompt)
    save(classifier, config.path(config.classifier.model_path))
    log.info("intent model trained", extra={"examples": len(kept) + len(feedback), "feedback": len(feedback),
                                           "languages": classifier.languages,
                                           "seconds": round(time.perf_counter() - started, 2)})
    return classifier


def classifier_from_artifact(artifact: dict, thresholds) -> Classifier:
    """The classifier a file read by :func:`read_artifact` holds, with the config's thresholds."""
    return Classifier(artifact["taxonomy"], artifact["models"], thresholds.confident, thresholds.reprompt,
                      artifact["data_hash"], artifact["trained_at"], artifact["feedback_count"], artifact["versions"])


def load_classifier(config) -> Classifier:
    """The classifier for this process: the saved model if current, else a fresh one (saved)."""
    artifact, reason = _saved_artifact(config)
    if artifact is not None:
        return classifier_from_artifact(artifact, config.classifier.thresholds)
    log.warning("retraining the intent model",
                extra={"reason": reason, "model_path": str(config.path(config.classifier.model_path))})
    return train_from_config(config)
