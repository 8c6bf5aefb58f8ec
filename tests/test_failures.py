"""adclick_ops.failures: the `failure` record of a failed try, and which failures are not retried."""

from __future__ import annotations

import json
import smtplib

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout
from pydantic import BaseModel, ValidationError

from adclick_ops import failures, tasks
from adclick_ops.config.errors import ConfigError, Issue
from adclick_ops.registry.serialization import UnsafeModelError
from adclick_ops.steps.errors import DataError, QualityGateError

from tests.support import edit_yaml, training_settings


class FakeTI:
    def __init__(self, task_id: str = "load_data_task", try_number: int = 1, max_tries: int = 1, fail_push: bool = False):
        self.task_id, self.try_number, self.max_tries = task_id, try_number, max_tries
        self.pushed: list[tuple[str, object]] = []
        self.fail_push = fail_push

    def xcom_push(self, key: str, value: object) -> None:
        if self.fail_push:
            raise RuntimeError("the API server refused the XCom")
        json.dumps(value)  # an XCom value must be JSON
        self.pushed.append((key, value))


class Model(BaseModel):
    n: int


def validation_error() -> ValidationError:
    try:
        Model(n="many")
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


def chained(outer: Exception, cause: BaseException) -> Exception:
    try:
        raise outer from cause
    except Exception as exc:
        return exc


class SmtpDeliveryLike(RuntimeError):
    pass


KINDS = [
    pytest.param(DataError("x.csv: dataset file not found"), "data", id="data"),
    pytest.param(UnsafeModelError("m.onnx: refused: operator Loop is not one skl2onnx writes"), "data", id="unsafe model"),
    pytest.param(QualityGateError("model v7 not promoted: accuracy 0.880 < 0.900"), "gate", id="gate"),
    pytest.param(ConfigError([Issue("p.yaml", 3, "A.training.split", "bad")]), "config", id="config"),
    pytest.param(validation_error(), "config", id="settings of another shape"),
    pytest.param(ConnectionRefusedError(111, "Connection refused"), "transient", id="network"),
    pytest.param(smtplib.SMTPServerDisconnected("gone"), "transient", id="smtp"),
    pytest.param(TimeoutError("read timed out"), "transient", id="timeout"),
    pytest.param(AirflowTaskTimeout("execution_timeout"), "transient", id="task timeout"),
    pytest.param(chained(SmtpDeliveryLike("cannot send the report"), ConnectionRefusedError()), "transient", id="cause decides"),
    pytest.param(chained(AirflowFailException("x"), DataError("x")), "data", id="our wrapper"),
    pytest.param(KeyError("nope"), "error", id="a bug"),
    pytest.param(None, "error", id="no exception"),
]


@pytest.mark.parametrize("exc,kind", KINDS)
def test_each_class_of_failure_has_its_kind_and_retry_rule(exc, kind):
    assert failures.classify(exc) == kind
    assert failures.is_retryable(kind) is (kind in ("transient", "error"))


def test_an_implicit_context_does_not_decide_the_kind():
    try:
        try:
            raise OSError("disk")
        except OSError:
            raise KeyError("a bug while handling it") from None
    except KeyError as exc:
        assert failures.classify(exc) == "error"


@pytest.mark.parametrize("exc", [DataError("x.csv: gone"), QualityGateError("model v2 not promoted"), UnsafeModelError("bad file")])
def test_not_retried_failures_keep_their_class_and_message_and_become_airflows_fail(exc):
    wrapped = failures.non_retryable(exc)
    assert isinstance(wrapped, AirflowFailException) and isinstance(wrapped, type(exc))
    assert type(wrapped).__name__ == type(exc).__name__ and str(wrapped) == str(exc)


def test_a_config_error_keeps_its_issues_and_a_validation_error_its_message():
    error = ConfigError([Issue("p.yaml", 3, "A.b", "bad")])
    wrapped = failures.non_retryable(error)
    assert isinstance(wrapped, AirflowFailException) and wrapped.issues == error.issues and str(wrapped) == str(error)
    invalid = validation_error()
    wrapped = failures.non_retryable(invalid)  # pydantic's class cannot be extended: its base can
    assert isinstance(wrapped, AirflowFailException) and isinstance(wrapped, ValueError) and str(wrapped) == str(invalid)
    assert failures.error_line(wrapped).startswith("ValidationError: 1 validation error for Model")


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyError("x"), AirflowFailException("already")])
def test_retried_failures_and_airflows_own_are_raised_as_they_are(exc):
    assert failures.non_retryable(exc) is exc


