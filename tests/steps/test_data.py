"""adclick_ops.steps.data: reading and checking the dataset, on small frames and on the shipped file."""

from __future__ import annotations

import math

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


# --- what pandas would read as a number: the rules of /api/predict -----------------------------------------------

CELLS = [
    # (the field in the file, the same value in a JSON row of /api/predict, None when accepted or the words of the refusal)
    ("1e5", 1e5, None),
    ("-0.5", -0.5, None),
    ("True", True, "found True (a true/false value) at line 2 (2 such value(s)); expected a number, such as 1 or 0"),
    ("false", False, "found False (a true/false value) at line 2"),
    ("TRUE", True, "found True (a true/false value) at line 2"),
    ("inf", math.inf, "has 2 infinite value(s), first at line 2 (inf); expected a finite number"),
    ("-Infinity", -math.inf, "has 2 infinite value(s), first at line 2 (-inf)"),
    ("nan", math.nan, "has 2 missing value(s), first at line 2"),
    ("NA", None, "has 2 missing value(s), first at line 2"),
    ('"1,000"', "1,000", "must be numeric; found '1,000' at line 2"),
    ("1_000", "1_000", "must be numeric; found '1_000' at line 2"),
    ("0x10", "0x10", "must be numeric; found '0x10' at line 2"),
    ("1e400", math.inf, "must be numeric; found '1e400' at line 2"),
]


@pytest.mark.parametrize("cell,as_json,words", CELLS, ids=[c[0] for c in CELLS])
def test_a_field_is_a_number_in_a_csv_file_when_it_is_one_for_the_api(tmp_path, cell, as_json, words):
    """The column Male holds the same field on every row (pandas reads a column of true/false as booleans, which
    numpy takes for 1 and 0): accepted or refused as POST /api/predict accepts or refuses the value."""
    from adclick_ops.predict import PredictInputError, rows_to_matrix

    rows = [ROW.split(","), OTHER.split(",")]
    for row in rows:
        row[FEATURES.index("Male")] = cell
    path = tmp_path / "rows.csv"
    path.write_text("\n".join([HEADER, *(",".join(r) for r in rows)]) + "\n")
    api_row = {f: 1.0 for f in FEATURES} | {"Male": as_json}
    if words is None:
        assert read_dataset(path, FEATURES, TARGET)["Male"].tolist() == [float(cell)] * 2
        rows_to_matrix([api_row], tuple(FEATURES))
        return
    with pytest.raises(DataError) as info:
        read_dataset(path, FEATURES, TARGET)
    assert str(info.value).startswith(f"{path}: column 'Male' ") and words in str(info.value), str(info.value)
    with pytest.raises(PredictInputError, match="field 'Male': expected a"):
        rows_to_matrix([api_row], tuple(FEATURES))


