"""What a training run reports, as one typed record: written once by load_model_task, read by everyone.

load_model_task returns a TrainingRecord as its XCom (under config.vocabulary.XCOM_RECORD_KEY) and keeps it in the
run's `metrics.json`; the e-mail, the monitor, `adclick-ops run` and the registry's history read it
through `TrainingRecord.parse`, so that no reader spells the keys again. The record is flat, so that
templates read `m.accuracy` or `m.decision` directly.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adclick_ops.config.vocabulary import METRIC_KEYS, METRICS, XCOM_RECORD_KEY

if TYPE_CHECKING:
    from adclick_ops.config.models import TrainingJob
    from adclick_ops.registry.registry import Outcome


MAX_SHOWN_CHARS = 60  # of a value a message quotes


class RecordUnreadable(ValueError):
    """A value in the record's place that is not a TrainingRecord: `record unreadable: <field>: <what>`."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    field = ".".join(map(str, error["loc"])) or "record"
    if error["type"] == "missing":
        return f"record unreadable: {field}: missing"
    return f"record unreadable: {field}: {error['msg'][0].lower()}{error['msg'][1:]}, found {_shown(error.get('input'))}"


def _non_finite(name: str, value: Any) -> str | None:
    """`<path>: expected a finite number, found nan` for a NaN or infinite number in `value` (a float, or a list
    or a dict of them), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name}: expected a finite number, found {value!r}"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return next((found for key, item in items if (found := _non_finite(f"{name}.{key}", item))), None)


class TrainingRecord(BaseModel):
    """One training run's report: the new version's test metrics, the version trained, the decision and its reason,
    the champion before and after, and the comparison on the held-out rows that the decision rests on."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: str
    dag_id: str | None = None
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    roc_auc: float | None = None
    confusion_matrix: list[list[int]] | None = None
    n_test: int | None = None
    estimator: str | None = None
    scalers: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)
    model_path: str | None = None  # the champion's copy
    model_version: int | None = Field(None, description="The version this run trained (an identical model: the existing version).")
    promoted: bool = False
    decision_kind: str | None = Field(
        None, description="steps.promotion.KINDS: first, won, lost, tie, incomparable, below_floor, undefined."
    )
    decision: str | None = Field(None, description="The decision with its reason, one line.")
    reasons: list[str] = Field(default_factory=list)
    previous_champion_version: int | None = None
    champion_version: int | None = Field(None, description="The champion after the decision.")
    previous_champion_metrics: dict[str, float | None] | None = Field(
        None, description="The champion's metrics on the held-out rows it was compared on."
    )
    holdout_metrics: dict[str, float | None] | None = Field(None, description="The new version's metrics on those same rows.")
    holdout_rows: int | None = None
    champion_file_error: str | None = None

    @classmethod
    def of(cls, run_id: str, job: TrainingJob, metrics: dict[str, Any], outcome: Outcome, model_path: str) -> TrainingRecord:
        comparison = outcome.comparison
        return cls(
            run_id=run_id,
            dag_id=job.dag_id,
            **{k: metrics.get(k) for k in METRIC_KEYS},
            estimator=job.estimator.name,
            scalers=list(job.scalers),
            features=list(job.features),
            model_path=model_path,
            model_version=outcome.version,
            promoted=outcome.promoted,
            decision_kind=outcome.kind,
            decision=outcome.summary,
            reasons=list(outcome.reasons),
            previous_champion_version=outcome.previous_champion,
            champion_version=outcome.champion,
            previous_champion_metrics={k: comparison.champion.get(k) for k in METRICS} if comparison and comparison.champion else None,
            holdout_metrics={k: comparison.candidate.get(k) for k in METRICS} if comparison and comparison.candidate else None,
            holdout_rows=comparison.rows if comparison and comparison.champion else None,
            champion_file_error=outcome.champion_file_error,
        )

    @classmethod
    def parse(cls, value: Any) -> TrainingRecord | None:
        """The record in an XCom value or a `metrics.json`; None when there is none (`value` is None).

        Every reader goes through here. The types are checked strictly (a number written as a string,
        a float where a version number goes, NaN or infinity are refused): anything else raises
        RecordUnreadable, whose message names the first field that is wrong, what it is and what was found.
        """
        if value is None:
            return None
        if not isinstance(value, dict):
            raise RecordUnreadable(f"record unreadable: record: expected an object of fields, found {type(value).__name__} {_shown(value)}")
        try:
            record = cls.model_validate(value, strict=True)
        except ValidationError as exc:
            raise RecordUnreadable(_first_problem(exc)) from None
        for name in type(record).model_fields:
            if (problem := _non_finite(name, getattr(record, name))) is not None:
                raise RecordUnreadable(f"record unreadable: {problem}")
        return record

    @classmethod
    def read(cls, value: Any) -> TrainingRecord | None:
        """`parse`, with None in place of RecordUnreadable, for readers that show nothing when there is no good record."""
        try:
            return cls.parse(value)
        except RecordUnreadable:
            return None

    KEY: ClassVar[str] = XCOM_RECORD_KEY  # the XCom key load_model_task returns it under

    def as_xcom(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def headline(self) -> str:
        """`version 3 trained; not promoted: lost: ...; champion: version 2`, for the console and logs."""
        champion = f"version {self.champion_version}" if self.champion_version is not None else "none"
        return f"version {self.model_version} trained; {self.decision}; champion: {champion}"