ERRORS = [
    pytest.param(DataError("x.csv: dataset file not found"), "DataError: x.csv: dataset file not found", id="type and message"),
    pytest.param(
        QualityGateError("model v7 not promoted: accuracy 0.880 < 0.900\nversion 7 was kept"),
        "QualityGateError: model v7 not promoted: accuracy 0.880 < 0.900",
        id="first line",
    ),
    pytest.param(KeyError(), "KeyError", id="no message"),
    pytest.param(DataError("x" * 2000), "DataError: " + "x" * 486 + "...", id="long"),
    pytest.param(DataError("a\x1b[31m\tb"), "DataError: a [31m b", id="control characters"),
    pytest.param(chained(AirflowFailException("x.csv: gone"), DataError("x.csv: gone")), "DataError: x.csv: gone", id="original type"),
]


@pytest.mark.parametrize("exc,expected", ERRORS)
def test_the_error_is_the_first_line_as_type_and_message_at_most_500_characters(exc, expected):
    line = failures.error_line(exc)
    assert len(line) <= 500 and "\n" not in line and line.isprintable()
    assert line == expected


def test_the_record_has_the_fields_of_the_contract():
    record = failures.failure_record(FakeTI("load_model_task", 2, 3), QualityGateError("model v7 not promoted: accuracy 0.880 < 0.900"))
    assert record == {
        "task_id": "load_model_task",
        "try_number": 2,
        "error": "QualityGateError: model v7 not promoted: accuracy 0.880 < 0.900",
        "kind": "gate",
        "retryable": False,
        "max_tries": 3,
    }


def test_error_text_is_data_never_a_template():
    ti = FakeTI()
    failures.push({"ti": ti}, DataError("{{ macros.uuid.os.system('id') }} {% raw %}"))
    ((key, value),) = ti.pushed
    assert key == "failure" and value["error"] == "DataError: {{ macros.uuid.os.system('id') }} {% raw %}"


def test_the_recorder_pushes_once_per_try_and_for_operators_we_do_not_write():
    ti = FakeTI("send_email")
    context = {"ti": ti, "exception": chained(SmtpDeliveryLike("cannot send"), ConnectionRefusedError())}
    failures.FailureRecorder()(context)
    assert ti.pushed[0][1]["kind"] == "transient" and ti.pushed[0][1]["retryable"] is True
    failures.FailureRecorder()(context)  # the on_failure_callback after a task callable recorded it: not again
    assert len(ti.pushed) == 1
    ti.try_number = 2
    failures.FailureRecorder()(context)
    assert [v["try_number"] for _, v in ti.pushed] == [1, 2]


def test_a_push_that_fails_is_logged_and_never_hides_the_failure(caplog):
    assert failures.FailureRecorder()({"ti": FakeTI(fail_push=True), "exception": DataError("x")}) is None
    assert "could not record the failure of load_data_task" in caplog.text


def test_the_failure_email_records_first_even_when_sending_fails(monkeypatch):
    notifier = failures.RecordingFailureNotifier(to=["a@example.org"], subject="s", html_content="h", smtp_conn_id="none")
    sent = []

    def notify(self, context):
        sent.append(context["ti"].pushed[:])
        raise ConnectionRefusedError("no SMTP server")

    monkeypatch.setattr(type(notifier), "notify", notify)
    monkeypatch.setattr(type(notifier), "render_template_fields", lambda self, context, jinja_env=None: None)
    ti = FakeTI("my_trigger_task")
    with pytest.raises(ConnectionRefusedError):
        notifier({"ti": ti, "exception": KeyError("Airflow_Lab2_Flask")})
    assert sent == [[("failure", ti.pushed[0][1])]] and ti.pushed[0][1]["kind"] == "error"


def test_a_task_callable_fails_with_the_original_class_not_retried(pipelines, tmp_path):
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"].update(dataset=str(tmp_path / "gone.csv")))
    with pytest.raises(DataError, match="dataset file not found") as caught:
        tasks.load_data(settings=training_settings(pipelines), run_id="r")
    assert isinstance(caught.value, AirflowFailException) and isinstance(caught.value.__cause__, DataError)


def test_a_storage_error_of_a_task_callable_is_retried(pipelines):
    with pytest.raises(FileNotFoundError) as caught:  # the working files of the earlier task are missing
        tasks.preprocess(settings=training_settings(pipelines), run_id="never_ran")
    assert not isinstance(caught.value, AirflowFailException)
