"""The stable holdout: rows that no version trains on, chosen by a hash of each row's content.

Every row of the dataset gets a bucket in [0, BUCKETS) from the sha256 of its content: each column's
name and value, the columns in sorted order, a value that reads as a number written as that number
(`1`, `1.0` and `1e0` are one value). A row is held out when its bucket is below `share * BUCKETS`.
So the held-out rows do not depend on the split, the features, the scalers, the estimator, the
order of the rows or the order of the columns, and identical rows always fall on the same side.
With a smaller share the held-out rows are a subset of those of a larger one: two versions held out
with different shares are compared on the rows below the smaller share, which neither trained on.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

BUCKETS = 10_000
SCHEME = "sha256 of the sorted column=value pairs of each row, first 8 bytes modulo 10000"


def _canonical(value: str) -> str:
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return repr(number) if math.isfinite(number) else text


def row_buckets(text: pd.DataFrame) -> np.ndarray:
    """The bucket of each row of `text`, the dataset read as strings (`dtype=str, keep_default_na=False`)."""
    columns = sorted(map(str, text.columns))
    frame = text.set_axis([str(c) for c in text.columns], axis=1)[columns]
    buckets = np.empty(len(frame), dtype="int64")
    for i, values in enumerate(frame.itertuples(index=False, name=None)):
        content = "\x1f".join(f"{name}\x1e{_canonical(str(value))}" for name, value in zip(columns, values, strict=True))
        buckets[i] = int.from_bytes(hashlib.sha256(content.encode()).digest()[:8], "big") % BUCKETS
    return buckets


def limit(share: float) -> int:
    """The buckets below this are held out."""
    return round(share * BUCKETS)


def held_out(buckets: np.ndarray, share: float) -> np.ndarray:
    """Which rows are held out at `share`."""
    return np.asarray(buckets) < limit(share)


@dataclass(frozen=True)
class ChampionRows:
    """The held-out rows a champion can be scored on: those below `share`, with a `note` for the reader;
    or why there are none (`problem`)."""

    share: float | None = None
    note: str | None = None
    problem: str | None = None


def _column_change(theirs: list[str], ours: list[str]) -> str:
    gone, added = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
    return "; ".join(p for p in (f"gone: {', '.join(gone)}" if gone else "", f"added: {', '.join(added)}" if added else "") if p)


def champion_rows(version: int, card: dict[str, Any], ours: dict[str, Any], target: str, dataset: str) -> ChampionRows:
    """Which of this run's held-out rows (`ours`: share, columns, numeric) the champion, version `version` described
    by its model `card`, can be scored on through its own features: the rows below the smaller of the two shares, which
    neither trained on."""
    model = card.get("model", {})
    theirs = (card.get("dataset") or {}).get("holdout")
    if theirs is None:
        rows = ChampionRows(
            ours["share"], note=f"version {version} was trained before rows were held out; it may have trained on some of these rows"
        )
    elif theirs.get("columns") != ours["columns"]:
        what = _column_change(theirs.get("columns", []), ours["columns"])
        return ChampionRows(
            problem=f"the dataset's columns changed since it was trained ({what}), so the rows it never trained on are not known"
        )
    else:
        rows = ChampionRows(min(ours["share"], theirs["share"]))
    if model.get("target", target) != target:
        return ChampionRows(problem=f"it predicts {model.get('target')!r}, this run {target!r}")
    missing = [f for f in model.get("features", []) if f not in ours["numeric"]]
    if missing:
        return ChampionRows(problem=f"its feature column(s) {', '.join(map(repr, missing))} are not numeric columns of {dataset}")
    return rows
