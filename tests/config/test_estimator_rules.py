"""The table of estimator parameter constraints: generated from the installed scikit-learn, and agreeing with it.

validate reads the table and never imports scikit-learn; these tests hold the table and the declared
combinations to what scikit-learn does: every value the table accepts, scikit-learn accepts, and
what it refuses scikit-learn refuses too (booleans for numbers aside: validate is stricter there).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from adclick_ops.cli import main
from adclick_ops.config import estimator_rules
from adclick_ops.config.estimator_rules import RULES_FILE, accepts, param_problems, param_rules, rules, value_problems
from adclick_ops.config.schema import pipeline_schema
from adclick_ops.config.vocabulary import ESTIMATOR_PARAMS
from adclick_ops.steps.params import constraint_table, estimator_class

from tests.support import PROJECT

# --- the committed table is what the installed scikit-learn declares ------------------------------


def test_the_committed_table_is_regenerated_identically_by_the_installed_scikit_learn():
    """Fails after a scikit-learn upgrade that changes a rule: run `adclick-ops estimator-rules` and review the diff."""
    assert json.loads(RULES_FILE.read_text()) == constraint_table()
    assert main(["estimator-rules", "--check"]) == 0


def test_the_check_names_a_stale_table(tmp_path, capsys):
    stale = tmp_path / "rules.json"
    stale.write_text("{}\n")
    assert main(["estimator-rules", "--check", "--output", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["estimator-rules", "--output", str(stale)]) == 0
    assert json.loads(stale.read_text()) == constraint_table()


def test_the_table_covers_every_allowed_parameter():
    assert {name: set(e["params"]) for name, e in rules()["estimators"].items()} == {n: set(p) for n, p in ESTIMATOR_PARAMS.items()}


# --- each kind of constraint accepts good values and refuses bad ones -------------------------------

INT_1_UP = {"kind": "interval", "type": "int", "left": 1, "right": None, "closed": "left"}
REAL_0_1_OPEN = {"kind": "interval", "type": "real", "left": 0.0, "right": 1.0, "closed": "neither"}
FRACTION = {"kind": "interval", "type": "real_not_int", "left": 0.0, "right": 1.0, "closed": "right"}
KINDS = [
    (INT_1_UP, [1, 2, 10**9], [0, -1, 1.0, 1.5, True, "1", None, math.nan]),
    (REAL_0_1_OPEN, [0.5, 1e-9, 0.999], [0, 1, 0.0, 1.0, -0.1, True, False, "0.5", None, math.nan]),
    (FRACTION, [0.5, 1.0, 1e-9], [1, 0.0, 1.5, True, "0.5", math.nan]),
    ({"kind": "options", "type": "str", "values": ["l1", "l2"]}, ["l1", "l2"], ["L1", "l3", 1, None, True]),
    ({"kind": "none"}, [None], [0, "", False, "null"]),
    ({"kind": "boolean"}, [True, False], [0, 1, "true", None]),
    ({"kind": "instance", "type": "int"}, [0, -3, 7], [1.0, True, "1", None]),
    ({"kind": "instance", "type": "str"}, ["x", ""], [1, None, True]),
    ({"kind": "instance", "type": "dict"}, [], [{}, "x", 1, None]),
    ({"kind": "unwritable", "what": "a callable"}, [], ["print", 1, None]),
    ({"kind": "nan"}, [math.nan], [0.0, None, "nan"]),
    ({"kind": "any"}, ["x", 1, None, True], []),
]


@pytest.mark.parametrize("row,good,bad", KINDS, ids=[f"{r['kind']}-{r.get('type', '')}" for r, _, _ in KINDS])
def test_each_kind_of_constraint_accepts_good_values_and_refuses_bad_ones(row, good, bad):
    assert [v for v in good if not accepts(row, v)] == []
    assert [v for v in bad if accepts(row, v)] == []


def test_a_hidden_option_is_accepted_but_not_offered():
    penalty = param_rules("logistic_regression")["penalty"]
    assert any(row.get("hidden") and "deprecated" in row["values"] for row in penalty["accepts"])
    assert param_problems("logistic_regression", {"penalty": "deprecated"}) == []
    [problem] = param_problems("logistic_regression", {"penalty": "l3"})
    assert "deprecated" not in problem.expected
    assert problem.expected == 'one of "elasticnet", "l1", "l2" or null'


# --- the table agrees with scikit-learn, value by value ---------------------------------------------


def _candidates(rule: dict) -> list:
    """Values around every constraint of a parameter: its bounds and just beyond, its options and near misses."""
    values: list = [None, True, False, 0, 1, -1, 0.5, 1.0, 2**32, 2**32 - 1, "", "auto", "balanced", math.nan, math.inf]
    for row in rule["accepts"]:
        for bound in (row.get("left"), row.get("right")):
            if bound is not None:
                values += [bound, bound + 1, bound - 1, float(bound), bound + 0.5, bound - 0.5, int(bound)]
        for option in row.get("values", []):
            values += [option, option.upper() if isinstance(option, str) else option, f"{option}x"]
    return values


CASES = [(name, param, value) for name in ESTIMATOR_PARAMS for param, rule in param_rules(name).items() for value in _candidates(rule)]


def _sklearn_accepts(name: str, param: str, value) -> bool:
    try:
        estimator_class(name)(**{param: value})._validate_params()
    except (ValueError, TypeError):
        return False
    return True


@pytest.mark.parametrize("name", ESTIMATOR_PARAMS)
def test_the_table_accepts_what_scikit_learn_accepts_and_refuses_what_it_refuses(name):
    disagree = []
    for estimator, param, value in CASES:
        if estimator != name:
            continue
        ours = not value_problems(name, {param: value})
        theirs = _sklearn_accepts(name, param, value)
        if ours != theirs and not (isinstance(value, bool) and theirs):  # stricter on booleans, by design
            disagree.append((param, value, ours, theirs))
    assert disagree == []


# --- the declared combinations agree with scikit-learn's fit ------------------------------------------

X = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0], [3.0, 3.0, 1.0], [0.5, 2.0, 2.0], [2.5, 0.5, 3.0]])
Y = np.array([0, 1, 0, 1, 0, 1])
UNSET = object()
LR_GRID = [
    {k: v for k, v in (("solver", solver), ("penalty", penalty), ("l1_ratio", l1_ratio), ("C", c), ("tol", tol)) if v is not UNSET}
    for solver in (UNSET, "lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga")
    for penalty in (UNSET, "l1", "l2", "elasticnet", None)
    for l1_ratio in (UNSET, 0.0, 0.5, 1.0, None)
    for c in (UNSET, math.inf)
    for tol in (UNSET, 0)
]


def _fits(name: str, params: dict) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            estimator_class(name)(**params, **({"max_iter": 5} if name == "logistic_regression" else {"n_estimators": 2})).fit(X, Y)
        except (ValueError, TypeError):
            return False
    return True


def _never_returns(params: dict) -> bool:
    """liblinear with C .inf and a penalty: scikit-learn accepts it, and its fit loops for ever."""
    return params.get("solver") == "liblinear" and params.get("C") == math.inf


def test_logistic_regression_combinations_validate_accepts_are_those_scikit_learn_fits():
    disagree = [
        (p, ours, theirs)
        for p in LR_GRID
        if not _never_returns(p) and (ours := not param_problems("logistic_regression", p)) != (theirs := _fits("logistic_regression", p))
    ]
    assert disagree == []
    assert all(param_problems("logistic_regression", p) for p in LR_GRID if _never_returns(p))


@pytest.mark.parametrize("name", ["random_forest", "gradient_boosting"])
def test_max_features_above_the_number_of_features_is_accepted_by_both(name):
    """No rule ties max_features to training.features: scikit-learn uses every feature then (fails if that changes)."""
    for count in (1, 3, 4, 10):
        assert not param_problems(name, {"max_features": count})
        assert _fits(name, {"max_features": count}), count


# --- the JSON Schema says the same ----------------------------------------------------------------------

SHIPPED = yaml.safe_load((PROJECT / "pipelines" / "airflow_lab2.yaml").read_text())
# the estimator section alone, with the definitions of the whole schema
ESTIMATOR_SCHEMA = Draft202012Validator(
    {**pipeline_schema(), "$ref": "#/$defs/Estimator", "additionalProperties": True, "minProperties": 0, "propertyNames": True}
)


def _schema_accepts(name: str, params: dict) -> bool:
    return ESTIMATOR_SCHEMA.is_valid({"name": name, "params": params})


def test_the_estimator_section_is_checked_by_the_schema_file_editors_use():
    shipped = Draft202012Validator(json.loads((PROJECT / "schema" / "pipeline.schema.json").read_text()))
    doc = json.loads(json.dumps(SHIPPED, default=str))
    assert shipped.is_valid(doc)
    doc["Airflow_Lab2"]["training"]["estimator"]["params"] = {"C": 0}
    error = best_match(shipped.iter_errors(doc))  # what an editor shows
    assert list(error.absolute_path) == ["Airflow_Lab2", "training", "estimator", "params", "C"]
    assert error.message == "0 is less than or equal to the minimum of 0"


def _integral(value) -> bool:
    """JSON Schema cannot tell 1 from 1.0: where scikit-learn wants a fraction, the schema lets 1 through and validate refuses it."""
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())


@pytest.mark.parametrize("name", ESTIMATOR_PARAMS)
def test_the_schema_accepts_what_validate_accepts_and_refuses_what_it_refuses(name):
    disagree = []
    for estimator, param, value in CASES:
        if estimator != name:
            continue
        ours, theirs = not param_problems(name, {param: value}), _schema_accepts(name, {param: value})
        if (ours and not theirs) or (theirs and not ours and not _integral(value)):
            disagree.append((param, value, ours))
    assert disagree == []


def test_the_schema_refuses_the_declared_combinations():
    for params in LR_GRID:
        assert _schema_accepts("logistic_regression", params) == (not param_problems("logistic_regression", params)), params


def test_the_shipped_schema_file_is_current():
    assert main(["schema", "--check"]) == 0


# --- validate: the messages, and nothing heavy imported -------------------------------------------------


def _project(tmp_path: Path, params: dict) -> Path:
    folder = tmp_path / "pipelines"
    shutil.copytree(PROJECT / "pipelines", folder)
    doc = json.loads(json.dumps(SHIPPED, default=str))
    doc["Airflow_Lab2"]["training"]["estimator"]["params"] = params
    (folder / "airflow_lab2.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def test_a_bad_value_is_named_with_file_line_field_found_and_expected(tmp_path, capsys):
    folder = _project(tmp_path, {"C": -1, "solver": "adam", "max_iter": 100})
    assert main(["validate", "--format", "json", str(folder)]) == 1
    errors = {e["field"]: e for e in json.loads(capsys.readouterr().out)["errors"]}
    lines = (folder / "airflow_lab2.yaml").read_text().splitlines()
    c = errors["Airflow_Lab2.training.estimator.params.C"]
    assert lines[c["line"] - 1].strip() == "C: -1"
    assert (c["found"], c["expected"]) == ("-1", "a number > 0")
    assert c["message"] == "-1 is not accepted by LogisticRegression; expected a number > 0"
    solver = errors["Airflow_Lab2.training.estimator.params.solver"]
    assert solver["found"] == '"adam"' and solver["expected"].startswith('one of "lbfgs", "liblinear"')
    assert len(errors) == 2


def test_a_bad_value_is_refused_wherever_the_file_is_read_so_no_dag_file_renders_it(tmp_path):
    """The DAG file reads pipeline files through load_pipeline_file, as validate does: the same refusal there."""
    from adclick_ops.config import ConfigError, load_pipeline_file

    folder = _project(tmp_path, {"max_iter": "*/5 * * * *"})
    with pytest.raises(ConfigError) as caught:
        load_pipeline_file(folder / "airflow_lab2.yaml")
    (issue,) = caught.value.issues
    assert issue.field == "Airflow_Lab2.training.estimator.params.max_iter"
    assert (folder / "airflow_lab2.yaml").read_text().splitlines()[issue.line - 1].strip().startswith("max_iter:")
    assert issue.message == '"*/5 * * * *" is not accepted by LogisticRegression; expected an integer >= 0'


@pytest.mark.parametrize(
    ("name", "param"), [("random_forest", "max_depth"), ("gradient_boosting", "max_depth"), ("logistic_regression", "max_iter")]
)
@pytest.mark.parametrize("value", [2**63, 10**30, -(2**63) - 1, 10**400])
def test_an_integer_beyond_what_compiled_code_takes_is_refused_before_the_fit_fails(name, param, value):
    """scikit-learn's own checks let these through, and its compiled code then fails (OverflowError) or runs forever."""
    (problem,) = value_problems(name, {param: value})
    assert problem.param == param and "too large" in problem.message
    assert problem.expected == "an integer between -9223372036854775808 and 9223372036854775807"
    assert len(problem.found) <= 40
    assert value_problems(name, {param: 2**62}) == []  # within range, only the table decides


