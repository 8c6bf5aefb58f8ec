"""Predictions from the champion: the checks on the rows, the scoring, and `adclick-ops predict` for files.

The monitor's POST /api/predict and the batch command share these checks: each row has exactly the
features the champion was trained on, each value a finite number; a problem names the row and the field.
The champion is its ONNX file, scored by onnxruntime (registry.serialization.OnnxModel).
"""

from __future__ import annotations

import errno
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from adclick_ops.steps.errors import shown

MAX_ROWS = 10_000


class PredictInputError(ValueError):
    """Rows that cannot be scored; the message names the row and the field."""


@dataclass(frozen=True)
class Champion:
    """A loaded champion: what serves predictions for one DAG."""

    dag_id: str
    version: int
    features: tuple[str, ...]
    model: Any
    tag: str | None = None


def load_champion(registry: Any, threads: int = 1) -> Champion | None:
    """The champion of `registry`, checked and ready to score; `threads` for onnxruntime (0: all cores)."""
    state, tag = registry.state()
    number = state["champion"]
    if number is None:
        return None
    card = registry.card(number)
    return Champion(
        registry.dag_id,
        number,
        tuple(card["model"]["features"]),
        registry.load_model(number, threads=threads),
        tag,
    )


def _number(value: Any, where: str, name: str) -> float:
    # bool is an int to Python, but true/false is not a feature value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PredictInputError(f"{where}: field {name!r}: expected a number, found {shown(repr(value))}")
    number = float(value)
    if not math.isfinite(number):
        raise PredictInputError(f"{where}: field {name!r}: expected a finite number, found {shown(repr(value))}")
    return number


def rows_to_matrix(rows: Any, features: tuple[str, ...], max_rows: int = MAX_ROWS) -> np.ndarray:
    """JSON rows -> a float matrix in the features' order; raises PredictInputError naming row and field."""
    if not isinstance(rows, list):
        raise PredictInputError(f"rows: expected a list of objects, found {type(rows).__name__}")
    if not rows:
        raise PredictInputError("rows: the list is empty; send at least one row")
    if len(rows) > max_rows:
        raise PredictInputError(f"rows: {len(rows):,} rows; at most {max_rows:,} per request")
    wanted = set(features)
    out = np.empty((len(rows), len(features)), dtype="float64")
    for i, row in enumerate(rows):
        where = f"rows[{i}]"
        if not isinstance(row, dict):
            raise PredictInputError(f"{where}: expected an object of feature: value, found {type(row).__name__}")
        if row.keys() != wanted:
            missing = [f for f in features if f not in row]
            extra = sorted(k for k in row if k not in wanted)
            problems = []
            if missing:
                problems.append(f"missing field(s) {', '.join(map(repr, missing))}")
            if extra:
                problems.append(f"unknown field(s) {shown(', '.join(map(repr, extra)))}")
            raise PredictInputError(f"{where}: {'; '.join(problems)}; expected exactly: {', '.join(features)}")
        for j, name in enumerate(features):
            out[i, j] = _number(row[name], where, name)
    return out


