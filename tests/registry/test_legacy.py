"""The reader of earlier versions' format (`adclick-model/1`), used once by `adclick-ops models migrate`, against
hostile and damaged files: every file is either built, from trusted types only and with trees that scikit-learn
can walk, or refused with UnsafeModelError naming it."""

from __future__ import annotations

import io
import json
import random
import zipfile

import numpy as np
import pytest

from adclick_ops.registry import UnsafeModelError
from adclick_ops.registry.legacy import DESCRIPTION, FORMAT, MAX_DEPTH, TRUSTED_TYPES, load_model_bytes, types_in
from adclick_ops.steps.model import build_pipeline

from tests.support.legacy_writer import dump_model
from tests.support.registry import FEATURES, SEED, TARGET

X = SEED[FEATURES].to_numpy(float)[:200]
Y = SEED[TARGET].to_numpy(int)[:200]


@pytest.fixture(scope="module")
def forest_file() -> bytes:
    return dump_model(build_pipeline(["standard"], "random_forest", {"n_estimators": 2, "random_state": 0}).fit(X, Y))


@pytest.fixture(scope="module")
def boosting_file() -> bytes:
    return dump_model(build_pipeline(["minmax"], "gradient_boosting", {"n_estimators": 3, "random_state": 0}).fit(X, Y))


