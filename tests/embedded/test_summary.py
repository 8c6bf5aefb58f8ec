"""The console's summary of a training run (`adclick-ops run`, `--once`, `trigger --wait`): what was trained, the
decision with its reason, and which version serves, read from the run's TrainingRecord."""

from __future__ import annotations

import pytest

from adclick_ops.embedded.run import summarize
from adclick_ops.record import TrainingRecord


class Api:
    """Airflow's answers for one run: the record load_model_task returned."""

    def __init__(self, record: dict | None):
        self.record = record

    def run_metrics(self, dag_id, run_id):
        return self.record


def record(**change) -> dict:
    base = {
        "run_id": "manual__1",
        "dag_id": "Airflow_Lab2",
        "accuracy": 0.95,
        "precision": 0.9,
        "recall": 0.9,
        "f1": 0.9,
        "roc_auc": 0.98,
        "model_path": "/p/model/model.sav",
        "model_version": 4,
        "promoted": False,
        "decision_kind": "lost",
        "decision": "not promoted: lost: roc_auc 0.9800 against 0.9811 for the champion, version 3, on the same 212 held-out rows",
        "previous_champion_version": 3,
        "champion_version": 3,
    }
    return TrainingRecord.model_validate(base | change).as_xcom()


@pytest.mark.parametrize(
    "change,lines",
    [
        (
            {},
            [
                "version: v4 trained",
                "decision: not promoted: lost: roc_auc 0.9800 against 0.9811 for the champion, version 3, on the same 212 held-out rows",
                "champion: v3, served from /p/model/model.sav",
            ],
        ),
        (
            {"promoted": True, "decision_kind": "won", "decision": "promoted: roc_auc 0.99 beats ...", "champion_version": 4},
            ["version: v4 trained", "decision: promoted: roc_auc 0.99 beats ...", "champion: v4 (was v3), served from /p/model/model.sav"],
        ),
        (
            {"model_version": 3, "decision_kind": "identical", "decision": "not promoted: identical: run r trained the model of version 3"},
            ["version: v3 trained again (an identical model: no new version)", "champion: v3, served from /p/model/model.sav"],
        ),
    ],
)
def test_the_summary_says_the_version_trained_the_decision_and_the_champion(capsys, change, lines):
    summarize(Api(record(**change)), "Airflow_Lab2", "manual__1", "success", "http://x", None)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Airflow_Lab2 run manual__1: success"
    for line in lines:
        assert line in out, out
    assert not any(line.startswith("model:") for line in out)


def test_a_run_without_a_record_says_so(capsys):
    summarize(Api(None), "Airflow_Lab2", "manual__1", "failed", "http://x", None)
    assert capsys.readouterr().out.splitlines()[-1] == "no metrics for this run"


@pytest.mark.parametrize(
    "value,line",
    [
        (
            {"run_id": "manual__1", "model_version": "4"},
            "no metrics for this run: record unreadable: model_version: input should be a valid integer, found '4'",
        ),
        ({"accuracy": 0.9}, "no metrics for this run: record unreadable: run_id: missing"),
        (["garbage"], "no metrics for this run: record unreadable: record: expected an object of fields, found list ['garbage']"),
    ],
)
def test_a_record_that_cannot_be_read_is_named_not_a_traceback(capsys, value, line):
    summarize(Api(value), "Airflow_Lab2", "manual__1", "success", "http://x", None)
    assert capsys.readouterr().out.splitlines()[-1] == line


def test_the_metrics_line_reads_the_record(capsys):
    summarize(Api(record()), "Airflow_Lab2", "manual__1", "success", "http://x", None)
    assert "metrics: accuracy=0.9500  precision=0.9000  recall=0.9000  f1=0.9000  roc_auc=0.9800" in capsys.readouterr().out.splitlines()
