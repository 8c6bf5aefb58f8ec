"""The failure record of a training task, and which failures are worth retrying.

When a task of a training DAG fails, its task instance pushes an XCom with key `failure`:

    {"task_id": str, "try_number": int, "error": str, "kind": str, "retryable": bool, "max_tries": int}

`error` is the first line of the exception as "ExcType: message" (at most 500 characters; the
type is the original one, not Airflow's wrapper); `kind` is one of KINDS:

- "data": the dataset or a model file cannot be used (`DataError`, `UnsafeModelError`);
- "gate": the new version failed the promotion gates and the pipeline asks that this fails the run
  (`QualityGateError`);
- "config": the task's settings are invalid (`ConfigError`, pydantic's `ValidationError`);
- "transient": storage, network or SMTP trouble (`OSError` and its kind, anywhere in the cause chain),
  or the task ran out of time;
- "error": anything else.

Data, gate and config failures would fail the same way again: our task callables raise them as
Airflow's `AirflowFailException` (the original exception chained as its cause), so that Airflow
does not retry them whatever `retries` says. `retryable` is true for the other kinds, which
follow `retries`.

Our callables push the record while they fail (`tasks._expose_failure`); for the operators we do
not write (the e-mail and trigger operators), and for failures outside the callable (a timeout),
the task's `on_retry_callback` and `on_failure_callback` push it: `FailureRecorder`, or
`RecordingFailureNotifier` (the failure e-mail, which records first) when the pipeline asks for
failure e-mails. The record is data: nothing in it is ever rendered as a template.

This module is imported when Airflow parses the DAG files: it imports nothing heavy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from adclick_ops.config.vocabulary import XCOM_FAILURE_KEY

log = logging.getLogger(__name__)

XCOM_KEY = XCOM_FAILURE_KEY
KINDS = ("data", "gate", "config", "transient", "error")
NOT_RETRIED = frozenset({"data", "gate", "config"})
MAX_ERROR = 500
# The context key under which a task callable leaves the record it pushed (the callback then does not push it again).
_CONTEXT_KEY = "adclick_ops_failure"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its explicit causes (`raise ... from cause`), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def _is_airflow_fail(exc: BaseException) -> bool:
    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:  # pragma: no cover - Airflow is always installed where tasks run
        return False
    return isinstance(exc, AirflowFailException)


def original(exc: BaseException) -> BaseException:
    """The exception a task raised: the cause of the `AirflowFailException` we wrap it in, else itself."""
    if _is_airflow_fail(exc) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def _kind_of(exc: BaseException) -> str | None:
    from pydantic import ValidationError

    from adclick_ops.config.errors import ConfigError
    from adclick_ops.steps.errors import DataError, QualityGateError

    if isinstance(exc, QualityGateError):
        return "gate"
    if isinstance(exc, DataError):
        return "data"
    if any(c.__name__ == "UnsafeModelError" and c.__module__ == "adclick_ops.registry.serialization" for c in type(exc).__mro__):
        return "data"
    if isinstance(exc, (ConfigError, ValidationError)):
        return "config"
    if isinstance(exc, (OSError, TimeoutError)) or type(exc).__name__ == "AirflowTaskTimeout":
        return "transient"  # smtplib.SMTPException, requests' and botocore's connection errors are OSErrors too
    return None


def classify(exc: BaseException | None) -> str:
    """The kind of a failure (one of KINDS): the first exception of the chain whose kind is known decides."""
    if exc is None:
        return "error"
    for link in _chain(original(exc)):
        kind = _kind_of(link)
        if kind is not None:
            return kind
    return "error"


def is_retryable(kind: str) -> bool:
    """Whether a failure of this kind follows the task's `retries` (data, gate and config failures do not)."""
    return kind not in NOT_RETRIED


def error_line(exc: BaseException | None) -> str:
    """ "ExcType: message", first line only, at most MAX_ERROR characters; the type is the original one."""
    if exc is None:
        return "the task failed without an exception (killed, or timed out outside the task); see its log"
    exc = original(exc)
    message = str(exc).strip()
    first = message.splitlines()[0].strip() if message else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."


