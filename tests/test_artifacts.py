"""adclick_ops.artifacts: working files hold numbers only, models load from known folders, writes are whole."""

from __future__ import annotations

import io

import numpy as np
import pytest

from adclick_ops.artifacts import RunFiles, load_model_file, write_bytes_atomic


def run_in(tmp_path) -> RunFiles:
    return RunFiles(str(tmp_path), "d", "r", model_dir=str(tmp_path), model_file="m")


def test_working_arrays_are_never_unpickled(tmp_path):
    run = run_in(tmp_path)
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([{"a": 1}], dtype=object))
    write_bytes_atomic(run.path("evil.npz"), buffer.getvalue())
    with pytest.raises(ValueError, match="allow_pickle"):
        run.load_arrays("evil")


def test_python_objects_are_refused_when_saved(tmp_path):
    run = run_in(tmp_path)
    with pytest.raises(TypeError, match="state.npz: array 'x' holds Python objects"):
        run.save_arrays("state", x=np.array([{"a": 1}], dtype=object))
    assert not run.path("state.npz").exists()


def test_models_load_only_from_allowed_folders(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "m.sav"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"not a model")
    with pytest.raises(PermissionError, match="models are loaded only from"):
        load_model_file(elsewhere, [tmp_path / "model"])


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "f.bin"
    write_bytes_atomic(target, b"old")
    write_bytes_atomic(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
