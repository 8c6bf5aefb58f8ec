"""The e-mails, rendered from fixed inputs, equal byte for byte the golden files in tests/fixtures/emails/.

Every kind of e-mail in every state a run can produce: the run report of a promoted version, one that
lost, a tie, an incomparable champion, a first version, an identical retrain, a version below a
floor, a run that returned no record, with hostile text in every field that reaches it; and the
failure alert on a try with retries left, on the last try, without a message, with hostile text.

The golden files were written by the code that built the e-mails before they became template files
(f-strings rendered by Airflow); they hold what the e-mails say and look like. After an intended
change of an e-mail, write them again and review the diff:

    .venv/bin/python tests/test_notify_golden.py
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).parent / "fixtures" / "emails"
STARTED = dt.datetime(2024, 1, 1, 8, 0, 0, tzinfo=dt.UTC)
RUN_ID = "manual__2024-01-01T08:00:00+00:00"
HOSTILE = "<script>alert('x')</script> {{ 7*7 }} {% if 1 %}yes{% endif %} {# c #} \"q\" & é"


def record(**change: Any) -> dict[str, Any]:
    """The XCom of load_model_task (adclick_ops.record.TrainingRecord.as_xcom) for a promoted second version."""
    out: dict[str, Any] = {
        "run_id": RUN_ID,
        "dag_id": "Airflow_Lab2",
        "accuracy": 0.97,
        "precision": 0.9801,
        "recall": 0.9612,
        "f1": 0.9705,
        "roc_auc": 0.9863,
        "confusion_matrix": [[150, 3], [6, 141]],
        "n_test": 300,
        "estimator": "LogisticRegression",
        "scalers": ["MinMaxScaler", "StandardScaler"],
        "features": ["Daily Time Spent on Site", "Age"],
        "model_path": "/srv/model/model.sav",
        "model_version": 7,
        "promoted": True,
        "decision_kind": "won",
        "decision": "promoted: won: roc_auc 0.9863 against 0.9800 for the champion, version 6, on the same 212 held-out rows",
        "reasons": [],
        "previous_champion_version": 6,
        "champion_version": 7,
        "previous_champion_metrics": {"accuracy": 0.96, "precision": 0.99, "recall": 0.95, "f1": 0.9705, "roc_auc": 0.98},
        "holdout_metrics": {"accuracy": 0.9717, "precision": 0.98, "recall": 0.9623, "f1": 0.9711, "roc_auc": 0.9851},
        "holdout_rows": 212,
        "champion_file_error": None,
    }
    out.update(change)
    return out


NOT_PROMOTED = {"model_version": 8, "promoted": False, "champion_version": 7, "previous_champion_version": 7}
# name -> (the record load_model_task returned, the e-mail settings, what else differs in the task's context)
REPORTS: dict[str, tuple[Any, dict[str, Any], dict[str, Any]]] = {
    "report_won": (record(), {}, {}),
    "report_lost": (
        record(
            **NOT_PROMOTED,
            decision_kind="lost",
            decision="not promoted: lost: roc_auc 0.9810 against 0.9811 for the champion, version 7, on the same 212 held-out rows",
        ),
        {},
        {},
    ),
    "report_tie": (
        record(
            **NOT_PROMOTED,
            decision_kind="tie",
            decision="not promoted: tie: roc_auc 0.9800 against 0.9800 for the champion, version 7 (a tie keeps the champion)",
            holdout_metrics={"accuracy": 0.96, "precision": 0.99, "recall": 0.95, "f1": 0.9705, "roc_auc": 0.98},
        ),
        {},
        {},
    ),
    "report_incomparable": (
        record(
            **NOT_PROMOTED,
            decision_kind="incomparable",
            decision="not promoted: incomparable: the champion, version 7, could not be scored: its file fails its checksum; it is kept",
            previous_champion_metrics=None,
            holdout_metrics=None,
            holdout_rows=None,
            champion_file_error="checksum mismatch",
        ),
        {},
        {},
    ),
    "report_first": (
        record(
            model_version=1,
            champion_version=1,
            previous_champion_version=None,
            previous_champion_metrics=None,
            holdout_metrics=None,
            holdout_rows=None,
            decision_kind="first",
            decision="promoted: first: no champion before it",
        ),
        {},
        {},
    ),
    "report_identical": (
        record(
            promoted=False,
            decision_kind="identical",
            decision="not promoted: identical: run r2 trained the model of version 7 (run r1) again; it is the champion",
        ),
        {},
        {},
    ),
    "report_below_floor": (
        record(
            **NOT_PROMOTED,
            accuracy=0.53,
            roc_auc=None,
            scalers=[],
            confusion_matrix=None,
            decision_kind="below_floor",
            decision="not promoted: below the floor: accuracy 0.5300 < 0.9000 (training.promotion.floors)",
        ),
        {"headline_metric": "roc_auc", "subject": "{{ status }} | {{ metric }} | {{ version }} | {{ dag.dag_id }} {{ ds }}"},
        {"seconds": 7384},
    ),
    "report_no_record": (None, {}, {"seconds": 41}),
    "report_hostile": (
        record(
            promoted=False,
            model_version=8,
            champion_version=7,
            decision=HOSTILE,
            estimator=HOSTILE,
            model_path="/srv/" + HOSTILE,
            scalers=[HOSTILE, "<b>MinMaxScaler</b>"],
        ),
        {"monitor_url": "https://monitor.example.com/board?a=1&b=2"},
        {"run_id": "manual__" + HOSTILE, "start": None},
    ),
}
# name -> (exception, try number, max tries, the failure record the task pushed)
FAILURES: dict[str, tuple[Any, int, int | None, Any]] = {
    "failure_retry_left": (FileNotFoundError("dataset file not found: /data/advertising.csv\nsecond line"), 1, 1, None),
    "failure_last_try": (
        TimeoutError("storage timed out"),
        2,
        1,
        {"task_id": "load_data_task", "try_number": 2, "error": "x", "kind": "transient", "retryable": True},
    ),
    "failure_no_message": (None, 1, 0, {"kind": "config", "retryable": False}),
    "failure_hostile": (ValueError(HOSTILE + "\nBcc: victim@example.com"), 1, 1, {"kind": "data", "retryable": None}),
}


class TI:
    """The parts of a task instance the e-mails read."""

    def __init__(self, pulled: Any, task_id: str, try_number: int = 1, max_tries: int | None = 1, failure: Any = None, seconds: int = 133):
        self._pulled, self._failure = pulled, failure
        self.task_id, self.dag_id, self.run_id = task_id, "Airflow_Lab2", RUN_ID
        self.try_number, self.max_tries = try_number, max_tries
        self.start_date = STARTED + dt.timedelta(seconds=seconds)

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        return self._failure if key == "failure" else self._pulled


class DagRun:
    def __init__(self, start_date: Any = STARTED):
        self.start_date, self.logical_date, self.run_after = start_date, None, STARTED


def render_report(pulled: Any, email: dict[str, Any], seconds: int = 133, run_id: str = RUN_ID, start: Any = STARTED) -> dict[str, str]:
    from airflow.sdk import DAG

    from adclick_ops import notify
    from adclick_ops.config.models import EmailNotification
    from adclick_ops.operators import ReportEmailOperator

    settings = EmailNotification(to=["ml-team@example.com"], **email)
    dag = DAG("Airflow_Lab2", schedule=None, start_date=STARTED)
    task = ReportEmailOperator(task_id="send_email", dag=dag, **notify.email_operator_args(settings, with_text=True))
    ti = TI(pulled, "send_email", seconds=seconds)
    task.render_template_fields({"dag": dag, "task": task, "ti": ti, "run_id": run_id, "dag_run": DagRun(start), "ds": "2024-01-01"})
    return {"subject": task.subject, "html": task.html_content, "txt": task.text_content}


def render_failure(exception: Any, try_number: int, max_tries: int | None, failure: Any) -> dict[str, str]:
    from airflow.sdk import DAG, BaseOperator

    from adclick_ops import notify
    from adclick_ops.config.models import EmailNotification
    from adclick_ops.operators import FailureNotifier

    config = notify.failure_callback_config(EmailNotification(to=["ml-team@example.com"]))
    config.pop("callback")
    alert = FailureNotifier(**config)
    dag = DAG("Airflow_Lab2", schedule=None, start_date=STARTED)
    task = BaseOperator(task_id="load_data_task", dag=dag, retries=1)
    ti = TI(None, "load_data_task", try_number=try_number, max_tries=max_tries, failure=failure)
    context = {"dag": dag, "task": task, "ti": ti, "run_id": "scheduled__2024-01-01T00:00:00+00:00", "dag_run": DagRun()}
    alert.render_template_fields({**context, "exception": exception})
    return {"subject": alert.subject, "html": alert.html_content, "txt": alert.text_content}


def rendered(name: str) -> dict[str, str]:
    if name in REPORTS:
        pulled, email, ctx = REPORTS[name]
        return render_report(pulled, email, **ctx)
    return render_failure(*FAILURES[name])


def golden(name: str, part: str) -> str:
    return (GOLDEN / f"{name}.{part}").read_bytes().decode("utf-8")


@pytest.fixture(autouse=True)
def default_airflow_url(monkeypatch):
    """The links point at Airflow's default address, whatever the machine's configuration says."""
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)


@pytest.mark.parametrize("part", ["subject", "html", "txt"])
@pytest.mark.parametrize("name", [*REPORTS, *FAILURES])
def test_each_e_mail_equals_its_golden_file(name, part):
    assert rendered(name)[part] == golden(name, part)


def test_the_golden_files_are_those_of_the_cases():
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(f"{n}.{p}" for n in [*REPORTS, *FAILURES] for p in ("subject", "html", "txt"))


def write_golden() -> None:
    os.environ.pop("AIRFLOW__API__BASE_URL", None)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name in [*REPORTS, *FAILURES]:
        for part, text in rendered(name).items():
            (GOLDEN / f"{name}.{part}").write_bytes(text.encode("utf-8"))
    print(f"wrote {len(REPORTS) + len(FAILURES)} e-mails to {GOLDEN}", file=sys.stderr)


if __name__ == "__main__":
    write_golden()
