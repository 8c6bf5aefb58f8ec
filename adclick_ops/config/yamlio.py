"""Safe YAML reading that remembers where each value came from, and reads values as YAML 1.2 does.

The result is plain Python data plus a map from field path to line number, so that validation
errors can point at the line a user has to edit.

Editors and the JSON Schema read YAML 1.2; PyYAML reads YAML 1.1, where `yes` is true, `010` is 8
and `1:30` is 90. Each plain value is read both ways here: when the two readings differ, the value
is reported (quote it, or write it so that both agree); when they agree, that is the value. Dates
are the one exception: YAML 1.2 has no date type, so `2024-01-01` is text, and the fields that
take a date read ISO 8601 text.
"""

from __future__ import annotations

import math
import os
import re
import stat
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
DAGS = "a mapping of DAG ids to DAG settings"


class YamlReadError(Exception):
    """A file that cannot be read as a YAML mapping; `line` is 1-based when known."""

    def __init__(self, path: str, message: str, line: int | None = None):
        self.path = path
        self.text: str | None = None  # the file's text when it could be read, to recover its DAG ids
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
    # problems found while reading values (ambiguous scalars, duplicate keys, ...): (location, message)
    problems: list[tuple[Loc, str]] = field(default_factory=list)

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


# --- plain scalars, as YAML 1.2's core schema reads them ------------------------------------------

_TAG = "tag:yaml.org,2002:"
_NULL_12 = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_12 = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT_12 = re.compile(r"^[-+]?[0-9]+$")
_OCT_12 = re.compile(r"^0o[0-7]+$")
_HEX_12 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT_12 = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF_12 = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN_12 = re.compile(r"^\.(?:nan|NaN|NAN)$")
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9]")


def read_12(value: str) -> Any:
    """A plain scalar as YAML 1.2's core schema reads it (JSON's types; everything else is text)."""
    try:
        if _NULL_12.match(value):
            return None
        if value in _BOOL_12:
            return _BOOL_12[value]
        if _INT_12.match(value):
            return int(value)
        if _OCT_12.match(value):
            return int(value[2:], 8)
        if _HEX_12.match(value):
            return int(value[2:], 16)
        if _FLOAT_12.match(value):
            return float(value)
        if _INF_12.match(value):
            return -math.inf if value.startswith("-") else math.inf
        if _NAN_12.match(value):
            return math.nan
    except (ValueError, OverflowError):  # thousands of digits: text, for validation to report
        return value
    return value


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "text"
    return f"a {type(value).__name__}"


def _advice(value_11: Any) -> str:
    if isinstance(value_11, bool):
        return "quote it if it is text, or write true or false"
    if value_11 is None:
        return "quote it if it is text, or write null"
    return "quote it if it is text, or write the number in plain decimal (no leading zero, '_', ':', 0b or 0o)"


class _Ambiguous(ValueError):
    pass


def _scalar(node: yaml.ScalarNode, loader: _Loader) -> Any:
    """A scalar's value, read as YAML 1.2 reads it; _Ambiguous when YAML 1.1 reads it otherwise."""
    if node.style:  # quoted or a block: text (an explicit tag on it is not supported)
        if node.tag != _TAG + "str":
            raise YamlReadError("", f"the explicit tag {node.tag!r} is not supported; write the value plainly", node.start_mark.line + 1)
        return node.value
    if node.tag != loader.resolve(yaml.ScalarNode, node.value, (True, False)):  # an explicit tag
        if node.tag == _TAG + "str":
            return node.value
        raise YamlReadError(
            "", f"the explicit tag {node.tag!r} is not supported; write the value plainly (or quote it for text)", node.start_mark.line + 1
        )
    value_12 = read_12(node.value)
    if node.tag == _TAG + "timestamp":  # YAML 1.2 has no dates: text, read by the fields that take a date
        return node.value
    if node.tag == _TAG + "merge":
        raise YamlReadError("", "merge keys (<<) are not supported in pipeline files", node.start_mark.line + 1)
    try:
        value_11 = loader.construct_object(node, deep=True)
    except (ValueError, OverflowError, yaml.YAMLError):
        value_11 = node.value
    # a leading zero is octal in YAML 1.1 (010 is 8) and decimal in 1.2, even where the two happen to agree (01)
    numeric = isinstance(value_12, (int, float)) and not isinstance(value_12, bool)
    if numeric and _LEADING_ZERO.match(node.value):
        raise _Ambiguous(
            f"{node.value!r} has a leading zero: YAML 1.1 reads it as octal, YAML 1.2 (editors, the JSON Schema) as decimal; "
            "quote it if it is text, or write the number without the leading zero"
        )
    if not _same(value_11, value_12):
        raise _Ambiguous(
            f"{node.value!r} is {_kind(value_11)} in YAML 1.1 but {_kind(value_12)} in YAML 1.2 (editors, the JSON Schema); "
            + _advice(value_11)
        )
    return value_12


