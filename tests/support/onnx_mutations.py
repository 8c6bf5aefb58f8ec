"""Generated mutations of real ONNX model files, for the tests of the model checks.

`python onnx_mutations.py MODEL.onnx FEATURES FIRST COUNT` loads COUNT mutations of the file (seeds
FIRST..FIRST+COUNT-1) in this process, as a monitor worker would, and prints what became of them as
JSON: a crash (a signal) ends the process, which the calling test sees in its exit status.
"""

from __future__ import annotations

import json
import random
import sys

INTERESTING = (-(2**63), -(2**40) - 1, -(2**31), -2, -1, 0, 1, 2, 4, 5, 9, 10, 11, 255, 2**31 - 1, 2**31, 2**40 + 1, 2**63 - 1)


def _pick_int(rng: random.Random) -> int:
    return rng.choice(INTERESTING) if rng.random() < 0.8 else rng.randint(-1000, 1000)


# one branch per kind of mutation, chosen at random: the list of what a damaged file may hold
def mutate_model(model, rng: random.Random) -> str:  # noqa: C901
    """Change one thing in `model` (an onnx.ModelProto, in place), chosen by `rng`; returns what was changed."""
    from onnx import AttributeProto

    graph = model.graph
    roll = rng.random()
    if roll < 0.45:  # an integer of a node's attribute: feature ids, node ids, class ids, axes, cast targets
        nodes = [n for n in graph.node if any(a.type in (AttributeProto.INT, AttributeProto.INTS) and (a.i or a.ints) for a in n.attribute)]
        node = rng.choice(nodes)
        attribute = rng.choice([a for a in node.attribute if a.type in (AttributeProto.INT, AttributeProto.INTS) and (a.i or a.ints)])
        value = _pick_int(rng)
        if attribute.type == AttributeProto.INT:
            attribute.i = value
            return f"{node.op_type}.{attribute.name} = {value}"
        if rng.random() < 0.2:
            del attribute.ints[rng.randrange(len(attribute.ints))]
            return f"{node.op_type}.{attribute.name}: one entry fewer"
        attribute.ints[rng.randrange(len(attribute.ints))] = value
        return f"{node.op_type}.{attribute.name}[i] = {value}"
    if roll < 0.6:  # the dimensions of an initializer
        tensor = rng.choice(list(graph.initializer))
        if tensor.dims:
            tensor.dims[rng.randrange(len(tensor.dims))] = _pick_int(rng)
        else:
            tensor.dims.append(_pick_int(rng))
        return f"initializer {tensor.name} dims {list(tensor.dims)}"
    if roll < 0.7:  # the declared shape of the input or of an output
        value = rng.choice([*graph.input, *graph.output])
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[rng.randrange(len(dims))].dim_value = abs(_pick_int(rng)) % (2**62)
        return f"shape of {value.name}"
    if roll < 0.78:  # an operator
        node = rng.choice(list(graph.node))
        node.op_type = rng.choice(["Loop", "If", "Tile", "Expand", "ConstantOfShape", "Range", "Scan", "TreeEnsembleRegressor", "Shape"])
        return f"operator -> {node.op_type}"
    if roll < 0.84:  # an element type
        value = rng.choice([*graph.input, *graph.output])
        value.type.tensor_type.elem_type = rng.choice([1, 6, 7, 8, 9, 10, 16])
        return f"element type of {value.name}"
    if roll < 0.9:  # an opset
        opset = rng.choice(list(model.opset_import))
        opset.version = rng.choice([0, 1, 7, 22, 99, 2**31 - 1])
        return f"opset {opset.domain!r} -> {opset.version}"
    if roll < 0.95:  # an edge
        node = rng.choice(list(graph.node))
        if node.input:
            node.input[rng.randrange(len(node.input))] = rng.choice([*[n.output[0] for n in graph.node], "nowhere", "features"])
        return f"an input of {node.op_type}"
    # one more input, or none
    if rng.random() < 0.5:
        extra = graph.input.add()
        extra.CopyFrom(graph.input[0])
        extra.name = "more"
        return "a second input"
    del graph.input[:]
    return "no input"


def run(path: str, n_features: int, first: int, count: int) -> dict:
    import numpy as np
    import onnx

    from adclick_ops.registry.serialization import UnsafeModelError, load_model_bytes

    original = open(path, "rb").read()
    outcome = {"refused": 0, "loaded": 0, "refused_rows": 0, "messages": [], "loaded_changes": []}
    rows = np.random.default_rng(0).normal(size=(200, n_features)) * 100
    for seed in range(first, first + count):
        rng = random.Random(seed)
        model = onnx.load_from_string(original)
        changes = [mutate_model(model, rng) for _ in range(rng.randint(1, 2))]
        data = model.SerializeToString()
        if rng.random() < 0.1:  # and some raw byte damage on top
            damaged = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            data = bytes(damaged)
            changes.append("bytes")
        try:
            loaded = load_model_bytes(data, "mutated.onnx", n_features=n_features)
        except UnsafeModelError as exc:
            assert str(exc).startswith("mutated.onnx: "), str(exc)
            outcome["refused"] += 1
            outcome["messages"].append(str(exc)[:200])
            continue
        # whatever loads scores rows as a model does, one finite probability pair per row, or says it cannot
        try:
            probabilities = loaded.predict_proba(rows)
        except UnsafeModelError as exc:
            assert str(exc).startswith("mutated.onnx: onnxruntime cannot score 200 row(s): "), str(exc)
            outcome["refused_rows"] += 1
            continue
        assert probabilities.shape == (len(rows), 2) and np.isfinite(probabilities).all(), changes
        outcome["loaded"] += 1
        outcome["loaded_changes"].append(changes)
    return outcome


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