def test_a_target_of_true_and_false_is_refused(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("\n".join([HEADER, ROW[:-1] + "False", OTHER[:-1] + "True"]) + "\n")
    with pytest.raises(DataError, match=rf"^{path}: column 'Clicked on Ad' must be numeric; found False \(a true/false value\) at line 2"):
        read_dataset(path, FEATURES, TARGET)


def test_a_true_false_value_among_missing_ones_is_named_first(tmp_path):
    """true and an empty field in one column: pandas keeps Python booleans among NaN, which would read as 1.0."""
    path = tmp_path / "rows.csv"
    path.write_text("\n".join([HEADER, ROW.replace(",0,0", ",,0"), ROW.replace(",0,0", ",true,1")]) + "\n")
    with pytest.raises(DataError, match=r"column 'Male' must be numeric; found True \(a true/false value\) at line 3"):
        read_dataset(path, FEATURES, TARGET)


def test_a_long_field_is_cut_in_the_message(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("\n".join([HEADER, ROW.replace(",35,", f",{'x' * 10_000},"), OTHER]) + "\n")
    with pytest.raises(DataError) as info:
        read_dataset(path, FEATURES, TARGET)
    assert "found 'xxx" in str(info.value) and len(str(info.value)) < 400


# --- how often the file is read -----------------------------------------------------------------------------------


def _opens_of(path, monkeypatch) -> list[str]:
    """Every time `path` is opened through Python's open (pandas, pathlib) to be read: the list grows by the caller's
    name. The check that the file can be opened at all (config.paths.regular_file) reads nothing: not counted."""
    import builtins
    import io
    import sys

    opened: list[str] = []
    real = builtins.open

    def counting(file, *args, **kwargs):
        caller = sys._getframe(1).f_code.co_name
        if str(file) == str(path) and caller != "regular_file":
            opened.append(caller)
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting)
    monkeypatch.setattr(io, "open", counting)
    return opened


def test_a_good_file_is_opened_twice_pandas_and_one_pass_for_its_header_and_nul_bytes(tmp_path, monkeypatch):
    path = tmp_path / "rows.csv"
    SEED[[*FEATURES, TARGET]].to_csv(path, index=False)
    opened = _opens_of(path, monkeypatch)
    assert len(read_dataset(path, FEATURES, TARGET)) == 1000
    assert len(opened) == 2, opened


def test_a_nul_byte_past_the_first_mib_is_found(tmp_path):
    path = tmp_path / "rows.csv"
    body = "\n".join([ROW, OTHER] * 20_000)  # about 1.1 MB
    path.write_text(f"{HEADER}\n{body}\n{ROW.replace(',35,', ',3' + chr(0) + '5,')}\n")
    assert path.stat().st_size > 1 << 20
    with pytest.raises(DataError, match=rf"^{path}: line 40002: field 2 holds a NUL byte"):
        read_dataset(path, FEATURES, TARGET)


def test_the_first_byte_that_is_not_utf8_is_found_past_a_character_cut_by_a_mib(tmp_path):
    """A two-byte character across the first MiB's end is UTF-8; the bad byte after it is named by offset and line."""
    from adclick_ops.steps.data import HEAD_BYTES, first_bad_utf8

    path = tmp_path / "rows.csv"
    lines = (HEAD_BYTES - 1) // 100
    text = ("x" * 99 + "\n") * lines
    prefix = text.encode() + b"y" * (HEAD_BYTES - 1 - len(text))
    data = prefix + "ü\n".encode() + b"ok\nbad \xe9\n"
    path.write_bytes(data)
    assert data[HEAD_BYTES - 1 : HEAD_BYTES + 1] == "ü".encode()
    assert first_bad_utf8(str(path)) == (data.index(b"\xe9"), lines + 3, 0xE9)
    path.write_bytes(data.replace(b"\xe9", b"e"))
    assert first_bad_utf8(str(path)) is None
    path.write_bytes(data[:HEAD_BYTES])  # a character cut by the end of the file
    assert first_bad_utf8(str(path)) == (HEAD_BYTES - 1, lines + 1, 0xC3)


# --- the checks on the file's text before a read in chunks (adclick-ops predict) ---------------------------------

TEXTS = {
    "good": [HEADER, ROW, OTHER],
    "blank lines, spaces": ["", HEADER, "  ", ROW, "\t", OTHER, ""],
    "a wider row": [HEADER, ROW, f"{OTHER},8", ROW],
    "a shorter row after a blank line": [HEADER, ROW, "", ROW.rsplit(",", 1)[0]],
    "one field": [HEADER, ROW, "5"],
    "a trailing comma on every row": [HEADER, f"{ROW},", f"{OTHER},"],
    "a trailing comma from the second row": [HEADER, ROW, f"{OTHER},"],
    "a trailing comma, then a field": [HEADER, f"{ROW},", f"{OTHER},9"],
    "a NUL byte": [HEADER, ROW, ROW.replace(",35,", ",3\x005,")],
}


@pytest.mark.parametrize("quoted", [False, True], ids=["numpy", "csv module"])
@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("name", TEXTS)
def test_check_rows_counts_fields_as_the_csv_module_does(tmp_path, name, ending, quoted):
    """The same verdict, naming the same line, whether numpy counts the fields (no quote in the file) or the csv module
    does (a quoted header sends the file there): the verdict of check_fields with a trailing comma allowed."""
    from adclick_ops.steps.data import check_fields, check_rows

    lines = list(TEXTS[name])
    if quoted:
        lines = [line.replace(TARGET, f'"{TARGET}"') for line in lines]
    path = tmp_path / "rows.csv"
    path.write_bytes(ending.join(lines).encode() + (b"" if name == "one field" else ending.encode()))
    said = []
    for check in (check_rows, lambda p, s: check_fields(p, s, trailing_comma=True)):
        try:
            check(str(path), "rows.csv")
            said.append(None)
        except DataError as exc:
            said.append(str(exc))
    assert said[0] == said[1], said
    expected = {
        "a wider row": "rows.csv: line 3: 7 fields, the header has 6",
        "a shorter row after a blank line": "rows.csv: line 4: 5 fields, the header has 6",
        "one field": "rows.csv: line 3: 1 field, the header has 6",
        "a trailing comma from the second row": "rows.csv: line 3: 7 fields, the header has 6",
        "a trailing comma, then a field": "rows.csv: line 3: 7 fields, the header has 6",
        "a NUL byte": "rows.csv: line 3: field 2 holds a NUL byte",
    }.get(name)
    assert said[0] is None if expected is None else said[0].startswith(expected), (said[0], expected)


def test_check_rows_names_the_line_past_a_mib_and_the_first_byte_not_utf8(tmp_path):
    from adclick_ops.steps.data import HEAD_BYTES, check_rows

    path = tmp_path / "rows.csv"
    body = "\n".join([ROW, OTHER] * 20_000)  # about 1.1 MB
    path.write_text(f"{HEADER}\n{body}\n{ROW},9\n")
    assert path.stat().st_size > HEAD_BYTES
    with pytest.raises(DataError, match=rf"^{path}: line 40002: 7 fields, the header has 6"):
        check_rows(str(path), str(path))
    data = f"{HEADER}\n{body}\n".encode() + b"caf\xe9\n"
    path.write_bytes(data)
    offset = data.index(bytes([0xE9]))
    with pytest.raises(DataError, match=rf"^{path}: line 40002: not UTF-8 text: byte {offset:,} \(counted from 0\) is 0xe9"):
        check_rows(str(path), str(path))


def test_line_of_row_counts_as_the_csv_module_does(tmp_path):
    """Blank lines skipped, a quoted field's new lines counted: the line where each data row starts, read a row at a time."""
    from adclick_ops.steps.data import data_line_numbers, line_of_row

    text = f'\n{HEADER},note\n{ROW},"a\nb"\n\n{OTHER},x\n  \n{ROW},"c\r\nd\ne"\n{OTHER},y\n'
    path = tmp_path / "rows.csv"
    path.write_bytes(text.encode())
    assert [line_of_row(str(path), i) for i in range(4)] == data_line_numbers(text) == [3, 6, 8, 11]
    assert line_of_row(str(path), 4) == 6  # past the last row: counted from the header, as before
