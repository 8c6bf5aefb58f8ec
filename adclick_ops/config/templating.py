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
from collections.abc import Iterable, Mapping, Sequence

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
# Placeholders of the report e-mail's subject only (notify.email.subject): facts of the run that the
# report is about. Their expressions depend on the report (adclick_ops.notify builds them); here are
# their names and what they say.
SUBJECT_PLACEHOLDER_DOCS: dict[str, str] = {
    "status": "`succeeded` when the metrics task returned its metrics, `incomplete` when it did not",
    "metric": "the headline metric (`notify.email.headline_metric`) and its value, e.g. `accuracy 0.970`, or `accuracy n/a`",
    "version": "the version this run trained and what became of it: `v7 champion`, `v8 not promoted` or `no version`",
}
SUBJECT_NAMES: tuple[str, ...] = (*PLACEHOLDERS, *SUBJECT_PLACEHOLDER_DOCS)


def placeholder_re(names: Iterable[str]) -> re.Pattern[str]:
    """`{{ name }}` for one of `names`, with blanks or tabs inside the braces."""
    return re.compile(r"\{\{[ \t]*(" + "|".join(re.escape(name) for name in names) + r")[ \t]*\}\}")


PLACEHOLDER_RE = placeholder_re(PLACEHOLDERS)
SUBJECT_PLACEHOLDER_RE = placeholder_re(SUBJECT_NAMES)
# What Jinja (and any template engine with its syntax) starts to read: {{ }}, {% %}, {# #}.
DELIMITER_RE = re.compile(r"\{[{%#]")


def shown(names: Iterable[str]) -> str:
    return ", ".join(f"{{{{ {name} }}}}" for name in names)


SHOWN = shown(PLACEHOLDERS)
SUBJECT_SHOWN = shown(SUBJECT_NAMES)

# The same rules for JSON Schema (ECMA-262 regular expressions, no look-around): editors flag what
# validation refuses. Plain text: no '{' followed by '{', '%' or '#' (a search, used under "not").
NO_TEMPLATE_PATTERN = r"\{[{%#]"

# Template syntax spelled with compatibility characters: every character of Unicode that NFKC folds to a brace,
# and every one that folds to what opens template syntax after a '{' ('%', '#'). Validation refuses the first
# anywhere and the second after a '{' (a superset of what folding the text would turn into a delimiter), and the
# JSON Schema searches for the same pattern; tests/config/test_templating.py checks the lists against unicodedata.
LOOKALIKE_BRACES = "\ufe37\ufe38\ufe5b\ufe5c\uff5b\uff5d"
LOOKALIKE_OPENERS = "\ufe5f\ufe6a\uff03\uff05"
LOOKALIKE_PATTERN = (
    "[" + "".join(f"\\u{ord(c):04x}" for c in LOOKALIKE_BRACES) + "]|\\{[" + "".join(f"\\u{ord(c):04x}" for c in LOOKALIKE_OPENERS) + "]"
)
LOOKALIKE_RE = re.compile(LOOKALIKE_PATTERN)


def template_refusals(exclude: str = "", names: Iterable[str] = tuple(PLACEHOLDERS)) -> list[str]:
    """Template text as JSON Schema says it: none of these patterns is found in it.

    The same rule as `first_delimiter`: `{%` and `{#` never, `{{` only where a placeholder of `names`
    starts; `exclude` is a character-class body also refused. Patterns to search for, each without a
    quantifier inside another: other engines (check-jsonschema's ECMA-262 regress, the JavaScript of
    yaml-language-server) backtrack, and a whole-text pattern such as ^(?:...[ \t]*...)*$ made them
    run for minutes on long values.
    """
    alternatives = "|".join(re.escape(name) for name in names)
    refusals = [r"\{[%#]", r"\{\{(?![ \t]*(?:" + alternatives + r")[ \t]*\}\})"]
    return [*refusals, f"[{exclude}]"] if exclude else refusals


def template_schema(exclude: str = "", names: Iterable[str] = tuple(PLACEHOLDERS)) -> dict[str, object]:
    """Template text for JSON Schema: none of `template_refusals`, and no look-alike of template syntax."""
    return {"not": {"anyOf": [{"pattern": p} for p in [*template_refusals(exclude, names), LOOKALIKE_PATTERN]]}}


TEMPLATE_REFUSALS = template_refusals()


def _lookalike(text: str) -> str | None:
    """Template syntax spelled with compatibility characters (fullwidth braces, ...) that NFKC folds to ASCII."""
    if text.isascii():
        return None
    found = LOOKALIKE_RE.search(text)
    return None if found is None else found.group()


def _excerpt(text: str, start: int) -> str:
    close = {"{": "}}", "%": "%}", "#": "#}"}[text[start + 1]]
    end = text.find(close, start + 2)
    if end != -1 and end - start <= 60:
        return repr(text[start : end + 2])
    return repr(text[start : start + 40] + ("..." if len(text) > start + 40 else ""))


def first_delimiter(text: str, placeholders: bool, pattern: re.Pattern[str] = PLACEHOLDER_RE) -> int | None:
    """Where Jinja would start to read `text` as template syntax that is not an allowed placeholder (`pattern`).

    Read left to right: a '{' starts a placeholder, or is followed by a character that is not
    '{', '%' or '#', or ends the text; anything else is template syntax. TEMPLATE_REFUSALS (and
    NO_TEMPLATE_PATTERN), searched for, say the same for JSON Schema.
    """
    i, n = 0, len(text)
    while True:
        i = text.find("{", i)
        if i == -1 or i + 1 == n:
            return None
        if placeholders:
            found = pattern.match(text, i)
            if found:
                i = found.end()
                continue
        if text[i + 1] in "{%#":
            return i
        i += 2


def template_problem(text: str, placeholders: bool, names: Sequence[str] = tuple(PLACEHOLDERS)) -> str | None:
    """Why `text` may not be used (None when it may): template syntax other than the placeholders `names`."""
    pattern = PLACEHOLDER_RE if tuple(names) == tuple(PLACEHOLDERS) else placeholder_re(names)
    at = first_delimiter(text, placeholders, pattern)
    if at is not None:
        what = _excerpt(text, at)
        if placeholders:
            return f"template syntax {what} is not allowed; the only placeholders are {shown(names)}"
        return f"template syntax {what} is not allowed here; pipeline text is never rendered as a template"
    look = _lookalike(text)
    if look:
        folded = unicodedata.normalize("NFKC", look)
        code = " ".join(f"U+{ord(c):04X}" for c in look if not c.isascii())
        return (
            f"found {look!r} ({code}), which Unicode normalisation turns into {folded!r}, a look-alike of template syntax; "
            "expected text without look-alikes of '{' and '}' (nor of '%' or '#' after a '{'): write them as they are, or leave them out"
        )
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


def as_template(text: str, template_ext: Iterable[str] = (), expressions: Mapping[str, str] = PLACEHOLDERS) -> str:
    """The Jinja template of a text that may hold placeholders: the placeholders, and the rest as literals.

    `expressions` maps each allowed placeholder to the Jinja source Airflow renders for it (written
    by this package, never by a pipeline file); any other text is a literal.
    """
    pattern = PLACEHOLDER_RE if expressions is PLACEHOLDERS else placeholder_re(expressions)
    parts = pattern.split(text)
    out = []
    for i, part in enumerate(parts):
        out.append(expressions[part] if i % 2 else literal(part))
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
