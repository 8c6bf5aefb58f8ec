"""adclick_ops.steps.params: the estimators' classes, and scikit-learn's constraints read into the table's rows.

The whole table against the committed file is tests/config/test_estimator_rules.py; here, each kind of
scikit-learn constraint becomes the row that config/estimator_rules.py knows how to check.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.utils import _param_validation as pv

from adclick_ops.config.vocabulary import ESTIMATOR_PARAMS
from adclick_ops.steps import params
from adclick_ops.steps.params import ESTIMATOR_CLASSES, constraint_table, estimator_class


def test_each_allowed_estimator_names_its_scikit_learn_class():
    assert set(ESTIMATOR_CLASSES) == set(ESTIMATOR_PARAMS)
    assert estimator_class("logistic_regression") is LogisticRegression
    assert estimator_class("random_forest") is RandomForestClassifier
    assert estimator_class("gradient_boosting") is GradientBoostingClassifier


@pytest.mark.parametrize(
    ("constraint", "row"),
    [
        (
            pv.Interval(numbers.Integral, 1, None, closed="left"),
            {"kind": "interval", "type": "int", "left": 1, "right": None, "closed": "left"},
        ),
        (
            pv.Interval(numbers.Real, 0, math.inf, closed="neither"),
            {"kind": "interval", "type": "real", "left": 0.0, "right": None, "closed": "neither"},
        ),
        (
            pv.Interval(pv.RealNotInt, 0, 1, closed="right"),
            {"kind": "interval", "type": "real_not_int", "left": 0.0, "right": 1.0, "closed": "right"},
        ),
        (pv.StrOptions({"lbfgs", "saga"}), {"kind": "options", "type": "str", "values": ["lbfgs", "saga"]}),
        (None, {"kind": "none"}),
        ("boolean", {"kind": "boolean"}),
        (pv._NanConstraint(), {"kind": "nan"}),
        (str, {"kind": "instance", "type": "str"}),
        (callable, {"kind": "unwritable", "what": "a callable"}),
    ],
    ids=["int interval", "open real interval", "fraction", "options", "none", "boolean", "nan", "instance", "callable"],
)
def test_each_kind_of_constraint_becomes_its_row(constraint, row):
    assert params._constraint(constraint) == [row]


def test_a_random_state_is_its_parts_and_a_hidden_option_says_so():
    kinds = [r["kind"] for r in params._constraint("random_state")]
    assert kinds == ["interval", "instance", "none"]  # an int, a RandomState (unwritable in YAML) or None
    hidden = params._constraint(pv.Hidden(pv.StrOptions({"deprecated"})))
    assert hidden == [{"kind": "options", "type": "str", "values": ["deprecated"], "hidden": True}]
    deprecated = params._constraint(pv.StrOptions({"a", "b"}, deprecated={"b"}))
    assert deprecated == [{"kind": "options", "type": "str", "values": ["a", "b"], "deprecated": ["b"]}]


@pytest.mark.parametrize(
    ("value", "shown"), [(None, None), ("auto", "auto"), (3, 3), (0.5, 0.5), (True, True), (np.float64, repr(np.float64))]
)
def test_defaults_are_kept_when_json_can_hold_them_and_shown_otherwise(value, shown):
    assert params._default(value) == shown


def test_the_table_has_every_allowed_parameter_with_its_signature_default():
    table = constraint_table()
    assert set(table["estimators"]) == set(ESTIMATOR_PARAMS)
    for name, allowed in ESTIMATOR_PARAMS.items():
        entry = table["estimators"][name]
        assert entry["class"] == ESTIMATOR_CLASSES[name]
        assert set(entry["params"]) == set(allowed)
        defaults = estimator_class(name)().get_params()
        for param, rule in entry["params"].items():
            assert rule["default"] == params._default(defaults[param]), (name, param)
            assert rule["accepts"], (name, param)
