"""Models as bytes and back: skops files, loaded only when every type they hold is on our allow-list.

A pickle runs whatever code its author put in it the moment it is read. A skops file is a zip of a
JSON description and numpy arrays; `load_model_bytes` reads that description first and refuses the
file when it names a type outside TRUSTED_TYPES, before anything is built from it.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from types import ModuleType
from typing import Any

FORMAT = "skops"

# Every type that the pipelines adclick-ops builds contain (scalers side by side, the three
# estimators, the trees and losses inside them), and nothing else. tests/registry/test_registry.py saves each
# combination and checks that this list is exactly what they need.
TRUSTED_TYPES: tuple[str, ...] = (
    "builtins.dict",
    "builtins.list",
    "builtins.str",
    "builtins.tuple",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "numpy.random.mtrand.RandomState",
    "_loss.CyHalfBinomialLoss",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn.dummy.DummyClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.MaxAbsScaler",
    "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._data.RobustScaler",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
)


class UnsafeModelError(ValueError):
    """A model file that is not a skops file, or that names a type outside TRUSTED_TYPES."""


def _skops_io() -> ModuleType:
    """skops.io, imported without the warnings of its module search.

    On import, skops finds the module of each scipy ufunc that names none by reading that name from
    every loaded module. Inside an Airflow task this reads Airflow's deprecated module attributes,
    each of which warns into the task log; those warnings concern the search, so they are silenced
    here, and only those.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils$")
        import skops.io
    return skops.io


def dump_model(model: Any) -> bytes:
    """The model as the bytes of a skops file."""
    return _skops_io().dumps(model)


def types_in(data: bytes, source: str = "model file") -> set[str]:
    """Every type a skops file names, read from its JSON description without building anything."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, UnicodeDecodeError):
        hint = " (it looks like a pickle, which adclick-ops never loads)" if data[:1] == b"\x80" else ""
        raise UnsafeModelError(f"{source}: not a skops model file{hint}; retrain the model to save it in the safe format") from None
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node and "__module__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def load_model_bytes(data: bytes, source: str = "model file") -> Any:
    """Build the model held in `data`; refuse any file naming a type outside TRUSTED_TYPES."""
    untrusted = sorted(types_in(data, source) - set(TRUSTED_TYPES))
    if untrusted:
        raise UnsafeModelError(
            f"{source}: refused: it holds type(s) outside the trusted list: {', '.join(untrusted)}; "
            "adclick-ops loads only the scalers and estimators it trains itself"
        )
    return _skops_io().loads(data, trusted=list(TRUSTED_TYPES))
