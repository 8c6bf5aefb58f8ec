"""Reading and checking the dataset: plain functions over files and DataFrames."""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adclick_ops.artifacts import as_path
from adclick_ops.config.locations import LocationError, parse_location
from adclick_ops.config.paths import PathFault, regular_file
from adclick_ops.steps.errors import DataError, shown

__all__ = ["DataError", "check_dataset", "check_feature_columns", "read_csv_checked", "read_dataset"]

LineOf = Callable[[int], int]


def _after_header(position: int) -> int:
    return position + 2  # 1-based, after the header line


def _data_row_lines(reader: Any) -> Iterator[int]:
    """The file line where each data row read by the csv `reader` starts, as pandas counts rows (blank lines skipped)."""
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
        yield start


def data_line_numbers(text: str) -> list[int]:
    """The file line where each data row starts, as pandas counts rows (blank lines skipped)."""
    return list(_data_row_lines(csv.reader(io.StringIO(text))))


def line_of_row(path: str, position: int) -> int:
    """The file line where data row `position` (counted from 0) starts, as data_line_numbers counts: one pass over the
    file, a row at a time, up to that row (the file is never held whole)."""
    with as_path(path).open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="") as text:
        for index, line in enumerate(_data_row_lines(csv.reader(text))):
            if index == position:
                return line
    return _after_header(position)


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


def _width_problem(fields: int, width: int) -> str:
    return f"{fields} field{'' if fields == 1 else 's'}, the header has {width}; each row must have one field per column"


def _row_problem(row: list[str], width: int) -> str | None:
    """What is wrong with one data row of the file, or None: a field count other than the header's, a NUL byte."""
    if len(row) != width:
        return _width_problem(len(row), width)
    for position, cell in enumerate(row, 1):
        if "\x00" in cell:
            return f"field {position} holds a NUL byte (a binary or damaged file?)"
    return None


def check_fields(path: str, source: str | None = None, trailing_comma: bool = False) -> None:
    """Refuse, naming the first such line, a data row whose field count differs from the header's or that holds a NUL
    byte: pandas would take a wider row's first field as the row's name (shifting every value one column left),
    fill a shorter one with missing values, and cut a value at a NUL byte, all without a word.

    One pass over the file in Python, a row at a time, as the csv module and pandas count rows (blank lines
    skipped): slow on large files, so `_read_frame` calls it only for a file that shows a sign of such a row.
    `trailing_comma`: when the first data row ends with one empty field more than the header has, as pandas reads
    it (index_col=False), every row may end so (the field is dropped), as check_rows allows.
    """
    source = source or path
    with as_path(path).open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="") as text:
        reader = csv.reader(text)
        width = trailing = None
        previous_end = 0
        try:
            for row in reader:
                start, previous_end = previous_end + 1, reader.line_num
                if not row or (len(row) == 1 and not row[0].strip() and "\x00" not in row[0]):
                    continue  # a blank line: pandas skips it
                if width is not None and trailing is None:  # the first data row
                    trailing = trailing_comma and len(row) == width + 1 and row[-1] == ""
                if trailing and len(row) == width + 1 and row[-1] == "":
                    row = row[:-1]
                width = len(row) if width is None else width  # the header's
                problem = _row_problem(row, width)
                if problem:
                    raise DataError(f"{source}: line {start}: {problem}")
        except csv.Error as exc:
            raise DataError(f"{source}: line {reader.line_num}: not a readable CSV file: {exc}") from None


HEAD_BYTES = 1 << 20  # where the header is looked for: a dataset of millions of rows is not read twice for it


def _head_and_nul(path: str, whole: bool) -> tuple[str, bool]:
    """The file's first MiB as text (its header is there) and whether it holds a NUL byte, in one pass: the rest of
    the file is read, a MiB at a time, only when `whole`."""
    with as_path(path).open("rb") as raw:
        chunk = raw.read(HEAD_BYTES)
        head, nul = chunk.decode("utf-8", errors="replace"), b"\x00" in chunk
        while whole and not nul and (chunk := raw.read(HEAD_BYTES)):
            nul = b"\x00" in chunk
    return head, nul


