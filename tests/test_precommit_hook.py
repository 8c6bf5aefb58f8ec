"""The `adclick-ops-validate` pre-commit hook, installed by the real `pre-commit` from a snapshot of
this repository into a throw-away git repository that holds a copy of pipelines/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import PROJECT, mandatory_in_ci
from tests.support.git_repos import commit_all, env, git, init, require_git

PRE_COMMIT = Path(sys.executable).parent / "pre-commit"
HOOK_ID = "adclick-ops-validate"


@pytest.fixture(scope="module")
def hook(tmp_path_factory) -> tuple[Path, str, Path]:
    """(hook repository, its commit, PRE_COMMIT_HOME): this repository's files as they are now, committed.

    pre-commit installs a hook from a commit, and the working tree may hold changes not committed
    yet, so the files git knows of (tracked or not ignored) are copied and committed afresh.
    """
    require_git()
    if not PRE_COMMIT.exists():
        mandatory_in_ci("pre-commit is not installed (requirements-dev.txt)")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=PROJECT, capture_output=True, timeout=60
    )
    if listed.returncode != 0:
        mandatory_in_ci("the project is not a git checkout, and pre-commit installs hooks from git")
    root = tmp_path_factory.mktemp("hook-repo")
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = PROJECT / name
        if src.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / name)
    init(root)
    sha = commit_all(root, "snapshot")
    return root, sha, tmp_path_factory.mktemp("pre-commit-home")


def run(cmd: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env(PRE_COMMIT_HOME=str(home)), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def user_repo(hook, tmp_path_factory) -> Path:
    """A user's repository with the hook installed, as docs/ci.md tells them to."""
    hook_root, sha, home = hook
    repo = init(tmp_path_factory.mktemp("user") / "repo")
    shutil.copytree(PROJECT / "pipelines", repo / "pipelines")
    (repo / ".pre-commit-config.yaml").write_text(
        yaml.safe_dump({"repos": [{"repo": str(hook_root), "rev": sha, "hooks": [{"id": HOOK_ID}]}]}, sort_keys=False)
    )
    installed = run([str(PRE_COMMIT), "install"], repo, home)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return repo


def commit(repo: Path, home: Path, message: str) -> tuple[int, str]:
    """Exit code and output of `git commit` (git sends a hook's output to stderr)."""
    git(repo, "add", "-A")
    result = run(["git", "commit", "-q", "-m", message], repo, home)
    return result.returncode, result.stdout + result.stderr


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def test_hook_is_declared_for_pipeline_files():
    (hook,) = [h for h in yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text()) if h["id"] == HOOK_ID]
    assert hook["entry"] == "adclick-ops validate --pre-commit" and hook["language"] == "python"
    assert hook["always_run"] is True  # else a commit that only deletes a pipeline file is skipped
    import re

    pattern = re.compile(hook["files"])
    assert pattern.search("pipelines/airflow_lab2.yaml") and pattern.search("team/pipelines/x.yml")
    assert not pattern.search("dags/adclick_dags.py") and not pattern.search("pipelines/nested/x.yaml")
    assert not pattern.search(".github/workflows/ci.yaml")


def test_a_clean_commit_passes_and_a_broken_file_is_stopped(user_repo, hook):
    home = hook[2]
    code, out = commit(user_repo, home, "pipelines")
    assert code == 0, out
    assert "adclick-ops validate" in out and "Passed" in out

    lab2 = user_repo / "pipelines" / "airflow_lab2.yaml"
    good = lab2.read_text()
    before = head(user_repo)
    lab2.write_text(good.replace("test_size: 0.3", "test_size: 1.5"))
    code, out = commit(user_repo, home, "broken")
    assert code == 1, out
    assert "Failed" in out
    assert "pipelines/airflow_lab2.yaml:25: Airflow_Lab2.training.split.test_size: input should be less than 1; found 1.5" in out
    assert head(user_repo) == before
    lab2.write_text(good)
    git(user_repo, "add", "-A")


