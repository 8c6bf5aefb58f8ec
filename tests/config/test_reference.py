"""adclick_ops.config.reference: docs/configuration.md, generated from the models' descriptions and the vocabulary."""

from __future__ import annotations

from adclick_ops.cli import main
from adclick_ops.config import models
from adclick_ops.config.reference import SECTIONS, render_reference
from adclick_ops.config.templating import PLACEHOLDERS


def test_committed_reference_is_up_to_date(capsys):
    assert main(["reference", "--check"]) == 0, capsys.readouterr().err


def test_every_field_is_a_row_with_its_description():
    text = render_reference()
    for _, model in SECTIONS:
        for name, field in model.model_fields.items():
            assert f"| `{name}` |" in text, f"{model.__name__}.{name}"
            assert (field.description or "").replace("|", "\\|") in text


def test_the_allow_lists_and_placeholders_are_listed():
    text = render_reference()
    assert all(f"| `{operator}` |" in text for operator in models.OPERATORS)
    assert all(f"- `{name}`" in text for name in models.CALLABLES)
    assert all(f"`{{{{ {name} }}}}`" in text for name in PLACEHOLDERS)


def test_reference_check_fails_on_a_stale_page_and_writing_it_fixes_it(tmp_path, capsys):
    page = tmp_path / "configuration.md"
    page.write_text(render_reference().replace("| `tasks` |", "| `jobs` |"))
    assert main(["reference", "--check", "--output", str(page)]) == 1
    assert f"{page} is out of date; run `adclick-ops reference`" in capsys.readouterr().err
    assert main(["reference", "--output", str(page)]) == 0
    assert main(["reference", "--check", "--output", str(page)]) == 0
    assert page.read_text() == render_reference()