def first_bad_utf8(path: str) -> tuple[int, int, int] | None:
    """Where the file first stops being UTF-8: (byte offset, counted from 0; its line; the byte), None if it never does.
    One pass, a MiB at a time."""
    offset, line, carry = 0, 1, b""
    with as_path(path).open("rb") as raw:
        while True:
            chunk = raw.read(HEAD_BYTES)
            data = carry + chunk
            if not data:
                return None
            try:
                data.decode("utf-8")
                good = len(data)
            except UnicodeDecodeError as exc:
                if not (chunk and exc.reason == "unexpected end of data"):  # not a character cut by the chunk's end
                    return offset + exc.start, line + data.count(b"\n", 0, exc.start), data[exc.start]
                good = exc.start
            line += data.count(b"\n", 0, good)
            offset, carry = offset + good, data[good:]


def _not_utf8(path: str, source: str, exc: UnicodeDecodeError) -> DataError:
    where = first_bad_utf8(path)
    if where is None:
        return DataError(f"{source}: not a readable CSV file: {exc}")
    offset, line, byte = where
    return DataError(
        f"{source}: line {line}: not UTF-8 text: byte {offset:,} (counted from 0) is 0x{byte:02x}, which UTF-8 does not "
        "allow there (a file saved as Latin-1 or Windows-1252?); expected UTF-8: save the file as UTF-8"
    )


class _RowScan:
    """check_rows's state from one block of whole lines to the next: the header's width, whether the rows may end
    with an empty field more (a trailing comma on the first data row), the number of the block's first line."""

    def __init__(self, source: str):
        self.source = source
        self.width: int | None = None
        self.trailing: bool | None = None
        self.line = 1

    def block(self, data: bytes) -> None:
        """Check the lines of `data` (whole lines, without quotes, NUL bytes or a CR alone): numpy counts the fields."""
        buf = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(buf == 10)
        if not data.endswith(b"\n"):
            ends = np.append(ends, len(data))  # the file's last line, without its end
        starts = np.concatenate(([0], ends[:-1] + 1))
        stops = ends - (buf[np.maximum(ends - 1, 0)] == 13) * (ends > starts)  # before a CR of CR LF
        commas = np.flatnonzero(buf == 44)
        fields = np.searchsorted(commas, stops) - np.searchsorted(commas, starts) + 1
        last_empty = (stops > starts) & (buf[np.maximum(stops - 1, 0)] == 44)
        first = 0
        while self.trailing is None and first < len(ends):  # the header, then the first data row
            if not (fields[first] == 1 and self._blank(data, starts[first], stops[first])):
                if self.width is None:
                    self.width = int(fields[first])
                else:
                    self.trailing = bool(fields[first] == self.width + 1 and last_empty[first])
                    continue
            first += 1
        if self.width is not None:
            ok = fields == self.width
            if self.trailing:
                ok |= (fields == self.width + 1) & last_empty
            for i in np.flatnonzero(~ok[first:]) + first:
                if not (fields[i] == 1 and self._blank(data, starts[i], stops[i])):
                    raise DataError(f"{self.source}: line {self.line + i}: {_width_problem(int(fields[i]), self.width)}")
        self.line += int(np.count_nonzero(buf == 10))

    @staticmethod
    def _blank(data: bytes, start: int, stop: int) -> bool:
        return not data[start:stop].decode("utf-8").strip()


def check_rows(path: str, source: str) -> None:
    """The checks of `read_csv_checked` on the file's text, before a read of its rows in chunks (pandas drops, without
    a word, a wider row that starts a chunk): the file is UTF-8 (else its first other byte is named, by offset and
    line), holds no NUL byte, and each data row has the header's field count (a trailing comma on every row, as
    pandas reads it, is allowed); the first problem names its line.

    One pass, a MiB at a time: numpy counts the fields of lines without quotes; a file with a quote, a NUL byte or a
    CR alone goes through `check_fields` (the csv module, a row at a time) once the pass has found its text UTF-8.
    """
    scan, slow, carry = _RowScan(source), False, b""
    with as_path(path).open("rb") as raw:
        while True:
            block = raw.read(HEAD_BYTES)
            data = carry + block
            if not data:
                break
            end = data.rfind(b"\n") + 1 if block else len(data)
            whole, carry = data[:end], data[end:]
            try:
                whole.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, source, exc) from None
            slow = slow or b'"' in whole or b"\x00" in whole or whole.count(b"\r") != whole.count(b"\r\n")
            if whole and not slow:
                scan.block(whole)
    if slow:
        check_fields(path, source, trailing_comma=True)


