"""Reading and checking the dataset: plain functions over files and DataFrames."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from adclick_ops.config.vocabulary import STORAGE_SCHEMES
from adclick_ops.steps.errors import DataError

__all__ = ["DataError", "check_dataset", "read_dataset"]


def read_dataset(path: str | Path, features: list[str], target: str) -> pd.DataFrame:
    """Read the CSV at `path` and return its feature and target columns, checked."""
    source = str(path)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]+)://", source)
    if scheme and scheme.group(1).lower() not in (*STORAGE_SCHEMES, "file"):
        raise DataError(f"{source}: a {scheme.group(1)}:// address is not read; expected a local path or object storage")
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{source}: dataset file not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: the file is empty; expected a CSV header and rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{source}: not a readable CSV file: {exc}") from None
    return check_dataset(frame, features, target, source)


def _looks_like_csv(frame: pd.DataFrame) -> bool:
    """A table with a header of several short, printable names: only then are its column names quoted back."""
    names = [str(c) for c in frame.columns]
    return len(names) >= 2 and all(0 < len(n) <= 200 and n.isprintable() for n in names)


def _has(frame: pd.DataFrame) -> str:
    """What the file holds, in an error message: its column names when it is a CSV table, never its content otherwise."""
    if _looks_like_csv(frame):
        return f"the file has: {', '.join(map(str, frame.columns))}"
    return f"the file does not read as a CSV table with a header ({len(frame.columns)} column(s) in its first line)"


def check_dataset(frame: pd.DataFrame, features: list[str], target: str, source: str = "dataset") -> pd.DataFrame:
    """Columns present, numeric features, no missing values, rows, and both classes in the target."""
    wanted = [*features, target]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(map(repr, missing))}; {_has(frame)}")
    if frame.empty:
        raise DataError(f"{source}: the file has a header but no rows")
    data = frame[wanted].copy()
    for column in wanted:
        if not pd.api.types.is_numeric_dtype(data[column]) or pd.api.types.is_bool_dtype(data[column]):
            converted = pd.to_numeric(data[column], errors="coerce")
            bad = data[column][converted.isna() & data[column].notna()]
            if not bad.empty:
                row = int(bad.index[0]) + 2  # 1-based, after the header line
                raise DataError(
                    f"{source}: column {column!r} must be numeric; found {bad.iloc[0]!r} at line {row} ({len(bad)} non-numeric value(s))"
                )
            data[column] = converted
        nulls = data[column].isna()
        if nulls.any():
            row = int(nulls.idxmax()) + 2
            raise DataError(f"{source}: column {column!r} has {int(nulls.sum())} missing value(s), first at line {row}")
        infinite = ~np.isfinite(data[column].astype("float64"))
        if infinite.any():
            row = int(infinite.idxmax()) + 2
            raise DataError(f"{source}: column {column!r} has {int(infinite.sum())} infinite value(s), first at line {row}")
    labels = set(np.unique(data[target]).tolist())
    if not labels <= {0, 1}:
        raise DataError(f"{source}: target {target!r} must hold 0/1 labels; found {sorted(labels)[:5]}")
    if len(labels) < 2:
        raise DataError(f"{source}: target {target!r} has a single class ({labels.pop()}); both 0 and 1 are needed to train")
    return data
