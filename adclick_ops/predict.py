"""Predictions from the champion: the checks on the rows, the scoring, and `adclick-ops predict` for files.

The monitor's POST /api/predict and the batch command share these checks: each row has exactly the
features the champion was trained on, each value a finite number; a problem names the row and the field.
The champion is its ONNX file, scored by onnxruntime (registry.serialization.OnnxModel).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

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


MAX_SHOWN_CHARS = 80  # of a value, or a list of field names, that a message quotes


def shown(text: str) -> str:
    """`text` cut to MAX_SHOWN_CHARS with an ellipsis: a message never echoes a whole 4 MB value back."""
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


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


def read_rows_csv(path: str, features: tuple[str, ...], ignore_extra: bool = False, name: str | None = None):
    """The feature matrix of a CSV file, with the dataset's checks (file lines named in errors; the file as `name`)."""
    from adclick_ops.steps.data import (
        DataError,
        check_feature_columns,
        read_csv_checked,
    )

    frame, line_of = read_csv_checked(path, name)
    source, path = name or path, str(path)
    missing = [f for f in features if f not in frame.columns]
    extra = [c for c in frame.columns if c not in features]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(map(repr, missing))}; expected: {', '.join(features)}")
    if extra and not ignore_extra:
        raise DataError(
            f"{source}: unknown column(s) {', '.join(map(repr, map(str, extra)))}; expected exactly: {', '.join(features)} "
            "(or pass --ignore-extra-columns to keep them in the output unscored)"
        )
    if frame.empty:
        raise DataError(f"{source}: the file has a header but no rows")
    checked = check_feature_columns(frame, list(features), source, line_of)
    if extra:
        # copied to the output as written: not read as numbers, dates, booleans or missing values ("00501", "NA", "TRUE")
        import pandas as pd

        from adclick_ops.steps.data import _readable_path

        written = pd.read_csv(_readable_path(path), usecols=extra, dtype=str, keep_default_na=False, index_col=False)
        frame = frame.assign(**{str(c): written[c].to_numpy() for c in extra})
    return frame, checked[list(features)].to_numpy(dtype="float64")


PREDICTION_COLUMNS = ("click_probability", "clicked")  # what predict adds to the input's columns
STDOUT = STDIN = "-"


def _write_output(target: str, data: bytes) -> None:
    """Write the output: `-` is stdout; a link, a pipe or a device (`/dev/stdout`) is written through, never
    replaced; a regular file (a link's target, too) is replaced atomically, so a reader never sees half of it."""
    import stat

    from adclick_ops.artifacts import _is_local, as_path, write_bytes_atomic

    if target == STDOUT:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    from adclick_ops.config.locations import LocationError, parse_location
    from adclick_ops.steps.errors import DataError

    try:
        parse_location(target, "the output")
    except LocationError as exc:  # an empty name, a NUL byte, an address of no place the project writes
        raise DataError(f"{exc}; expected a file path, an object-storage URI or - for standard output") from None
    path = as_path(target)
    if not _is_local(path):
        write_bytes_atomic(path, data)
        return
    try:
        mode = os.stat(target).st_mode  # through any links
    except FileNotFoundError:
        mode = None  # nothing there yet, or a link to a file still to be made
    if mode is not None and stat.S_ISDIR(mode):
        raise DataError(_is_folder(target))
    if mode is not None and not stat.S_ISREG(mode):  # a pipe, a terminal, /dev/stdout: written through
        with open(target, "wb") as fh:
            fh.write(data)
        return
    write_bytes_atomic(as_path(os.path.realpath(target)), data)  # a link stays a link; its target gets the new content


def _is_folder(target: str) -> str:
    return (
        f"the output {target}: is a folder; expected a file to write, such as {os.path.join(target, 'predictions.csv')}, "
        "or - for standard output"
    )


def _check_output(source: str, target: str) -> None:
    """Before any work: an output that is the input file, or a folder, is refused naming it."""
    from adclick_ops.steps.data import DataError

    if target == STDOUT or "://" in target or not os.path.exists(target):
        return
    if os.path.isdir(target):
        raise DataError(_is_folder(target))
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
    plus the predictions.

    The input is never changed: an input column named like a prediction column is refused (nothing is
    written), and so is an output that is the input file itself.
    """
    import tempfile

    from adclick_ops.steps.data import DataError

    _check_output(source, target)
    champion = load_champion(registry, threads=0)
    if champion is None:
        from adclick_ops.registry import RegistryError

        raise RegistryError(f"{registry.dag_id}: no champion yet in {registry.location}; train a model first")
    if source == STDIN:
        with tempfile.TemporaryDirectory(prefix="adclick-predict.") as folder:
            frame, x = read_rows_csv(_stdin_to_file(folder), champion.features, ignore_extra, name="standard input")
        source = "standard input"
    else:
        frame, x = read_rows_csv(source, champion.features, ignore_extra)
    clashes = [c for c in PREDICTION_COLUMNS if c in map(str, frame.columns)]
    if clashes:
        raise DataError(
            f"{source}: column(s) {', '.join(map(repr, clashes))} would be overwritten by the predictions, which are written "
            f"as {' and '.join(PREDICTION_COLUMNS)}; rename the column(s) in the input; nothing was written"
        )
    probability, clicked = score(champion.model, x)
    out = frame.copy()
    out[PREDICTION_COLUMNS[0]] = probability
    out[PREDICTION_COLUMNS[1]] = clicked
    _write_output(target, out.to_csv(index=False).encode())
    return champion, len(out)