def failure_record(ti: Any, exc: BaseException | None) -> dict[str, Any]:
    """The `failure` XCom of task instance `ti` that failed with `exc`."""
    kind = classify(exc)
    return {
        "task_id": str(ti.task_id),
        "try_number": int(getattr(ti, "try_number", 0) or 0),
        "error": error_line(exc),
        "kind": kind,
        "retryable": is_retryable(kind),
        "max_tries": int(getattr(ti, "max_tries", 0) or 0),
    }


def push(context: Any, exc: BaseException | None) -> dict[str, Any] | None:
    """Push the failure record of the context's task instance; the record, or None if it could not be pushed."""
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        return None
    record = failure_record(ti, exc)
    try:
        ti.xcom_push(XCOM_KEY, record)
    except Exception:  # noqa: BLE001 - a failure record must never hide the failure itself
        log.exception("could not record the failure of %s", record["task_id"])
        return None
    try:
        context[_CONTEXT_KEY] = record
    except TypeError:  # a read-only mapping
        pass
    log.info("failure recorded: %s", record)
    return record


_FAIL_CLASSES: dict[tuple[type, type], type] = {}


def _fail_class(cls: type[BaseException], base: type[BaseException]) -> type[BaseException]:
    """A class named as `cls`, extending `base` (`cls` or one of its bases) and AirflowFailException (cached)."""
    from airflow.sdk.exceptions import AirflowFailException

    if (cls, base) not in _FAIL_CLASSES:
        namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": f"{cls.__name__}, not retried."}
        _FAIL_CLASSES[cls, base] = type(cls.__name__, (base, AirflowFailException), namespace)
    return _FAIL_CLASSES[cls, base]


def non_retryable(exc: Exception) -> Exception:
    """`exc` as Airflow's non-retryable failure when its kind is not retried; `exc` itself otherwise.

    The new exception is named as `exc`'s class, is an instance of it and of `AirflowFailException`,
    and has the same message and attributes: code (and tests) that catch `DataError` still do, and
    Airflow does not retry it. A class that cannot be copied so (pydantic's ValidationError) gives
    way to its nearest base that can (ValueError). Raise the result `from exc`.
    """
    if _is_airflow_fail(exc) or is_retryable(classify(exc)):
        return exc
    from airflow.sdk.exceptions import AirflowFailException

    for base in type(exc).__mro__:
        if not issubclass(base, Exception):
            break
        try:
            cls = _fail_class(type(exc), base)
            if base is type(exc):
                wrapped = cls.__new__(cls, *exc.args)
                wrapped.args = exc.args
                wrapped.__dict__.update(getattr(exc, "__dict__", {}))
            else:
                wrapped = cls(str(exc))
        except (TypeError, AttributeError):  # not an acceptable base type, or not built from its args
            continue
        return wrapped
    return AirflowFailException(str(exc))


def record_failure(context: Any) -> dict[str, Any] | None:
    """Push the failure record of the context's failed try, unless its task callable did already."""
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        return None
    recorded = context.get(_CONTEXT_KEY)
    if recorded and recorded.get("try_number") == getattr(ti, "try_number", None):
        return recorded
    exc = context.get("exception")
    return push(context, exc if isinstance(exc, BaseException) else None)


class FailureRecorder:
    """on_failure_callback / on_retry_callback of every task of a training DAG: push its failure record.

    dag-factory instantiates a callback class that has a `notify` method with the arguments of
    its configuration (none here).
    """

    def notify(self, context: Any) -> None:
        record_failure(context)

    def __call__(self, context: Any) -> None:
        self.notify(context)


def _recording_notifier() -> type:
    from adclick_ops.operators import FailureNotifier

    class RecordingFailureNotifier(FailureNotifier):
        """The failure e-mail (operators.FailureNotifier) that first pushes the failure record: one
        callback, as dag-factory takes one per state. The record is pushed even if the e-mail fails."""

        def __call__(self, *args: Any) -> None:
            if len(args) == 1:
                try:
                    record_failure(args[0])
                except Exception:  # noqa: BLE001 - the e-mail still goes out
                    log.exception("could not record the failure")
            super().__call__(*args)

    RecordingFailureNotifier.__module__ = __name__
    return RecordingFailureNotifier


def __getattr__(name: str) -> Any:
    # RecordingFailureNotifier extends the SMTP provider's notifier: built on first use, so that the
    # rest of this module stays light to import.
    if name == "RecordingFailureNotifier":
        cls = _recording_notifier()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
