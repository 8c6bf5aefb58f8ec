"""The model card of a version: what it scored, what trained it, and with which software."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from adclick_ops.config.models import TrainingJob
from adclick_ops.config.vocabulary import METRIC_KEYS

PACKAGES = ("adclick-ops", "scikit-learn", "numpy", "pandas", "apache-airflow", "skl2onnx", "onnx", "onnxruntime")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def pipeline_source(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return {"file": path, "error": f"{type(exc).__name__}: {exc.strerror or exc}"}
    return {
        "file": path,
        "sha256": hashlib.sha256(data).hexdigest(),
        "text": data.decode("utf-8", errors="replace"),
    }


def model_card(
    job: TrainingJob, run_id: str, metrics: dict[str, Any], dataset: dict[str, Any], onnx: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything the registry keeps about one trained model, besides the model file itself.

    `onnx` describes the file for a user of onnxruntime: the opsets, the input and output names, types and shapes.
    """
    return {
        "run_id": run_id,
        "metrics": {k: metrics.get(k) for k in METRIC_KEYS},
        "dataset": dataset,
        "model": {
            "estimator": job.estimator.name,
            "params": dict(job.estimator.params),
            "scalers": list(job.scalers),
            "features": list(job.features),
            "target": job.target,
            "split": job.split.model_dump(mode="json"),
            "onnx": onnx,
        },
        "pipeline": pipeline_source(job.pipeline_file),
        "packages": package_versions(),
    }
