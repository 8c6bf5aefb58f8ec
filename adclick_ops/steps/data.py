"""Reading and checking the dataset: plain functions over files and DataFrames."""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from adclick_ops.config.locations import LocationError, parse_location
from adclick_ops.config.paths import PathFault, regular_file
from adclick_ops.steps.errors import DataError

__all__ = ["DataError", "check_dataset", "check_feature_columns", "read_csv_checked", "read_dataset"]

LineOf = Callable[[int], int]


def _after_header(position: int) -> int:
    return position + 2  # 1-based, after the header line


def data_line_numbers(text: str) -> list[int]:
    """The file line where each data row starts, as pandas counts rows (blank lines skipped)."""
    lines: list[int] = []
    reader = csv.reader(io.StringIO(text))
    previous_end = 0
    header_seen = False
    for row in reader:
        start = previous_end + 1
        previous_end = reader.line_num
        if not row or all(not cell.strip() for cell in row) and len(row) == 1:
            continue  # a blank line: pandas skips it
        if not header_seen:
            header_seen = True
            continue
        lines.append(start)
    return lines


def _readable_path(source: str) -> str:
    """The path pandas reads: a local file checked first (one line naming the path), or the storage URI."""
    try:
        where = parse_location(source, "dataset")
    except LocationError as exc:
        raise DataError(f"{source}: {exc}") from None
    if not where.local:
        return str(where)
    # a folder, a FIFO, a device, a link loop, a name too long...: one line naming the path, before any read
    try:
        regular_file(where.path, "dataset")
    except PathFault as exc:
        said = {
            "missing": "dataset file not found",
            "folder": "is a folder, not a CSV file; name the file itself",
            "denied": "permission denied; the file must be readable by the user running the task",
        }
        raise DataError(f"{source}: {said.get(exc.cause, exc.problem)}") from None
    return where.path


def _row_problem(row: list[str], width: int) -> str | None:
    """What is wrong with one data row of the file, or None: a field count other than the header's, a NUL byte."""
    if len(row) != width:
        return f"{len(row)} field{'' if len(row) == 1 else 's'}, the header has {width}; each row must have one field per column"
    for position, cell in enumerate(row, 1):
        if "\x00" in cell:
            return f"field {position} holds a NUL byte (a binary or damaged file?)"
    return None


def check_fields(path: str, source: str | None = None) -> None:
    """Refuse, naming the first such line, a data row whose field count differs from the header's or that holds a NUL
    byte: pandas would take a wider row's first field as the row's name (shifting every value one column left),
    fill a shorter one with missing values, and cut a value at a NUL byte, all without a word.

    One pass over the file in Python, a row at a time, as the csv module and pandas count rows (blank lines
    skipped): slow on large files, so `_read_frame` calls it only for a file that shows a sign of such a row.
    """
    from adclick_ops.artifacts import as_path

    source = source or path
    with as_path(path).open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="") as text:
        reader = csv.reader(text)
        width = None
        previous_end = 0
        try:
            for row in reader:
                start, previous_end = previous_end + 1, reader.line_num
                if not row or (len(row) == 1 and not row[0].strip() and "\x00" not in row[0]):
                    continue  # a blank line: pandas skips it
                width = len(row) if width is None else width  # the header's
                problem = _row_problem(row, width)
                if problem:
                    raise DataError(f"{source}: line {start}: {problem}")
        except csv.Error as exc:
            raise DataError(f"{source}: line {reader.line_num}: not a readable CSV file: {exc}") from None


def _holds_nul(path: str) -> bool:
    from adclick_ops.artifacts import as_path

    with as_path(path).open("rb") as raw:
        while chunk := raw.read(1 << 20):
            if b"\x00" in chunk:
                return True
    return False


def _read_frame(path: str, source: str) -> pd.DataFrame:
    try:
        with warnings.catch_warnings():
            # pandas warns, and drops the extra fields, when the first data row is wider than the header
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # index_col=False: never a column taken as the rows' names
            frame = pd.read_csv(path, index_col=False)
        # a shorter row reads as missing values, a NUL byte cuts its value: name the line when the file has either
        if frame.isna().to_numpy().any() or _holds_nul(path):
            check_fields(path, source)
        return frame
    except FileNotFoundError:
        raise DataError(f"{source}: dataset file not found") from None
    except IsADirectoryError:
        raise DataError(f"{source}: is a folder, not a CSV file; name the file itself") from None
    except PermissionError:
        raise DataError(f"{source}: permission denied; the file must be readable by the user running the task") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: the file is empty; expected a CSV header and rows") from None
    except (pd.errors.ParserWarning, pd.errors.ParserError, UnicodeDecodeError) as exc:
        if not isinstance(exc, UnicodeDecodeError):
            check_fields(path, source)  # a row of the wrong width: its line, in the words of the other checks
        raise DataError(f"{source}: not a readable CSV file: {exc}") from None


