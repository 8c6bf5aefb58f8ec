"""adclick_ops.steps.promotion: the gates a new version must pass to become champion, on plain metrics."""

from __future__ import annotations

import pytest

from adclick_ops.config.models import Training
from adclick_ops.steps.promotion import (
    Against,
    Comparison,
    Gates,
    against_champion,
    comparison_problem,
    decide,
    floor_failures,
    gate_failure,
    undefined_metrics,
)


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


def versus(ours: float, theirs: float, version: int = 4, rows: int = 200, **other: float) -> Comparison:
    """The new version and champion `version` scored on the same held-out rows."""
    return Comparison(version, rows, metrics(roc_auc=ours, **other), metrics(roc_auc=theirs))


def test_the_first_version_is_promoted():
    decision = decide(metrics(), None, Gates())
    assert decision.promote and decision.reasons == ()
    assert decision.summary == "promoted: first version (roc_auc 0.9800)"


@pytest.mark.parametrize(
    "ours,theirs,margin,promote,kind",
    [
        (0.98, 0.97, 0.0, True, "won"),
        (0.97, 0.97, 0.0, False, "tie"),
        (0.9810, 0.9811, 0.0, False, "lost"),
        (0.96, 0.97, 0.0, False, "lost"),
        (0.98, 0.97, 0.02, False, "lost"),
        (0.99, 0.97, 0.02, True, "won"),
    ],
)
def test_a_version_must_beat_the_champion_by_the_margin_on_the_same_rows(ours, theirs, margin, promote, kind):
    decision = decide(metrics(), versus(ours, theirs), Gates(min_improvement=margin))
    assert (decision.promote, decision.kind) == (promote, kind)
    assert "on the same 200 held-out rows" in decision.summary and "version 4" in decision.summary
    # the test-set roc_auc (0.98) plays no part: the comparison is on the held-out rows
    assert f"{ours:.4f}" in decision.summary and f"{theirs:.4f}" in decision.summary


def outcome_cases():
    """Every pair of held-out scores on a grid, with and without a margin: the kind is exactly what holds."""
    grid = [0.5, 0.9, 0.9001, 0.95, 1.0]
    for ours in grid:
        for theirs in grid:
            for margin in (0.0, 0.0001, 0.05):
                yield ours, theirs, margin


@pytest.mark.parametrize("ours,theirs,margin", list(outcome_cases()))
def test_decision_texts_say_lost_tie_or_incomparable_exactly_when_each_holds(ours, theirs, margin):
    decision = decide(metrics(), versus(ours, theirs), Gates(min_improvement=margin))
    expected = "tie" if ours == theirs else "lost" if ours < theirs or ours - theirs < margin else "won"
    assert decision.kind == expected
    assert decision.promote is (expected == "won")
    for word in ("lost", "tie", "incomparable"):
        assert (f"{word}:" in decision.summary) is (word == expected), (word, decision.summary)


def test_floors_name_the_field_that_set_them_and_decide_whether_the_run_fails():
    gates = Gates.from_promotion(Training(min_accuracy=0.96).gates(), Training(min_accuracy=0.96).gates_field())
    decision = decide(metrics(accuracy=0.95), None, gates)
    assert not decision.promote and decision.below_floor
    assert decision.reasons == ("test accuracy 0.9500 is below training.min_accuracy 0.96",)
    assert decision.fails_run(gates)  # the earlier spelling fails the run below its floor
    lost = decide(metrics(accuracy=0.97), versus(0.9, 0.98, version=1), gates)
    assert not lost.promote and lost.kind == "lost" and not lost.fails_run(gates)  # above the floor, losing to the champion does not


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


@pytest.mark.parametrize("policy", ["keep", "promote"])
def test_a_champion_that_cannot_be_scored_is_kept_unless_the_yaml_says_promote(policy):
    problem = "its feature column(s) 'Age' are not numeric columns of data.csv"
    decision = decide(metrics(), Comparison(2, problem=problem), Gates(on_incomparable=policy))
    assert decision.kind == "incomparable" and decision.promote is (policy == "promote")
    assert f"incomparable: the champion, version 2, cannot be scored on the held-out rows: {problem}" in decision.summary
    assert ("the champion is kept (training.promotion.on_incomparable: keep)" in decision.summary) is (policy == "keep")
    assert "lost" not in decision.summary and "tie" not in decision.summary


def test_held_out_scores_that_are_undefined_make_the_champion_incomparable():
    decision = decide(metrics(), Comparison(3, 40, metrics(roc_auc=None), metrics(roc_auc=None)), Gates())
    assert decision.kind == "incomparable" and not decision.promote
    assert "roc_auc of the new version is undefined on the 40 held-out rows" in decision.summary