def test_a_refused_combination_is_named_at_the_parameter_that_was_set(tmp_path, capsys):
    folder = _project(tmp_path, {"penalty": "l1"})
    assert main(["validate", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "Airflow_Lab2.training.estimator.params.penalty: LogisticRegression refuses this combination: solver 'lbfgs'" in err
    assert "; expected penalty l2 or null, or solver liblinear (l1) or saga" in err


HEAVY = ("sklearn", "scipy", "pandas", "numpy", "adclick_ops.registry", "adclick_ops.pipeline_watch", "smtplib", "ssl")
PROBE = """
import sys
from adclick_ops.cli import main
code = main(sys.argv[1:])
print(sorted(m for m in {heavy!r} if m in sys.modules))
sys.exit(code)
"""


@pytest.mark.parametrize("params,code", [({}, 0), ({"C": -1, "penalty": "l1"}, 1), ({"penalty": "l1"}, 1)])
def test_validate_imports_neither_scikit_learn_nor_scipy_nor_pandas(tmp_path, params, code):
    folder = _project(tmp_path, params) if params else PROJECT / "pipelines"
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), "validate", "--format", "json", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == code, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_without_scikit_learn_installed_validate_still_checks_the_parameters(tmp_path):
    """A pre-commit hook's install: scikit-learn cannot be imported at all."""
    folder = _project(tmp_path, {"C": -1})
    blocker = "import sys\nclass _No:\n    def find_spec(self, name, *a):\n        if name.split('.')[0] in ('sklearn', 'scipy', 'pandas'):\n            raise ImportError(name)\nsys.meta_path.insert(0, _No())\n"
    result = subprocess.run(
        [sys.executable, "-c", blocker + PROBE.format(heavy=HEAVY), "validate", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stderr
    assert "Airflow_Lab2.training.estimator.params.C: -1 is not accepted by LogisticRegression; expected a number > 0" in result.stderr


# --- the shipped pipelines validate and train ----------------------------------------------------------------


def test_the_shipped_pipelines_validate_and_their_estimators_train(capsys):
    import pandas as pd

    from adclick_ops.steps.model import fit_model, make_preprocessor

    assert main(["validate", str(PROJECT / "pipelines")]) == 0
    training = SHIPPED["Airflow_Lab2"]["training"]
    params = training["estimator"].get("params", {})
    assert param_problems(training["estimator"]["name"], params) == []
    frame = pd.read_csv(PROJECT / "dags" / "data" / "advertising.csv").head(300)
    x = frame[training["features"]].to_numpy("float64")
    model = fit_model(
        make_preprocessor(training["scalers"]).fit(x),
        x,
        frame["Clicked on Ad"].to_numpy("int64"),
        estimator="logistic_regression",
        params=params,
    )
    assert model.score(x, frame["Clicked on Ad"]) > 0.8


def test_every_combination_is_about_an_allowed_parameter():
    for combo in estimator_rules.COMBINATIONS:
        assert set(combo.when) <= set(ESTIMATOR_PARAMS[combo.estimator]), combo


@pytest.mark.parametrize(
    ("name", "param", "value", "read"),
    [
        ("logistic_regression", "max_iter", 1000.0, 1000),  # integers only: 1000.0 is 1000
        ("random_forest", "n_estimators", 1e2, 100),
        ("random_forest", "max_depth", 1e30, int(1e30)),  # then refused as too large, as the schema refuses it
        ("logistic_regression", "C", 10**30, 1e30),  # a number: beyond the machine's integers, the float
        ("logistic_regression", "C", 10**400, math.inf),
        ("logistic_regression", "C", 2, 2),  # within them, as written
        ("random_forest", "min_samples_split", 1, 1),  # a count and a share: as written (the schema cannot tell)
        ("random_forest", "min_samples_split", 2.0, 2.0),
        ("logistic_regression", "max_iter", 1.5, 1.5),
        ("logistic_regression", "max_iter", True, True),
        ("logistic_regression", "solver", "lbfgs", "lbfgs"),
    ],
)
def test_a_number_is_read_as_json_reads_it_where_its_parameter_has_one_reading(name, param, value, read):
    got = estimator_rules.as_json_reads(name, param, value)
    assert got == read and type(got) is type(read)


def test_the_estimator_section_reads_max_iter_1000_0_as_the_integer(tmp_path):
    from adclick_ops.config import load_pipeline_file

    folder = _project(tmp_path, {"max_iter": 1000.0, "C": 0.5})
    params = load_pipeline_file(folder / "airflow_lab2.yaml").dags["Airflow_Lab2"].training.estimator.params
    assert params == {"max_iter": 1000, "C": 0.5} and type(params["max_iter"]) is int
