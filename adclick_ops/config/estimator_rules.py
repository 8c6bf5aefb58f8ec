"""The values each estimator parameter takes, checked without scikit-learn: what `adclick-ops validate` asks of `training.estimator.params`.

The rules of single values come from estimator_rules.json, which `adclick-ops estimator-rules`
generates from scikit-learn's own constraints (adclick_ops/steps/params.py). The rules across
parameters are declared below, in COMBINATIONS. Both also go into the JSON Schema (config/schema.py).

Where a constraint cannot be checked from the file alone, validate does this instead:
- a value only Python can make (a callable, a dict or a list, a NumPy RandomState, an array) cannot be
  written in a pipeline file, whose parameter values are strings, numbers, true/false and null: such a
  constraint accepts none of them, and the expected values list only what a file can write;
- a hidden option (e.g. LogisticRegression's penalty "deprecated", its default) is accepted, as
  scikit-learn accepts it, but not offered in messages; a parameter without validation accepts anything;
- true and false are refused where scikit-learn wants a number (it would take them as 1 and 0): stricter
  than scikit-learn, never looser;
- combinations (LogisticRegression's solver with penalty, l1_ratio and C) are checked from the small
  table COMBINATIONS, kept in step with scikit-learn by a test that fits every combination of a grid
  (tests/config/test_estimator_rules.py); what depends on the data itself (one class only) is found
  by the training task. A max_features above the number of features is not refused: scikit-learn
  1.8 uses every feature then (the same test checks it). One combination is refused that scikit-learn
  accepts: the liblinear solver with C .inf and a penalty, whose fit never returns.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

RULES_FILE = Path(__file__).with_name("estimator_rules.json")

# YAML values of each type name of the table (bool is refused where a number is wanted, see above).
_NUMBER_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "real": (int, float), "real_not_int": (float,)}
_INSTANCE_TYPES: dict[str, tuple[type, ...]] = {**_NUMBER_TYPES, "str": (str,), "bool": (bool,)}
_TYPE_WORDS = {"int": "an integer", "real": "a number", "real_not_int": "a decimal number", "str": "a string", "bool": "true or false"}


@cache
def rules() -> dict[str, Any]:
    """The generated table: {"scikit-learn": version, "estimators": {name: {"class", "params": {param: {"default", "accepts"}}}}}."""
    return json.loads(RULES_FILE.read_text(encoding="utf-8"))


def param_rules(estimator: str) -> dict[str, Any]:
    return rules()["estimators"][estimator]["params"]


# --- one value against one row of the table --------------------------------------------------------


def _is_number(value: Any, kind: str) -> bool:
    return not isinstance(value, bool) and isinstance(value, _NUMBER_TYPES[kind]) and not (isinstance(value, float) and math.isnan(value))


def _in_interval(value: float, row: dict[str, Any]) -> bool:
    # An absent bound is infinity, itself inside only on a closed side (as scikit-learn's Interval reads it).
    left = -math.inf if row["left"] is None else row["left"]
    right = math.inf if row["right"] is None else row["right"]
    closed = row["closed"]
    if value < left or (value == left and closed not in ("left", "both")):
        return False
    return not (value > right or (value == right and closed not in ("right", "both")))


def accepts(row: dict[str, Any], value: Any) -> bool:
    """Whether one constraint of the table accepts a value as a pipeline file writes it."""
    kind = row["kind"]
    if kind == "interval":
        return _is_number(value, row["type"]) and _in_interval(value, row)
    if kind == "options":
        wanted = _INSTANCE_TYPES.get(row["type"], ())
        return isinstance(value, wanted) and value in row["values"] and (row["type"] == "bool" or not isinstance(value, bool))
    if kind == "instance":
        wanted = _INSTANCE_TYPES.get(row["type"], ())
        return isinstance(value, wanted) and (row["type"] == "bool" or not isinstance(value, bool))
    if kind == "none":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "nan":
        return isinstance(value, float) and math.isnan(value)
    return kind == "any"  # "unwritable": nothing a pipeline file can hold


def _number_kinds(rule: dict[str, Any]) -> set[str]:
    """Which Python numbers a parameter takes: "int", "float", both or neither."""
    kinds: set[str] = set()
    for row in rule["accepts"]:
        if row["kind"] in ("interval", "instance", "options") and row.get("type") in _NUMBER_TYPES:
            kinds.update("int" if t is int else "float" for t in _NUMBER_TYPES[row["type"]])
        elif row["kind"] in ("nan", "any"):
            kinds.add("float")
    return kinds


def as_json_reads(estimator: str, param: str, value: Any) -> Any:
    """A number of a pipeline file as JSON (and the JSON Schema editors use) reads it: 1000 and 1000.0 are one number.

    Where the parameter takes integers and no float, an integral float is that integer (max_iter: 1000.0 is 1000);
    where it takes floats, an integer beyond the machine's integers is that float (10**30 is 1e30; an integer beyond
    the floats is infinite, as JSON reads it), and where it takes no integer, any integer is. Where it takes both with
    different meanings (min_samples_split 2 is a count, 0.5 a share), the value stays as written and its own rules
    judge it: the JSON Schema cannot tell these apart (tests/hardening/test_hardening_schema_engines.py).
    """
    rule = param_rules(estimator).get(param)
    if rule is None or isinstance(value, bool) or not isinstance(value, int | float):
        return value
    kinds = _number_kinds(rule)
    if kinds == {"int"} and isinstance(value, float) and value.is_integer():
        return int(value)
    if "float" in kinds and isinstance(value, int) and ("int" not in kinds or not INT_RANGE[0] <= value <= INT_RANGE[1]):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


def _bound_text(bound: float | None) -> str | None:
    return None if bound is None else (str(bound) if isinstance(bound, int) else f"{bound:g}")


def _interval_words(row: dict[str, Any]) -> str:
    left, right, closed = _bound_text(row["left"]), _bound_text(row["right"]), row["closed"]
    words = _TYPE_WORDS[row["type"]]
    if left is not None and right is not None:
        return f"{words} in {'[' if closed in ('left', 'both') else '('}{left}, {right}{']' if closed in ('right', 'both') else ')'}"
    if left is not None:
        return f"{words} {'>=' if closed in ('left', 'both') else '>'} {left}"
    if right is not None:
        return f"{words} {'<=' if closed in ('right', 'both') else '<'} {right}"
    return words


def describe(row: dict[str, Any]) -> str | None:
    """A constraint in the words of a pipeline file; None for what a file cannot write or what is hidden."""
    kind = row["kind"]
    if row.get("hidden") or kind in ("unwritable", "nan") or (kind == "instance" and row["type"] not in _TYPE_WORDS):
        return None
    if kind == "interval":
        return _interval_words(row)
    if kind == "options":
        return "one of " + ", ".join(json.dumps(v) for v in row["values"])
    if kind == "instance":
        return _TYPE_WORDS[row["type"]]
    return {"none": "null", "boolean": "true or false", "any": "any value"}[kind]


def expected_of(rule: dict[str, Any]) -> str:
    words = [w for w in map(describe, rule["accepts"]) if w]
    return " or ".join(words) if words else "nothing a pipeline file can write"


# --- rules across parameters -----------------------------------------------------------------------


@dataclass(frozen=True)
class Combination:
    """A combination scikit-learn refuses when it fits: every condition holds (a parameter left out has its default)."""

    estimator: str
    when: dict[
        str, tuple[Any, ...] | tuple[str, float, float]
    ]  # param: values, or ("range", low, high) exclusive of low, inclusive of high
    problem: str  # formatted with the values in effect
    expected: str


_L2_ONLY = ("lbfgs", "newton-cg", "newton-cholesky", "sag")
# scikit-learn 1.8's LogisticRegression (its _check_solver): the penalty in effect is `penalty` when set, else
# l2 for l1_ratio 0, l1 for 1, elasticnet between; only saga takes elasticnet, liblinear needs a penalty.
COMBINATIONS: tuple[Combination, ...] = (
    Combination(
        "logistic_regression",
        {"solver": _L2_ONLY, "penalty": ("l1", "elasticnet")},
        "solver {solver!r} supports only the l2 penalty or none, not {penalty!r}",
        "penalty l2 or null, or solver liblinear (l1) or saga",
    ),
    Combination(
        "logistic_regression",
        # C .inf turns the penalty off, whatever l1_ratio says
        {"solver": _L2_ONLY, "penalty": ("deprecated",), "l1_ratio": ("range", 0.0, 1.0), "C": ("range", 0.0, sys.float_info.max)},
        "solver {solver!r} supports only the l2 penalty, and l1_ratio {l1_ratio!r} asks for an l1 part",
        "l1_ratio 0, or solver liblinear (l1_ratio 1) or saga",
    ),
    Combination(
        "logistic_regression",
        {"solver": ("liblinear",), "penalty": ("elasticnet",)},
        "only the saga solver supports the elasticnet penalty, not {solver!r}",
        "solver saga, or penalty l1 or l2",
    ),
    Combination(
        "logistic_regression",
        {"solver": ("liblinear",), "penalty": ("deprecated",), "l1_ratio": ("range", 0.0, math.nextafter(1.0, 0.0))},
        "l1_ratio {l1_ratio!r} between 0 and 1 is an elasticnet penalty, which only the saga solver supports, not {solver!r}",
        "l1_ratio 0 or 1, or solver saga",
    ),
    Combination(
        "logistic_regression",
        {"solver": ("liblinear",), "penalty": (None,)},
        "the liblinear solver needs a penalty",
        "penalty l1 or l2, or another solver",
    ),
    Combination(
        "logistic_regression",
        {"solver": ("liblinear",), "C": (math.inf,)},
        # scikit-learn refuses it without a penalty, and with one its liblinear fit never returns
        "the liblinear solver needs a finite C",
        "a finite C, or another solver",
    ),
    Combination(
        "logistic_regression",
        {"solver": ("liblinear",), "tol": (0, 0.0)},
        "the liblinear solver needs a tolerance above 0",
        "tol above 0, or another solver",
    ),
    Combination(
        "logistic_regression",
        {"penalty": ("elasticnet",), "l1_ratio": (None,)},
        "the elasticnet penalty needs l1_ratio",
        "l1_ratio from 0 to 1",
    ),
)


def describe_combination(combo: Combination) -> str:
    """The combination in words: `solver liblinear with tol 0`, a parameter left out standing for its default."""

    defaults = {p: rule["default"] for p, rule in param_rules(combo.estimator).items()}

    def one(param: str, condition: tuple[Any, ...]) -> str:
        if condition[:1] == ("range",):
            return f"{param} in (0, 1]" if condition[2] == 1.0 else (f"{param} in (0, 1)" if condition[2] < 1 else f"a finite {param}")
        if condition == (defaults[param],) and isinstance(defaults[param], str):
            return f"{param} left out"  # a hidden default: scikit-learn's sign that the parameter was not set
        return f"{param} " + " or ".join(dict.fromkeys(".inf" if v == math.inf else _shown(v) for v in condition))

    return " with ".join(one(p, c) for p, c in combo.when.items())


def _holds(condition: tuple[Any, ...], value: Any) -> bool:
    if condition[:1] == ("range",):
        return _is_number(value, "real") and condition[1] < value <= condition[2]
    return any(value is v or (value == v and type(value) is type(v)) for v in condition)


def _combination_problems(estimator: str, params: dict[str, Any]) -> list[tuple[str | None, str, str, str]]:
    table = param_rules(estimator)
    problems = []
    for combo in COMBINATIONS:
        if combo.estimator != estimator:
            continue
        values = {p: params.get(p, table[p]["default"]) for p in combo.when}
        if all(_holds(cond, values[p]) for p, cond in combo.when.items()):
            where = next((p for p in combo.when if p in params), None)
            found = ", ".join(f"{p} {_shown(v)}" for p, v in values.items())
            problems.append((where, combo.problem.format(**values), combo.expected, found))
    return problems


def _shown(value: Any) -> str:
    """A value as a pipeline file writes it: strings quoted, true/false/null."""
    return json.dumps(value) if isinstance(value, str | bool) or value is None else repr(value)


@dataclass(frozen=True)
class ParamProblem:
    param: str | None  # None: the set as a whole
    message: str
    found: str
    expected: str


def value_problems(estimator: str, params: dict[str, Any]) -> list[ParamProblem]:
    """Every value the estimator's class refuses on its own (scikit-learn's _validate_params)."""
    table = param_rules(estimator)
    cls = rules()["estimators"][estimator]["class"].rsplit(".", 1)[-1]
    problems = []
    for param, value in params.items():
        rule = table[param]
        if (problem := _out_of_machine_range(param, value, cls)) is not None:
            problems.append(problem)
        elif not any(accepts(row, value) for row in rule["accepts"]):
            expected = expected_of(rule)
            found = _shown(value)
            problems.append(ParamProblem(param, f"{found} is not accepted by {cls}; expected {expected}", found, expected))
    return problems


# scikit-learn's compiled code takes integers as C longs and numbers as doubles: a larger integer passes
# its checks and fails the fit with an OverflowError, so it is refused here, whatever the parameter.
INT_RANGE = (-(2**63), 2**63 - 1)


def _out_of_machine_range(param: str, value: Any, cls: str) -> ParamProblem | None:
    if isinstance(value, bool) or not isinstance(value, int) or INT_RANGE[0] <= value <= INT_RANGE[1]:
        return None
    found = _shown(value) if len(str(value)) <= 40 else f"an integer of {len(str(abs(value)))} digits"
    expected = f"an integer between {INT_RANGE[0]} and {INT_RANGE[1]}"
    return ParamProblem(param, f"{found} is too large for {cls}'s compiled code; expected {expected}", found, expected)


def param_problems(estimator: str, params: dict[str, Any]) -> list[ParamProblem]:
    """Every value the estimator's class would refuse, alone or together; combinations only once each value is right."""
    problems = value_problems(estimator, params)
    if problems:
        return problems
    cls = rules()["estimators"][estimator]["class"].rsplit(".", 1)[-1]
    return [
        ParamProblem(param, f"{cls} refuses this combination: {problem}; expected {expected}", found, expected)
        for param, problem, expected, found in _combination_problems(estimator, params)
    ]
