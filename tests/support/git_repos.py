"""Throw-away git repositories for the tests of `plan` and of the pre-commit hook."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support import mandatory_in_ci

# No user or system configuration (hooks paths, signing, templates) leaks into the test's repositories;
# fixed dates make the same tree give the same commit.
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "adclick-ops tests",
    "GIT_AUTHOR_EMAIL": "tests@example.org",
    "GIT_COMMITTER_NAME": "adclick-ops tests",
    "GIT_COMMITTER_EMAIL": "tests@example.org",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00+00:00",
}


def require_git() -> None:
    if shutil.which("git") is None:
        mandatory_in_ci("git is not installed")


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, **GIT_ENV, **extra}


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, env=env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def init(repo: Path) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    return repo


def commit_all(repo: Path, message: str = "change") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()
