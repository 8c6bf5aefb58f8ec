"""What a pipeline file did wrong, in the user's words: `Issue` (file, line, field, message) and `ConfigError`.

Pydantic's validation errors are translated here into issues that say where, what was found and
what was expected.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from adclick_ops.config.yamlio import YamlDocument


@dataclass(frozen=True)
class Issue:
    path: str
    line: int | None
    field: str
    message: str
    found: str | None = None  # the offending value as the file spells it, when there is one
    expected: str | None = None  # what would be accepted there, in words

    def __post_init__(self) -> None:
        # Messages follow the form "...; expected X": X is what is expected unless said otherwise.
        if self.expected is None and "; expected " in self.message:
            object.__setattr__(self, "expected", self.message.rsplit("; expected ", 1)[1])

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        # one line per issue, whatever a file name, a key or a value holds
        return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ConfigError(Exception):
    """One or more problems in pipeline files."""

    def __init__(self, issues: list[Issue], declared: list[str] | None = None):
        self.issues = issues
        self.declared = declared or []  # DAG ids the broken file names, for the cross-file checks
        super().__init__("\n".join(str(i) for i in issues))


def field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _issue_from_pydantic(doc: YamlDocument, prefix: tuple[Any, ...], err: dict[str, Any], model: type) -> Issue:
    loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = err["type"]
    found = err.get("input")
    shown: str | None = describe(found)
    expected: str | None = None
    if kind == "extra_forbidden":
        parent = _model_at(model, err["loc"][:-1])
        allowed = ", ".join(parent.model_fields) if parent else "see docs/configuration.md"
        msg = f"unknown field {str(loc[-1])!r}; expected one of: {allowed}"
        shown = repr(str(loc[-1]))
    elif kind == "missing":
        parent = _model_at(model, err["loc"][:-1])
        desc = parent.model_fields[err["loc"][-1]].description if parent and err["loc"][-1] in parent.model_fields else None
        msg = "required field is missing" + (f" ({desc})" if desc else "")
        shown, expected = None, desc or "this field"
    elif kind == "value_error":
        msg = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
    else:
        msg = f"{err['msg'][0].lower()}{err['msg'][1:]}; found {describe(found)}"
        # pydantic says "Input should be greater than 0": what follows "should" is what is expected
        expected = err["msg"].split(" should ", 1)[-1].removeprefix("be ")
    return Issue(doc.path, doc.line_of(loc), field_path(loc), msg, shown, expected)


def value_at(data: Any, loc: tuple[Any, ...]) -> str | None:
    """The value at `loc` inside `data`, described, or None when there is none."""
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return describe(data)


def _model_at(model: type, loc: tuple[Any, ...]) -> type | None:
    """The pydantic model that sits at `loc` inside `model` (to list its fields in messages)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        if isinstance(current, type) and hasattr(current, "model_fields"):
            if part not in current.model_fields:
                # a dict key, such as a task id
                continue
            ann = current.model_fields[part].annotation
        else:
            return None
        candidates = [ann]
        found = None
        while candidates:
            a = candidates.pop()
            if isinstance(a, type) and hasattr(a, "model_fields"):
                found = a
                break
            candidates.extend(typing.get_args(a))
        current = found
    return current if isinstance(current, type) and hasattr(current, "model_fields") else None


def _form(branch: str) -> str:
    """The type a union branch stands for: 'int', or 'str' for 'function-after[_plain_text(), str]'."""
    if branch.startswith("function-") and "[" in branch:
        return branch.rstrip("]").rsplit(", ", 1)[-1].split("[")[0]
    return branch.split("[")[0]


def issues_from_validation(doc: YamlDocument, prefix: tuple[Any, ...], exc: ValidationError, model: type) -> list[Issue]:
    """One issue per place in the file: the branches of a union (str | int | ...) become one message."""
    issues: list[Issue] = []
    branches: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        if err["type"] not in ("missing", "extra_forbidden") and loc not in doc.lines:
            at = loc
            while at and at not in doc.lines:
                at = at[:-1]
            if at and len(at) < len(loc):
                branches.setdefault(at, []).append(err)
                continue
        issues.append(_issue_from_pydantic(doc, prefix, err, model))
    for at, errs in branches.items():
        # one branch of the union that says why (text with a control character, template syntax, ...) speaks for all
        reasons = [e for e in errs if e["type"] == "value_error"]
        if len(errs) == 1 or len(reasons) == 1:
            issues.append(_issue_from_pydantic(doc, prefix, {**(reasons or errs)[0], "loc": at[len(prefix) :]}, model))
            continue
        forms = sorted({_form(str(e["loc"][len(at) - len(prefix)])) for e in errs})
        found = describe(errs[0].get("input"))
        issues.append(Issue(doc.path, doc.line_of(at), field_path(at), f"found {found}; expected one of: {', '.join(forms)}", found))
    return issues
