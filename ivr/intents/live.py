"""The classifier a running server answers with, kept current without a restart.

``ivr serve``'s workers never train on their start-up path (a worker that trains does not
accept connections, so Twilio's webhooks would hang for the 15-30 s a training takes):

- a worker starts on the saved model, even a stale one (trained before the data changed),
  and starts one retrain in the background; a worker with no usable model at all starts
  without one (``/readyz`` says why, callers go to the general queue) until it is trained;
- every ``classifier.reload_interval_s`` a watcher thread looks at the model file and the
  data folder: a new model file (``ivr intents train``, ``--with-feedback`` after agents'
  corrections, or the background retrain) is loaded beside the one in use and swapped in;
  an edit of ``intents/`` whose digest the model in use was not trained on starts a retrain;
- a retrain is ``ivr intents train`` in a child process (its own memory, nothing forked
  from a threaded worker, and a lower CPU priority than the workers decoding live calls),
  with ``--with-feedback`` when the model in use had folded corrections in, so a data edit
  does not undo them. A lock file next to the model lets one
  process on the machine train while the others wait for its file. A retrain that fails
  (broken data) keeps the model in use, logs the trainer's error and shows it on the ops
  page under ``classifier_training``; the next edit of the data tries again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from ivr.filestamp import stamp as file_stamp
from ivr.intents import classifier as clf
from ivr.intents import data as data_mod

log = logging.getLogger(__name__)

DATA_ERROR_EXIT = 2  # `ivr intents train`'s exit code for data it cannot train on (ClassifierError)
RETRY_AFTER_S = 60.0  # a retrain that did not finish (killed, out of time) is tried again after this

# Keys of ``Services.problems``: the first makes /readyz answer 503, the second does not.
NO_MODEL = "classifier"
TRAINING = "classifier_training"
# The retrain child yields the cores to the workers answering calls.
RETRAIN_NICENESS = 10


def data_stamp(data_dir: Path) -> tuple:
    """Changes whenever a file the data digest covers changes (cheap: stat calls only)."""
    paths = [data_dir / data_mod.TAXONOMY_FILE, *data_mod.data_files(data_dir)]
    return tuple((p.name, file_stamp(p)) for p in paths)


class LiveClassifier:
    """Publishes the classifier in use through ``publish(classifier_or_None)`` and its
    trouble through ``problems`` (a dict shared with the ops page and /readyz)."""

    def __init__(self, config, config_path: str | Path, publish: Callable[[object], None], problems: dict):
        self.config = config
        self.config_path = str(config_path)
        self.publish, self.problems = publish, problems
        self.model_path = Path(config.path(config.classifier.model_path))
        self.data_dir = Path(config.path(config.classifier.data_dir))
        self.interval_s = config.classifier.reload_interval_s
        self.current: clf.Classifier | None = None
        self._model_stamp: tuple | None = None
        self._data_stamp: tuple | None = None
        self._failed_digest: str | None = None   # the data a retrain just failed on
        self._retry_at: float | None = None       # a retrain that did not finish is tried again then
        self._training: threading.Thread | None = None
        self._lock = threading.Lock()            # one check at a time (watcher, end of a retrain)
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # --- start and stop ------------------------------------------------------------
    def start(self, watch: bool = True) -> "LiveClassifier":
        """Load what there is (quickly), retrain in the background if it is stale, and watch
        (``watch=False``: :meth:`check` only when called)."""
        self._load_model()
        self.check()
        if not watch:
            return self
        self._watcher = threading.Thread(target=self._watch, name="intent-model-watch", daemon=True)
        self._watcher.start()
        return self

    def wait(self, timeout_s: float | None = None) -> None:
        """Until the retrain under way (if any) has ended and its model is in use."""
        if self._training is not None:
            self._training.join(timeout_s)

    def close(self) -> None:
        self._stop.set()
        for thread in (self._watcher, self._training):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=self.interval_s + 1)

    # --- the watcher -------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # never let the watcher die: the next look may succeed
                log.exception("intent model watch failed")

    def check(self) -> None:
        """One look at the model file and the data folder (the watcher calls this)."""
        with self._lock:
            model_changed = file_stamp(self.model_path) != self._model_stamp
            if model_changed:
                self._load_model()
            stamp = data_stamp(self.data_dir)
            retry = self._retry_at is not None and time.monotonic() >= self._retry_at
            if not model_changed and stamp == self._data_stamp and not retry:
                return
            self._data_stamp = stamp
            digest = data_mod.data_hash(self.data_dir)
            if self.current is not None and digest == self.current.data_hash:
                self._clear_failure()  # the data is back to what the model in use learned
            elif digest != self._failed_digest or retry:
                self._retry_at = None
                self._retrain("the last retrain did not finish" if retry else
                              f"the data in {self.data_dir.name}/ changed" if self.current else "no usable model")

    def _load_model(self) -> None:
        """Adopt the model file if it is usable (else keep the one in use, if any)."""
        self._model_stamp = file_stamp(self.model_path)
        try:
            artifact = clf.read_artifact(self.model_path)
        except FileNotFoundError:
            return self._no_model("no saved model")
        except ValueError as exc:
            return self._no_model(str(exc))
        classifier = clf.classifier_from_artifact(artifact, self.config.classifier.thresholds)
        previous, self.current = self.current, classifier
        self.publish(classifier)
        self.problems.pop(NO_MODEL, None)
        log.info("intent model loaded" if previous is None else "intent model reloaded",
                 extra={"model_path": str(self.model_path), "trained_at": classifier.trained_at,
                        "feedback": classifier.feedback_count, "languages": classifier.languages})

    def _no_model(self, reason: str) -> None:
        if self.current is not None:  # a bad file appeared: keep answering with the good one
            log.error("intent model file unusable, keeping the model in use",
                      extra={"model_path": str(self.model_path), "reason": reason})
            return
        self.problems[NO_MODEL] = f"{reason}; retraining in the background (callers go to the general queue)"
        log.warning("no usable intent model yet", extra={"model_path": str(self.model_path), "reason": reason})

    # --- retraining ------------------------------------------------------------------
    def _retrain(self, reason: str) -> None:
        if self._training is not None and self._training.is_alive():
            self._data_stamp = None  # look again once the retrain under way has ended
            return
        feedback = bool(self.current and self.current.feedback_count)
        self._training = threading.Thread(target=self._train, args=(reason, feedback),
                                          name="intent-model-retrain", daemon=True)
        self._training.start()

    def _train(self, reason: str, with_feedback: bool) -> None:
        def waiting():
            log.info("another process is retraining the intent model; waiting for it",
                     extra={"model_path": str(self.model_path)})

        with clf.training_lock(self.model_path, on_wait=waiting):
            # Another process may have retrained (or failed to) on this data meanwhile.
            with self._lock:  # not while this process's watcher is half-way through loading a file
                digest, saved = data_mod.data_hash(self.data_dir), self._saved_digest()
            if saved == digest:
                self._settle(reason, digest, None)
            else:
                failed = self._recorded_failure(digest)
                if failed:
                    self._settle(reason, digest, failed)
                else:
                    self._settle(reason, digest, *self._run_trainer(reason, with_feedback))
        self.check()  # adopt the new file now, not at the next look

    def _saved_digest(self) -> str | None:
        if self.current is not None and file_stamp(self.model_path) == self._model_stamp:
            return self.current.data_hash  # the file is the one in use
        try:
            # With no model in use the file may be one this worker failed to load: only a
            # whole read says it is usable (the header and checksum say it is intact).
            return clf.read_artifact(self.model_path, header_only=self.current is not None)["data_hash"]
        except (OSError, ValueError):
            return None

    @property
    def _failure_path(self) -> Path:
        return self.model_path.with_name(self.model_path.name + ".failed.json")

    def _recorded_failure(self, digest: str) -> str | None:
        """What the last retrain on exactly this data said, if it failed (any process)."""
        try:
            record = json.loads(self._failure_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record.get("failure") if isinstance(record, dict) and record.get("digest") == digest else None

    def _run_trainer(self, reason: str, with_feedback: bool) -> tuple[str | None, bool]:
        """Run ``ivr intents train``: (None when it saved a model, else what went wrong; whether
        that was the data, which the trainer says by its exit code, rather than the run: killed
        by a signal (the OOM killer, a deploy), out of time, or not started)."""
        cmd = [sys.executable, "-m", "ivr", "--config", self.config_path, "intents", "train"]
        if shutil.which("nice"):  # live calls' speech decoding comes first on a shared machine
            cmd = ["nice", "-n", str(RETRAIN_NICENESS), *cmd]
        if with_feedback:
            cmd.append("--with-feedback")
        log.warning("retraining the intent model in the background",
                    extra={"reason": reason, "model_path": str(self.model_path), "with_feedback": with_feedback})
        started = time.monotonic()
        data_error = False
        try:
            env = dict(os.environ, **{clf.LOCK_HELD_ENV: str(self.model_path) + ".lock"})  # held here, for it
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
            failure = None if done.returncode == 0 else \
                f"exit {done.returncode}: " + " | ".join((done.stderr or done.stdout).strip().splitlines()[-6:])
            data_error = done.returncode == DATA_ERROR_EXIT
        except (OSError, subprocess.TimeoutExpired) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        seconds = round(time.monotonic() - started, 1)
        if failure is None:
            log.info("intent model retrained", extra={"seconds": seconds, "model_path": str(self.model_path)})
        else:
            log.error("intent model retraining failed", extra={"reason": failure, "seconds": seconds,
                                                                "data_error": data_error})
        return failure, data_error

    def _settle(self, reason: str, digest: str, failure: str | None, data_error: bool = True) -> None:
        """Record a retrain's outcome for this process and, in the failure file, for the others.
        A run that did not finish (not the data's fault) is tried again in ``RETRY_AFTER_S``
        and recorded nowhere else: the next worker or restart trains afresh."""
        if failure is None:
            return self._clear_failure()
        if not data_error:
            self._retry_at = time.monotonic() + RETRY_AFTER_S
            self.problems[TRAINING] = (f"retraining did not finish ({reason}): {failure}; "
                                       + ("serving the previous model" if self.current else "no model")
                                       + f"; trying again in {RETRY_AFTER_S:.0f} s")
            return
        self._failed_digest = digest
        self.problems[TRAINING] = (f"retraining failed ({reason}): {failure}; "
                                   + ("serving the previous model" if self.current else "no model")
                                   + f"; fix {self.data_dir.name}/ and the next edit retrains")
        try:
            self._failure_path.write_text(json.dumps({"digest": digest, "failure": failure}), encoding="utf-8")
        except OSError as exc:
            log.warning("cannot record the failed retrain", extra={"reason": str(exc)})

    def _clear_failure(self) -> None:
        self._failed_digest = None
        self._retry_at = None
        self.problems.pop(TRAINING, None)
        self._failure_path.unlink(missing_ok=True)
