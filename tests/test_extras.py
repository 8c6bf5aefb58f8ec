"""pyproject's `airflow` extra installs what the runtime and the CeleryExecutor stack need, and agrees
with requirements.txt and the lock: every locked version satisfies the extra, and celery keeps the same
upper bound."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import PROJECT


def _extra() -> dict[str, Requirement]:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["airflow"]]
    return {canonicalize_name(r.name): r for r in reqs}


def _requirements_txt() -> dict[str, Requirement]:
    lines = (PROJECT / "requirements.txt").read_text().splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return {canonicalize_name(r.name): r for r in reqs}


def _locked() -> dict[str, str]:
    """name -> version, from requirements.lock (`make lock`: every package pinned)."""
    pins = {}
    for line in (PROJECT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            req = Requirement(line)
            (spec,) = req.specifier
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_the_airflow_extra_has_what_the_celery_executor_stack_needs():
    extra = _extra()
    for name in ("apache-airflow", "apache-airflow-providers-celery", "celery", "psycopg2-binary", "aiosmtpd"):
        assert name in extra, f"pyproject's airflow extra lacks {name}"


def test_the_locked_set_satisfies_the_extra():
    locked, wanted = _locked(), _requirements_txt()
    for name, req in _extra().items():
        assert name in locked, f"the extra asks {req}, which requirements.lock does not hold"
        assert req.specifier.contains(locked[name], prereleases=True), f"requirements.lock has {name}=={locked[name]}, the extra asks {req}"
        assert name in wanted, f"the extra asks {req}; requirements.txt does not list {name}"


def test_celery_has_the_same_upper_bound_in_the_extra_and_requirements_txt():
    def upper(req: Requirement) -> set[str]:
        return {str(s) for s in req.specifier if s.operator in ("<", "<=")}

    txt, extra = _requirements_txt()["celery"], _extra()["celery"]
    assert upper(txt) and upper(extra) == upper(txt), (str(extra), str(txt))