def _read_frame(path: str, source: str) -> tuple[pd.DataFrame, str]:
    """The file as pandas reads it, and its first MiB as text."""
    try:
        with warnings.catch_warnings():
            # pandas warns, and drops the extra fields, when the first data row is wider than the header
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # index_col=False: never a column taken as the rows' names
            frame = pd.read_csv(path, index_col=False)
        # a shorter row reads as missing values, a NUL byte cuts its value: name the line when the file has either
        missing = bool(frame.isna().to_numpy().any())
        head, nul = _head_and_nul(path, whole=not missing)
        if missing or nul:
            check_fields(path, source)
        return frame, head
    except FileNotFoundError:
        raise DataError(f"{source}: dataset file not found") from None
    except IsADirectoryError:
        raise DataError(f"{source}: is a folder, not a CSV file; name the file itself") from None
    except PermissionError:
        raise DataError(f"{source}: permission denied; the file must be readable by the user running the task") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: the file is empty; expected a CSV header and rows") from None
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, source, exc) from None
    except (pd.errors.ParserWarning, pd.errors.ParserError) as exc:
        check_fields(path, source)  # a row of the wrong width: its line, in the words of the other checks
        raise DataError(f"{source}: not a readable CSV file: {exc}") from None


def check_header(head: str, frame: pd.DataFrame, source: str) -> None:
    """Refuse a header that names a column twice; `head`: the file's first MiB as text, `frame`: the file as pandas
    reads it (its first rows are enough)."""
    # pandas renames a repeated column to "name.1": the file's own header is the truth
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


def read_csv_checked(path: str | Path, name: str | None = None) -> tuple[pd.DataFrame, LineOf]:
    """Read a CSV file with clear errors; returns the frame and `line_of(row position) -> file line`. Messages name
    the file `name` (by default its path)."""
    source = name or str(path)
    readable = _readable_path(str(path))
    frame, head = _read_frame(readable, source)

    text_cache: list[str] = []

    def text() -> str:
        if not text_cache:
            text_cache.append(as_path(readable).read_bytes().decode("utf-8", errors="replace"))
        return text_cache[0]

    check_header(head, frame, source)

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


def _refuse_booleans(values: pd.Series, column: str, source: str, line_of: LineOf) -> None:
    """pandas reads true/false (True, TRUE, false...) as booleans, which are numbers to numpy: refused, as /api/predict
    refuses them, naming the first line."""
    if pd.api.types.is_bool_dtype(values):
        flags = np.ones(len(values), dtype=bool)
    elif values.dtype == object:  # booleans among missing values
        flags = np.fromiter((isinstance(v, (bool, np.bool_)) for v in values), dtype=bool, count=len(values))
    else:
        return
    if flags.any():
        first = int(flags.argmax())
        raise DataError(
            f"{source}: column {column!r} must be numeric; found {bool(values.iloc[first])!r} (a true/false value) at line "
            f"{line_of(first)} ({int(flags.sum())} such value(s)); expected a number, such as 1 or 0"
        )


def check_feature_columns(frame: pd.DataFrame, columns: list[str], source: str, line_of: LineOf = _after_header) -> pd.DataFrame:
    """Each column numeric (true/false is not a number), with no missing or infinite value; returns the columns as
    numbers. The rules of /api/predict (adclick_ops.predict): text, booleans, NaN and infinities are refused."""
    data = frame[columns].copy()
    for column in columns:
        _refuse_booleans(data[column], column, source, line_of)
        if not pd.api.types.is_numeric_dtype(data[column]):
            converted = pd.to_numeric(data[column], errors="coerce")
            bad = data[column][converted.isna() & data[column].notna()]
            if not bad.empty:
                row = line_of(int(bad.index[0]))
                raise DataError(
                    f"{source}: column {column!r} must be numeric; found {shown(repr(bad.iloc[0]))} at line {row} ({len(bad)} non-numeric value(s))"
                )
            data[column] = converted
        nulls = data[column].isna()
        if nulls.any():
            row = line_of(int(nulls.to_numpy().argmax()))
            raise DataError(
                f"{source}: column {column!r} has {int(nulls.sum())} missing value(s), first at line {row} "
                "(an empty field, or a word pandas reads as missing: NA, NaN, null...); expected a finite number in every row"
            )
        infinite = ~np.isfinite(data[column].astype("float64"))
        if infinite.any():
            row = line_of(int(infinite.to_numpy().argmax()))
            raise DataError(
                f"{source}: column {column!r} has {int(infinite.sum())} infinite value(s), first at line {row} "
                f"({float(data[column].iloc[int(infinite.to_numpy().argmax())])!r}); expected a finite number"
            )
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
