"""CI can trust `plan`'s exit: generated broken repositories (missing or corrupt objects, shallow
clones, detached HEAD, a folder outside the work tree) give exit 2, an empty stdout and one line on
stderr; whatever still has what the plan needs gives a plan (0 or 1)."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tests.support import PROJECT
from tests.support.git_repos import commit_all, env, git, init, require_git

LAB2 = "airflow_lab2.yaml"


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed console script, as a CI step runs it."""
    script = Path(sys.executable).parent / "adclick-ops"
    return subprocess.run([str(script), *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=120)


def assert_no_plan(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout[-500:], result.stderr[-2000:])
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture
def history(tmp_path) -> Path:
    """Two commits of pipelines/ and a README, loose objects only; the working tree changes test_size."""
    require_git()
    repo = init(tmp_path / "repo")
    shutil.copytree(PROJECT / "pipelines", repo / "pipelines")
    (repo / "README.md").write_text("a repository with pipelines\n")
    commit_all(repo, "base")
    lab2 = repo / "pipelines" / LAB2
    lab2.write_text(lab2.read_text().replace("test_size: 0.3", "test_size: 0.2"))
    commit_all(repo, "second")
    lab2.write_text(lab2.read_text().replace("test_size: 0.2", "test_size: 0.25"))
    return repo


def object_file(repo: Path, sha: str) -> Path:
    return repo / ".git" / "objects" / sha[:2] / sha[2:]


def objects_of(repo: Path, rev: str) -> dict[str, tuple[str, bool]]:
    """Every object `rev` is made of: sha -> (what it is, whether plan needs it)."""
    found = {
        git(repo, "rev-parse", rev).strip(): ("the commit", True),
        git(repo, "rev-parse", f"{rev}^{{tree}}").strip(): ("the root tree", True),
    }
    for line in git(repo, "ls-tree", "-r", "-t", rev).splitlines():
        meta, name = line.split("\t")
        _, kind, sha = meta.split()
        needed = name == "pipelines" or name.startswith("pipelines/")
        found.setdefault(sha, (f"{kind} {name}", needed))
    return found


def test_the_cases_of_the_report(history):
    ok = cli(history, "plan")
    assert ok.returncode == 1 and "training.split.test_size: 0.2 → 0.25" in ok.stdout
    # a pipelines folder outside the work tree
    outside = history.parent / "elsewhere" / "pipelines"
    shutil.copytree(PROJECT / "pipelines", outside)
    assert_no_plan(cli(history, "plan", "--pipelines", str(outside)), "not inside a git repository")
    # the object of a pipeline file is missing: once an IndexError traceback with exit 1
    blob = git(history, "rev-parse", f"HEAD:pipelines/{LAB2}").strip()
    object_file(history, blob).unlink()
    assert_no_plan(cli(history, "plan"), blob, "cannot be read")


@pytest.mark.parametrize("seed", range(3))
def test_every_missing_object_is_exit_2_exactly_when_plan_needs_it(tmp_path, seed):
    """Remove one object of the base revision at a time, each kind of object in turn (random order)."""
    require_git()
    repo = init(tmp_path / "repo")
    shutil.copytree(PROJECT / "pipelines", repo / "pipelines")
    (repo / "docs").mkdir()
    (repo / "docs" / "notes.md").write_text(f"notes {seed}\n")
    commit_all(repo, "base")
    objects = list(objects_of(repo, "HEAD").items())
    random.Random(seed).shuffle(objects)
    saved = {sha: object_file(repo, sha).read_bytes() for sha, _ in objects}
    for sha, (what, needed) in objects:
        object_file(repo, sha).unlink()
        result = cli(repo, "plan", "--format", random.Random(sha).choice(["text", "json", "markdown"]))
        if needed:
            assert_no_plan(result)
        else:
            assert result.returncode == 0, (what, result.stderr)
            assert result.stdout
        object_file(repo, sha).write_bytes(saved[sha])


def test_a_corrupt_object_is_exit_2(history):
    blob = git(history, "rev-parse", f"HEAD:pipelines/{LAB2}").strip()
    path = object_file(history, blob)
    path.chmod(0o644)
    path.write_bytes(zlib.compress(b"blob 99999\0short"))
    assert_no_plan(cli(history, "plan"))


def test_a_shallow_clone_plans_against_what_it_has_and_says_what_to_fetch(history, tmp_path):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{history}", str(clone))
    lab2 = clone / "pipelines" / LAB2
    lab2.write_text(lab2.read_text().replace("test_size: 0.2", "test_size: 0.25"))
    result = cli(clone, "plan")
    assert result.returncode == 1 and "0.2 → 0.25" in result.stdout
    assert_no_plan(cli(clone, "plan", "--base", "HEAD~1"), "shallow", "fetch")


def test_a_detached_head_plans_as_any_revision(history):
    git(history, "stash", "-q")
    git(history, "checkout", "-q", "--detach", "HEAD~1")
    unchanged = cli(history, "plan")
    assert unchanged.returncode == 0 and "No changes." in unchanged.stdout
    against = cli(history, "plan", "--base", "main")
    assert against.returncode == 1 and "training.split.test_size: 0.2 → 0.3" in against.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "--base", "no-such-branch"],
        ["plan", "--base", "--output=x"],
        ["plan", "--pipelines", "missing-folder"],
        ["plan", "--pipelines", "README.md"],
    ],
)
def test_no_plan_is_one_line_and_exit_2(history, argv):
    assert_no_plan(cli(history, *argv))


def test_a_folder_that_is_not_a_repository_is_exit_2(tmp_path):
    shutil.copytree(PROJECT / "pipelines", tmp_path / "pipelines")
    assert_no_plan(cli(tmp_path, "plan"), "not inside a git repository")


@pytest.mark.parametrize(
    "error", [IndexError("list index out of range"), RuntimeError("two\nlines"), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")]
)
def test_an_unexpected_error_of_any_command_is_one_line_and_exit_2(history, monkeypatch, capsys, error):
    from adclick_ops import plan
    from adclick_ops.cli import main

    def broken(*args, **kwargs):
        raise error

    monkeypatch.chdir(history)
    monkeypatch.setattr(plan, "plan", broken)
    monkeypatch.delenv("ADCLICK_OPS_DEBUG", raising=False)
    assert main(["plan"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith(f"adclick-ops plan: failed: {type(error).__name__}: ")
    monkeypatch.setenv("ADCLICK_OPS_DEBUG", "1")
    with pytest.raises(type(error)):
        main(["plan"])
