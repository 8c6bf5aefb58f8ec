"""Pipeline text and Airflow's templates: the few placeholders a pipeline file may use, and nothing else.

Airflow renders every templated field of an operator with Jinja. Pipeline text must never become
template source, or `{{ conn.<id>.password }}` in a subject mails a secret and
`{{ macros.uuid.os.system(...) }}` runs a command. So the text is not handed to Jinja as it is:
`as_template` turns it into a template whose only expressions are the allowed placeholders, with
every other character written as a literal (`literal`), and validation refuses any other template
syntax with the field and line (`template_problem`). Both hold for any string: the template that
reaches Airflow renders exactly the text, the placeholders filled in.

This module imports nothing but the standard library.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# placeholder -> the Jinja expression Airflow renders for it. The date ones are empty for a run
# without a logical date (a manual run in Airflow 3), where Airflow leaves them out of the context.
PLACEHOLDERS: dict[str, str] = {
    "dag.dag_id": "{{ dag.dag_id }}",
    "run_id": "{{ run_id }}",
    "task.task_id": "{{ task.task_id }}",
    "ds": "{{ ds | default('') }}",
    "ds_nodash": "{{ ds_nodash | default('') }}",
    "ts": "{{ ts | default('') }}",
    "logical_date": "{{ logical_date | default('') }}",
}
PLACEHOLDER_DOCS: dict[str, str] = {
    "dag.dag_id": "the DAG's id",
    "run_id": "the run's id",
    "task.task_id": "the task's id",
    "ds": "the logical date as YYYY-MM-DD (empty for a run without one)",
    "ds_nodash": "the logical date as YYYYMMDD (empty for a run without one)",
    "ts": "the logical date and time, ISO 8601 (empty for a run without one)",
    "logical_date": "the logical date and time (empty for a run without one)",
}
_NAMES = "|".join(re.escape(name) for name in PLACEHOLDERS)
PLACEHOLDER_RE = re.compile(r"\{\{[ \t]*(" + _NAMES + r")[ \t]*\}\}")
# What Jinja (and any template engine with its syntax) starts to read: {{ }}, {% %}, {# #}.
DELIMITER_RE = re.compile(r"\{[{%#]")
SHOWN = ", ".join(f"{{{{ {name} }}}}" for name in PLACEHOLDERS)

# The same rules for JSON Schema (ECMA-262 regular expressions, no look-around): editors flag what
# validation refuses. Plain text: no '{' followed by '{', '%' or '#' (a search, used under "not").
NO_TEMPLATE_PATTERN = r"\{[{%#]"


def template_pattern(exclude: str = "") -> str:
    """Template text: the same as plain text, but for the placeholders; `exclude` is a character-class body also refused."""
    return r"^(?:[^{" + exclude + r"]|\{[^{%#" + exclude + r"]|\{\{[ \t]*(?:" + _NAMES + r")[ \t]*\}\})*\{?$"


TEMPLATE_PATTERN = template_pattern()


def _lookalike(text: str, placeholders: bool) -> str | None:
    """Template syntax spelled with compatibility characters (fullwidth braces, ...) that NFKC folds to ASCII."""
    if text.isascii():
        return None
    folded = unicodedata.normalize("NFKC", text)
    at = first_delimiter(folded, placeholders)
    return None if at is None else folded[at : at + 2]


def _excerpt(text: str, start: int) -> str:
    close = {"{": "}}", "%": "%}", "#": "#}"}[text[start + 1]]
    end = text.find(close, start + 2)
    if end != -1 and end - start <= 60:
        return repr(text[start : end + 2])
    return repr(text[start : start + 40] + ("..." if len(text) > start + 40 else ""))


def first_delimiter(text: str, placeholders: bool) -> int | None:
    """Where Jinja would start to read `text` as template syntax that is not an allowed placeholder.

    Read left to right: a '{' starts a placeholder, or is followed by a character that is not
    '{', '%' or '#', or ends the text; anything else is template syntax. TEMPLATE_PATTERN (and
    NO_TEMPLATE_PATTERN, searched for) say the same for JSON Schema.
    """
    i, n = 0, len(text)
    while True:
        i = text.find("{", i)
        if i == -1 or i + 1 == n:
            return None
        if placeholders:
            found = PLACEHOLDER_RE.match(text, i)
            if found:
                i = found.end()
                continue
        if text[i + 1] in "{%#":
            return i
        i += 2


def template_problem(text: str, placeholders: bool) -> str | None:
    """Why `text` may not be used (None when it may): template syntax other than the allowed placeholders."""
    at = first_delimiter(text, placeholders)
    if at is not None:
        what = _excerpt(text, at)
        if placeholders:
            return f"template syntax {what} is not allowed; the only placeholders are {SHOWN}"
        return f"template syntax {what} is not allowed here; pipeline text is never rendered as a template"
    look = _lookalike(text, placeholders)
    if look:
        return f"{look!r} (after Unicode normalisation) looks like template syntax; write the text without it"
    return None


def literal(text: str, template_ext: Iterable[str] = ()) -> str:
    """A Jinja template that renders exactly `text`, whatever it holds.

    Every '{' is written as an expression, so Jinja finds no delimiter in the text; carriage returns
    and a final newline, which Jinja's lexer would normalise or drop, likewise. A text that ends
    with one of the operator's template extensions (EmailOperator: .html) would be read by Airflow
    as the name of a template file; an empty expression at the end keeps it text.
    """
    out = text.replace("{", "{{ '{' }}").replace("\r", "{{ '\\r' }}")
    if out.endswith("\n"):
        out = out[:-1] + "{{ '\\n' }}"
    if out.endswith(tuple(template_ext)):
        out += "{{ '' }}"
    return out


def as_template(text: str, template_ext: Iterable[str] = ()) -> str:
    """The Jinja template of a text that may hold placeholders: the placeholders, and the rest as literals."""
    parts = PLACEHOLDER_RE.split(text)
    out = []
    for i, part in enumerate(parts):
        out.append(PLACEHOLDERS[part] if i % 2 else literal(part))
    source = "".join(out)
    if source.endswith(tuple(template_ext)):
        source += "{{ '' }}"
    return source


def literal_tree(value: object, template_ext: Iterable[str] = ()) -> object:
    """`literal` on every string inside lists and mappings (keys are not rendered by Airflow, values are)."""
    ext = tuple(template_ext)
    if isinstance(value, str):
        return literal(value, ext)
    if isinstance(value, dict):
        return {k: literal_tree(v, ext) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [literal_tree(v, ext) for v in value]
    return value
