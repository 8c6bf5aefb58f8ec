"""adclick_ops.config.schedules: schedules and start dates as Airflow reads them, checked without Airflow."""

from __future__ import annotations

import datetime as dt

import pytest

from adclick_ops.config.schedules import PRESETS, cron_problem, parse_start_date, schedule_problem


@pytest.mark.parametrize("expression", ["0 * * * *", "*/15 6-18 * * mon-fri", "0 0 1,15 jan,JUL *", "59 23 31 12 7", "0 0 29 2 *"])
def test_cron_expressions_that_run_have_no_problem(expression):
    assert cron_problem(expression) is None
    assert schedule_problem(expression) is None


@pytest.mark.parametrize(
    "expression,words",
    [
        ("0 * * *", "expected 5 fields (minute hour day-of-month month day-of-week), found 4"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 * foo *", "'foo' is not a month (a number or one of jan, feb"),
        ("0 0 * * 5-1", "the day of week range '5-1' runs backwards; write it low-high"),
        ("*/0 * * * *", "the step in '*/0' must be between 1 and 60"),
        ("0 0 31 2 *", "the days of month never occur in the months given, so it never runs"),
        ("0 0 L * *", "'L' is not a valid day of month"),
    ],
)
def test_cron_expressions_that_cannot_run_say_why(expression, words):
    assert words in cron_problem(expression)
    assert schedule_problem(expression) == f"schedule {expression!r} is not a valid cron expression: {cron_problem(expression)}"


def test_a_day_that_never_comes_is_fine_when_the_weekday_is_restricted_too():
    """cron runs on a day that matches day-of-month OR day-of-week when both are restricted."""
    assert cron_problem("0 0 31 2 mon") is None


def test_presets_are_known_by_name():
    assert all(schedule_problem(preset) is None for preset in PRESETS)
    problem = schedule_problem("@fortnightly")
    assert problem.startswith("unknown schedule preset '@fortnightly'; expected a cron expression or one of: @once, @continuous")


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2024-01-01", dt.date(2024, 1, 1)),
        (dt.date(2024, 2, 29), dt.date(2024, 2, 29)),
        ("2024-01-01T06:00:00Z", dt.datetime(2024, 1, 1, 6, tzinfo=dt.UTC)),
        ("2024-01-01t06:00:00.5+02:00", dt.datetime(2024, 1, 1, 6, 0, 0, 500000, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
    ],
)
def test_start_dates_read_as_dates_or_zoned_datetimes(value, expected):
    assert parse_start_date(value) == expected


@pytest.mark.parametrize(
    "value,words",
    [
        (20240101, "found the number 20240101; write a date as 2024-01-01"),
        (True, "found the number True"),
        ("2024-02-30", "found '2024-02-30', which is not a real date"),
        ("01/02/2024", "found '01/02/2024'; expected a date (2024-01-01)"),
        ("2024-01-01T06:00:00", "found '2024-01-01T06:00:00'; expected a date"),
        (dt.datetime(2024, 1, 1, 6), "has no time zone; add one"),
        ("1969-12-31", "start_date 1969-12-31 is outside 1970-01-01 .. 9998-12-31"),
        ([2024], "found list; expected a date"),
    ],
)
def test_start_dates_that_are_not_say_what_was_found(value, words):
    with pytest.raises(ValueError) as raised:
        parse_start_date(value)
    assert words in str(raised.value)