def unpack(data: bytes) -> tuple[dict, dict[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    return json.loads(members.pop(DESCRIPTION)), members


def pack(description: dict, members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(DESCRIPTION, json.dumps(description))
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def nodes_of(node, kind):
    """Every object node of the description naming `kind`."""
    if isinstance(node, dict):
        if node.get("object") == kind:
            yield node
        for value in node.values():
            yield from nodes_of(value, kind)
    elif isinstance(node, list):
        for value in node:
            yield from nodes_of(value, kind)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_the_file_names_its_format_and_round_trips_every_estimator(forest_file, boosting_file):
    for data in (forest_file, boosting_file):
        description, members = unpack(data)
        assert description["format"] == FORMAT and all(name.startswith("arrays/") for name in members)
        assert np.array_equal(load_model_bytes(data).predict_proba(X), load_model_bytes(data).predict_proba(X))


@pytest.mark.parametrize(
    "name",
    ["posix.system", "builtins.eval", "subprocess.Popen", "sklearn.svm._classes.SVC", "numpy.load", "builtins.object"],
)
def test_a_file_naming_an_untrusted_class_is_refused_before_anything_is_built(forest_file, name, tmp_path):
    description, members = unpack(forest_file)
    target = next(nodes_of(description, "sklearn.tree._classes.DecisionTreeClassifier"))
    target["object"] = name
    target["args"] = {"tuple": [f"touch {tmp_path / 'marker'}"]}
    with pytest.raises(UnsafeModelError, match=rf"model.sav: refused: it holds type\(s\) outside the trusted list: {name}"):
        load_model_bytes(pack(description, members), "model.sav")
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("field, value", [("left_child", 10_000), ("right_child", -5), ("left_child", 0), ("feature", 99)])
def test_a_tree_that_would_walk_outside_itself_is_refused(forest_file, field, value):
    description, members = unpack(forest_file)
    tree = next(nodes_of(description, "sklearn.tree._tree.Tree"))
    name = tree["state"]["dict"]["nodes"]["array"]
    nodes = np.load(io.BytesIO(members[name]), allow_pickle=False)
    inner = np.flatnonzero(nodes["left_child"] != -1)[0]
    nodes[field][inner] = value
    members[name] = npy(nodes)
    with pytest.raises(UnsafeModelError, match="refused: Tree: "):
        load_model_bytes(pack(description, members), "model.sav")


def test_values_that_do_not_fit_the_tree_are_refused(boosting_file):
    description, members = unpack(boosting_file)
    tree = next(nodes_of(description, "sklearn.tree._tree.Tree"))
    name = tree["state"]["dict"]["values"]["array"]
    members[name] = npy(np.zeros((1, 1, 1)))
    with pytest.raises(UnsafeModelError, match="refused: Tree: values of shape"):
        load_model_bytes(pack(description, members), "model.sav")


def test_an_array_of_python_objects_is_refused(forest_file):
    description, members = unpack(forest_file)
    name = next(iter(members))
    buffer = io.BytesIO()
    np.save(buffer, np.array([object()], dtype=object), allow_pickle=True)
    members[name] = buffer.getvalue()
    with pytest.raises(UnsafeModelError, match=rf"refused: array {name}: "):
        load_model_bytes(pack(description, members), "model.sav")


def test_deep_nesting_and_big_unpacked_sizes_are_refused(forest_file):
    deep: object = 1
    for _ in range(MAX_DEPTH + 5):
        deep = {"tuple": [deep]}
    with pytest.raises(UnsafeModelError, match="nested deeper than"):
        load_model_bytes(pack({"format": FORMAT, "model": deep}, {}), "model.sav")
    very_deep = "[" * 100_000 + "]" * 100_000
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(DESCRIPTION, very_deep)
    with pytest.raises(UnsafeModelError, match="is not readable JSON"):
        load_model_bytes(out.getvalue(), "model.sav")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(DESCRIPTION, json.dumps({"format": FORMAT, "model": None}))
        archive.writestr("arrays/0.npy", b"")
        info = archive.infolist()[-1]
    bomb = bytearray(out.getvalue())
    # claim 4 GiB for the empty member in the central directory
    pos = bomb.rfind(b"PK\x01\x02")
    bomb[pos + 24 : pos + 28] = (0xFFFFFFF0).to_bytes(4, "little")
    assert info.filename == "arrays/0.npy"
    with pytest.raises(UnsafeModelError, match="refused: 2 members unpacking to"):
        load_model_bytes(bytes(bomb), "model.sav")


def test_a_format_from_elsewhere_is_refused_naming_what_it_is(forest_file):
    description, members = unpack(forest_file)
    description["format"] = "adclick-model/99"
    with pytest.raises(UnsafeModelError, match=r"format 'adclick-model/99'; expected 'adclick-model/1'"):
        load_model_bytes(pack(description, members), "model.sav")


def _random_json(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 2 or roll < 0.5:
        return rng.choice(
            [None, True, 0, -1, 2**70, 1e308, -0.0, "", "arrays/0.npy", "arrays/../x", "sklearn.tree._tree.Tree", "posix.system", "nan"]
        )
    if roll < 0.75:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["dict", "tuple", "float", "array", "object", "state", "args", "scalar", "value", "items", "object_array", "random_state", "x"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randint(1, 3))}


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*path, i))


@pytest.mark.parametrize("seed", range(100))
def test_any_change_to_the_description_is_built_or_refused_cleanly(boosting_file, seed):
    rng = random.Random(seed)
    description, members = unpack(boosting_file)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(list(_paths(description["model"]))[1:])
        node = description["model"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = _random_json(rng)
    data = pack(description, members)
    try:
        model = load_model_bytes(data, "model.sav")
    except UnsafeModelError as exc:
        assert str(exc).startswith("model.sav: ")
        return
    assert types_in(data) <= set(TRUSTED_TYPES)
    assert model is not None or description["model"] is None


@pytest.mark.parametrize("extra", ["svc", "function"])
def test_a_skops_file_with_an_untrusted_type_is_refused_naming_it(extra):
    import skops.io
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.svm import SVC

    step = SVC(probability=True) if extra == "svc" else FunctionTransformer(np.log1p)
    model = Pipeline([("a", step)] + ([("m", SVC())] if extra == "function" else [])).fit(X[:100], Y[:100])
    with pytest.raises(
        UnsafeModelError,
        match=r"model/model.sav: refused: it holds type\(s\) outside the trusted list: .*(SVC|log1p)",
    ):
        load_model_bytes(skops.io.dumps(model), "model/model.sav")
