"""Load ops-edited YAML into typed objects, with errors that name file, line and key.

Every YAML file ops staff touch (``config.yaml``, routing rules, the roster, intents
metadata) goes through :func:`load_typed`, so a mistake is reported the same way
everywhere: ``routing/rules.yaml:14: queues.payment.skills: expected a list, found 'x'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class YamlFileError(ValueError):
    """A YAML file that cannot be used; ``str()`` is one line per problem, ready to print."""

    def __init__(self, problems: list["Problem"]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @property
    def first(self) -> "Problem":
        return self.problems[0]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    key: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.reason}" if self.key else f"{where}: {self.reason}"


@dataclass
class YamlDocument:
    """Parsed data plus the node tree, so any key path can be traced to its line."""

    file: str
    data: Any
    root: yaml.Node | None

    def line_of(self, loc: Iterable[Any]) -> int | None:
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_node.value == str(part):
                        node = value_node
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
            else:
                return line
            line = node.start_mark.line + 1
        return line

    def problem(self, loc: Iterable[Any], reason: str) -> Problem:
        loc = tuple(loc)
        return Problem(self.file, self.line_of(loc), dotted(loc), reason)


def dotted(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_text(text: str, file: str) -> YamlDocument:
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise YamlFileError([Problem(file, line, "", f"not valid YAML: {reason}")]) from None
    duplicates = list(_duplicate_keys(root, (), file, set()))
    if duplicates:
        raise YamlFileError(duplicates)
    return YamlDocument(file, data, root)


def _duplicate_keys(node, path: tuple, file: str, seen: set[int]):
    """A key written twice in one mapping: YAML keeps the last silently, so a pasted block
    that repeats ``general:`` would replace the first one without a word. Each node is
    looked at once (``seen``), so aliases neither loop nor multiply the walk."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key != "<<":
                line = key_node.start_mark.line + 1
                if key in first:
                    yield Problem(file, line, dotted((*path, key)),
                                  f"duplicate key (first on line {first[key]}): YAML would keep only this one")
                else:
                    first[key] = line
            yield from _duplicate_keys(value_node, (*path, key if key is not None else "?"), file, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*path, i), file, seen)


def read(path: str | Path) -> YamlDocument:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlFileError([Problem(str(path), None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlFileError([Problem(str(path), None, "", f"cannot read: {exc}")]) from None
    return parse_text(text, str(path))


def describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "missing": "a value (this key is required)",
}


def explain(error: dict[str, Any]) -> str:
    """Turn one pydantic error into 'expected X, found Y'."""
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see README's configuration reference)"
    if kind == "missing":
        return "missing: this key is required"
    expected = _EXPECTED.get(kind)
    if expected is None:
        msg = error.get("msg", "invalid value")
        expected = msg[0].lower() + msg[1:] if msg else "a valid value"
        expected = expected.removeprefix("value error, ")
        expected = expected.removeprefix("input should be ")
    return f"expected {expected}, found {describe(error.get('input'))}"


def validate(model: type[M], doc: YamlDocument, data: Any = None, context: dict | None = None) -> M:
    """Validate ``data`` (default: the document's data) as ``model``; errors carry lines."""
    data = doc.data if data is None else data
    if data is None:
        data = {}
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        problems = [doc.problem(err["loc"], explain(err)) for err in exc.errors()]
        raise YamlFileError(problems) from None


def load_typed(model: type[M], path: str | Path, context: dict | None = None) -> M:
    doc = read(path)
    return validate(model, doc, context=context)
