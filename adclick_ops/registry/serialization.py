"""Models as bytes and back: ONNX files, checked before onnxruntime scores them.

Every model version is an ONNX graph of the whole fitted pipeline (the scalers side by side, then
the estimator), written by skl2onnx at training (registry.convert). Reading one parses it with the
onnx package's protobuf classes and refuses, with a message naming the file, anything our training
would never write: an operator outside ALLOWED_OPS, an opset or domain we do not use, external or
sparse data, a tensor claiming more elements than MAX_ELEMENTS or than its bytes hold, a tree whose
split reads a feature its input does not have or whose children point outside it, inputs or outputs
of another number, type or width. onnxruntime then builds the session (it runs its own checks too)
and scores a few probe rows before the model serves.

A model file is data: nothing in it is ever imported or executed as code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adclick_ops import jsonio

if TYPE_CHECKING:
    import numpy as np

FORMAT = "onnx"
SUFFIX = ".onnx"
INPUT = "features"
OUTPUTS = ("label", "probabilities")
# What skl2onnx emits for the pipelines adclick-ops trains (each scaler, none, several side by side;
# the three estimators). tests/registry/test_serialization.py converts every combination and checks
# that this list is exactly what they need.
ALLOWED_OPS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "Abs"),
        ("", "Add"),
        ("", "ArgMax"),
        ("", "Cast"),
        ("", "Concat"),
        ("", "Div"),
        ("", "Identity"),
        ("", "MatMul"),
        ("", "Mul"),
        ("", "ReduceSum"),
        ("", "Reshape"),
        ("", "Sigmoid"),
        ("", "Sub"),
        ("ai.onnx.ml", "ArrayFeatureExtractor"),
        ("ai.onnx.ml", "TreeEnsembleClassifier"),
    }
)
TREE_OPS = frozenset({("ai.onnx.ml", "TreeEnsembleClassifier")})
TREE_MODES = frozenset({b"LEAF", b"BRANCH_LEQ"})
CAST_TYPES = frozenset({1, 7, 11})  # float, int64, double: what our graphs cast to
# The opsets a model may import: the ones training targets (registry.convert.TARGET_OPSET), or older.
MAX_OPSET: dict[str, int] = {"": 21, "ai.onnx.ml": 3}
MAX_BYTES = 1 << 30  # a 1,000-tree forest on a million rows stays well below
MAX_ELEMENTS = 1 << 28  # in one tensor: 2 GB of doubles
MAX_FEATURES = 10_000
MAX_TREE_NODES = 50_000_000
PROBE_ROWS = 5
# protobuf's element types by number (onnx.TensorProto.DataType), for messages and the card
_ELEM_TYPES = {1: "float", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "double"}
_ITEM_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}


class UnsafeModelError(ValueError):
    """A model file that is not an ONNX graph adclick-ops would write, or that onnxruntime refuses."""


@dataclass(frozen=True)
class ModelInfo:
    """What a user of the file needs to know, as the model card records it."""

    ir_version: int
    opset: dict[str, int]
    producer: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    features: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "ir_version": self.ir_version,
            "opset": dict(self.opset),
            "producer": self.producer,
            "inputs": self.inputs,
            "outputs": self.outputs,
        }


def _value_json(value: Any) -> dict[str, Any]:
    tensor = value.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim] if tensor.HasField("shape") else None
    return {"name": value.name, "type": f"tensor({_ELEM_TYPES.get(tensor.elem_type, str(tensor.elem_type))})", "shape": shape}


def _fail(source: str, what: str) -> UnsafeModelError:
    return UnsafeModelError(f"{source}: refused: {what}")


def _parse(data: bytes, source: str) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    if len(data) > MAX_BYTES:
        raise _fail(source, f"{len(data):,} bytes; a model file holds at most {MAX_BYTES:,}")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        hint = " (it looks like a pickle, which adclick-ops never loads)" if data[:1] == b"\x80" else ""
        raise UnsafeModelError(f"{source}: not an ONNX model file{hint}: {str(exc)[:200]}") from None
    if not model.HasField("graph") or not model.graph.node:
        raise UnsafeModelError(f"{source}: not an ONNX model file (no graph)")
    return model


def _check_tensor(tensor: Any, where: str, source: str) -> None:
    """A tensor whose data is inside the file and as large as its shape says, within MAX_ELEMENTS."""
    from onnx import TensorProto

    if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
        raise _fail(source, f"{where}: data stored outside the file; adclick-ops models hold all their data")
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise _fail(source, f"{where}: negative dimension in shape {dims}")
    count = math.prod(dims)
    if count > MAX_ELEMENTS:
        raise _fail(source, f"{where}: shape {dims} claims {count:,} elements; at most {MAX_ELEMENTS:,}")
    if tensor.data_type not in _ITEM_BYTES:
        raise _fail(source, f"{where}: element type {tensor.data_type} is not one our models use")
    if tensor.HasField("raw_data"):
        held = len(tensor.raw_data) // _ITEM_BYTES[tensor.data_type]
        if len(tensor.raw_data) != count * _ITEM_BYTES[tensor.data_type]:
            raise _fail(source, f"{where}: shape {dims} needs {count:,} elements; the file holds {held:,}")
        return
    held = sum(
        len(getattr(tensor, name))
        for name in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")
        if getattr(tensor, name)
    )
    if held != count:
        raise _fail(source, f"{where}: shape {dims} needs {count:,} elements; the file holds {held:,}")


# a checklist of what an untrusted model file may hold, read top to bottom; each check is one raise
def _check_structure(model: Any, source: str) -> None:  # noqa: C901
    from onnx import AttributeProto

    if model.functions or model.training_info:
        raise _fail(source, "it defines functions or training steps; adclick-ops models hold one plain graph")
    for opset in model.opset_import:
        limit = MAX_OPSET.get(opset.domain)
        if limit is None:
            raise _fail(source, f"operator domain {opset.domain!r}; expected only {', '.join(map(repr, MAX_OPSET))}")
        if not 1 <= opset.version <= limit:
            raise _fail(source, f"opset {opset.version} of domain {opset.domain!r}; expected 1 to {limit}")
    graph = model.graph
    if graph.sparse_initializer:
        raise _fail(source, "sparse initializers; adclick-ops models hold none")
    for tensor in graph.initializer:
        _check_tensor(tensor, f"initializer {tensor.name!r}", source)
    for node in graph.node:
        if (node.domain, node.op_type) not in ALLOWED_OPS:
            allowed = ", ".join(sorted(f"{d + '.' if d else ''}{op}" for d, op in ALLOWED_OPS))
            name = f"{node.domain + '.' if node.domain else ''}{node.op_type}"
            raise _fail(source, f"node {node.name!r}: operator {name} is not one skl2onnx writes for adclick-ops' models ({allowed})")
        for attribute in node.attribute:
            if attribute.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
                raise _fail(source, f"node {node.name!r}: attribute {attribute.name!r} holds a subgraph")
            if node.op_type == "Cast" and attribute.name == "to" and attribute.i not in CAST_TYPES:
                raise _fail(source, f"node {node.name!r}: a cast to element type {attribute.i}; our graphs cast to {sorted(CAST_TYPES)}")
            if attribute.type == AttributeProto.TENSOR:
                _check_tensor(attribute.t, f"node {node.name!r}, attribute {attribute.name!r}", source)
            if attribute.type == AttributeProto.TENSORS:
                for tensor in attribute.tensors:
                    _check_tensor(tensor, f"node {node.name!r}, attribute {attribute.name!r}", source)


def _check_signature(model: Any, source: str, n_features: int | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    graph = model.graph
    # an input backed by an initializer is an input all the same (with a default value): it counts, and is refused
    initializers = {t.name for t in graph.initializer}
    inputs = list(graph.input)
    if len(inputs) != 1:
        named = ", ".join(f"{v.name} with a default value (an initializer)" if v.name in initializers else v.name for v in inputs)
        raise _fail(source, f"{len(inputs)} inputs ({named}); expected one, {INPUT!r}")
    if inputs[0].name in initializers:
        raise _fail(source, f"input {inputs[0].name!r} has a default value (an initializer of that name); expected the rows alone")
    described = _value_json(inputs[0])
    shape = described["shape"]
    if inputs[0].name != INPUT or described["type"] != "tensor(double)" or shape is None or len(shape) != 2:
        raise _fail(source, f"input {described}; expected {INPUT!r}, tensor(double) of shape [rows, features]")
    width = shape[1]
    if width is None or not 1 <= width <= MAX_FEATURES:
        raise _fail(source, f"input {INPUT!r} of shape {shape}; expected [rows, 1..{MAX_FEATURES}]")
    if n_features is not None and width != n_features:
        raise _fail(source, f"input {INPUT!r} takes {width} features; the model card names {n_features}")
    outputs = [_value_json(v) for v in graph.output]
    if tuple(o["name"] for o in outputs) != OUTPUTS:
        raise _fail(source, f"outputs {[o['name'] for o in outputs]}; expected {list(OUTPUTS)}")
    label, probabilities = outputs
    if (label["type"], label["shape"]) != ("tensor(int64)", [None]) or probabilities["shape"] != [None, 2]:
        raise _fail(source, f"outputs {outputs}; expected label tensor(int64) [rows] and probabilities [rows, 2]")
    return [described], outputs


def _ints(node: Any, name: str) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == name), [])


def _per_node(node: Any) -> dict[str, int]:
    """The length of each per-node attribute (`nodes_*`): one entry per node, in every one."""
    from onnx import AttributeProto

    lengths = {}
    for attribute in node.attribute:
        if attribute.name.startswith("nodes_"):
            if attribute.type == AttributeProto.TENSOR:
                lengths[attribute.name] = math.prod(attribute.t.dims)
            else:
                lengths[attribute.name] = len(attribute.ints) + len(attribute.floats) + len(attribute.strings)
    return lengths


# a checklist of what an untrusted tree ensemble may hold, read top to bottom; each check is one raise
def _check_trees(model: Any, source: str) -> None:  # noqa: C901
    """Each tree's nodes consistent and inside the tree, each split on a feature its input has."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:  # noqa: BLE001 - the onnx library's errors, whatever their class
        raise _fail(source, f"the graph's types and shapes do not agree: {str(exc)[:300]}") from None
    shapes = {v.name: _value_json(v)["shape"] for v in (*inferred.graph.value_info, *inferred.graph.input)}
    for node in model.graph.node:
        if (node.domain, node.op_type) not in TREE_OPS:
            continue
        where = f"node {node.name!r} ({node.op_type})"
        shape = shapes.get(node.input[0]) if len(node.input) == 1 else None
        if not shape or len(shape) != 2 or shape[1] is None:
            raise _fail(source, f"{where}: the width of its input cannot be told from the graph ({shape})")
        width = shape[1]
        lengths = _per_node(node)
        if len(set(lengths.values())) != 1:
            raise _fail(source, f"{where}: per-node attributes of different lengths {lengths}")
        count = next(iter(lengths.values()))
        if count > MAX_TREE_NODES:
            raise _fail(source, f"{where}: {count:,} nodes; at most {MAX_TREE_NODES:,}")
        features = _ints(node, "nodes_featureids")
        bad = [f for f in features if not 0 <= f < width]
        if bad:
            raise _fail(source, f"{where}: a split on feature {bad[0]}, outside 0..{width - 1} (its input has {width} columns)")
        trees, ids = _ints(node, "nodes_treeids"), _ints(node, "nodes_nodeids")
        modes = next((list(a.strings) for a in node.attribute if a.name == "nodes_modes"), [])
        if not set(modes) <= TREE_MODES:
            raise _fail(source, f"{where}: node modes {sorted(set(modes) - TREE_MODES)}; skl2onnx writes {sorted(TREE_MODES)}")
        known = set(zip(trees, ids, strict=True))
        if len(known) != count:
            raise _fail(source, f"{where}: a node id appears twice in the same tree")
        for name in ("nodes_truenodeids", "nodes_falsenodeids"):
            for tree, parent, child, mode in zip(trees, ids, _ints(node, name), modes, strict=True):
                if (mode == b"LEAF" and child != 0) or (mode != b"LEAF" and (tree, child) not in known):
                    raise _fail(source, f"{where}: {name} points to node {child}, which tree {tree} does not have")
                if mode != b"LEAF" and child <= parent:  # as scikit-learn numbers them: no walk can loop
                    raise _fail(source, f"{where}: {name} of node {parent} of tree {tree} points back to node {child}")
        labels = _ints(node, "classlabels_int64s")
        class_trees, class_nodes, class_ids = _ints(node, "class_treeids"), _ints(node, "class_nodeids"), _ints(node, "class_ids")
        if not (len(class_trees) == len(class_nodes) == len(class_ids)):
            raise _fail(source, f"{where}: class attributes of different lengths")
        if labels != [0, 1]:
            raise _fail(source, f"{where}: class labels {labels[:5]}; expected [0, 1]")
        if any(not 0 <= c < len(labels) for c in class_ids):
            raise _fail(source, f"{where}: a leaf weight for a class outside 0..{len(labels) - 1}")
        if any(leaf not in known for leaf in zip(class_trees, class_nodes, strict=True)):
            raise _fail(source, f"{where}: a leaf weight for a node the trees do not have")


