"""adclick_ops.registry.convert: what training writes, a fitted pipeline as an ONNX file (fidelity to scikit-learn, the
same bytes each time, the operator allow-list), with a clear error when the file would not give its probabilities."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from adclick_ops.config.vocabulary import ESTIMATORS
from adclick_ops.registry import load_model_bytes
from adclick_ops.registry.convert import TOLERANCE, FidelityError, check_fidelity, convert_checked, to_onnx
from adclick_ops.registry.serialization import ALLOWED_OPS, ops_of

from tests.support.registry import FEATURES, SCALINGS, X_TEST, fitted

HERE = Path(__file__).parent


# --- what training writes ------------------------------------------------------------------------------


def test_every_estimator_and_scaling_gives_scikit_learns_probabilities_and_needs_exactly_the_allowed_ops():
    """Fidelity on the test rows within 1e-4 for each estimator with each scaler alone, none and all together; the
    tree ensembles see float32 features (their own comparison), computed by the scalers in float64. The operators
    the files use, together, are exactly the allow-list."""
    used = set()
    for estimator in ESTIMATORS:
        for scalers in SCALINGS:
            pipeline = fitted(estimator, scalers)
            blob, model, difference = convert_checked(pipeline, FEATURES, X_TEST, f"{estimator} {scalers}")
            assert difference <= TOLERANCE
            np.testing.assert_allclose(model.predict_proba(X_TEST), pipeline.predict_proba(X_TEST), rtol=0, atol=TOLERANCE)
            assert (model.predict(X_TEST) == pipeline.predict(X_TEST)).all()
            used |= ops_of(blob)
            trees = ("ai.onnx.ml", "TreeEnsembleClassifier") in ops_of(blob)
            assert trees == (estimator != "logistic_regression")
            if trees:  # the cast to float32 sits right before the trees
                graph = onnx.load_from_string(blob).graph
                tree = next(n for n in graph.node if n.op_type == "TreeEnsembleClassifier")
                cast = next(n for n in graph.node if tree.input[0] in n.output)
                assert cast.op_type == "Cast" and cast.attribute[0].i == onnx.TensorProto.FLOAT
    assert used == set(ALLOWED_OPS)


def test_feeding_the_trees_float64_is_what_the_cast_avoids():
    """A value just above a split's threshold in float64 but not in float32 goes left in scikit-learn (it compares
    float32). The shipped graph agrees; the same forest converted with float64 all the way does not."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    pipeline = fitted("random_forest", [])
    rows = []
    for tree in pipeline.steps[-1][1].estimators_:
        for node in np.flatnonzero(tree.tree_.feature >= 0):
            threshold = tree.tree_.threshold[node]
            above = np.nextafter(threshold, np.inf)
            if np.float32(above) <= threshold:
                row = X_TEST[0].copy()
                row[tree.tree_.feature[node]] = above
                rows.append(row)
    rows = np.array(rows)
    assert len(rows) > 10
    _, model, _ = convert_checked(pipeline, FEATURES, X_TEST)
    check_fidelity(pipeline, model, rows)
    plain = convert_sklearn(
        pipeline,
        initial_types=[("features", DoubleTensorType([None, len(FEATURES)]))],
        options={id(pipeline.steps[-1][1]): {"zipmap": False}},
    ).SerializeToString()
    with pytest.raises(FidelityError, match="differ from the fitted scikit-learn pipeline's"):
        check_fidelity(pipeline, load_model_bytes(plain), rows)


def test_a_model_whose_onnx_file_differs_is_not_registered_with_a_clear_error(pipelines, tmp_path, monkeypatch):
    """The check runs at training: if the file does not give the fitted pipeline's probabilities, no file, no version."""
    from adclick_ops import tasks
    from adclick_ops.registry import Registry, convert

    from tests.support.registry import run_chain, training_settings

    settings = training_settings(pipelines)
    for name in ("load_data", "preprocess", "separate_data_outputs"):
        getattr(tasks, name)(settings=settings, run_id="r1")
    other = fitted("logistic_regression", ["minmax"], C=0.001)  # another model's file in place of the run's
    monkeypatch.setattr(convert, "to_onnx", lambda pipeline, features: to_onnx(other, features))
    with pytest.raises(Exception, match=r"the model of run r1: not registered: the ONNX file's probabilities differ .* by up to") as caught:
        tasks.build_save_model(settings=settings, run_id="r1")
    chain = [caught.value, caught.value.__cause__]
    assert any(isinstance(e, FidelityError) for e in chain)
    assert not (tmp_path / "runs" / "Airflow_Lab2" / "r1" / "model.sav").exists()
    monkeypatch.undo()
    run_chain(settings, "r2")
    assert Registry(str(tmp_path / "model"), "Airflow_Lab2").versions() == [1]


def test_the_same_fitted_pipeline_gives_the_same_bytes_in_other_processes_and_after_refitting():
    """Also across processes whose string hashes differ (PYTHONHASHSEED): skl2onnx keeps the opsets in a set."""
    import hashlib
    import os

    blob = to_onnx(fitted("random_forest", ["minmax", "standard"]), FEATURES)
    assert to_onnx(fitted("random_forest", ["minmax", "standard"]), FEATURES) == blob
    script = """
import sys, hashlib
from tests.support.registry import fitted, FEATURES
from adclick_ops.registry.convert import to_onnx
print(hashlib.sha256(to_onnx(fitted("random_forest", ["minmax", "standard"]), FEATURES)).hexdigest())
"""
    for seed in ("0", "1", "3"):  # each order of the two opsets is among them
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True, env=env, cwd=HERE.parents[1]
        )
        assert out.stdout.strip().splitlines()[-1] == hashlib.sha256(blob).hexdigest(), seed


def test_retraining_the_same_run_keeps_one_file_under_its_content_address(pipelines, tmp_path):
    from adclick_ops.registry import Registry

    from tests.support.registry import run_chain, training_settings

    settings = training_settings(pipelines)
    run_chain(settings, "r1")
    run_chain(settings, "r2")
    registry = Registry(str(tmp_path / "model"), "Airflow_Lab2")
    # the same bytes again: no second version, the run is recorded against the first
    assert registry.versions() == [1]
    assert [(e["action"], e["version"], e.get("run_id")) for e in registry.history()][-1] == ("retrained", 1, "r2")
    first = registry.card(1)["model"]
    assert first["file"] == f"models/{first['sha256']}.onnx"
    assert [p.name for p in (Path(registry.location) / "models").iterdir()] == [f"{first['sha256']}.onnx"]
