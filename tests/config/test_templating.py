"""adclick_ops.config.templating: pipeline text reaches Jinja as literals, with only the allowed placeholders."""

from __future__ import annotations

import re
import sys
import unicodedata

import jinja2
import pytest
import regress

from adclick_ops.config.templating import (
    LOOKALIKE_BRACES,
    LOOKALIKE_OPENERS,
    LOOKALIKE_PATTERN,
    PLACEHOLDERS,
    TEMPLATE_REFUSALS,
    as_template,
    literal,
    literal_tree,
    template_problem,
)

TEXTS = [
    "plain",
    "{{ conn.smtp.password }}",
    "{% for x in y %}{{ x }}{% endfor %}",
    "a {# b #} c",
    "{",
    "x{\r\ny\n",
    "report.html",
    "{{{",
    "}}",
]


def render(source: str, **context) -> str:
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(source).render(**context)


@pytest.mark.parametrize("text", TEXTS)
def test_a_literal_renders_exactly_its_text(text):
    assert render(literal(text)) == text


def test_a_text_ending_in_a_template_extension_is_not_read_as_a_file_name():
    assert not literal("report.html", [".html"]).endswith(".html")
    assert render(literal("report.html", [".html"])) == "report.html"


def test_placeholders_become_their_expressions_and_the_rest_stays_text():
    source = as_template("{{ dag.dag_id }} on {{ds}}: {{ conn.x }}")
    assert render(source, dag=type("D", (), {"dag_id": "Lab"}), ds="2024-01-01") == "Lab on 2024-01-01: {{ conn.x }}"
    # a run without a logical date leaves the date placeholders empty rather than failing
    assert render(as_template("[{{ ds }}]")) == "[]"


def test_only_the_expressions_given_are_placeholders():
    source = as_template("{{ status }} / {{ run_id }}", expressions={"status": "{{ s }}"})
    assert render(source, s="ok") == "ok / {{ run_id }}"


def test_literal_tree_renders_values_not_keys():
    tree = literal_tree({"{{ k }}": ["{{ v }}", 3], "n": None})
    assert list(tree) == ["{{ k }}", "n"] and tree["n"] is None
    assert render(tree["{{ k }}"][0]) == "{{ v }}" and tree["{{ k }}"][1] == 3


@pytest.mark.parametrize(
    "text,placeholders,words",
    [
        (
            "{{ conn.smtp.password }}",
            True,
            "template syntax '{{ conn.smtp.password }}' is not allowed; the only placeholders are {{ dag.dag_id }}",
        ),
        ("{% if x %}", False, "template syntax '{% if x %}' is not allowed here; pipeline text is never rendered as a template"),
        ("{{ run_id }}", False, "template syntax '{{ run_id }}' is not allowed here"),
        (
            "\uff5b\uff5b x \uff5d\uff5d",
            True,
            "found '\uff5b' (U+FF5B), which Unicode normalisation turns into '{', a look-alike of template syntax",
        ),
        ("100{\uff05", False, "found '{\uff05' (U+FF05), which Unicode normalisation turns into '{%'"),
    ],
)
def test_other_template_syntax_is_refused_saying_what_and_why(text, placeholders, words):
    assert words in template_problem(text, placeholders)


@pytest.mark.parametrize("text", ["a { b } c", "{{ run_id }}-{{ ds_nodash }}", "{{\trun_id }}", "ends with {"])
def test_text_with_braces_or_placeholders_is_accepted(text):
    assert template_problem(text, placeholders=True) is None


@pytest.mark.parametrize("text", [*TEXTS, *(f"x {{{{ {name} }}}} y" for name in PLACEHOLDERS)])
def test_the_schema_refusals_agree_with_validation(text):
    refused_by_schema = any(re.search(pattern, text) for pattern in TEMPLATE_REFUSALS)
    assert refused_by_schema == (template_problem(text, placeholders=True) is not None and text.isascii())


def _folds(start: str) -> str:
    """Every non-ASCII character whose NFKC form holds one of `start` (or, with '^', begins with one)."""
    first = start.startswith("^")
    wanted = start.lstrip("^")
    out = []
    for code in range(0x80, sys.maxunicode + 1):
        folded = unicodedata.normalize("NFKC", chr(code))
        if (folded[:1] in wanted) if first else any(c in folded for c in wanted):
            out.append(chr(code))
    return "".join(out)


def test_the_look_alikes_are_every_character_of_unicode_that_folds_to_template_syntax():
    """The lists the validator and the JSON Schema share, against the Unicode database of this Python."""
    braces = _folds("{}")
    assert LOOKALIKE_BRACES == braces
    assert LOOKALIKE_OPENERS == "".join(c for c in _folds("^{%#") if c not in braces)


@pytest.mark.parametrize("char", [*LOOKALIKE_BRACES, *LOOKALIKE_OPENERS])
@pytest.mark.parametrize("placeholders", [True, False])
def test_a_look_alike_is_refused_by_validation_and_by_the_schema_s_pattern(char, placeholders):
    for text in (f"a {char} b", f"{{{char} x", f"{char}{char} ds {char}{char}"):
        refused = template_problem(text, placeholders) is not None
        in_schema = regress.Regex(LOOKALIKE_PATTERN, flags="u").find(text) is not None or any(re.search(p, text) for p in TEMPLATE_REFUSALS)
        if char in LOOKALIKE_BRACES or text.startswith("{"):
            assert refused and in_schema, text
        else:  # '％' or '＃' alone is text ("50％")
            assert not refused and not in_schema, text
