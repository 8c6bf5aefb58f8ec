"""What build_save_model_task and load_model_task do with the registry, without Airflow: compare the new model
with the champion on the held-out rows, keep it as a version, and decide the champion.

The tasks read their inputs and write their outputs; here the champion is scored on the rows neither
model trained on (steps.holdout.champion_rows), the model file is checked against what was scored,
an identical retrain is recorded against its existing version, and a new version is kept and
decided (Registry.decide, which calls steps.promotion.decide).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from adclick_ops.artifacts import RunFiles, read_model_file, sha256
from adclick_ops.registry.registry import Outcome, Registry
from adclick_ops.registry.serialization import UnsafeModelError
from adclick_ops.steps.promotion import Comparison, Gates, decide

if TYPE_CHECKING:
    from adclick_ops.config.models import TrainingJob


def read_scored_model(run: RunFiles, scores: dict[str, Any]) -> bytes:
    """The run's saved model file, refused unless it is the file build_save_model_task scored (its sha256)."""
    blob = read_model_file(run.candidate_model, [run.folder, run.model_dir])
    if sha256(blob) != scores["sha256"]:
        raise UnsafeModelError(
            f"{run.candidate_model}: the model file changed after build_save_model_task saved and scored it; expected sha256 "
            f"{scores['sha256']}, found {sha256(blob)}"
        )
    return blob


def compare_on_holdout(
    registry: Registry, champion: int, candidate: Any, holdout: dict[str, Any], arrays: dict[str, Any], job: TrainingJob
) -> Comparison:
    """The new version (`candidate`, anything with predict_proba) and version `champion` on the same held-out rows,
    each through its own features (steps.holdout.champion_rows). `holdout` and `arrays` are what load_data_task
    kept of those rows. A champion that cannot be scored gives a Comparison with the reason instead of metrics."""
    import numpy as np

    from adclick_ops.steps.holdout import champion_rows, held_out
    from adclick_ops.steps.model import evaluate

    try:
        card = registry.card(champion)
    except Exception as exc:  # noqa: BLE001 - a damaged card: the champion cannot be scored
        return Comparison(champion, problem=f"its card cannot be read: {exc}")
    found = champion_rows(champion, card, holdout, job.target, job.dataset)
    if found.problem is not None:
        return Comparison(champion, problem=found.problem)
    rows = held_out(arrays["bucket"], found.share)

    def inputs(features: list[str]) -> Any:
        return np.column_stack([arrays[f"column{holdout['numeric'].index(f)}"][rows] for f in features]).astype("float64")

    x_theirs = inputs(card["model"]["features"])
    if not np.isfinite(x_theirs).all():
        return Comparison(champion, problem="its feature columns have missing or infinite values in the held-out rows")
    if not rows.any():
        return Comparison(champion, problem=f"no row of {job.dataset} is held out at share {found.share:g}")
    try:
        their_metrics = evaluate(registry.load_model(champion), x_theirs, arrays["y"][rows])
    except Exception as exc:  # noqa: BLE001 - its file fails its checks, or scoring fails: the decision says so
        return Comparison(champion, problem=f"its file fails its checks: {exc}")
    our_metrics = evaluate(candidate, inputs(list(job.features)), arrays["y"][rows])
    return Comparison(champion, int(rows.sum()), our_metrics, their_metrics, note=found.note)


def known_comparisons(scores: dict[str, Any]) -> dict[int, Comparison]:
    """The comparison with the champion that build_save_model_task made, by the champion's version."""
    made = scores.get("comparison")
    return {made["champion_version"]: Comparison.from_json(made)} if made else {}


def with_floors(outcome: Outcome, metrics: dict[str, Any], gates: Gates) -> Outcome:
    """An identical retrain's outcome, with the floors its metrics fail (the champion stays; the floors may still fail the run)."""
    floors = decide(metrics, None, gates)
    if floors.promote:
        return outcome
    return dataclasses.replace(
        outcome, reasons=(*outcome.reasons, *floors.reasons), failed=floors.failed, fails_run=floors.fails_run(gates)
    )


def keep_and_decide(
    registry: Registry,
    blob: bytes,
    card: dict[str, Any],
    gates: Gates,
    run_id: str,
    compare: Callable[[int], Comparison],
    known: dict[int, Comparison] | None = None,
) -> Outcome:
    """Keep `blob` (the model run `run_id` trained, its card `card`) and decide whether it becomes champion.

    The same model as a version another run trained and decided is recorded against that version; a
    new model (or one whose run stopped before deciding) is decided by this run. `compare(champion)`
    scores it against a champion that `known` does not hold a comparison with yet.
    """
    by = f"run {run_id}"
    identical = registry.identical_version(blob, run_id)
    if identical is not None and registry.decided(identical):
        return with_floors(registry.record_retrain(identical, run_id, by=by), card["metrics"], gates)
    version = identical or registry.add_version(blob, card)
    return registry.decide(version, compare, gates, by=by, known=known)


def outcome_line(outcome: Outcome, dag_id: str) -> str:
    """The outcome in one line for the task's log."""
    if outcome.promoted:
        return f"version {outcome.version} of {dag_id} is the champion now: {outcome.summary}"
    return f"version {outcome.version} of {dag_id} was kept but not promoted (champion: version {outcome.champion}): {outcome.summary}"
