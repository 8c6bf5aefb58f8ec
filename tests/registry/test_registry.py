"""The model lifecycle through the real task chain: versions, promotion gates, rollback, the model format, file faults."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adclick_ops import tasks
from adclick_ops.artifacts import StorageFullError, write_bytes_atomic
from adclick_ops.registry import (
    FORMAT,
    Registry,
    RegistryError,
    UnsafeModelError,
    load_model_bytes,
)
from adclick_ops.registry.convert import to_onnx
from adclick_ops.steps.model import build_pipeline, evaluate
from adclick_ops.steps.promotion import Comparison, Gates

from tests.support import PROJECT, evil_pickle
from tests.support.registry import (
    FEATURES,
    SEED,
    TARGET,
    degenerate_dataset,
    run_chain,
    set_training,
    strong_model,
    temporaries,
    training_settings,
    weak_model,
)


def registry_of(tmp_path: Path) -> Registry:
    return Registry(str(tmp_path / "model"), "Airflow_Lab2")


# --- the acceptance scenarios ------------------------------------------------------------------------


def test_a_worse_second_model_leaves_the_first_champion_and_a_better_one_takes_over(pipelines, tmp_path):
    weak_model(pipelines)
    first = run_chain(training_settings(pipelines), "run_1")
    assert (first["model_version"], first["promoted"], first["champion_version"]) == (
        1,
        True,
        1,
    )
    champion_file = tmp_path / "model" / "model.sav"
    registry = registry_of(tmp_path)
    assert champion_file.read_bytes() == registry.model_bytes(1)

    # the same stump again: no new version, the run is recorded against version 1
    second = run_chain(training_settings(pipelines), "run_2")
    assert (second["model_version"], second["promoted"], second["champion_version"], second["decision_kind"]) == (1, False, 1, "identical")
    assert "identical: run run_2 trained the model of version 1 (run run_1) again; it is the champion" in second["decision"]
    assert registry.versions() == [1] and registry.history()[-1]["action"] == "retrained"
    assert champion_file.read_bytes() == registry.model_bytes(1)

    strong_model(pipelines)
    third = run_chain(training_settings(pipelines), "run_3")
    assert (third["model_version"], third["promoted"], third["champion_version"]) == (
        2,
        True,
        2,
    )
    assert champion_file.read_bytes() == registry.model_bytes(2)

    weak_model(pipelines)
    fourth = run_chain(training_settings(pipelines), "run_4")
    assert (fourth["model_version"], fourth["promoted"], fourth["champion_version"], fourth["decision_kind"]) == (1, False, 2, "identical")
    assert "the champion stays version 2" in fourth["decision"]
    set_training(pipelines, estimator={"name": "random_forest", "params": {"n_estimators": 2, "max_depth": 1, "random_state": 0}})
    fifth = run_chain(training_settings(pipelines), "run_5")
    assert (fifth["model_version"], fifth["promoted"], fifth["champion_version"]) == (3, False, 2)
    assert fifth["decision_kind"] == "lost" and "lost: roc_auc" in fifth["decision"]
    assert registry.versions() == [1, 2, 3]  # rejected versions are kept
    decisions = registry.decisions()
    assert {v: e["action"] for v, e in decisions.items()} == {1: "promoted", 2: "promoted", 3: "rejected"}
    assert decisions[3]["reason"] == fifth["decision"]


def test_rollback_restores_the_previous_champion_and_promote_takes_a_reason(pipelines, tmp_path):
    weak_model(pipelines)
    run_chain(training_settings(pipelines), "run_1")
    strong_model(pipelines)
    run_chain(training_settings(pipelines), "run_2")
    registry = registry_of(tmp_path)
    assert registry.champion() == 2

    event = registry.rollback("v2 misbehaves in production", by="tester")
    assert (event["version"], event["from"], event["action"]) == (1, 2, "rollback")
    assert registry.champion() == 1
    assert (tmp_path / "model" / "model.sav").read_bytes() == registry.model_bytes(1)
    with pytest.raises(RegistryError, match="nothing to roll back to: version 1 is the only champion"):
        registry.rollback("again")

    registry.promote(2, "fixed upstream", by="tester")
    registry.promote(1, "compare", by="tester")
    registry.rollback("undo compare", by="tester")
    assert registry.champion() == 2
    history = registry.history()
    assert [(e["action"], e["version"]) for e in history] == [
        ("promoted", 1),
        ("promoted", 2),
        ("rollback", 1),
        ("promote", 2),
        ("promote", 1),
        ("rollback", 2),
    ]
    assert all(e["at"] and e["reason"] for e in history)
    with pytest.raises(RegistryError, match="version 2 is already the champion"):
        registry.promote(2, "again")
    with pytest.raises(RegistryError, match=r"no version 9 .*versions: 1, 2"):
        registry.promote(9, "no such")


@pytest.mark.parametrize(
    "positive_row,failing_task",
    [("training", None), ("test", "preprocess")],
    ids=["positive in training", "positive in test"],
)
def test_degenerate_data_never_moves_the_champion(pipelines, tmp_path, positive_row, failing_task):
    """999 rows of one class and 1 of the other: an always-0 model scores 0.997 accuracy; it must not serve."""
    run_chain(training_settings(pipelines), "good")
    registry = registry_of(tmp_path)
    champion_bytes = (tmp_path / "model" / "model.sav").read_bytes()
    pointer = registry.store.read("champion.json")

    set_training(
        pipelines,
        dataset=str(degenerate_dataset(tmp_path / "skewed.csv", positive_row)),
        promotion={"metric": "roc_auc", "min_improvement": 0.0, "min_accuracy": 0.9},
    )
    settings = training_settings(pipelines)
    if failing_task:
        with pytest.raises(Exception, match="single class"):
            run_chain(settings, "skewed")
        assert registry.store.read("champion.json") == pointer
    else:
        out = run_chain(settings, "skewed")
        assert out["accuracy"] >= 0.99 and out["roc_auc"] is None
        assert (out["promoted"], out["champion_version"], out["model_version"]) == (
            False,
            1,
            2,
        )
        assert "the test set holds a single class" in out["decision"]
        # the report renders this run's record without failing, and says n/a and not promoted
        from types import SimpleNamespace

        from adclick_ops import notify

        class TI:
            def xcom_pull(self, task_ids):
                return out

        context = {
            "ti": TI(),
            "dag": SimpleNamespace(dag_id="Airflow_Lab2"),
            "run_id": "skewed",
            "dag_run": SimpleNamespace(logical_date="2024-01-01"),
        }
        facts = notify.report_facts(context)
        assert facts["problem"] is None
        text, html = notify.render("report.txt", facts), notify.render("report.html", facts)
        assert "ROC AUC    n/a" in text and "NOT promoted; the champion stays version 1" in text and "n/a" in html
    assert registry.champion() == 1
    assert (tmp_path / "model" / "model.sav").read_bytes() == champion_bytes


def test_fail_run_always_fails_after_recording_and_never_moves_the_champion(pipelines, tmp_path):
    run_chain(training_settings(pipelines), "good")
    weak_model(pipelines)
    set_training(pipelines, promotion={"fail_run": "always"})
    with pytest.raises(
        tasks.QualityGateError,
        match=r"lost: roc_auc 0\.\d{4} against 0\.\d{4} for the champion, version 1, on the same \d+ held-out rows; version 2 was kept, not promoted",
    ):
        run_chain(training_settings(pipelines), "weak")
    registry = registry_of(tmp_path)
    assert registry.champion() == 1 and registry.decisions()[2]["action"] == "rejected"


def test_legacy_min_accuracy_fails_below_the_floor_only(pipelines, tmp_path):
    run_chain(training_settings(pipelines), "good")
    weak_model(pipelines)
    set_training(pipelines, min_accuracy=0.5)  # the stump passes the floor, loses to the champion: the run succeeds
    out = run_chain(training_settings(pipelines), "weak")
    assert out["promoted"] is False
    set_training(pipelines, min_accuracy=0.999, scalers=["robust"])  # another model, below the floor
    with pytest.raises(
        tasks.QualityGateError,
        match=r"test accuracy 0\.\d{4} is below training\.min_accuracy 0\.999",
    ):
        run_chain(training_settings(pipelines), "weaker")


def test_a_retried_decision_task_keeps_its_version_and_decision(pipelines, tmp_path):
    settings = training_settings(pipelines)
    first = run_chain(settings, "run_1")
    again = tasks.load_model(settings=settings, run_id="run_1")
    assert (again["model_version"], again["promoted"]) == (first["model_version"], True)
    registry = registry_of(tmp_path)
    assert registry.versions() == [1] and len(registry.history()) == 1


def test_model_card_holds_what_trained_the_version(pipelines, tmp_path):
    out = run_chain(training_settings(pipelines), "manual__carded")
    card = registry_of(tmp_path).card(out["model_version"])
    import hashlib

    # the `pipelines` fixture's project root is the test's folder, with its own copy of the dataset
    dataset = pipelines.parent / "dags" / "data" / "advertising.csv"
    data = dataset.read_bytes()
    holdout = card["dataset"].pop("holdout")
    assert card["dataset"] == {
        "path": str(dataset),
        "sha256": hashlib.sha256(data).hexdigest(),
        "rows": 1000,
        "trained_on_rows": 1000 - holdout["rows"],
    }
    # the champion's card knows its inputs and the rows it never trained on
    assert holdout["share"] == 0.2 and holdout["columns"] == sorted(SEED.columns) and 150 < holdout["rows"] < 250
    pipeline_text = (pipelines / "airflow_lab2.yaml").read_text()
    assert card["pipeline"]["text"] == pipeline_text
    assert card["pipeline"]["sha256"] == hashlib.sha256(pipeline_text.encode()).hexdigest()
    assert card["metrics"]["accuracy"] == out["accuracy"] and card["metrics"]["roc_auc"] == out["roc_auc"]
    assert card["model"]["estimator"] == "logistic_regression" and card["model"]["scalers"] == ["minmax", "standard"]
    assert card["model"]["features"] == FEATURES and card["model"]["format"] == FORMAT == "onnx"
    assert card["model"]["file"] == f"models/{card['model']['sha256']}.onnx"
    assert card["model"]["onnx"]["inputs"][0]["columns"] == FEATURES
    assert card["packages"]["onnxruntime"] and card["packages"]["skl2onnx"] and card["packages"]["onnx"]
    assert card["packages"]["scikit-learn"] and card["packages"]["numpy"]
    assert card["dag_id"] == "Airflow_Lab2" and card["run_id"] == "manual__carded" and card["created_at"]


# --- concurrency: compare-and-swap of the pointer --------------------------------------------------


def test_concurrent_decisions_claim_distinct_versions_and_each_promotion_beat_its_champion(
    tmp_path,
):
    """Eight threads add and decide versions of random quality at once on one registry."""
    rng = np.random.default_rng(0)
    x = SEED[FEATURES].to_numpy(float)
    y = SEED[TARGET].to_numpy(int)
    x_train, x_test, y_train, y_test = x[:700], x[700:], y[:700], y[700:]

    def compare(number: int, candidate) -> Comparison:
        return Comparison(number, len(y_test), evaluate(candidate, x_test, y_test), evaluate(registry.load_model(number), x_test, y_test))

    registry = registry_of(tmp_path)
    models = []
    for i in range(8):
        noisy = y_train.copy()
        flip = rng.random(len(noisy)) < (i / 16)  # from clean labels to 44% flipped
        noisy[flip] = 1 - noisy[flip]
        models.append(build_pipeline(["standard"], "logistic_regression", {}).fit(x_train, noisy))
    results = {}

    def work(i):
        model = models[i]
        metrics = evaluate(model, x_test, y_test)
        number = registry.add_version(
            to_onnx(model, FEATURES),
            {"run_id": f"r{i}", "metrics": metrics, "model": {"features": FEATURES}},
        )
        candidate = load_model_bytes(registry.model_bytes(number), f"version {number}", n_features=len(FEATURES))
        results[i] = registry.decide(number, lambda champion: compare(champion, candidate), Gates(), by=f"r{i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.version for o in results.values()) == list(range(1, 9))
    scores = {o.version: registry.card(o.version)["metrics"]["roc_auc"] for o in results.values()}
    events = registry.history()
    assert len(events) == 8 and sorted(e["version"] for e in events) == list(range(1, 9))
    champion = None
    for e in events:  # in the order they were recorded, each promotion beat the champion of its time
        if e["action"] == "promoted":
            assert e["from"] == champion and (champion is None or scores[e["version"]] > scores[champion])
            champion = e["version"]
        else:
            assert e["from"] == champion
    assert registry.champion() == champion
    assert scores[champion] == max(scores.values())  # the best version serves (or one as good, decided earlier)
    assert (tmp_path / "model" / "model.sav").read_bytes() == registry.model_bytes(registry.champion())
    assert temporaries(tmp_path / "model") == []


# --- model format --------------------------------------------------------------------------------


def test_a_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker"
    with pytest.raises(UnsafeModelError, match="model/model.sav: not an ONNX model file .*looks like a pickle"):
        load_model_bytes(evil_pickle(marker), "model/model.sav")
    assert not marker.exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_are_refused_cleanly(data):
    with pytest.raises(UnsafeModelError, match=r"^x.onnx: "):
        load_model_bytes(data, "x.onnx")


def test_the_package_never_unpickles():
    pattern = (
        "pickle.load",
        "joblib.load",
        "allow_pickle=True",
        "cloudpickle",
        "dill.load",
    )
    hits = [
        f"{p}:{i}"
        for p in (PROJECT / "adclick_ops").rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if any(s in line for s in pattern)
    ]
    assert hits == []


def test_a_registry_model_file_changed_on_disk_is_refused(pipelines, tmp_path):
    out = run_chain(training_settings(pipelines), "r1")
    registry = registry_of(tmp_path)
    model_file = Path(registry.location) / registry.card(out["model_version"])["model"]["file"]
    model_file.write_bytes(evil_pickle(tmp_path / "marker"))
    with pytest.raises(RegistryError, match="does not match its card's sha256"):
        registry.load_model(1)
    assert not (tmp_path / "marker").exists()


# --- file faults around the model -----------------------------------------------------------------


@pytest.mark.parametrize("target", ["champion.json", "model.sav"])
def test_a_promotion_killed_half_way_leaves_no_temporary_file_after_the_next_run(pipelines, tmp_path, target):
    weak_model(pipelines)
    run_chain(training_settings(pipelines), "r1")
    strong_model(pipelines)  # the killed run would be promoted: it writes both the pointer and model.sav
    settings = training_settings(pipelines)
    # a second process trains, and is killed while it replaces the champion pointer (to record its decision)
    script = f"""