REJECTIONS = [
    # (candidate, champion, gates, the line)
    pytest.param(
        metrics(accuracy=0.88), None, Gates(floors={"accuracy": 0.9}), "model v7 not promoted: accuracy 0.880 < 0.900", id="floor"
    ),
    pytest.param(
        metrics(accuracy=0.88, roc_auc=0.95),
        Comparison(6, 100, metrics(roc_auc=0.95), metrics(roc_auc=0.96)),
        Gates(floors={"accuracy": 0.9, "roc_auc": 0.97}),
        "model v7 not promoted: accuracy 0.880 < 0.900; roc_auc 0.950 < 0.970; roc_auc 0.9500 < champion v6 0.9600",
        id="every failed gate",
    ),
    pytest.param(
        metrics(),
        Comparison(6, 100, metrics(roc_auc=0.965), metrics(roc_auc=0.96)),
        Gates(min_improvement=0.01),
        "model v7 not promoted: roc_auc 0.9650 < champion v6 0.9600 + 0.01",
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

    decision = decide(candidate, champion, gates)
    assert not decision.promote
    assert rejection(7, decision) == line


# --- the parts of the decision, each on its own ------------------------------------------------------------


def test_floor_failures_name_each_floor_missed_and_only_those():
    gates = Gates(floors={"accuracy": 0.9, "roc_auc": 0.95}, where="training.promotion")
    assert floor_failures(metrics(accuracy=0.95, roc_auc=0.98), gates) == ([], [])
    reasons, failed = floor_failures(metrics(accuracy=0.88, roc_auc=0.98), gates)
    assert reasons == ["test accuracy 0.8800 is below training.promotion.min_accuracy 0.9"]
    assert failed == ["accuracy 0.880 < 0.900"]
    reasons, failed = floor_failures(metrics(accuracy=0.88, roc_auc=0.9), gates)
    assert failed == ["accuracy 0.880 < 0.900", "roc_auc 0.900 < 0.950"]
    assert reasons[1] == "test roc_auc 0.9000 is below training.promotion.min_roc_auc 0.95"


@pytest.mark.parametrize(
    "comparison,problem",
    [
        (Comparison(2, problem="its file fails its checks: x"), "its file fails its checks: x"),
        (
            Comparison(2, 10, metrics(roc_auc=None), metrics()),
            "roc_auc of the new version is undefined on the 10 held-out rows (found None)",
        ),
        (
            Comparison(2, 10, metrics(), metrics(roc_auc=float("nan"))),
            "roc_auc of the champion is undefined on the 10 held-out rows (found nan)",
        ),
        (Comparison(2, 10, None, metrics()), "roc_auc of the new version is undefined on the 10 held-out rows (found None)"),
        (Comparison(2, 10, metrics(), metrics()), None),
    ],
)
def test_comparison_problem_says_why_the_two_cannot_be_compared(comparison, problem):
    assert comparison_problem(comparison, "roc_auc") == problem


@pytest.mark.parametrize(
    "ours,theirs,margin,kind",
    [(0.98, 0.97, 0.0, None), (0.97, 0.97, 0.0, "tie"), (0.96, 0.97, 0.0, "lost"), (0.98, 0.97, 0.02, "lost"), (0.99, 0.97, 0.02, None)],
)
def test_against_champion_is_won_lost_or_a_tie(ours, theirs, margin, kind):
    against = against_champion(versus(ours, theirs), Gates(min_improvement=margin))
    assert against.kind == kind and against.incomparable is None
    assert (against.reason is None) == (kind is None) and (against.failed is None) == (kind is None)
    if kind is not None:
        assert against.reason.startswith(f"{kind}: roc_auc {ours:.4f}")


@pytest.mark.parametrize("on_incomparable", ["keep", "promote"])
def test_against_an_incomparable_champion_keeps_it_unless_asked(on_incomparable):
    against = against_champion(Comparison(3, problem="its card cannot be read"), Gates(on_incomparable=on_incomparable))
    incomparable = "incomparable: the champion, version 3, cannot be scored on the held-out rows: its card cannot be read"
    assert against.incomparable == incomparable
    if on_incomparable == "keep":
        assert against == Against(
            "incomparable",
            f"{incomparable}; the champion is kept (training.promotion.on_incomparable: keep)",
            "champion v3 incomparable",
            incomparable,
        )
    else:
        assert against.kind is None and against.reason is None


@pytest.mark.parametrize(
    "where,fail_run,asked",
    [
        ("training", "below_floor", "training.min_accuracy fails the run below it"),
        ("training.promotion", "always", "training.promotion.fail_run: always"),
    ],
)
def test_gate_failure_heads_with_the_failed_gates_and_says_which_setting_failed_the_run(where, fail_run, asked):
    message = gate_failure(
        7, ("accuracy 0.880 < 0.900",), ("test accuracy 0.8800 is below x",), Gates(where=where, fail_run=fail_run), "/m/model.sav"
    )
    headline, detail = message.split("\n")
    assert headline == "model v7 not promoted: accuracy 0.880 < 0.900"
    assert detail == f"test accuracy 0.8800 is below x; version 7 was kept, not promoted, and /m/model.sav is unchanged ({asked})"
    # without short failures (an identical retrain), the reasons head it
    assert gate_failure(7, (), ("identical: ...",), Gates(), "/m").startswith("model v7 not promoted: identical: ...\n")