def score(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Click probabilities and 0/1 predictions (clicked when the probability is above one half)."""
    probability = model.predict_proba(x)[:, 1]
    return probability, (probability > 0.5).astype("int64")


def predictions_json(probability: np.ndarray, clicked: np.ndarray) -> list[dict[str, Any]]:
    return [{"click_probability": p, "clicked": c} for p, c in zip(probability.tolist(), clicked.tolist(), strict=True)]


# --- batch: adclick-ops predict --dag DAG IN.csv OUT.csv ---------------------------------------


CHUNK_ROWS = 65_536  # rows read, checked, scored and written at a time: what bounds the memory of a batch
PREDICTION_COLUMNS = ("click_probability", "clicked")  # what predict adds to the input's columns
STDOUT = STDIN = "-"


def _pandas(path: str, source: str, call: Callable[[], Any]) -> Any:
    """`call` (a read by pandas) with the errors of `read_csv_checked` in its words."""
    import warnings

    import pandas as pd

    from adclick_ops.steps.data import DataError, _not_utf8

    try:
        with warnings.catch_warnings():
            # pandas warns, and drops the extra fields, when the first data row is wider than the header
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return call()
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: the file is empty; expected a CSV header and rows") from None
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, source, exc) from None
    except (pd.errors.ParserWarning, pd.errors.ParserError) as exc:
        raise DataError(f"{source}: not a readable CSV file: {exc}") from None


def _columns(path: str, source: str, features: tuple[str, ...], ignore_extra: bool) -> list[str]:
    """The file's columns other than the features, once its header is checked: no column named twice, every feature,
    no other column unless `ignore_extra`, none named like a prediction."""
    import pandas as pd

    from adclick_ops.steps.data import DataError, _head_and_nul, check_header

    frame = _pandas(path, source, lambda: pd.read_csv(path, index_col=False, nrows=0))
    check_header(_head_and_nul(path, whole=False)[0], frame, source)
    missing = [f for f in features if f not in frame.columns]
    extra = [str(c) for c in frame.columns if c not in features]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(map(repr, missing))}; expected: {', '.join(features)}")
    if extra and not ignore_extra:
        raise DataError(
            f"{source}: unknown column(s) {', '.join(map(repr, extra))}; expected exactly: {', '.join(features)} "
            "(or pass --ignore-extra-columns to keep them in the output unscored)"
        )
    clashes = [c for c in PREDICTION_COLUMNS if c in extra]
    if clashes:
        raise DataError(
            f"{source}: column(s) {', '.join(map(repr, clashes))} would be overwritten by the predictions, which are written "
            f"as {' and '.join(PREDICTION_COLUMNS)}; rename the column(s) in the input; nothing was written"
        )
    return extra


def _chunks(path: str, source: str, features: tuple[str, ...], extra: list[str], floats: list[str]) -> Iterator[Any]:
    """The file's rows, CHUNK_ROWS at a time, as pandas reads them (the `floats` columns read as floats); the extra
    columns as written: not read as numbers, dates, booleans or missing values ("00501", "NA", "TRUE")."""
    import pandas as pd

    options: dict[str, Any] = {"index_col": False, "chunksize": CHUNK_ROWS, "dtype": dict.fromkeys(floats, "float64")}
    if extra:
        from pandas._libs.parsers import STR_NA_VALUES  # what pandas reads as missing by default

        missing = sorted(STR_NA_VALUES)
        options |= {"keep_default_na": False, "na_values": dict.fromkeys(features, missing)}
        options["dtype"] |= dict.fromkeys(extra, str)
    reader = _pandas(path, source, lambda: pd.read_csv(path, **options))
    with reader:
        while (chunk := _pandas(path, source, lambda: next(reader, None))) is not None:
            if not chunk.empty:
                chunk.index = pd.RangeIndex(len(chunk))
                yield chunk


EXACT_INTEGERS = 2**53  # an integer column of no greater magnitude (and no zero, maybe -0) is a float column as read


def _unify(chunk: Any, features: tuple[str, ...], dtypes: dict[str, Any]) -> bool:
    """Give the chunk's feature columns the type of the same column in the chunks before, as pandas does for a whole
    file (a column of integers with a float further down is a float column, written 35.0); False when the chunks
    before must be written again (a column changed type), or the chunk's text read as floats: integers beyond 2**53,
    a 0 that may be -0."""
    import pandas as pd

    same = True
    for name in features:
        have = chunk[name].dtype
        want = dtypes.setdefault(name, have)
        if have == want or not (pd.api.types.is_numeric_dtype(have) and pd.api.types.is_numeric_dtype(want)):
            continue
        common = np.result_type(have, want)
        values = chunk[name].to_numpy()
        if common != want or not (values.all() and np.abs(values).max() <= EXACT_INTEGERS):
            dtypes[name], same = common, False
        else:
            chunk[name] = values.astype(want)
    return same


def _score_pass(path: str, source: str, champion: Champion, extra: list[str], out: _Output, dtypes: dict[str, Any]) -> tuple[int, bool]:
    """One pass over the file: each chunk checked, and scored and written while no column has changed type; the
    rows read, and whether all were written."""
    from adclick_ops.steps.data import check_feature_columns, line_of_row

    floats = [name for name, dtype in dtypes.items() if dtype == np.float64]
    done, writing = 0, True
    for chunk in _chunks(path, source, champion.features, extra, floats):
        checked = check_feature_columns(chunk, list(champion.features), source, lambda i, done=done: line_of_row(path, done + i))
        writing = _unify(chunk, champion.features, dtypes) and writing
        if writing:
            probability, clicked = score(champion.model, checked.to_numpy(dtype="float64"))
            chunk[PREDICTION_COLUMNS[0]] = probability
            chunk[PREDICTION_COLUMNS[1]] = clicked
            out.write(chunk.to_csv(index=False, header=done == 0).encode())
        done += len(chunk)
    return done, writing


def score_file(path: str, champion: Champion, out: _Output, ignore_extra: bool = False, name: str | None = None) -> int:
    """Score the CSV file at `path` with `champion`, writing the input columns and the predictions to `out` a chunk
    at a time, with the dataset's checks (file lines named in errors; the file as `name`); the rows scored."""
    from adclick_ops.steps.data import DataError, _readable_path, check_rows

    source, path = name or str(path), _readable_path(str(path))
    check_rows(path, source)
    extra = _columns(path, source, champion.features, ignore_extra)
    dtypes: dict[str, Any] = {}
    rows, written = _score_pass(path, source, champion, extra, out, dtypes)
    if not rows:
        raise DataError(f"{source}: the file has a header but no rows")
    if not written:  # a column changed type past the first chunk: written again, every type known, floats read as floats
        out.restart()
        rows, written = _score_pass(path, source, champion, extra, out, dtypes)
    return rows


class _Output:
    """Where the predictions are written while the input is read: a temporary file beside the output when the output
    is a regular file (or not there yet), renamed over it at the end; one in a temporary folder otherwise (`-` for
    stdout, a pipe, a device, object storage), copied there at the end. Until `commit`, nothing reaches the output:
    a failure leaves it as it was (stdout included: nothing is printed)."""

    def __init__(self, target: str, folder: Callable[[], str]):
        import tempfile

        from adclick_ops.artifacts import _HOST

        self.target = target
        self.kind, self.place = _place(target)
        where = os.path.dirname(self.place) if self.kind == "replace" else folder()
        if self.kind == "replace":
            os.makedirs(where, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=where, prefix=f".{os.path.basename(self.place)}.{_HOST}.{os.getpid()}.", suffix=".tmp")
        self.fh = os.fdopen(fd, "w+b")

    def write(self, data: bytes) -> None:
        with _disk_full(self.target):
            self.fh.write(data)

    def restart(self) -> None:
        self.fh.seek(0)
        self.fh.truncate()

    def commit(self) -> None:
        with _disk_full(self.target):
            self.fh.flush()
            if self.kind == "replace":
                os.fsync(self.fh.fileno())
                self.fh.close()
                if os.path.isdir(self.place):
                    raise _folder_error(self.target)
                os.replace(self.tmp, self.place)  # a link stays a link; its target gets the new content
                return
            self.fh.seek(0)
            self._copy()

    def _copy(self) -> None:
        import shutil

        if self.kind == "stdout":
            sys.stdout.flush()
            shutil.copyfileobj(self.fh, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()
        elif self.kind == "through":
            with open(self.target, "wb") as fh:
                shutil.copyfileobj(self.fh, fh, 1 << 20)
        else:
            from adclick_ops.artifacts import as_path

            path = as_path(self.target)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as fh:  # one object, put whole when closed
                shutil.copyfileobj(self.fh, fh, 1 << 20)

    def discard(self) -> None:
        self.fh.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


def _place(target: str) -> tuple[str, str]:
    """How the output is written, and where: ("stdout", "-"); ("through", path) for a pipe, a terminal or a device
    (`/dev/stdout`), written through, never replaced; ("remote", URI); ("replace", the real path of the regular file,
    a link's target too)."""
    import stat

    from adclick_ops.artifacts import _is_local, as_path
    from adclick_ops.config.locations import LocationError, parse_location
    from adclick_ops.steps.errors import DataError

    if target == STDOUT:
        return "stdout", target
    try:
        parse_location(target, "the output")
    except LocationError as exc:  # an empty name, a NUL byte, an address of no place the project writes
        raise DataError(f"{exc}; expected a file path, an object-storage URI or - for standard output") from None
    if not _is_local(as_path(target)):
        return "remote", target
    try:
        mode = os.stat(target).st_mode  # through any links
    except FileNotFoundError:
        mode = None  # nothing there yet, or a link to a file still to be made
    if mode is not None and stat.S_ISDIR(mode):
        raise _folder_error(target)
    if mode is not None and not stat.S_ISREG(mode):
        return "through", target
    return "replace", os.path.realpath(target)


@contextmanager
def _disk_full(target: str) -> Iterator[None]:
    from adclick_ops.artifacts import StorageFullError

    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFullError(
                exc.errno, f"{target}: no space left on the device (or quota) while writing the predictions; free some space there"
            ) from exc
        raise


def _folder_error(target: str) -> Exception:
    from adclick_ops.steps.errors import DataError

    return DataError(
        f"the output {target}: is a folder; expected a file to write, such as {os.path.join(target, 'predictions.csv')}, "
        "or - for standard output"
    )


def _check_output(source: str, target: str) -> None:
    """Before any work: an output that is the input file, or a folder, is refused naming it."""
    from adclick_ops.steps.data import DataError

    if target == STDOUT or "://" in target or not os.path.exists(target):
        return
    if os.path.isdir(target):
        raise _folder_error(target)
    if source != STDIN and "://" not in source and os.path.exists(source) and os.path.samefile(source, target):
        raise DataError(f"{target}: is the input file; write the predictions to another file, or - for stdout")


def _stdin_to_file(folder: str) -> str:
    """Standard input, copied to a temporary file in `folder` (the checks read a file more than once)."""
    import shutil
    import tempfile

    fd, path = tempfile.mkstemp(dir=folder, prefix="stdin.", suffix=".csv")
    with os.fdopen(fd, "wb") as fh:
        shutil.copyfileobj(sys.stdin.buffer, fh, 1 << 20)
    return path


def predict_file(registry: Any, source: str, target: str, ignore_extra: bool = False) -> tuple[Champion, int]:
    """Score `source` (- for standard input) with the champion of `registry` and write `target`: the input columns
    plus the predictions, CHUNK_ROWS rows at a time (the memory needed does not grow with the file).

    The input is never changed: an input column named like a prediction column is refused (nothing is
    written), and so is an output that is the input file itself. The output is written whole at the end, once
    every row is checked and scored, or not at all.
    """
    import tempfile

    _check_output(source, target)
    champion = load_champion(registry, threads=0)
    if champion is None:
        from adclick_ops.registry import RegistryError

        raise RegistryError(f"{registry.dag_id}: no champion yet in {registry.location}; train a model first")
    with ExitStack() as stack:
        folders: list[str] = []

        def folder() -> str:
            if not folders:
                folders.append(stack.enter_context(tempfile.TemporaryDirectory(prefix="adclick-predict.")))
            return folders[0]

        out = _Output(target, folder)
        try:
            if source == STDIN:
                rows = score_file(_stdin_to_file(folder()), champion, out, ignore_extra, name="standard input")
            else:
                rows = score_file(source, champion, out, ignore_extra)
            out.commit()
        finally:
            out.discard()
    return champion, rows
