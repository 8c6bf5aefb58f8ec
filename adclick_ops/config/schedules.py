"""Schedules and start dates as Airflow reads them, checked without Airflow.

A schedule is null, a preset, or a standard five-field cron expression (numbers, `*`, ranges,
steps, lists, month and weekday names). Airflow (through croniter) accepts more spellings; the
ones accepted here are a subset that croniter and Airflow's DAG constructor accept too
(tests/hardening/test_hardening_isolation.py checks this on generated expressions). When croniter is
installed, it is asked as well. This module imports nothing but the standard library.
"""

from __future__ import annotations

import datetime as dt
import re

PRESETS: dict[str, str] = {
    "@once": "one run, at start_date",
    "@continuous": "a new run as soon as the last one ends (needs max_active_runs: 1)",
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
# Presets that allow one active run only (Airflow's ContinuousTimetable.active_runs_limit).
ONE_RUN_AT_A_TIME = ("@continuous",)

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, low, high, names): names map to low, low + 1, ...
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_ITEM = re.compile(r"^(?:(\*)|([0-9]{1,2}|[A-Za-z]{3})(?:-([0-9]{1,2}|[A-Za-z]{3}))?)(?:/([0-9]{1,2}))?$")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

EARLIEST_START = dt.date(1970, 1, 1)
LATEST_START = dt.date(9998, 12, 31)


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if text.isdigit():
        value = int(text)
    elif names and text.lower() in names:
        value = low + names.index(text.lower())
    else:
        raise ValueError(f"{text!r} is not a {name}" + (f" (a number or one of {', '.join(names)})" if names else f" ({low}-{high})"))
    if not low <= value <= high:
        raise ValueError(f"{name} {value} is out of range {low}-{high}")
    return value


def _field_values(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        found = _ITEM.match(item)
        if not found:
            raise ValueError(f"{item!r} is not a valid {name} (expected *, a value, a range a-b, a step */n or a list)")
        star, first, last, step = found.groups()
        if star:
            start, end = low, high
        else:
            start = _value(first, name, low, high, names)
            end = _value(last, name, low, high, names) if last else (high if step else start)
            if end < start:
                raise ValueError(f"the {name} range {item!r} runs backwards; write it low-high")
        every = int(step) if step else 1
        if not 1 <= every <= high - low + 1:
            raise ValueError(f"the step in {item!r} must be between 1 and {high - low + 1}")
        values.update(range(start, end + 1, every))
    return values


def cron_problem(expression: str) -> str | None:
    """Why `expression` is not a five-field cron expression that can run (None when it is one)."""
    fields = expression.split()
    if len(fields) != 5:
        return f"expected 5 fields (minute hour day-of-month month day-of-week), found {len(fields)}"
    try:
        values = [_field_values(text, name, low, high, names) for text, (name, low, high, names) in zip(fields, _FIELDS, strict=True)]
    except ValueError as exc:
        return str(exc)
    days, months, weekday_field = values[2], values[3], fields[4]
    # cron runs on a day that matches day-of-month OR day-of-week when both are restricted
    if weekday_field == "*" and not any(day <= _DAYS_IN_MONTH[month - 1] for month in months for day in days):
        return "the days of month never occur in the months given, so it never runs"
    return None


def _croniter_problem(expression: str) -> str | None:
    try:
        from croniter import croniter
    except ImportError:  # validation without Airflow: the check above stands alone
        return None
    try:
        croniter(expression).get_next(dt.datetime)
    except Exception as exc:  # croniter's errors have no common base across its versions
        return f"croniter refuses it: {exc}"
    return None


def schedule_problem(schedule: str) -> str | None:
    """Why Airflow would refuse `schedule`, or would never run it (None when it is fine)."""
    if schedule.startswith("@"):
        if schedule not in PRESETS:
            return f"unknown schedule preset {schedule!r}; expected a cron expression or one of: {', '.join(PRESETS)}"
        return None
    problem = cron_problem(schedule)
    if problem:
        return f"schedule {schedule!r} is not a valid cron expression: {problem}"
    problem = _croniter_problem(schedule)
    return f"schedule {schedule!r}: {problem}" if problem else None


DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DATETIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$"


def _date_of_text(text: str) -> dt.date | dt.datetime:
    try:
        if re.fullmatch(DATE_PATTERN, text):
            return dt.date.fromisoformat(text)
        if re.fullmatch(DATETIME_PATTERN, text):
            return dt.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"found {text!r}, which is not a real date ({exc})") from None
    raise ValueError(f"found {text!r}; expected a date (2024-01-01) or a date and time with its time zone (2024-01-01T06:00:00Z)")


def parse_start_date(value: object) -> dt.date | dt.datetime:
    """A start date: a date, or a date and time with its time zone (RFC 3339), as a value or ISO text."""
    if isinstance(value, bool) or isinstance(value, (int, float)):
        raise ValueError(f"found the number {value!r}; write a date as 2024-01-01 (numbers are not read as dates)")
    if isinstance(value, str):
        value = _date_of_text(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"the date and time {value.isoformat()} has no time zone; add one (2024-01-01T06:00:00Z) or give a date alone")
        day = value.date()
    elif isinstance(value, dt.date):
        day = value
    else:
        raise ValueError(f"found {type(value).__name__}; expected a date (2024-01-01) or a date and time with its time zone")
    if not EARLIEST_START <= day <= LATEST_START:
        raise ValueError(f"start_date {day.isoformat()} is outside {EARLIEST_START.isoformat()} .. {LATEST_START.isoformat()}")
    return value