_PLAIN_TAGS = {_TAG + t for t in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp", "merge", "value")}


def _to_python(node: yaml.Node, loader: _Loader, loc: Loc, lines: dict[Loc, int], problems: list[tuple[Loc, str]]) -> Any:
    lines[loc] = node.start_mark.line + 1
    if node.tag not in _PLAIN_TAGS:
        raise YamlReadError("", f"the tag {node.tag!r} is not allowed; pipeline files hold plain values only", node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlReadError("", "mapping keys must be text, found a list or mapping", line)
            try:
                key = _scalar(key_node, loader)
            except _Ambiguous as exc:
                key = key_node.value
                problems.append((loc + (key,), f"key {exc}"))
            if not isinstance(key, str):
                lines.setdefault(loc + (str(key),), line)
                what = ", so it is not a valid DAG id" if not loc else ""
                problems.append((loc + (str(key),), f"the key {key_node.value!r} is {_kind(key)}, not text{what}; quote it"))
                continue
            if key in result:
                problems.append((loc + (key,), f"duplicate key {key!r} (first at line {lines[loc + (key,)]}); the second is ignored"))
                continue
            lines[loc + (key,)] = line
            result[key] = _to_python(value_node, loader, loc + (key,), lines, problems)
            # keep the key's own line: errors about a whole block read best at its key
            lines[loc + (key,)] = line
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, loader, loc + (i,), lines, problems) for i, item in enumerate(node.value)]
    try:
        return _scalar(node, loader)
    except _Ambiguous as exc:
        problems.append((loc, str(exc)))
        return node.value


def _describe_entry(p: Path) -> str | None:
    """Why `p` is not a file that can be read (None when it is one)."""
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            return f"a symbolic link to {os.readlink(p)!r}, which does not exist"
        return "file not found"
    except OSError as exc:
        from adclick_ops.config.paths import os_problem  # paths imports errors, which imports this module

        return f"cannot read file: {os_problem(exc)}"
    except ValueError as exc:  # an embedded NUL byte
        return f"cannot read file: {exc}"
    if stat.S_ISDIR(st.st_mode):
        return "a folder, not a pipeline file; pipeline files are *.yaml files directly in the pipelines folder"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a device, pipe or socket)"
    if st.st_size > MAX_FILE_BYTES:
        return f"file is {st.st_size} bytes; pipeline files are limited to {MAX_FILE_BYTES}"
    return None


def read_bounded(p: Path, shown: str) -> bytes:
    """The file's bytes, checked before they are read: a regular file within the size limit."""
    problem = _describe_entry(p)
    if problem:
        raise YamlReadError(shown, problem)
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)  # the file may have grown since stat()
    except OSError as exc:
        from adclick_ops.config.paths import os_problem

        raise YamlReadError(shown, f"cannot read file: {os_problem(exc)}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise YamlReadError(shown, f"file is more than {MAX_FILE_BYTES} bytes; pipeline files are limited to {MAX_FILE_BYTES}")
    return raw


def read_yaml(path: str | Path, expected: str = DAGS) -> YamlDocument:
    """Read one pipeline file: a YAML mapping, UTF-8, no aliases, no tags, values as YAML 1.2 reads them."""
    shown = str(path)
    raw = read_bounded(Path(path), shown)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        error = YamlReadError(shown, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})", line)
        error.text = raw.decode("utf-8", "replace")
        raise error from None
    try:
        return parse_yaml(text, shown, expected)
    except YamlReadError as exc:
        exc.text = text
        raise


def parse_yaml(text: str, shown: str = "<text>", expected: str = DAGS) -> YamlDocument:
    """`read_yaml` on text already in memory."""
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise YamlReadError(shown, f"file is empty; expected {expected}")
    loader = _Loader(text)
    lines: dict[Loc, int] = {}
    problems: list[tuple[Loc, str]] = []
    try:
        _check_events(text)
        node = loader.get_single_node()
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null") and not node.value):
            raise YamlReadError(shown, f"file is empty; expected {expected}")
        if not isinstance(node, yaml.MappingNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else f"a single value ({node.value!r})"
            raise YamlReadError(shown, f"found {kind} at the top level; expected {expected}", node.start_mark.line + 1)
        if not node.value:
            raise YamlReadError(shown, f"found an empty mapping ({{}}); expected {expected}", node.start_mark.line + 1)
        data = _to_python(node, loader, (), lines, problems)
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
    return YamlDocument(path=shown, data=data, lines=lines, text=text, problems=problems)


_TOP_KEY = re.compile(r"""^(?:"([A-Za-z0-9_.\-]+)"|'([A-Za-z0-9_.\-]+)'|([A-Za-z0-9_.\-]+))[ \t]*:(?:[ \t]|$)""")


def declared_ids(text: str) -> list[str]:
    """The top-level keys of a pipeline file that does not parse, as far as they can be read line by line.

    A top-level key starts in the first column; the lines of the values under it are indented, so
    they are not mistaken for one. Only keys spelled as DAG ids count. Used only to keep one broken file from making
    the DAG ids it declares look undeclared to the other files.
    """
    ids = []
    for line in text.splitlines():
        found = _TOP_KEY.match(line)
        if found:
            ids.append(next(g for g in found.groups() if g is not None))
    return ids