import os, sys, json
from adclick_ops import tasks
settings = json.loads({json.dumps(json.dumps(settings))})
for name in ("load_data", "preprocess", "separate_data_outputs", "build_save_model"):
    getattr(tasks, name)(settings=settings, run_id="killed")
real_replace = os.replace
def killed(src, dst):
    if str(dst).endswith({target!r}):
        os.kill(os.getpid(), 9)
    return real_replace(src, dst)
os.replace = killed
tasks.load_model(settings=settings, run_id="killed")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr[-3000:]
    left = temporaries(tmp_path / "model")
    assert left, "the killed process left nothing behind; the test does not test anything"
    registry = registry_of(tmp_path)
    # killed before the pointer moved, or after: then model.sav is behind until the next change
    assert registry.champion() == (1 if target == "champion.json" else 2)
    run_chain(training_settings(pipelines), "r3")
    assert temporaries(tmp_path / "model") == []
    assert (tmp_path / "model" / "model.sav").read_bytes() == registry.model_bytes(registry.champion())


def test_a_full_disk_names_the_path_and_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "model" / "model.sav"
    write_bytes_atomic(target, b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(
        StorageFullError,
        match=rf"{target}: no space left on the device .* while writing 3 bytes",
    ):
        write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert temporaries(tmp_path) == []


def test_a_full_disk_during_a_run_fails_the_run_and_keeps_the_champion(pipelines, tmp_path, monkeypatch):
    run_chain(training_settings(pipelines), "r1")
    registry = registry_of(tmp_path)
    real = os.fsync

    def full_in_registry(fd):
        if "registry" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", full_in_registry)
    strong_model(pipelines)
    set_training(pipelines, split={"test_size": 0.25, "random_state": 1, "stratify": False})
    with pytest.raises(StorageFullError, match=rf"{tmp_path / 'model' / 'registry'}.*no space left"):
        run_chain(training_settings(pipelines), "r2")
    monkeypatch.setattr(os, "fsync", real)
    assert registry.champion() == 1 and registry.versions() == [1]
    assert temporaries(tmp_path / "model") == []


def test_saving_and_loading_inside_airflow_warns_nothing():
    """Nothing warns in a task process: converting, loading and migrating a legacy skops file. On import,
    skl2onnx and skops read names from loaded modules, and Airflow's deprecated module attributes warn when
    read. A fresh process, as a task is."""
    script = f"""
import warnings
import airflow.utils.timezone  # one of Airflow's modules with deprecated attributes, loaded in every task
warnings.simplefilter("error")
import pandas as pd
from adclick_ops.registry import load_model_bytes
from adclick_ops.registry.convert import to_onnx
from adclick_ops.steps.model import build_pipeline
seed = pd.read_csv({str(PROJECT / "dags" / "data" / "advertising.csv")!r}).head(200)
x, y = seed[{FEATURES!r}].to_numpy(float), seed[{TARGET!r}].to_numpy(int)
model = build_pipeline(["minmax", "standard"], "logistic_regression", {{}}).fit(x, y)
assert (load_model_bytes(to_onnx(model, {FEATURES!r})).predict(x) == model.predict(x)).all()
# a file written by an earlier version, in skops's format, read as the migration reads it
from adclick_ops.registry.legacy import _skops_io, load_model_bytes as load_legacy
assert (load_legacy(_skops_io().dumps(model)).predict(x) == model.predict(x)).all()
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
