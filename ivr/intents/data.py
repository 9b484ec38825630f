"""Training data for the intent classifier: the taxonomy and the per-language utterance files.

``intents/categories.yaml`` names the categories (description, spoken name per language);
``intents/<lang>.tsv`` holds ``category<TAB>text`` lines, one utterance each, written the
way the recognizer transcribes callers. Both are validated once, at load, and a mistake
is refused with ``file:line: reason`` so ops can fix it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ivr import yamlfile

OUT_OF_SCOPE = "out_of_scope"
TAXONOMY_FILE = "categories.yaml"
LANGUAGES = ("en", "zh", "ko")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Spaces between Chinese characters are the recognizer's segmentation, not the caller's words.
_HAN_GAP = re.compile(f"(?<=[{_HAN}]) +(?=[{_HAN}])")
# Said in a re-prompt when the likeliest "topic" is that nothing fits.
_OUT_OF_SCOPE_SPOKEN = {"en": "something else", "zh": "其他", "ko": "다른"}


class DataError(ValueError):
    """Training data that cannot be used; ``str()`` is one ``file:line: reason`` per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class _Category(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = Field(min_length=1)
    spoken: dict[str, str] = Field(min_length=1)

    @field_validator("spoken")
    @classmethod
    def _spoken(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [lang for lang in LANGUAGES if not str(value.get(lang, "")).strip()]
        if missing:
            raise ValueError(f"a spoken name for every language ({', '.join(LANGUAGES)}); missing {missing}")
        return value


class _TaxonomyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    categories: dict[str, _Category] = Field(min_length=2)

    @field_validator("categories")
    @classmethod
    def _names(cls, value: dict[str, _Category]) -> dict[str, _Category]:
        for name in value:
            if name == OUT_OF_SCOPE:
                raise ValueError(f"{OUT_OF_SCOPE} is the classifier's own answer, not a category to list")
            if not name.replace("_", "").isalnum() or name != name.lower():
                raise ValueError(f"category names in lower_snake_case, found {name!r}")
        return value


@dataclass(frozen=True)
class Category:
    name: str
    description: str
    spoken: dict[str, str]


@dataclass(frozen=True)
class Taxonomy:
    categories: tuple[Category, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    @property
    def labels(self) -> set[str]:
        """Every label a data or evaluation file may use."""
        return set(self.names) | {OUT_OF_SCOPE}

    def spoken_name(self, category: str, language: str) -> str:
        lang = base_language(language)
        if category == OUT_OF_SCOPE:
            return _OUT_OF_SCOPE_SPOKEN.get(lang, _OUT_OF_SCOPE_SPOKEN["en"])
        for c in self.categories:
            if c.name == category:
                return c.spoken.get(lang) or c.spoken.get("en") or next(iter(c.spoken.values()))
        raise KeyError(f"unknown category {category!r}; known: {', '.join(self.names)}")


@dataclass(frozen=True)
class Example:
    language: str
    category: str
    text: str
    source: str = ""  # "file:line" (or "feedback:<id>") so a bad example can be found


def base_language(language: str) -> str:
    """``en-US`` / ``ko_KR`` / ``EN`` -> ``en``."""
    return language.strip().lower().replace("_", "-").split("-")[0]


def clean_text(text: str) -> str:
    """The form utterances are compared in (duplicates): NFKC, lower case, single spaces, and
    no spaces between Chinese characters ("人工 服务" and "人工服务" are the same utterance)."""
    return _HAN_GAP.sub("", " ".join(unicodedata.normalize("NFKC", text).lower().split()))


def load_taxonomy(data_dir: str | Path) -> Taxonomy:
    path = Path(data_dir) / TAXONOMY_FILE
    try:
        parsed = yamlfile.load_typed(_TaxonomyFile, path)
    except yamlfile.YamlFileError as exc:
        raise DataError([str(p) for p in exc.problems]) from None
    return Taxonomy(tuple(Category(name, c.description, dict(c.spoken)) for name, c in parsed.categories.items()))


def data_files(data_dir: str | Path) -> list[Path]:
    """The utterance files: ``<lang>.tsv`` in the data folder, sorted."""
    return sorted(Path(data_dir).glob("*.tsv"))


def parse_lines(lines: list[str], file: str, language: str, labels: set[str]) -> tuple[list[Example], list[str]]:
    """Parse ``category<TAB>text`` lines; returns the examples and the problems found."""
    examples: list[Example] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if line.startswith("#"):
            continue
        where = f"{file}:{number}"
        if not line.strip():
            problems.append(f"{where}: empty line (remove it, or start a comment with #)")
            continue
        if "\t" not in line:
            problems.append(f"{where}: expected category<TAB>text, found no tab in {line[:60]!r}")
            continue
        category, text = (part.strip() for part in line.split("\t", 1))
        if category not in labels:
            problems.append(f"{where}: unknown category {category!r}; use one of {', '.join(sorted(labels))} "
                            f"(or add it to {TAXONOMY_FILE})")
            continue
        key = clean_text(text)
        if not key:
            problems.append(f"{where}: empty text after the category")
            continue
        if key in seen:
            problems.append(f"{where}: duplicate of line {seen[key]} ({text[:60]!r}); remove one of them")
            continue
        seen[key] = number
        examples.append(Example(language, category, text, where))
    return examples, problems


def load_examples(data_dir: str | Path, taxonomy: Taxonomy | None = None) -> list[Example]:
    """Every training utterance in the data folder; raises :class:`DataError` listing all problems."""
    taxonomy = taxonomy or load_taxonomy(data_dir)
    files = data_files(data_dir)
    if not files:
        raise DataError([f"{data_dir}: no <language>.tsv utterance files (e.g. en.tsv with category<TAB>text lines)"])
    examples: list[Example] = []
    problems: list[str] = []
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read ({exc}); save it as UTF-8 text")
            continue
        found, bad = parse_lines(lines, str(path), path.stem, taxonomy.labels)
        examples.extend(found)
        problems.extend(bad)
        if not found and not bad:
            problems.append(f"{path}: no utterances")
    if problems:
        raise DataError(problems)
    return examples


def load_test_file(path: str | Path, labels: set[str]) -> list[Example]:
    """A held-out evaluation file: ``lang<TAB>category<TAB>text`` lines."""
    path = Path(path)
    examples: list[Example] = []
    problems: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError([f"{path}: cannot read ({exc})"]) from None
    for number, raw in enumerate(lines, start=1):
        if raw.startswith("#"):
            continue
        where = f"{path}:{number}"
        parts = raw.rstrip("\r\n").split("\t", 2)
        if len(parts) != 3 or not parts[2].strip():
            problems.append(f"{where}: expected lang<TAB>category<TAB>text")
            continue
        lang, category, text = (p.strip() for p in parts)
        if category not in labels:
            problems.append(f"{where}: unknown category {category!r}; use one of {', '.join(sorted(labels))}")
            continue
        examples.append(Example(base_language(lang), category, text, where))
    if problems:
        raise DataError(problems)
    if not examples:
        raise DataError([f"{path}: no test lines"])
    return examples


def data_hash(data_dir: str | Path) -> str:
    """A digest of the taxonomy and every utterance file: the model is stale when it changes."""
    digest = hashlib.sha256()
    folder = Path(data_dir)
    for path in [folder / TAXONOMY_FILE, *data_files(folder)]:
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()
