"""The one serializer of what a run stores between its tasks: arrays and the fitted preprocessing, as bytes and back.

Both are one format: a NumPy `.npz` archive of numeric arrays, written with no Python objects and read
with `allow_pickle=False`, so that reading a working file never runs code. The fitted scalers travel
as their fitted numbers (`<scaler>.<attribute>`) and are set back on the scalers the pipeline file
names (steps.model.make_preprocessor). The model file a run hands from build_save_model_task to
load_model_task is ONNX, through the registry's serializer (registry.serialization). artifacts.RunFiles
says where each working file goes.
"""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sklearn.base import TransformerMixin

    from adclick_ops.config.vocabulary import ScalerName

NUMERIC_KINDS = "biuf"  # bool, int, unsigned, float: what a working file holds


class WorkingFileError(ValueError):
    """A working file that is not an archive of numeric arrays this package wrote."""


def dump_arrays(what: str, arrays: dict[str, Any]) -> bytes:
    """`arrays` as the bytes of an `.npz`; `what` (the file) names a refused array in the message."""
    for key, value in arrays.items():
        if np.asarray(value).dtype.hasobject:
            # np.savez would pickle it, and load_arrays refuses pickles: fail where the mistake is
            raise TypeError(f"{what}: array {key!r} holds Python objects; working files hold numbers only")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def load_arrays(data: bytes, what: str) -> dict[str, np.ndarray]:
    """The arrays `dump_arrays` wrote; anything else (a pickle inside, not an archive) is a WorkingFileError naming `what`."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError) as exc:
        raise WorkingFileError(
            f"{what}: not a working file of numeric arrays ({str(exc)[:200]}); run the DAG from its first task"
        ) from None


def preprocessing_state(preprocessor: TransformerMixin) -> dict[str, np.ndarray]:
    """The fitted parameters of the preprocessing as plain numeric arrays, `<scaler>.<attribute>`."""
    from adclick_ops.steps.model import preprocessing_parts

    state: dict[str, np.ndarray] = {}
    for name, part in preprocessing_parts(preprocessor):
        for attribute, value in vars(part).items():
            if attribute.endswith("_") and not attribute.startswith("_"):
                array = np.asarray(value)
                if array.dtype.kind not in NUMERIC_KINDS:
                    raise TypeError(f"{name}.{attribute} is not numeric ({array.dtype}); it cannot travel as a working file")
                state[f"{name}.{attribute}"] = array
    return state


def restore_preprocessing(state: dict[str, np.ndarray], scalers: list[ScalerName]) -> TransformerMixin:
    """The fitted preprocessing that `preprocessing_state` described, for the same `scalers`."""
    from adclick_ops.steps.model import make_preprocessor, preprocessing_parts

    preprocessor = make_preprocessor(scalers)
    for name, part in preprocessing_parts(preprocessor):
        prefix = f"{name}."
        found = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
        if not found:
            raise ValueError(f"the fitted preprocessing has no {name!r} part; was it fitted for scalers {scalers}?")
        for attribute, value in found.items():
            setattr(part, attribute, value.item() if value.ndim == 0 else value)
    return preprocessor


def dump_preprocessing(what: str, preprocessor: TransformerMixin) -> bytes:
    """The fitted preprocessing as the bytes of an `.npz` of its numbers."""
    return dump_arrays(what, preprocessing_state(preprocessor))


def load_preprocessing(data: bytes, what: str, scalers: list[ScalerName]) -> TransformerMixin:
    """The fitted preprocessing that `dump_preprocessing` wrote, set back on `scalers`."""
    try:
        return restore_preprocessing(load_arrays(data, what), scalers)
    except ValueError as exc:
        if isinstance(exc, WorkingFileError):
            raise
        raise WorkingFileError(f"{what}: {exc}") from None
