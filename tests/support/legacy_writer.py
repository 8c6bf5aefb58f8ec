"""The writer of the `adclick-model/1` format of earlier adclick-ops versions, kept for the tests only:
the package reads that format once, to migrate a registry (adclick_ops.registry.legacy), and never writes it."""

from __future__ import annotations

import copyreg
import io
import json
import math
import zipfile
from typing import Any

import numpy as np

from adclick_ops.registry.legacy import DESCRIPTION, FORMAT, TRUSTED_CLASSES
from adclick_ops.registry.serialization import UnsafeModelError

_SCALARS = {"numpy.float64": "float64", "numpy.int64": "int64"}
_PLAIN = (bool, int, str, type(None))


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


class _Writer:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, value: np.ndarray) -> dict[str, Any]:

        if value.dtype == object:
            return {"object_array": list(value.shape), "items": [self.node(item) for item in value.ravel().tolist()]}
        if value.dtype.hasobject:
            raise UnsafeModelError(f"cannot save an array of dtype {value.dtype}")
        name = f"arrays/{len(self.arrays)}.npy"
        self.arrays[name] = value
        return {"array": name}

    # one branch per node kind of the legacy format, the writer side of adclick_ops.registry.legacy.Reader.node
    def node(self, value: Any) -> Any:  # noqa: C901
        if isinstance(value, float) and type(value) is float:
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, _PLAIN) and type(value) in _PLAIN:
            return value
        if isinstance(value, list) and type(value) is list:
            return [self.node(item) for item in value]
        if type(value) is tuple:
            return {"tuple": [self.node(item) for item in value]}
        if type(value) is dict:
            if not all(type(key) is str for key in value):
                raise UnsafeModelError("cannot save a dict whose keys are not all strings")
            return {"dict": {key: self.node(item) for key, item in value.items()}}
        if _type_name(value) == "numpy.ndarray":
            return self.array(value)
        name = _type_name(value)
        if name in _SCALARS:
            return {"scalar": name, "value": value.item() if math.isfinite(value) else repr(value.item())}
        if name == "numpy.random.mtrand.RandomState":
            return {"random_state": self.node(value.get_state(legacy=True))}
        if name not in TRUSTED_CLASSES:
            raise UnsafeModelError(f"cannot save type {name}: adclick-ops saves only the scalers and estimators it trains")
        reduced = value.__reduce_ex__(4)
        builder, args = reduced[0], reduced[1]
        state = reduced[2] if len(reduced) > 2 else None
        if builder is copyreg.__newobj__ and args == (type(value),):
            return {"object": name, "state": self.node(state)}
        if builder is type(value):
            return {"object": name, "args": self.node(tuple(args)), "state": self.node(state)}
        raise UnsafeModelError(f"cannot save type {name}: it reduces through {builder!r}")


def dump_model(model: Any) -> bytes:
    """The model as the bytes of an adclick-ops model file."""
    writer = _Writer()
    description = {"format": FORMAT, "model": writer.node(model)}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(DESCRIPTION, json.dumps(description, separators=(",", ":"), allow_nan=False))

        for name, array in writer.arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            archive.writestr(name, buffer.getvalue())
    return out.getvalue()
