"""adclick_ops.registry.serialization: models as ONNX files, and what reading refuses (hostile graphs, generated
mutations of real files), all with clear errors. What training writes: test_convert.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from adclick_ops.registry import UnsafeModelError, load_model_bytes
from adclick_ops.registry.convert import to_onnx
from adclick_ops.registry.serialization import MAX_ELEMENTS

from tests.support.registry import FEATURES, fitted

HERE = Path(__file__).parent


# --- what reading refuses -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    small = {"random_forest": {"n_estimators": 3, "max_depth": 4}, "gradient_boosting": {"n_estimators": 3, "max_depth": 2}}
    for estimator, scalers in (
        ("random_forest", ["minmax", "standard"]),
        ("gradient_boosting", ["robust"]),
        ("logistic_regression", ["maxabs"]),
    ):
        out[estimator] = folder / f"{estimator}.onnx"
        out[estimator].write_bytes(to_onnx(fitted(estimator, scalers, **small.get(estimator, {})), FEATURES))
    return out


def edited(path: Path, change) -> bytes:
    model = onnx.load_from_string(path.read_bytes())
    change(model)
    return model.SerializeToString()


def tree_attribute(model, name):
    tree = next(n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier")
    return next(a for a in tree.attribute if a.name == name)


def _set_feature(value):
    def change(model):
        ids = tree_attribute(model, "nodes_featureids").ints
        modes = tree_attribute(model, "nodes_modes").strings
        ids[next(i for i, m in enumerate(modes) if m != b"LEAF")] = value

    return change


def _huge_initializer(model):
    tensor = model.graph.initializer[0]
    del tensor.dims[:]
    tensor.dims.extend([2**20, 2**20])


def _external(model):
    tensor = model.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"


def _second_input(model):
    extra = model.graph.input.add()
    extra.CopyFrom(model.graph.input[0])
    extra.name = "more"


def _input_with_initializer(model):
    """A second graph input backed by an initializer (a default value): onnxruntime runs the graph with or without it."""
    tensor = model.graph.initializer[0]
    model.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))


def _features_with_default(model):
    """An initializer named `features`: the input gets a default value, rows or not."""
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros((1, 5)), "features"))


def _wide_input(model):
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 2**40 + 1


def _operator(op, domain=""):
    def change(model):
        node = model.graph.node[0]
        node.op_type, node.domain = op, domain
        if domain and domain not in {o.domain for o in model.opset_import}:
            model.opset_import.add(domain=domain, version=1)

    return change


def _loop_back(model):
    modes = tree_attribute(model, "nodes_modes").strings
    ids = tree_attribute(model, "nodes_truenodeids").ints
    branch = [i for i, m in enumerate(modes) if m != b"LEAF"]
    ids[branch[1]] = 0  # the second split sends rows back to the root


HOSTILE = {
    "feature id 2**40+1": ("random_forest", _set_feature(2**40 + 1), r"a split on feature 1099511627777, outside 0\.\.9"),
    "feature id = width": ("gradient_boosting", _set_feature(5), r"a split on feature 5, outside 0\.\.4"),
    "feature id -1": ("random_forest", _set_feature(-1), r"a split on feature -1, outside"),
    "huge initializer": ("logistic_regression", _huge_initializer, r"shape \[1048576, 1048576\] claims 1,099,511,627,776 elements"),
    "short initializer": ("gradient_boosting", lambda m: m.graph.initializer[0].dims.append(7), r"needs \d+ elements; the file holds"),
    "external data": ("logistic_regression", _external, "data stored outside the file"),
    "two inputs": ("random_forest", _second_input, r"2 inputs \(features, more\); expected one"),
    "a second input backed by an initializer": (
        "logistic_regression",
        _input_with_initializer,
        r"2 inputs \(features, \S+ with a default value \(an initializer\)\); expected one",
    ),
    "the input with a default value": ("random_forest", _features_with_default, r"input 'features' has a default value \(an initializer"),
    "no input": ("random_forest", lambda m: m.graph.ClearField("input"), r"0 inputs \(\); expected one"),
    "input 2**40+1 wide": ("logistic_regression", _wide_input, r"expected \[rows, 1\.\.10000\]"),
    "input of 4 features": ("logistic_regression", lambda m: _set_width(m, 4), "takes 4 features; the model card names 5"),
    "float input": ("gradient_boosting", lambda m: _set_type(m, onnx.TensorProto.FLOAT), r"expected 'features', tensor\(double\)"),
    "operator Loop": ("random_forest", _operator("Loop"), "operator Loop is not one skl2onnx writes"),
    "operator Tile": ("logistic_regression", _operator("Tile"), "operator Tile is not one skl2onnx writes"),
    "custom domain": ("logistic_regression", _operator("Gelu", "com.microsoft"), r"operator domain 'com.microsoft'"),
    "newer opset": ("random_forest", lambda m: setattr(m.opset_import[0], "version", 99), r"opset 99 of domain"),
    "renamed output": ("random_forest", lambda m: setattr(m.graph.output[1], "name", "p"), r"outputs \['label', 'p'\]"),
    "tree loops back": ("random_forest", _loop_back, r"points back to node 0"),
    "class id 7": ("gradient_boosting", lambda m: tree_attribute(m, "class_ids").ints.__setitem__(0, 7), r"a class outside 0\.\.1"),
    "lengths differ": (
        "random_forest",
        lambda m: tree_attribute(m, "nodes_featureids").ints.append(0),
        r"per-node attributes of different",
    ),
}


def _set_width(model, width):
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = width


def _set_type(model, elem_type):
    model.graph.input[0].type.tensor_type.elem_type = elem_type


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_graph_is_refused_with_a_clear_message(files, case):
    estimator, change, message = HOSTILE[case]
    with pytest.raises(UnsafeModelError, match=rf"^model/models/x\.onnx: refused: .*{message}"):
        load_model_bytes(edited(files[estimator], change), "model/models/x.onnx", n_features=len(FEATURES))


@pytest.mark.parametrize("estimator", ["random_forest", "gradient_boosting", "logistic_regression"])
def test_generated_mutations_of_real_files_are_refused_or_score_without_harm(files, estimator):
    """200 mutations of each file (attributes, shapes, operators, types, opsets, edges, inputs, raw bytes), loaded
    and scored in a separate process as a monitor worker would: it must end normally, every refusal an
    UnsafeModelError naming the file, every graph that loads scoring rows into one finite pair each, or refusing
    them with UnsafeModelError (what /api/predict answers with a 503)."""
    proc = subprocess.run(
        [sys.executable, str(HERE.parent / "support" / "onnx_mutations.py"), str(files[estimator]), str(len(FEATURES)), "0", "200"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads(proc.stdout)
    assert outcome["refused"] + outcome["refused_rows"] + outcome["loaded"] == 200
    assert outcome["refused"] >= 150  # most mutations make a graph training never writes
    assert proc.stderr == ""  # onnxruntime's own logging stays quiet: the refusal says it all


def test_max_elements_bounds_what_one_tensor_may_claim():
    assert MAX_ELEMENTS * 8 <= 2**31


def test_the_docs_score_the_champion_with_onnxruntime_alone(pipelines, tmp_path):
    """The Python example of docs/models.md, run as it is next to a trained champion, in a process that imports
    no adclick-ops and no scikit-learn, gives the probability adclick-ops serves."""
    import re

    from adclick_ops.registry import Registry

    from tests.support.registry import run_chain, training_settings

    run_chain(training_settings(pipelines), "r1")
    text = (HERE.parent.parent / "docs" / "models.md").read_text()
    section = text[text.index("To score the champion with onnxruntime alone") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code += "import sys\nassert not any(m.split('.')[0] in ('adclick_ops', 'sklearn', 'skl2onnx') for m in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True)
    printed = float(re.fullmatch(r"\[([0-9.e-]+)\]\n", out.stdout).group(1))
    served = Registry(str(tmp_path / "model"), "Airflow_Lab2").load_model(1).predict_proba(np.array([[68.95, 35, 61833.90, 256.09, 0]]))
    assert printed == pytest.approx(served[0, 1], abs=1e-7)  # numpy prints 8 digits


def test_the_onnx_libraries_are_pinned_where_the_image_installs_from():
    """requirements.txt (what the Dockerfile, and so the compose image, installs) and the lock (what `make`
    installs) pin onnx, onnxruntime and skl2onnx, at the versions these tests run."""
    import re
    from importlib import metadata

    project = HERE.parent.parent
    dockerfile = (project / "Dockerfile").read_text().replace("\\\n", " ")  # continuation lines joined
    assert re.search(r"pip install .*-r /opt/adclick-ops/requirements.txt", dockerfile)
    for name in ("onnx", "onnxruntime", "skl2onnx"):
        version = metadata.version(name)
        for file in ("requirements.txt", "requirements.lock"):
            assert re.search(rf"^{name}=={re.escape(version)}$", (project / file).read_text(), re.M), (name, file)