def test_a_changed_file_is_checked_with_the_rest_of_its_folder(user_repo, hook):
    home = hook[2]
    flask = user_repo / "pipelines" / "airflow_lab2_flask.yaml"
    good = flask.read_text()
    # only the monitor's file is passed to the hook; it must not fail for lack of the training DAG
    flask.write_text(good.replace("port: 5555", "port: 5556"))
    code, out = commit(user_repo, home, "monitor port")
    assert code == 0, out
    # renaming the DAG that the training file triggers breaks the training file, which was not changed
    before, committed = head(user_repo), flask.read_text()
    flask.write_text(committed.replace("Airflow_Lab2_Flask:", "Monitor:"))
    code, out = commit(user_repo, home, "rename")
    assert code == 1 and head(user_repo) == before, out
    assert "pipelines/airflow_lab2.yaml:45: Airflow_Lab2.trigger.dag_id: DAG 'Airflow_Lab2_Flask' is not declared" in out
    flask.write_text(committed)
    git(user_repo, "add", "-A")


def test_a_commit_without_pipeline_files_passes_without_checking_them(user_repo, hook):
    lab2 = user_repo / "pipelines" / "airflow_lab2.yaml"
    good = lab2.read_text()
    # a broken pipeline file that the commit leaves alone (not staged) is not this commit's business
    lab2.write_text(good.replace("test_size: 0.3", "test_size: 1.5"))
    (user_repo / "notes.md").write_text("no pipelines here\n")
    git(user_repo, "add", "notes.md")
    result = run(["git", "commit", "-q", "-m", "notes"], user_repo, hook[2])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stdout + result.stderr
    lab2.write_text(good)


def test_a_deletion_only_commit_checks_the_whole_folder(user_repo, hook):
    """The report's case: deleting the file of a DAG that another file triggers, and nothing else."""
    home = hook[2]
    before = head(user_repo)
    git(user_repo, "rm", "-q", "pipelines/airflow_lab2_flask.yaml")
    assert git(user_repo, "diff", "--cached", "--name-status").strip() == "D\tpipelines/airflow_lab2_flask.yaml"
    result = run(["git", "commit", "-q", "-m", "drop the monitor"], user_repo, home)
    out = result.stdout + result.stderr
    assert result.returncode == 1 and head(user_repo) == before, out
    assert "Skipped" not in out and "Failed" in out
    assert "pipelines/airflow_lab2.yaml:45: Airflow_Lab2.trigger.dag_id: DAG 'Airflow_Lab2_Flask' is not declared" in out
    # once no file of the folder triggers it, the same deletion-only commit passes
    git(user_repo, "reset", "-q", "--hard")
    lab2 = user_repo / "pipelines" / "airflow_lab2.yaml"
    lab2.write_text(lab2.read_text().replace("  trigger:\n", "  trigger:\n    external: true\n"))
    code, out = commit(user_repo, home, "the monitor DAG lives elsewhere")
    assert code == 0, out
    git(user_repo, "rm", "-q", "pipelines/airflow_lab2_flask.yaml")
    result = run(["git", "commit", "-q", "-m", "drop the monitor"], user_repo, home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stdout + result.stderr


def test_the_hook_environment_holds_no_airflow(user_repo, hook):
    home = hook[2]
    run([str(PRE_COMMIT), "install-hooks"], user_repo, home)
    pythons = sorted(home.glob("repo*/py_env-*/bin/python"))
    assert pythons, f"no hook environment under {home}"
    # the core install: pydantic and PyYAML, no runtime stack and no scikit-learn (validate reads the generated table)
    probe = (
        "import importlib.util, json, pydantic, yaml, adclick_ops.config; "
        "print(json.dumps([m for m in ('airflow', 'dagfactory', 'flask', 'pandas', 'gunicorn', 'requests', 'sklearn', 'scipy') "
        "if importlib.util.find_spec(m)]))"
    )
    result = subprocess.run([str(pythons[0]), "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
