"""docs/ci.md stays true: its snippets parse, its commands exist, its examples are what the commands print."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil

import pytest
import yaml

from adclick_ops.cli import build_parser, main

from tests.support import PROJECT

DOC = (PROJECT / "docs" / "ci.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", DOC, flags=re.DOTALL)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCKS if kind == lang]


def commands() -> list[str]:
    """Every `adclick-ops ...` invocation in the doc's code blocks, up to a shell operator or comment."""
    found = []
    for _, body in BLOCKS:
        for match in re.finditer(r"adclick-ops ((?:validate|plan|schema|graph|run|monitor|reference)\b[^\n|>#]*)", body):
            found.append(match.group(1).strip())
    return found


def test_every_yaml_snippet_parses():
    assert len(blocks("yaml")) >= 4
    for body in blocks("yaml"):
        assert yaml.safe_load(body), body


@pytest.mark.parametrize("command", [c for c in commands() if "[" not in c])
def test_every_command_in_the_doc_is_accepted(command):
    try:
        build_parser().parse_args(shlex.split(command))
    except SystemExit:
        pytest.fail(f"adclick-ops rejects the documented command: {command}")


@pytest.mark.parametrize("synopsis", [c for c in commands() if "[" in c])
def test_every_option_of_a_synopsis_exists(synopsis, capsys):
    name = synopsis.split()[0]
    with pytest.raises(SystemExit):
        build_parser().parse_args([name, "--help"])
    help_text = capsys.readouterr().out
    line = next(line for line in DOC.splitlines() if line.startswith(f"adclick-ops {name} ["))
    for option in re.findall(r"--[a-z-]+", line):
        assert option in help_text, (option, line)
    for choice in re.findall(r"--format ([a-z|]+)", line):
        assert "{" + choice.replace("|", ",") + "}" in help_text, (choice, help_text)


def test_the_documented_hook_exists():
    hooks = {h["id"]: h for h in yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())}
    for body in blocks("yaml"):
        for repo in (yaml.safe_load(body) or {}).get("repos", []) if "repos:" in body else []:
            for hook in repo["hooks"]:
                assert hook["id"] in hooks
    assert f"`{hooks['adclick-ops-validate']['files']}`" in DOC


def test_the_json_and_github_examples_are_real_output(tmp_path, monkeypatch):
    shutil.copytree(PROJECT / "pipelines", tmp_path / "pipelines")
    lab2 = tmp_path / "pipelines" / "airflow_lab2.yaml"
    lab2.write_text(lab2.read_text().replace("test_size: 0.3", "test_size: 1.5"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADCLICK_OPS_PIPELINES", raising=False)

    def run(*args: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            assert main(list(args)) == 1
        return out.getvalue()

    (documented,) = [json.loads(b) for b in blocks("json")]
    assert json.loads(run("validate", "--format", "json")) == documented
    (annotation,) = [line for line in DOC.splitlines() if line.startswith("::error file=")]
    assert run("validate", "--format", "github", "pipelines/").strip() == annotation
    text_example = next(b for b in blocks("") if b.startswith("pipelines/airflow_lab2.yaml:25"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        main(["validate"])
    assert err.getvalue() == text_example