def read_csv_checked(path: str | Path) -> tuple[pd.DataFrame, LineOf]:
    """Read a CSV file with clear errors; returns the frame and `line_of(row position) -> file line`."""
    source = str(path)
    frame = _read_frame(_readable_path(source), source)

    text_cache: list[str] = []

    def text() -> str:
        if not text_cache:
            from adclick_ops.artifacts import as_path

            text_cache.append(as_path(source).read_bytes().decode("utf-8", errors="replace"))
        return text_cache[0]

    # pandas renames a repeated column to "name.1": the file's own header is the truth. Only the first
    # MiB is read for it: a dataset of millions of rows is not read twice.
    from adclick_ops.artifacts import as_path

    with as_path(source).open("rb") as fh:
        head = fh.read(1 << 20).decode("utf-8", errors="replace")
    header = next((row for row in csv.reader(io.StringIO(head)) if row and any(c.strip() for c in row)), [])
    seen: dict[str, int] = {}
    for position, name in enumerate(header, 1):
        if name in seen:
            named = f"column {name!r}" if _looks_like_csv(frame) else "a column name"
            raise DataError(
                f"{source}: line 1: {named} appears twice in the header (columns {seen[name]} and {position}); "
                "each column name must be unique"
            )
        seen[name] = position

    lines: list[list[int]] = []

    def line_of(position: int) -> int:
        if not lines:
            lines.append(data_line_numbers(text()))
        mapping = lines[0]
        return mapping[position] if 0 <= position < len(mapping) else _after_header(position)

    return frame, line_of


def _looks_like_csv(frame: pd.DataFrame) -> bool:
    """A table with a header of several short, printable names: only then are its column names quoted back."""
    names = [str(c) for c in frame.columns]
    return len(names) >= 2 and all(0 < len(n) <= 200 and n.isprintable() for n in names)


def _has(frame: pd.DataFrame) -> str:
    """What the file holds, in an error message: its column names when it is a CSV table, never its content otherwise."""
    if _looks_like_csv(frame):
        return f"the file has: {', '.join(map(str, frame.columns))}"
    return f"the file does not read as a CSV table with a header ({len(frame.columns)} column(s) in its first line)"


def read_dataset(path: str | Path, features: list[str], target: str) -> pd.DataFrame:
    """Read the CSV at `path` and return its feature and target columns, checked."""
    frame, line_of = read_csv_checked(path)
    return check_dataset(frame, features, target, str(path), line_of)


def check_feature_columns(frame: pd.DataFrame, columns: list[str], source: str, line_of: LineOf = _after_header) -> pd.DataFrame:
    """Each column numeric, with no missing or infinite value; returns the columns as numbers."""
    data = frame[columns].copy()
    for column in columns:
        if not pd.api.types.is_numeric_dtype(data[column]) or pd.api.types.is_bool_dtype(data[column]):
            converted = pd.to_numeric(data[column], errors="coerce")
            bad = data[column][converted.isna() & data[column].notna()]
            if not bad.empty:
                row = line_of(int(bad.index[0]))
                raise DataError(
                    f"{source}: column {column!r} must be numeric; found {bad.iloc[0]!r} at line {row} ({len(bad)} non-numeric value(s))"
                )
            data[column] = converted
        nulls = data[column].isna()
        if nulls.any():
            row = line_of(int(nulls.to_numpy().argmax()))
            raise DataError(f"{source}: column {column!r} has {int(nulls.sum())} missing value(s), first at line {row}")
        infinite = ~np.isfinite(data[column].astype("float64"))
        if infinite.any():
            row = line_of(int(infinite.to_numpy().argmax()))
            raise DataError(f"{source}: column {column!r} has {int(infinite.sum())} infinite value(s), first at line {row}")
    return data


def check_dataset(
    frame: pd.DataFrame, features: list[str], target: str, source: str = "dataset", line_of: LineOf = _after_header
) -> pd.DataFrame:
    """Columns present, numeric features, no missing values, rows, and both classes in the target."""
    wanted = [*features, target]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(map(repr, missing))}; {_has(frame)}")
    if frame.empty:
        raise DataError(f"{source}: the file has a header but no rows")
    frame = frame.reset_index(drop=True)
    data = check_feature_columns(frame, wanted, source, line_of)
    labels = set(np.unique(data[target]).tolist())
    if not labels <= {0, 1}:
        raise DataError(f"{source}: target {target!r} must hold 0/1 labels; found {sorted(labels)[:5]}")
    if len(labels) < 2:
        raise DataError(f"{source}: target {target!r} has a single class ({labels.pop()}); both 0 and 1 are needed to train")
    return data
