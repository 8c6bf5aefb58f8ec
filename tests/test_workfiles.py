"""adclick_ops.workfiles, the one serializer of a run's working files: arrays and the fitted preprocessing travel
as numbers in an `.npz`, come back the same, and nothing else is read."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from adclick_ops.config.vocabulary import SCALERS
from adclick_ops.steps.model import fit_preprocessing
from adclick_ops.workfiles import (
    WorkingFileError,
    dump_arrays,
    dump_preprocessing,
    load_arrays,
    load_preprocessing,
    preprocessing_state,
    restore_preprocessing,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
matrices = st.integers(2, 30).flatmap(lambda n: st.integers(1, 6).flatmap(lambda f: arrays(np.float64, (n, f), elements=finite)))


@settings(max_examples=40, deadline=None)
@given(
    named=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
        arrays(st.sampled_from([np.float64, np.int64, np.bool_, np.uint8]), st.integers(0, 20)),
        max_size=4,
    )
)
def test_arrays_come_back_the_same(named):
    back = load_arrays(dump_arrays("x.npz", named), "x.npz")
    assert back.keys() == named.keys()
    for key, value in named.items():
        np.testing.assert_array_equal(back[key], value)
        assert back[key].dtype == value.dtype


def test_python_objects_are_refused_when_written():
    with pytest.raises(TypeError, match=r"^state.npz: array 'x' holds Python objects; working files hold numbers only$"):
        dump_arrays("state.npz", {"x": np.array([{"a": 1}], dtype=object)})


def pickled_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([{"a": 1}], dtype=object))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [pickled_npz(), b"", b"not an archive", pickle.dumps({"x": 1}), dump_arrays("x", {"x": np.arange(3)})[:40]],
    ids=["an array that needs unpickling", "empty", "text", "a pickle", "a truncated archive"],
)
def test_anything_but_numeric_arrays_is_refused_naming_the_file(data):
    with pytest.raises(WorkingFileError, match=r"^/runs/r/split.npz: not a working file of numeric arrays \(.*\); run the DAG from"):
        load_arrays(data, "/runs/r/split.npz")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=matrices, scalers=st.lists(st.sampled_from(SCALERS), unique=True, max_size=len(SCALERS)))
def test_fitted_preprocessing_travels_as_numbers_and_transforms_the_same(x, scalers):
    fitted = fit_preprocessing(x, scalers)
    state = preprocessing_state(fitted)
    assert all(isinstance(v, np.ndarray) and v.dtype.kind in "biuf" for v in state.values())
    restored = load_preprocessing(dump_preprocessing("p.npz", fitted), "p.npz", scalers)
    np.testing.assert_array_equal(restored.transform(x), fitted.transform(x))


def test_restoring_for_other_scalers_is_refused():
    state = preprocessing_state(fit_preprocessing(np.eye(3), ["minmax"]))
    with pytest.raises(ValueError, match="no 'standard' part"):
        restore_preprocessing(state, ["minmax", "standard"])
    data = dump_preprocessing("p.npz", fit_preprocessing(np.eye(3), ["minmax"]))
    with pytest.raises(WorkingFileError, match=r"^/r/preprocessing.npz: the fitted preprocessing has no 'standard' part"):
        load_preprocessing(data, "/r/preprocessing.npz", ["minmax", "standard"])


def test_a_fitted_attribute_that_is_not_a_number_is_refused():
    fitted = fit_preprocessing(np.eye(3), ["standard"])
    fitted.transformer_list[0][1].feature_names_in_ = np.array(["a", "b", "c"], dtype=object)
    with pytest.raises(TypeError, match=r"standard.feature_names_in_ is not numeric \(object\)"):
        dump_preprocessing("p.npz", fitted)


def test_the_serializer_and_the_model_steps_import_no_airflow_flask_or_yaml():
    # steps.data is left out: it reads paths through config.paths, whose errors module imports the YAML reader
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['airflow'] = sys.modules['flask'] = sys.modules['yaml'] = sys.modules['ruamel'] = None; "
        "import adclick_ops.workfiles, adclick_ops.steps.model, adclick_ops.steps.promotion, "
        "adclick_ops.steps.holdout, adclick_ops.steps.params; "
        "from adclick_ops.workfiles import load_preprocessing, dump_preprocessing; import numpy as np; "
        "from adclick_ops.steps.model import fit_preprocessing; "
        "p = load_preprocessing(dump_preprocessing('p', fit_preprocessing(np.eye(3), ['minmax'])), 'p', ['minmax']); print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
