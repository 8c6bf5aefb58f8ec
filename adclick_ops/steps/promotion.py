"""The promotion gates: whether a newly trained version may replace the champion. Pure functions over metrics.

A version becomes champion only when every gate passes: its metrics are defined (both classes in
the test set, a usable ROC AUC), it meets the floors, and it beats the champion, re-scored on the
same test set, by at least the margin. Ties keep the champion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adclick_ops.config.vocabulary import METRICS, PROMOTION_METRIC, FailRun, MetricName

if TYPE_CHECKING:
    from adclick_ops.config.models import Promotion


@dataclass(frozen=True)
class Gates:
    """The promotion gates of a pipeline; `where` names the YAML field that set the floors."""

    metric: MetricName = PROMOTION_METRIC
    min_improvement: float = 0.0
    floors: dict[MetricName, float] = field(default_factory=dict)
    fail_run: FailRun = "never"
    where: str = "training.promotion"

    @classmethod
    def from_promotion(cls, promotion: Promotion, where: str) -> Gates:
        """The gates of a validated `promotion` section (`TrainingJob.gates()`, `TrainingJob.gates_field()`)."""
        floors: dict[MetricName, float] = {
            name: floor for name, floor in (("accuracy", promotion.min_accuracy), ("roc_auc", promotion.min_roc_auc)) if floor is not None
        }
        return cls(promotion.metric, promotion.min_improvement, floors, promotion.fail_run, where)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: tuple[str, ...]  # why not, one per failed gate; empty when promoted
    summary: str  # one line for logs, e-mails and the history
    below_floor: bool = False
    champion_metrics: dict[str, Any] | None = None
    failed: tuple[str, ...] = ()  # the failed gates, short: "accuracy 0.880 < 0.900"

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


def decide(
    candidate: dict[str, Any],
    champion: dict[str, Any] | None,
    gates: Gates,
    *,
    champion_version: int | None = None,
    champion_problem: str | None = None,
) -> Decision:
    """Apply the gates. `champion` holds the champion's metrics on the same test set (None: no champion,
    or it could not be scored; `champion_problem` then says why)."""
    undefined = undefined_metrics(candidate)
    if undefined:
        return Decision(False, (undefined,), f"not promoted: {undefined}", champion_metrics=champion, failed=(undefined,))
    reasons, failed = [], []
    for name, floor in gates.floors.items():
        if candidate[name] < floor:
            label = "test accuracy" if name == "accuracy" else f"test {name}"
            reasons.append(f"{label} {_fmt(candidate[name])} is below {gates.where}.min_{name} {floor:g}")
            failed.append(f"{name} {_short(candidate[name])} < {_short(floor)}")
    below_floor = bool(reasons)
    metric = gates.metric
    if champion is not None and champion_version is not None:
        ours, theirs = candidate[metric], champion.get(metric)
        if theirs is not None and math.isfinite(theirs):
            gain = ours - theirs
            if gain <= 0 or gain < gates.min_improvement:
                need = f"by at least {gates.min_improvement:g}" if gates.min_improvement > 0 else "(a tie keeps the champion)"
                reasons.append(
                    f"{metric} {_fmt(ours)} does not beat the champion, version {champion_version}, re-scored on the same "
                    f"test set at {_fmt(theirs)}, {need}"
                )
                margin = f" + {gates.min_improvement:g}" if gates.min_improvement > 0 else ""
                # a tie keeps the champion: without a margin, the new version must be strictly better
                failed.append(f"{metric} {_short(ours)} {'<' if margin else '<='} champion v{champion_version} {_short(theirs)}{margin}")
    if reasons:
        return Decision(
            False,
            tuple(reasons),
            "not promoted: " + "; ".join(reasons),
            below_floor,
            champion,
            tuple(failed),
        )
    if champion_version is None:
        summary = f"promoted: first version ({metric} {_fmt(candidate[metric])})"
    elif champion is None:
        summary = f"promoted: meets the floors; the champion, version {champion_version}, could not be compared: {champion_problem}"
    else:
        summary = (
            f"promoted: {metric} {_fmt(candidate[metric])} beats the champion, version {champion_version}, "
            f"re-scored on the same test set ({_fmt(champion[metric])})"
        )
    return Decision(True, (), summary, False, champion)
