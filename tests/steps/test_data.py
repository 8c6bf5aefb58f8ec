"""adclick_ops.steps.data: reading and checking the dataset, on small frames and on the shipped file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adclick_ops.steps.data import DataError, check_dataset, read_dataset

from helpers import PROJECT

FEATURES = ["Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage", "Male"]
TARGET = "Clicked on Ad"


def small_frame(n: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    frame[TARGET] = [i % 2 for i in range(n)]
    return frame


def without_age(f: pd.DataFrame) -> pd.DataFrame:
    return f.drop(columns=["Age"])


def text_in_age(f: pd.DataFrame) -> pd.DataFrame:
    return f.astype({"Age": object}).assign(Age=["x", *f["Age"][1:]])


def missing_income(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(**{"Area Income": [np.nan, *f["Area Income"][1:]]})


def single_class(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(**{TARGET: 1})


def not_a_label(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(**{TARGET: 3})


def no_rows(f: pd.DataFrame) -> pd.DataFrame:
    return f.iloc[0:0]


@pytest.mark.parametrize(
    "mutate,words",
    [
        (without_age, "missing column(s) 'Age'"),
        (text_in_age, "column 'Age' must be numeric; found 'x' at line 2"),
        (missing_income, "column 'Area Income' has 1 missing value(s), first at line 2"),
        (single_class, "has a single class (1)"),
        (not_a_label, "must hold 0/1 labels"),
        (no_rows, "has a header but no rows"),
    ],
)
def test_bad_data_is_refused_with_column_and_problem(mutate, words):
    with pytest.raises(DataError) as info:
        check_dataset(mutate(small_frame()), FEATURES, TARGET, "data.csv")
    assert str(info.value).startswith("data.csv: ")
    assert words in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="dataset file not found"):
        read_dataset(tmp_path / "none.csv", FEATURES, TARGET)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        read_dataset(tmp_path / "empty.csv", FEATURES, TARGET)


def test_shipped_dataset_is_the_real_one():
    frame = read_dataset(PROJECT / "dags" / "data" / "advertising.csv", FEATURES, TARGET)
    assert len(frame) == 1000 and int(frame[TARGET].sum()) == 500
