"""`adclick-ops models migrate`: registries written by earlier adclick-ops versions, converted to ONNX once.

Each version whose card names an earlier format is read here, and only here, with the checks of
those versions (registry.legacy), converted with skl2onnx, and kept only if the ONNX file gives the
old model's probabilities (within registry.convert.TOLERANCE) on the rows of the dataset its card
names, when that file is still there, and on generated rows. The card then names the ONNX file and
the file it replaced; version numbers, metrics and the champion's history stay as they were.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from adclick_ops.registry.registry import Registry, now

log = logging.getLogger(__name__)
GENERATED_ROWS = 2_000
MAX_DATASET_ROWS = 100_000


@dataclass(frozen=True)
class Migrated:
    version: int
    old: str  # the old file
    new: str  # the ONNX file
    difference: float  # the largest difference of a probability on the rows compared
    rows: int


def _rows(card: dict[str, Any], n_features: int) -> tuple[Any, str]:
    """The rows to compare on: the card's dataset when it can still be read, and generated rows of every scale."""
    import numpy as np

    rng = np.random.default_rng(0)
    scale = 10.0 ** rng.uniform(-2, 5, size=(GENERATED_ROWS, 1))
    generated = rng.normal(size=(GENERATED_ROWS, n_features)) * scale
    dataset = card.get("dataset")
    path = dataset.get("path") if isinstance(dataset, dict) else None
    if isinstance(path, str) and path:
        try:
            from adclick_ops.steps.data import read_dataset

            model = card["model"]
            frame = read_dataset(path, model["features"], model["target"])
            x = frame[model["features"]].to_numpy(dtype="float64")[:MAX_DATASET_ROWS]
            return np.vstack([x, generated]), f"{len(x):,} rows of {path} and {GENERATED_ROWS:,} generated rows"
        except Exception as exc:  # noqa: BLE001 - moved or changed since; the generated rows still compare
            log.warning("version %s: the dataset %s cannot be read (%s); comparing on generated rows only", card["version"], path, exc)
    return generated, f"{GENERATED_ROWS:,} generated rows"


def migrate_registry(registry: Registry) -> list[Migrated]:
    """Convert every version of `registry` still in an earlier format; returns what was converted."""
    from adclick_ops.registry.convert import convert_checked
    from adclick_ops.registry.legacy import FORMAT as OLD_FORMAT
    from adclick_ops.registry.legacy import load_model_bytes as load_legacy

    done = []
    for number in registry.legacy_versions():
        card = registry.card(number)
        old = card["model"]
        source = f"{registry.store.path(old['file'])} (version {number})"
        data = registry.model_bytes(number)  # its sha256 against the card first
        pipeline = load_legacy(data, source)
        x, described = _rows(card, len(old["features"]))
        blob, model, difference = convert_checked(pipeline, list(old["features"]), x, source)
        replaced = {"file": old["file"], "sha256": old["sha256"], "format": old.get("format", "skops"), "at": now()}
        if replaced["format"] != OLD_FORMAT:
            replaced["format"] = "skops"
        new = registry.replace_model(number, blob, model.info.as_json(), replaced)
        log.info("version %s: %s -> %s, probabilities within %.2g on %s", number, old["file"], new["model"]["file"], difference, described)
        done.append(Migrated(number, old["file"], new["model"]["file"], difference, len(x)))
    if done:
        registry.sync_champion_file()
    return done
