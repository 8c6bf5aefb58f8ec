"""The champion decision: whether a newly trained version replaces the champion. One pure function, `decide`.

A version becomes champion only when every gate passes: its test metrics are defined (both classes
in the test set, a usable ROC AUC), it meets the floors, and it beats the champion by at least the
margin, both scored on the same held-out rows, which neither trained on (steps.holdout). The
decision says which of these held: the new version "lost", it was a "tie" (a tie keeps the
champion), or the champion was "incomparable" (it could not be scored on those rows; it is kept
unless `promotion.on_incomparable: promote`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adclick_ops.config.vocabulary import METRICS, PROMOTION_METRIC, FailRun, MetricName, OnIncomparable

if TYPE_CHECKING:
    from adclick_ops.config.models import Promotion


@dataclass(frozen=True)
class Comparison:
    """The new version and the champion scored on the same held-out rows, or why the champion could not be scored."""

    champion_version: int
    rows: int = 0
    candidate: dict[str, Any] | None = None  # the new version's metrics on those rows
    champion: dict[str, Any] | None = None  # the champion's metrics on those rows
    problem: str | None = None  # why the champion could not be scored; then the metrics are None
    note: str | None = None  # what the reader should know about the rows (a champion older than the holdout)

    def as_json(self) -> dict[str, Any]:
        return {
            "champion_version": self.champion_version,
            "rows": self.rows,
            "candidate": self.candidate,
            "champion": self.champion,
            "problem": self.problem,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Comparison:
        return cls(**{k: data.get(k) for k in ("champion_version", "rows", "candidate", "champion", "problem", "note")})


@dataclass(frozen=True)
class Gates:
    """The promotion gates of a pipeline; `where` names the YAML field that set the floors."""

    metric: MetricName = PROMOTION_METRIC
    min_improvement: float = 0.0
    floors: dict[MetricName, float] = field(default_factory=dict)
    fail_run: FailRun = "never"
    where: str = "training.promotion"
    on_incomparable: OnIncomparable = "keep"

    @classmethod
    def from_promotion(cls, promotion: Promotion, where: str) -> Gates:
        """The gates of a validated `promotion` section (`TrainingJob.gates()`, `TrainingJob.gates_field()`)."""
        floors: dict[MetricName, float] = {
            name: floor for name, floor in (("accuracy", promotion.min_accuracy), ("roc_auc", promotion.min_roc_auc)) if floor is not None
        }
        return cls(promotion.metric, promotion.min_improvement, floors, promotion.fail_run, where, promotion.on_incomparable)


@dataclass(frozen=True)
class Decision:
    """What `decide` found: promote or not, and why. `kind` is one of KINDS."""

    promote: bool
    reasons: tuple[str, ...]  # why not, one per failed gate; empty when promoted
    summary: str  # one line for logs, e-mails and the history
    below_floor: bool = False
    champion_metrics: dict[str, Any] | None = None
    failed: tuple[str, ...] = ()  # the failed gates, short: "accuracy 0.880 < 0.900"
    kind: str = "won"
    champion_version: int | None = None

    def fails_run(self, gates: Gates) -> bool:
        if self.promote:
            return False
        return gates.fail_run == "always" or (gates.fail_run == "below_floor" and self.below_floor)


def undefined_metrics(metrics: dict[str, Any]) -> str | None:
    """Why the metrics of a test set cannot be trusted to compare models, or None."""
    matrix = metrics.get("confusion_matrix")
    if matrix:
        negatives, positives = sum(matrix[0]), sum(matrix[1])
        if negatives == 0 or positives == 0:
            present = "1 (clicked)" if negatives == 0 else "0 (not clicked)"
            return f"the test set holds a single class, {present}, in {negatives + positives} rows; its metrics are undefined"
    for name in METRICS:
        value = metrics.get(name)
        if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{name} is undefined on the test set (found {value!r})"
    return None


def _fmt(value: float) -> str:
    return f"{value:.4f}"


def _short(value: float) -> str:
    return f"{value:.3f}"


def rejection(version: int, decision: Decision) -> str:
    """The one line that says why a version was not promoted: `model v7 not promoted: accuracy 0.880 < 0.900`."""
    failed = decision.failed or decision.reasons
    return f"model v{version} not promoted: " + "; ".join(failed)


KINDS = ("first", "won", "lost", "tie", "incomparable", "below_floor", "undefined")
# recorded by the registry, not decided: a retrain that gave an existing version's model byte for byte
IDENTICAL = "identical"


def _versus(comparison: Comparison) -> str:
    return f"the champion, version {comparison.champion_version}, on the same {comparison.rows} held-out rows"


# split pending: this module is being changed on another branch; split at merge
def decide(candidate: dict[str, Any], comparison: Comparison | None, gates: Gates) -> Decision:  # noqa: C901
    """The champion decision. `candidate` holds the new version's test-set metrics (for the floors);
    `comparison` the new version and the champion on the same held-out rows (None: there is no champion)."""
    champion_version = comparison.champion_version if comparison else None
    theirs_all = comparison.champion if comparison else None
    undefined = undefined_metrics(candidate)
    if undefined:
        return Decision(False, (undefined,), f"not promoted: {undefined}", False, theirs_all, (undefined,), "undefined", champion_version)
    reasons, failed = [], []
    for name, floor in gates.floors.items():
        if candidate[name] < floor:
            label = "test accuracy" if name == "accuracy" else f"test {name}"
            reasons.append(f"{label} {_fmt(candidate[name])} is below {gates.where}.min_{name} {floor:g}")
            failed.append(f"{name} {_short(candidate[name])} < {_short(floor)}")
    below_floor = bool(reasons)
    kind = "below_floor" if below_floor else "won"
    metric = gates.metric
    incomparable = None
    if comparison is not None:
        problem = comparison.problem
        if problem is None:
            ours, theirs = (comparison.candidate or {}).get(metric), (comparison.champion or {}).get(metric)
            for who, value in (("the new version", ours), ("the champion", theirs)):
                if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
                    problem = f"{metric} of {who} is undefined on the {comparison.rows} held-out rows (found {value!r})"
                    break
        if problem is not None:
            incomparable = (
                f"incomparable: the champion, version {comparison.champion_version}, cannot be scored on the held-out rows: {problem}"
            )
            if gates.on_incomparable == "keep":
                reasons.append(f"{incomparable}; the champion is kept ({gates.where}.on_incomparable: keep)")
                failed.append(f"champion v{comparison.champion_version} incomparable")
                kind = "below_floor" if below_floor else "incomparable"
        else:
            gain = ours - theirs
            if gain == 0:
                reasons.append(f"tie: {metric} {_fmt(ours)} equals that of {_versus(comparison)}; a tie keeps the champion")
                failed.append(f"{metric} {_fmt(ours)} = champion v{comparison.champion_version} {_fmt(theirs)} (tie)")
                kind = "below_floor" if below_floor else "tie"
            elif gain < 0:
                reasons.append(f"lost: {metric} {_fmt(ours)} against {_fmt(theirs)} for {_versus(comparison)}")
                failed.append(f"{metric} {_fmt(ours)} < champion v{comparison.champion_version} {_fmt(theirs)}")
                kind = "below_floor" if below_floor else "lost"
            elif gain < gates.min_improvement:
                reasons.append(
                    f"lost: {metric} {_fmt(ours)} beats {_fmt(theirs)} for {_versus(comparison)} by {_fmt(gain)}, "
                    f"less than {gates.where}.min_improvement {gates.min_improvement:g}"
                )
                failed.append(f"{metric} {_fmt(ours)} < champion v{comparison.champion_version} {_fmt(theirs)} + {gates.min_improvement:g}")
                kind = "below_floor" if below_floor else "lost"
    if reasons:
        note = f" ({comparison.note})" if comparison is not None and comparison.note and incomparable is None else ""
        return Decision(
            False,
            tuple(reasons),
            "not promoted: " + "; ".join(reasons) + note,
            below_floor,
            theirs_all,
            tuple(failed),
            kind,
            champion_version,
        )
    if comparison is None:
        return Decision(True, (), f"promoted: first version ({metric} {_fmt(candidate[metric])})", kind="first")
    if incomparable is not None:
        summary = f"promoted: {incomparable}; the new version meets the floors and {gates.where}.on_incomparable is promote"
        return Decision(True, (), summary, False, None, (), "incomparable", champion_version)
    note = f" ({comparison.note})" if comparison.note else ""
    summary = (
        f"promoted: {metric} {_fmt(comparison.candidate[metric])} beats {_fmt(comparison.champion[metric])} for {_versus(comparison)}{note}"
    )
    return Decision(True, (), summary, False, theirs_all, (), "won", champion_version)
