"""adclick_ops.steps.data: reading and checking the dataset, on small frames and on the shipped file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adclick_ops.steps.data import DataError, check_dataset, read_dataset

from tests.support import PROJECT

FEATURES = ["Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage", "Male"]
TARGET = "Clicked on Ad"
SEED = pd.read_csv(PROJECT / "dags" / "data" / "advertising.csv")


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


# --- the file's own faults: a header naming a column twice, blank lines, a folder ---------------


def test_a_duplicated_column_name_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    frame = SEED[[*FEATURES, TARGET]].head(20)
    header = ",".join([*FEATURES, "Age", TARGET])
    body = "\n".join(",".join(map(str, [*row[:-1], row[1], row[-1]])) for row in frame.itertuples(index=False))
    path.write_text(header + "\n" + body + "\n")
    with pytest.raises(
        DataError,
        match=rf"^{path}: line 1: column 'Age' appears twice in the header \(columns 2 and 6\)",
    ):
        read_dataset(path, FEATURES, TARGET)


def test_a_folder_as_dataset_is_named(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    with pytest.raises(DataError, match=rf"^{folder}: is a folder, not a CSV file"):
        read_dataset(folder, FEATURES, TARGET)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    blanks=st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from(["", "   ", "\t", " \t "])),
        max_size=8,
    ),
    bad_row=st.integers(0, 29),
    column=st.sampled_from([*FEATURES, TARGET]),
    fault=st.sampled_from(["text", "missing", "inf"]),
)
def test_line_numbers_are_those_of_the_file_even_with_blank_lines(tmp_path_factory, blanks, bad_row, column, fault):
    """Blank lines anywhere (pandas skips them): the error names the physical line of the bad cell."""
    frame = SEED[[*FEATURES, TARGET]].head(30).astype(object)
    frame.loc[bad_row, column] = {"text": "oops", "missing": "", "inf": "inf"}[fault]
    lines = [",".join(frame.columns)] + [",".join(map(str, r)) for r in frame.itertuples(index=False)]
    # insert the blank lines after the header, bottom-up so positions stay those drawn
    for position, blank in sorted(blanks, reverse=True):
        lines.insert(1 + position, blank)
    bad_line = next(
        i
        for i, line in enumerate(lines, 1)
        if i > 1
        and line.strip()
        and line.split(",")[list(frame.columns).index(column)] == {"text": "oops", "missing": "", "inf": "inf"}[fault]
    )
    path = tmp_path_factory.mktemp("blank") / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        read_dataset(path, FEATURES, TARGET)
    message = str(info.value)
    assert message.startswith(f"{path}: column {column!r}"), message
    assert f"line {bad_line}" in message, (message, bad_line)


HEADER = ",".join([*FEATURES, TARGET])
ROW = "68.95,35,61833.9,256.09,0,0"
OTHER = "80.23,31,68435.19,193.77,1,1"


@pytest.mark.parametrize(
    "lines,words",
    [
        # one field more on every data row: pandas would take the first field as the rows' names, shifting the values
        ([f"{ROW},9", f"{OTHER},8"], "line 2: 7 fields, the header has 6"),
        ([ROW, f"{OTHER},8", ROW], "line 3: 7 fields, the header has 6"),  # a wider row after normal ones
        ([f"{ROW},8", OTHER, ROW], "line 2: 7 fields, the header has 6"),  # a wider row first, then normal ones
        ([ROW, "", ROW.rsplit(",", 1)[0], OTHER], "line 4: 5 fields, the header has 6"),  # a shorter row, after a blank line
        ([ROW, ROW.replace(",35,", ",3\x005,"), OTHER], "line 3: field 2 holds a NUL byte"),
    ],
)
def test_a_row_whose_fields_do_not_match_the_header_is_refused_naming_its_line(tmp_path, lines, words):
    """Training reads no shifted, padded or cut values: the first such line of the file is named."""
    path = tmp_path / "rows.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    with pytest.raises(DataError) as info:
        read_dataset(path, FEATURES, TARGET)
    assert str(info.value).startswith(f"{path}: {words}"), str(info.value)


def test_a_trailing_comma_on_every_data_line_reads_as_without_it(tmp_path):
    """A spreadsheet export's empty last field on each data row: pandas' index_col=False drops it, values in place."""
    plain, trailing = tmp_path / "plain.csv", tmp_path / "trailing.csv"
    plain.write_text("\n".join([HEADER, ROW, OTHER]) + "\n")
    trailing.write_text("\n".join([HEADER, f"{ROW},", f"{OTHER},"]) + "\n")
    read = read_dataset(trailing, FEATURES, TARGET)
    assert read.equals(read_dataset(plain, FEATURES, TARGET))
    assert read[FEATURES].iloc[0].tolist() == [68.95, 35, 61833.9, 256.09, 0] and read[TARGET].tolist() == [0, 1]
