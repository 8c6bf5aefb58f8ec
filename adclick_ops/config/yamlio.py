"""Safe YAML reading that remembers where each value came from.

The result is plain Python data plus a map from field path to line number, so that validation
errors can point at the line a user has to edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 65_536  # pipeline files are a few kilobytes; this keeps the worst case well under a second
MAX_DEPTH = 64

try:  # libyaml parses ~20x faster; the pure-Python parser is the fallback
    _BaseLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _BaseLoader = yaml.SafeLoader

Loc = tuple[Any, ...]


class YamlReadError(Exception):
    """A file that cannot be read as a YAML mapping; `line` is 1-based when known."""

    def __init__(self, path: str, message: str, line: int | None = None):
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


@dataclass
class YamlDocument:
    path: str
    data: dict[str, Any]
    lines: dict[Loc, int] = field(default_factory=dict)
    text: str = ""

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest known prefix of `loc` (a pydantic error location)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


class _Loader(_BaseLoader):
    """The safe loader; aliases and depth are checked on the events first (see _check_events)."""


def _check_events(text: str) -> None:
    """Refuse aliases (no 'billion laughs') and nesting deeper than MAX_DEPTH, before anything is built."""
    depth = 0
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.constructor.ConstructorError(
                None, None, "anchors and aliases (*name) are not supported in pipeline files", event.start_mark
            )
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise yaml.constructor.ConstructorError(None, None, f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _scalar(node: yaml.Node, loader: _Loader) -> Any:
    """A scalar's value; one that YAML cannot build (2024-02-30, 5,000 digits) stays text for validation to report."""
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError):
        return node.value


_PLAIN_TAGS = {"tag:yaml.org,2002:" + t for t in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp")}


def _to_python(node: yaml.Node, loader: _Loader, loc: Loc, lines: dict[Loc, int]) -> Any:
    lines[loc] = node.start_mark.line + 1
    if node.tag not in _PLAIN_TAGS:
        raise YamlReadError("", f"the tag {node.tag!r} is not allowed; pipeline files hold plain values only", node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, loader)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise YamlReadError("", f"mapping keys must be text, found {key!r}", key_node.start_mark.line + 1)
            if key in result:
                raise YamlReadError(
                    "",
                    f"duplicate key {key!r} (first at line {lines[loc + (key,)]})",
                    key_node.start_mark.line + 1,
                )
            lines[loc + (key,)] = key_node.start_mark.line + 1
            result[key] = _to_python(value_node, loader, loc + (key,), lines)
            # keep the key's own line: errors about a whole block read best at its key
            lines[loc + (key,)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, loader, loc + (i,), lines) for i, item in enumerate(node.value)]
    return _scalar(node, loader)


def read_yaml(path: str | Path) -> YamlDocument:
    """Read one pipeline file: a YAML mapping, UTF-8, no aliases, no duplicate keys."""
    shown = str(path)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise YamlReadError(shown, "file not found") from None
    except OSError as exc:
        raise YamlReadError(shown, f"cannot read file: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise YamlReadError(shown, f"file is {len(raw)} bytes; pipeline files are limited to {MAX_FILE_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlReadError(shown, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})", line) from None
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise YamlReadError(shown, "file is empty; expected a mapping of DAG ids to DAG settings")
    loader = _Loader(text)
    lines: dict[Loc, int] = {}
    try:
        _check_events(text)
        node = loader.get_single_node()
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null") and not node.value):
            raise YamlReadError(shown, "file is empty; expected a mapping of DAG ids to DAG settings")
        if not isinstance(node, yaml.MappingNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else f"a single value ({node.value!r})"
            raise YamlReadError(
                shown, f"found {kind} at the top level; expected a mapping of DAG ids to DAG settings", node.start_mark.line + 1
            )
        data = _to_python(node, loader, (), lines)
    except YamlReadError as exc:
        raise YamlReadError(shown, exc.message, exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        if exc.context:
            problem = f"{problem} ({exc.context})"
        raise YamlReadError(shown, f"invalid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise YamlReadError(shown, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise YamlReadError(shown, "YAML nesting is too deep") from None
    finally:
        loader.dispose()
    return YamlDocument(path=shown, data=data, lines=lines, text=text)