def inspect_model(data: bytes, source: str = "model file", n_features: int | None = None) -> ModelInfo:
    """Check `data` as an adclick-ops ONNX model without running it; what the card records about it."""
    import onnx

    model = _parse(data, source)
    _check_structure(model, source)
    inputs, outputs = _check_signature(model, source, n_features)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - the onnx library's errors, whatever their class
        raise _fail(source, f"not a valid ONNX graph: {str(exc)[:300]}") from None
    _check_trees(model, source)
    metadata = {p.key: p.value for p in model.metadata_props}
    try:
        features = jsonio.loads(metadata.get("features", "[]"), max_bytes=1 << 20)
    except ValueError:
        features = []
    if isinstance(features, list) and len(features) == inputs[0]["shape"][1] and all(isinstance(f, str) for f in features):
        inputs[0]["columns"] = features
    else:
        features = []
    return ModelInfo(
        ir_version=model.ir_version,
        opset={o.domain: o.version for o in model.opset_import},
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        inputs=inputs,
        outputs=outputs,
        features=features,
    )


def _session_options(threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: a refused file or row is reported by the exception raised
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # a server thread that waits spinning takes a core from the others
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxModel:
    """A checked model and its onnxruntime session: probabilities of rows of the features, in the card's order."""

    def __init__(self, session: Any, info: ModelInfo, source: str = "model file"):
        self.session = session
        self.info = info
        self.source = source
        self.n_features: int = info.inputs[0]["shape"][1]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(rows, 2) float64: the probabilities of not clicked and clicked; UnsafeModelError if the graph cannot say."""
        import numpy as np

        x = np.ascontiguousarray(x, dtype=np.float64)
        try:
            probabilities = np.asarray(self.session.run([OUTPUTS[1]], {INPUT: x})[0], dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own errors, whatever their class
            raise UnsafeModelError(f"{self.source}: onnxruntime cannot score {len(x):,} row(s): {str(exc)[:300]}") from None
        if probabilities.shape != (len(x), 2):
            raise UnsafeModelError(f"{self.source}: answers probabilities of shape {probabilities.shape} for {len(x):,} row(s)")
        return probabilities

    def predict(self, x: np.ndarray) -> np.ndarray:
        """0/1: clicked when the probability is above one half."""
        return (self.predict_proba(x)[:, 1] > 0.5).astype("int64")


def _probe(model: OnnxModel, source: str) -> None:
    """Score a few rows, one and several at a time: a graph that cannot, or answers in another shape, never serves."""
    import numpy as np

    for count in (1, PROBE_ROWS):
        rows = np.array([0.0, 1.0, -1.0, 1e6, 0.5][:count])[:, None] * np.ones((count, model.n_features))
        try:
            outputs = model.session.run(None, {INPUT: rows})
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own errors, whatever their class
            raise _fail(source, f"onnxruntime cannot score it: {str(exc)[:300]}") from None
        labels, probabilities = outputs
        if np.shape(labels) != (count,) or np.shape(probabilities) != (count, 2):
            raise _fail(
                source,
                f"it answers labels of shape {np.shape(labels)} and probabilities of shape {np.shape(probabilities)} for {count} rows",
            )
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if not np.isfinite(probabilities).all() or (probabilities < -1e-6).any() or (probabilities > 1 + 1e-6).any():
            raise _fail(source, "it answers probabilities outside [0, 1]")


def load_model_bytes(data: bytes, source: str = "model file", n_features: int | None = None, threads: int = 1) -> OnnxModel:
    """The model in `data`, checked (inspect_model), with its onnxruntime session; `threads` 0: onnxruntime's default."""
    info = inspect_model(data, source, n_features)
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(data, _session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own errors, whatever their class
        raise _fail(source, f"onnxruntime refuses it: {str(exc)[:300]}") from None
    model = OnnxModel(session, info, source)
    _probe(model, source)
    return model


def ops_of(data: bytes) -> set[tuple[str, str]]:
    """The (domain, operator) pairs a model file uses."""
    return {(node.domain, node.op_type) for node in _parse(data, "model file").graph.node}
