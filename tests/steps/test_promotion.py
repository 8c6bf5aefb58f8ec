"""adclick_ops.steps.promotion: the gates a new version must pass to become champion, on plain metrics."""

from __future__ import annotations

import pytest

from adclick_ops.config.models import Training
from adclick_ops.steps.promotion import Gates, decide, undefined_metrics


def metrics(accuracy: float = 0.95, roc_auc: float | None = 0.98, **other: float) -> dict:
    return {
        "accuracy": accuracy,
        "precision": 0.9,
        "recall": 0.9,
        "f1": 0.9,
        "roc_auc": roc_auc,
        "confusion_matrix": [[140, 10], [5, 145]],
        **other,
    }


def test_the_first_version_is_promoted():
    decision = decide(metrics(), None, Gates())
    assert decision.promote and decision.reasons == ()
    assert decision.summary == "promoted: first version (roc_auc 0.9800)"


@pytest.mark.parametrize(
    "ours,theirs,margin,promote",
    [(0.98, 0.97, 0.0, True), (0.97, 0.97, 0.0, False), (0.96, 0.97, 0.0, False), (0.98, 0.97, 0.02, False), (0.99, 0.97, 0.02, True)],
)
def test_a_version_must_beat_the_champion_by_the_margin(ours, theirs, margin, promote):
    decision = decide(metrics(roc_auc=ours), metrics(roc_auc=theirs), Gates(min_improvement=margin), champion_version=4)
    assert decision.promote is promote
    if not promote:
        assert "does not beat the champion, version 4" in decision.summary


def test_floors_name_the_field_that_set_them_and_decide_whether_the_run_fails():
    gates = Gates.from_promotion(Training(min_accuracy=0.96).gates(), Training(min_accuracy=0.96).gates_field())
    decision = decide(metrics(accuracy=0.95), None, gates)
    assert not decision.promote and decision.below_floor
    assert decision.reasons == ("test accuracy 0.9500 is below training.min_accuracy 0.96",)
    assert decision.fails_run(gates)  # the earlier spelling fails the run below its floor
    lost = decide(metrics(accuracy=0.97, roc_auc=0.9), metrics(roc_auc=0.98), gates, champion_version=1)
    assert not lost.promote and not lost.fails_run(gates)  # above the floor, losing to the champion does not


def test_the_promotion_section_spells_its_own_field_and_floors():
    training = Training(promotion={"min_roc_auc": 0.99, "fail_run": "always"})
    gates = Gates.from_promotion(training.gates(), training.gates_field())
    assert gates.floors == {"roc_auc": 0.99} and gates.fail_run == "always"
    decision = decide(metrics(), None, gates)
    assert decision.reasons == ("test roc_auc 0.9800 is below training.promotion.min_roc_auc 0.99",)
    assert decision.fails_run(gates)


def test_without_a_promotion_section_the_defaults_apply():
    training = Training()
    assert Gates.from_promotion(training.gates(), training.gates_field()) == Gates()


def test_a_single_class_test_set_is_never_promoted():
    one_class = metrics(accuracy=0.997, roc_auc=None, confusion_matrix=[[997, 0], [0, 0]])
    assert "the test set holds a single class, 0 (not clicked), in 997 rows" in undefined_metrics(one_class)
    decision = decide(one_class, None, Gates())
    assert not decision.promote and decision.summary.startswith("not promoted: the test set holds a single class")


def test_a_champion_that_cannot_be_scored_is_not_compared():
    decision = decide(metrics(), None, Gates(), champion_version=2, champion_problem="ValueError: 4 features, expected 5")
    assert decision.promote
    assert "the champion, version 2, could not be compared: ValueError: 4 features, expected 5" in decision.summary


REJECTIONS = [
    # (candidate, champion, gates, the line)
    pytest.param(
        metrics(accuracy=0.88), None, Gates(floors={"accuracy": 0.9}), "model v7 not promoted: accuracy 0.880 < 0.900", id="floor"
    ),
    pytest.param(
        metrics(accuracy=0.88, roc_auc=0.95),
        metrics(roc_auc=0.96),
        Gates(floors={"accuracy": 0.9, "roc_auc": 0.97}),
        "model v7 not promoted: accuracy 0.880 < 0.900; roc_auc 0.950 < 0.970; roc_auc 0.950 <= champion v6 0.960",
        id="every failed gate",
    ),
    pytest.param(
        metrics(roc_auc=0.965),
        metrics(roc_auc=0.96),
        Gates(min_improvement=0.01),
        "model v7 not promoted: roc_auc 0.965 < champion v6 0.960 + 0.01",
        id="margin",
    ),
    pytest.param(
        metrics(confusion_matrix=[[0, 0], [10, 290]]),
        None,
        Gates(),
        "model v7 not promoted: the test set holds a single class, 1 (clicked), in 300 rows; its metrics are undefined",
        id="undefined",
    ),
]


@pytest.mark.parametrize("candidate,champion,gates,line", REJECTIONS)
def test_a_rejection_reads_as_one_line_naming_each_failed_gate(candidate, champion, gates, line):
    from adclick_ops.steps.promotion import rejection

    decision = decide(candidate, champion, gates, champion_version=6 if champion else None)
    assert not decision.promote
    assert rejection(7, decision) == line
