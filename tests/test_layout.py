"""Tests are found by module: each module of adclick_ops of 60 lines or more has a test_<module>.py under tests/.

Such a file sits anywhere under tests/ (tests/config/test_models.py for adclick_ops/config/models.py);
suites grouped by property (tests/hardening/) come besides these. A package's `__init__.py` is
tested by the folder of its package, not by a file of its own.
"""

from __future__ import annotations

import ast
import tomllib

from tests.support import PROJECT

PACKAGE = PROJECT / "adclick_ops"
TESTS = PROJECT / "tests"
LONG = 60  # lines; shorter modules are tested through their callers


def long_modules() -> list[str]:
    """The modules of adclick_ops with LONG lines or more, as paths relative to the project."""
    return sorted(
        str(path.relative_to(PROJECT))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and len(path.read_text().splitlines()) >= LONG
    )


def files_by_name() -> dict[str, list[str]]:
    """test_<name>.py -> where such files are, relative to the project."""
    found: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        found.setdefault(path.name, []).append(str(path.relative_to(PROJECT)))
    return found


def test_every_long_module_has_a_test_file_named_after_it():
    found = files_by_name()
    missing = [
        f"{module}: no tests/**/test_{module.rsplit('/', 1)[-1]}"
        for module in long_modules()
        if f"test_{module.rsplit('/', 1)[-1]}" not in found
    ]
    assert not missing, "modules of 60 lines or more without a test file named after them:\n" + "\n".join(missing)


def mirrored(module: str) -> str:
    """Where the tests of `module` go when another module has its name: the folder mirroring its package."""
    inside = module.removeprefix("adclick_ops/")
    return f"tests/{inside.rsplit('/', 1)[0]}/test_{inside.rsplit('/', 1)[-1]}" if "/" in inside else f"tests/test_{inside}"


def test_a_test_file_of_a_name_two_modules_share_sits_in_the_folder_of_its_module():
    """tests/test_predict.py is adclick_ops/predict.py's; tests/monitor/test_predict.py is adclick_ops/monitor/predict.py's."""
    owners: dict[str, list[str]] = {}
    for module in long_modules():
        owners.setdefault(module.rsplit("/", 1)[-1], []).append(module)
    found = files_by_name()
    shared = [module for modules in owners.values() if len(modules) > 1 for module in modules]
    misplaced = [
        f"{module}: expected {mirrored(module)}"
        for module in shared
        if mirrored(module) not in found.get(f"test_{module.rsplit('/', 1)[-1]}", [])
    ]
    assert shared, "adclick_ops/predict.py and adclick_ops/monitor/predict.py share a name"
    assert not misplaced, "\n".join(misplaced)


def test_the_rule_sees_the_package_as_it_is():
    """The rule would pass on an empty list: it finds the modules this package is known to have."""
    modules = long_modules()
    assert {"adclick_ops/cli.py", "adclick_ops/config/models.py", "adclick_ops/monitor/predict.py", "adclick_ops/predict.py"} <= set(
        modules
    )
    assert not any(m.endswith("__init__.py") for m in modules)
    assert "adclick_ops/net.py" not in modules  # 34 lines


# Helpers' names before they moved into tests.support, as tests written against them import them.
FORMER_HELPERS = {"helpers", "git_support", "hardening_support", "registry_support"}


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def test_tests_import_their_helpers_from_the_tests_package():
    """No test edits sys.path; a module of tests/ is imported as tests.<...>, never by its bare name."""
    bare = FORMER_HELPERS | {path.stem for path in TESTS.rglob("*.py")} - {"__init__"}
    problems = []
    for path in sorted(TESTS.rglob("*.py")):
        source = path.read_text()
        if "sys.path" in source and path != TESTS / "test_layout.py":
            problems.append(f"{path.relative_to(PROJECT)}: edits sys.path")
        for line, module in imported_modules(source):
            if module.split(".")[0] in bare:
                problems.append(f"{path.relative_to(PROJECT)}:{line}: imports {module}; expected tests.support or tests.<folder>")
    assert not problems, "\n".join(problems)


def test_pytest_adds_no_test_folder_to_the_import_path():
    options = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert not [entry for entry in options.get("pythonpath", []) if entry.startswith("tests")]
