"""A fitted scikit-learn pipeline as an ONNX file (skl2onnx), and the check that both give the same probabilities.

Imported only where models are made: build_save_model_task and `adclick-ops models migrate`.

scikit-learn's trees compare the features as float32 (a tree casts its input first), after the
scalers have worked in float64. The graph does the same: its input is float64, the scalers run in
float64, and a Cast to float32 feeds the trees. Fed float64, the trees would split some rows the
other way (probabilities off by up to 0.02 on a 50-tree forest); fed float32 from the start, the
scalers would round differently. Logistic regression stays in float64 throughout.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from adclick_ops.registry.serialization import INPUT, MAX_OPSET, OUTPUTS, OnnxModel, UnsafeModelError, load_model_bytes

TARGET_OPSET: dict[str, int] = dict(MAX_OPSET)
TOLERANCE = 1e-4  # the largest difference of a probability allowed between the ONNX file and scikit-learn


class FidelityError(UnsafeModelError):
    """The ONNX file does not give the fitted pipeline's probabilities; it is not registered."""


def _for_conversion(pipeline: Any) -> Any:
    """The pipeline to convert: the fitted steps, with a cast to float32 before a tree ensemble."""
    from sklearn.pipeline import Pipeline
    from sklearn.tree._classes import BaseDecisionTree

    estimator = pipeline.steps[-1][1]
    trees = getattr(estimator, "estimators_", None)
    first = trees.ravel()[0] if isinstance(trees, np.ndarray) else (trees[0] if trees else None)
    if isinstance(estimator, BaseDecisionTree) or isinstance(first, BaseDecisionTree):
        from skl2onnx.sklapi import CastTransformer

        return Pipeline([*pipeline.steps[:-1], ("float32", CastTransformer(dtype=np.float32)), pipeline.steps[-1]])
    return pipeline


def to_onnx(pipeline: Any, features: list[str]) -> bytes:
    """The fitted `pipeline` as the bytes of an ONNX model: input `features` (float64, rows x features),
    outputs `label` (int64) and `probabilities` (rows x 2). The same pipeline always gives the same bytes."""
    import warnings

    with warnings.catch_warnings():
        # skl2onnx's import reads attributes that scikit-learn and SciPy mark deprecated
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import DoubleTensorType

    estimator = pipeline.steps[-1][1]
    model = convert_sklearn(
        _for_conversion(pipeline),
        initial_types=[(INPUT, DoubleTensorType([None, len(features)]))],
        target_opset=TARGET_OPSET,
        options={id(estimator): {"zipmap": False}},
        final_types=None,
    )
    if [o.name for o in model.graph.output] != list(OUTPUTS):
        raise UnsafeModelError(f"skl2onnx wrote outputs {[o.name for o in model.graph.output]}; expected {list(OUTPUTS)}")
    # The same model, the same bytes: skl2onnx names some graphs with a random uuid, and lists the opsets in
    # the order of a set of strings, which changes with each process's hash seed.
    model.graph.name = "adclick_ops"
    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, version in opsets:
        model.opset_import.add(domain=domain, version=version)
    model.doc_string = "adclick-ops: the probability of a click on an ad; see docs/models.md"
    entry = model.metadata_props.add()
    entry.key, entry.value = "features", json.dumps(list(features))
    return model.SerializeToString(deterministic=True)


def check_fidelity(pipeline: Any, model: OnnxModel, x: np.ndarray, source: str = "model") -> float:
    """The largest difference between the probabilities of `model` and of the fitted `pipeline` on the rows `x`;
    FidelityError above TOLERANCE."""
    expected = pipeline.predict_proba(x)
    found = model.predict_proba(x)
    if found.shape != expected.shape:
        raise FidelityError(f"{source}: the ONNX file gives probabilities of shape {found.shape}; scikit-learn {expected.shape}")
    differences = np.abs(found - expected).max(axis=1)
    worst = int(differences.argmax()) if len(differences) else 0
    largest = float(differences[worst]) if len(differences) else 0.0
    if not largest <= TOLERANCE:
        raise FidelityError(
            f"{source}: not registered: the ONNX file's probabilities differ from the fitted scikit-learn pipeline's by up to "
            f"{largest:.3g} (row {worst} of {len(x)} test rows: {found[worst, 1]:.6f} against {expected[worst, 1]:.6f}); "
            f"at most {TOLERANCE:g} is allowed"
        )
    return largest


def convert_checked(pipeline: Any, features: list[str], x: np.ndarray, source: str = "model") -> tuple[bytes, OnnxModel, float]:
    """Convert, load back through every check, and compare with scikit-learn on `x`: (bytes, model, largest difference)."""
    blob = to_onnx(pipeline, features)
    model = load_model_bytes(blob, source, n_features=len(features))
    return blob, model, check_fidelity(pipeline, model, x, source)
