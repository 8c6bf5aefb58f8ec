"""adclick_ops.registry.keep: what load_model_task does with a run's model, on a real registry in a folder."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest

from adclick_ops.artifacts import RunFiles, sha256, write_bytes_atomic
from adclick_ops.registry import Registry, UnsafeModelError
from adclick_ops.registry.convert import to_onnx
from adclick_ops.registry.keep import compare_on_holdout, keep_and_decide, known_comparisons, outcome_line, read_scored_model, with_floors
from adclick_ops.steps.model import build_pipeline, evaluate
from adclick_ops.steps.promotion import Comparison, Gates

from tests.support.registry import FEATURES, SEED, TARGET

X, Y = SEED[FEATURES].to_numpy(float), SEED[TARGET].to_numpy(int)


@functools.cache
def model(c: float) -> tuple[bytes, dict]:
    """An ONNX model (logistic regression with inverse regularisation `c`) and its test metrics."""
    fitted = build_pipeline(["standard"], "logistic_regression", {"C": c}).fit(X[:700], Y[:700])
    return to_onnx(fitted, FEATURES), evaluate(fitted, X[700:], Y[700:])


def card(run_id: str, metrics: dict) -> dict:
    return {"run_id": run_id, "metrics": metrics, "model": {"features": FEATURES}}


class Compare:
    """A compare(champion) that says which champions it was asked about, and gives the held-out scores asked for."""

    def __init__(self, ours: float, theirs: float):
        self.asked: list[int] = []
        self.ours, self.theirs = ours, theirs

    def __call__(self, champion: int) -> Comparison:
        self.asked.append(champion)
        return Comparison(champion, 100, {"roc_auc": self.ours}, {"roc_auc": self.theirs})


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(str(tmp_path / "model"), "Airflow_Lab2")


def test_the_first_model_is_kept_as_version_1_and_is_champion_without_a_comparison(registry):
    blob, metrics = model(1.0)
    compare = Compare(0.9, 0.8)
    outcome = keep_and_decide(registry, blob, card("r1", metrics), Gates(), "r1", compare)
    assert (outcome.version, outcome.promoted, outcome.champion, outcome.kind) == (1, True, 1, "first")
    assert compare.asked == [] and registry.versions() == [1]


def test_a_comparison_already_made_is_used_and_not_made_again(registry):
    keep_and_decide(registry, *model_card(1.0, "r1"), Gates(), "r1", Compare(0, 0))
    compare = Compare(0.99, 0.5)  # would promote, if asked
    known = {1: Comparison(1, 100, {"roc_auc": 0.80}, {"roc_auc": 0.90})}
    outcome = keep_and_decide(registry, *model_card(0.01, "r2"), Gates(), "r2", compare, known)
    assert compare.asked == []
    assert (outcome.version, outcome.promoted, outcome.champion, outcome.kind) == (2, False, 1, "lost")
    assert outcome.summary.startswith("not promoted: lost: roc_auc 0.8000 against 0.9000 for the champion, version 1")


def test_a_champion_promoted_since_the_comparison_is_compared_here(registry):
    keep_and_decide(registry, *model_card(1.0, "r1"), Gates(), "r1", Compare(0, 0))
    keep_and_decide(registry, *model_card(0.01, "r2"), Gates(), "r2", Compare(0.95, 0.9))  # version 2 takes over
    compare = Compare(0.97, 0.95)
    known = {1: Comparison(1, 100, {"roc_auc": 0.5}, {"roc_auc": 0.9})}  # made against version 1, no longer champion
    outcome = keep_and_decide(registry, *model_card(0.1, "r3"), Gates(), "r3", compare, known)
    assert compare.asked == [2]
    assert (outcome.version, outcome.promoted, outcome.previous_champion, outcome.champion) == (3, True, 2, 3)


def test_an_identical_retrain_is_recorded_against_its_version_and_adds_none(registry):
    keep_and_decide(registry, *model_card(1.0, "r1"), Gates(), "r1", Compare(0, 0))
    compare = Compare(0.99, 0.5)
    outcome = keep_and_decide(registry, *model_card(1.0, "r2"), Gates(), "r2", compare)
    assert (outcome.version, outcome.promoted, outcome.champion, outcome.kind) == (1, False, 1, "identical")
    assert compare.asked == [] and registry.versions() == [1]
    assert outcome.reasons[0].startswith("identical: run r2 trained the model of version 1 (run r1) again") and not outcome.fails_run


def test_an_identical_retrain_below_a_floor_says_so_and_fails_the_run_when_asked(registry):
    keep_and_decide(registry, *model_card(1.0, "r1"), Gates(), "r1", Compare(0, 0))
    gates = Gates(floors={"accuracy": 0.999}, fail_run="below_floor")
    outcome = keep_and_decide(registry, *model_card(1.0, "r2"), gates, "r2", Compare(0, 0))
    assert outcome.kind == "identical" and outcome.fails_run
    assert outcome.failed[0].startswith("accuracy ") and outcome.failed[0].endswith("< 0.999")
    assert "is below training.promotion.min_accuracy 0.999" in outcome.reasons[1]


def test_a_version_whose_run_stopped_before_deciding_is_decided_by_the_run_that_trains_it_again(registry):
    blob, metrics = model(1.0)
    registry.add_version(blob, card("r1", metrics))  # r1 stopped here
    outcome = keep_and_decide(registry, blob, card("r2", metrics), Gates(), "r2", Compare(0, 0))
    assert (outcome.version, outcome.promoted, outcome.kind) == (1, True, "first") and registry.versions() == [1]


def test_with_floors_leaves_an_outcome_that_meets_them_as_it_was(registry):
    keep_and_decide(registry, *model_card(1.0, "r1"), Gates(), "r1", Compare(0, 0))
    outcome = registry.record_retrain(1, "r2", by="run r2")
    assert with_floors(outcome, model(1.0)[1], Gates(floors={"accuracy": 0.5})) == outcome


def test_known_comparisons_reads_the_one_build_save_model_task_made():
    made = Comparison(4, 212, {"roc_auc": 0.9}, {"roc_auc": 0.8}, note="n")
    assert known_comparisons({"comparison": made.as_json()}) == {4: made}
    assert known_comparisons({"comparison": None}) == {} == known_comparisons({})


def test_the_scored_file_is_read_and_a_changed_one_refused(tmp_path):
    run = RunFiles(str(tmp_path / "runs"), "Airflow_Lab2", "r1", model_dir=str(tmp_path / "model"), model_file="model.sav")
    blob = model(1.0)[0]
    write_bytes_atomic(run.candidate_model, blob)
    assert read_scored_model(run, {"sha256": sha256(blob)}) == blob
    with pytest.raises(UnsafeModelError, match=r"model.sav: the model file changed after build_save_model_task saved and scored it"):
        read_scored_model(run, {"sha256": "0" * 64})


def test_outcome_line_says_what_serves(registry):
    promoted = keep_and_decide(registry, *model_card(1.0, "r1"), Gates(), "r1", Compare(0, 0))
    assert outcome_line(promoted, "Lab") == f"version 1 of Lab is the champion now: {promoted.summary}"
    assert promoted.summary.startswith("promoted: first version (roc_auc ")
    kept = keep_and_decide(registry, *model_card(0.01, "r2"), Gates(), "r2", Compare(0.5, 0.9))
    assert outcome_line(kept, "Lab").startswith("version 2 of Lab was kept but not promoted (champion: version 1): not promoted: lost")


def model_card(c: float, run_id: str) -> tuple[bytes, dict]:
    blob, metrics = model(c)
    return blob, card(run_id, metrics)


def held_out_rows(share: float) -> tuple[dict, dict]:
    """What load_data_task keeps of the held-out rows of the seed dataset: the last 300 rows, in buckets below `share`."""
    columns = [*FEATURES, TARGET]
    holdout = {"share": share, "columns": sorted(columns), "numeric": columns}
    arrays = {"bucket": np.zeros(300, dtype="int64"), "y": Y[700:]} | {
        f"column{i}": SEED[c].to_numpy(float)[700:] for i, c in enumerate(columns)
    }
    return holdout, arrays


def test_the_champion_is_scored_on_the_held_out_rows_through_its_own_features(registry):
    keep_and_decide(registry, *model_card(1.0, "r1"), Gates(), "r1", Compare(0, 0))
    holdout, arrays = held_out_rows(0.2)
    job = SimpleNamespace(target=TARGET, dataset="d.csv", features=FEATURES)
    candidate = build_pipeline(["minmax"], "logistic_regression", {"C": 0.01}).fit(X[:700], Y[:700])
    comparison = compare_on_holdout(registry, 1, candidate, holdout, arrays, job)
    assert comparison.problem is None and comparison.rows == 300
    # each scored through its own file on rows 700 on: version 1 through onnxruntime, the candidate as given
    assert comparison.champion["confusion_matrix"] == model(1.0)[1]["confusion_matrix"]
    assert comparison.champion["roc_auc"] == pytest.approx(model(1.0)[1]["roc_auc"], abs=1e-6)
    assert comparison.candidate == evaluate(candidate, X[700:], Y[700:])
    assert comparison.note.startswith("version 1 was trained before rows were held out")


def test_a_champion_that_cannot_be_scored_is_a_comparison_with_the_reason(registry):
    keep_and_decide(registry, *model_card(1.0, "r1"), Gates(), "r1", Compare(0, 0))
    holdout, arrays = held_out_rows(0.2)
    job = SimpleNamespace(target=TARGET, dataset="d.csv", features=FEATURES)
    arrays["bucket"][:] = 9_999  # no row below the share
    assert compare_on_holdout(registry, 1, None, holdout, arrays, job).problem == "no row of d.csv is held out at share 0.2"
    assert compare_on_holdout(registry, 7, None, holdout, arrays, job).problem.startswith("its card cannot be read: ")
