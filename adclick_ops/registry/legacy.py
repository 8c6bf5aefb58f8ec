"""The model files of earlier adclick-ops versions, read once by `adclick-ops models migrate` and never elsewhere.

Those versions wrote `adclick-model/1` (a zip of `model.json`, a description of the object tree,
and numpy arrays) or, before it, skops's format. Reading one builds only the classes in
TRUSTED_CLASSES, after checking every type it names and the trees inside the ensembles (child
indices, features, shapes); skops files go through skops with the same list. The scikit-learn
pipeline it gives is converted to ONNX (registry.migrate) and the file is not read again.
"""

from __future__ import annotations

import importlib
import io
import logging
import math
import warnings
import zipfile
from types import ModuleType
from typing import TYPE_CHECKING, Any

from adclick_ops import jsonio
from adclick_ops.registry.serialization import UnsafeModelError

if TYPE_CHECKING:
    import numpy as np

FORMAT = "adclick-model/1"
SKOPS_FORMAT = "skops"
DESCRIPTION = "model.json"
MAX_DEPTH = 64  # nesting of the object tree; our pipelines need 12
_JSON_DEPTH = 4 * MAX_DEPTH  # JSON levels: each level of the object tree takes a few; MAX_DEPTH then says why
MAX_MEMBERS = 100_000  # arrays in one file (a forest of 1,000 trees holds about 3,000)
MAX_UNPACKED = 2 << 30  # bytes, all members together: a small zip cannot unpack into a huge one

# Every class that the pipelines adclick-ops builds contain (scalers side by side, the three
# estimators, the trees and losses inside them), by the name it reports, with where it is imported
# from. tests/registry/test_registry.py saves each combination and checks that this list is exactly
# what they need.
TRUSTED_CLASSES: dict[str, str] = {
    "_loss.CyHalfBinomialLoss": "sklearn._loss._loss",
    "sklearn._loss.link.Interval": "sklearn._loss.link",
    "sklearn._loss.link.LogitLink": "sklearn._loss.link",
    "sklearn._loss.loss.HalfBinomialLoss": "sklearn._loss.loss",
    "sklearn.dummy.DummyClassifier": "sklearn.dummy",
    "sklearn.ensemble._forest.RandomForestClassifier": "sklearn.ensemble._forest",
    "sklearn.ensemble._gb.GradientBoostingClassifier": "sklearn.ensemble._gb",
    "sklearn.linear_model._logistic.LogisticRegression": "sklearn.linear_model._logistic",
    "sklearn.pipeline.FeatureUnion": "sklearn.pipeline",
    "sklearn.pipeline.Pipeline": "sklearn.pipeline",
    "sklearn.preprocessing._data.MaxAbsScaler": "sklearn.preprocessing._data",
    "sklearn.preprocessing._data.MinMaxScaler": "sklearn.preprocessing._data",
    "sklearn.preprocessing._data.RobustScaler": "sklearn.preprocessing._data",
    "sklearn.preprocessing._data.StandardScaler": "sklearn.preprocessing._data",
    "sklearn.preprocessing._function_transformer.FunctionTransformer": "sklearn.preprocessing._function_transformer",
    "sklearn.tree._classes.DecisionTreeClassifier": "sklearn.tree._classes",
    "sklearn.tree._classes.DecisionTreeRegressor": "sklearn.tree._classes",
    "sklearn.tree._tree.Tree": "sklearn.tree._tree",
}
# The containers and numbers a file may hold around them.
STRUCTURE_TYPES: tuple[str, ...] = (
    "builtins.dict",
    "builtins.list",
    "builtins.str",
    "builtins.tuple",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "numpy.random.mtrand.RandomState",
)
TRUSTED_TYPES: tuple[str, ...] = tuple(sorted((*STRUCTURE_TYPES, *TRUSTED_CLASSES)))
TREE = "sklearn.tree._tree.Tree"
_SCALARS = {"numpy.float64": "float64", "numpy.int64": "int64"}  # numpy is imported when a model is read or written
log = logging.getLogger(__name__)
# What a constructor or __setstate__ raises on values of the wrong kind or size.
_BUILD_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError)


# --- reading ---------------------------------------------------------------------------------------


def _open(data: bytes, source: str) -> tuple[zipfile.ZipFile, dict[str, Any] | None]:
    """The archive and our description, or (archive, None) for a legacy skops file."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        hint = " (it looks like a pickle, which adclick-ops never loads)" if data[:1] == b"\x80" else ""
        raise UnsafeModelError(f"{source}: not an adclick-ops model file{hint}; retrain the model to save it in the safe format") from None
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS or sum(info.file_size for info in infos) > MAX_UNPACKED:
        raise UnsafeModelError(f"{source}: refused: {len(infos)} members unpacking to {sum(i.file_size for i in infos)} bytes")
    if DESCRIPTION not in names:
        if "schema.json" in names:
            return archive, None
        raise UnsafeModelError(
            f"{source}: not an adclick-ops model file (no {DESCRIPTION}); retrain the model to save it in the safe format"
        )
    try:
        description = jsonio.loads(archive.read(DESCRIPTION), max_depth=_JSON_DEPTH, max_bytes=MAX_UNPACKED)
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, OSError, RecursionError) as exc:
        raise UnsafeModelError(f"{source}: {DESCRIPTION} is not readable JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        found = description.get("format") if isinstance(description, dict) else type(description).__name__
        raise UnsafeModelError(f"{source}: format {found!r}; expected {FORMAT!r}")
    return archive, description


_KINDS: dict[frozenset[str], str] = {
    frozenset({"dict"}): "dict",
    frozenset({"tuple"}): "tuple",
    frozenset({"float"}): "float",
    frozenset({"array"}): "array",
    frozenset({"object_array", "items"}): "object_array",
    frozenset({"scalar", "value"}): "scalar",
    frozenset({"random_state"}): "random_state",
    frozenset({"object", "state"}): "object",
    frozenset({"object", "args", "state"}): "object",
}
_KIND_TYPES = {"dict": "builtins.dict", "tuple": "builtins.tuple", "array": "numpy.ndarray", "object_array": "numpy.ndarray"}


def _kind(node: dict[str, Any]) -> str:
    """What a node of the description holds, by its exact set of keys: reading and checking agree on it."""
    kind = _KINDS.get(frozenset(node))
    if kind is None:
        raise UnsafeModelError(f"unexpected node with keys {sorted(map(str, node))[:6]}")
    return kind


# one branch per node kind of the legacy format, a closed list read side by side with Reader.node
def _walk_types(node: Any, found: set[str], depth: int = 0) -> None:  # noqa: C901
    """Every type the description names (and the containers it uses), without building anything."""
    if depth > MAX_DEPTH:
        raise UnsafeModelError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, list):
        found.add("builtins.list")
        children: list[Any] = node
    elif isinstance(node, str):
        found.add("builtins.str")
        return
    elif isinstance(node, dict):
        kind = _kind(node)
        if kind in _KIND_TYPES:
            found.add(_KIND_TYPES[kind])
        if kind == "dict":
            children = list(node["dict"].values()) if isinstance(node["dict"], dict) else [node["dict"]]
        elif kind in ("tuple", "random_state"):
            children = [node[kind]]
        elif kind == "object_array":
            children = [node["items"]]
        elif kind in ("scalar", "object"):
            found.add(str(node[kind]))
            children = [node.get("args"), node["state"]] if kind == "object" else []
        else:
            children = []
        if kind == "random_state":
            found.add("numpy.random.mtrand.RandomState")
    else:
        return
    for child in children:
        _walk_types(child, found, depth + 1)


def _legacy_types(archive: zipfile.ZipFile, source: str) -> set[str]:
    try:
        schema = jsonio.loads(archive.read("schema.json"), max_depth=_JSON_DEPTH, max_bytes=MAX_UNPACKED)
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, OSError):
        raise UnsafeModelError(f"{source}: not an adclick-ops model file; retrain the model to save it in the safe format") from None
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


def types_in(data: bytes, source: str = "model file") -> set[str]:
    """Every type a model file names, read from its description without building anything."""
    archive, description = _open(data, source)
    with archive:
        if description is None:
            return _legacy_types(archive, source)
        found: set[str] = set()
        try:
            _walk_types(description.get("model"), found)
        except UnsafeModelError as exc:
            raise UnsafeModelError(f"{source}: refused: {exc}") from None
        return found


def check_model_bytes(data: bytes, source: str = "model file") -> None:
    """Refuse, as `load_model_bytes` would, a file that is not ours or names an untrusted type; builds nothing."""
    _refuse_untrusted(types_in(data, source), source)


def _refuse_untrusted(found: set[str], source: str) -> None:
    untrusted = sorted(found - set(TRUSTED_TYPES))
    if untrusted:
        raise UnsafeModelError(
            f"{source}: refused: it holds type(s) outside the trusted list: {', '.join(untrusted)}; "
            "adclick-ops loads only the scalers and estimators it trains itself"
        )


class _Reader:
    def __init__(self, archive: zipfile.ZipFile, source: str) -> None:
        self.archive = archive
        self.source = source
        self.names = set(archive.namelist())
        self.notes: set[str] = set()

    def fail(self, what: str) -> UnsafeModelError:
        return UnsafeModelError(f"{self.source}: refused: {what}")

    def array(self, name: Any) -> np.ndarray:
        import numpy as np

        if not isinstance(name, str) or not name.startswith("arrays/") or name not in self.names:
            raise self.fail(f"array {name!r} is not in the file")
        try:
            return np.load(io.BytesIO(self.archive.read(name)), allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise self.fail(f"array {name}: {exc}") from None

    # one branch per node kind of the legacy format, each refusing what is malformed: the whole grammar in one place
    def node(self, node: Any) -> Any:  # noqa: C901
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if isinstance(node, list):
            return [self.node(item) for item in node]
        if not isinstance(node, dict):
            raise self.fail(f"unexpected node {str(node)[:80]!r}")
        try:
            kind = _kind(node)
        except UnsafeModelError as exc:
            raise self.fail(str(exc)) from None
        if kind == "dict" and isinstance(node["dict"], dict):
            return {str(key): self.node(item) for key, item in node["dict"].items()}
        if kind == "tuple" and isinstance(node["tuple"], list):
            return tuple(self.node(item) for item in node["tuple"])
        if kind == "float" and node["float"] in ("nan", "inf", "-inf"):
            return float(node["float"])
        if kind == "array":
            return self.array(node["array"])
        if kind == "object_array":
            return self.object_array(node["object_array"], node["items"])
        if kind == "scalar" and node["scalar"] in _SCALARS:
            return self.scalar(node["scalar"], node["value"])
        if kind == "random_state":
            return self.random_state(self.node(node["random_state"]))
        if kind == "object" and node["object"] in TRUSTED_CLASSES:
            return self.build(node)
        raise self.fail(f"malformed {kind} node {str(node)[:80]!r}")

    def object_array(self, shape: Any, items: Any) -> np.ndarray:
        import numpy as np

        if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape) and isinstance(items, list)):
            raise self.fail("malformed object array")
        if math.prod(shape) != len(items):
            raise self.fail(f"object array of shape {shape} holds {len(items)} items")
        out = np.empty(len(items), dtype=object)
        for i, item in enumerate(items):
            out[i] = self.node(item)
        return out.reshape(shape)

    def scalar(self, name: str, value: Any) -> Any:
        if isinstance(value, str) and value in ("nan", "inf", "-inf"):
            value = float(value)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.fail(f"scalar {name} of value {str(value)[:40]!r}")
        try:
            import numpy as np

            return getattr(np, _SCALARS[name])(value)
        except OverflowError:
            raise self.fail(f"scalar {name} of value {value!r}") from None

    def random_state(self, state: Any) -> np.random.RandomState:
        import numpy as np

        rng = np.random.RandomState()
        try:
            rng.set_state(state)
        except _BUILD_ERRORS as exc:
            raise self.fail(f"random state: {exc}") from None
        return rng

    def build(self, node: dict[str, Any]) -> Any:
        name = node["object"]
        cls = getattr(importlib.import_module(TRUSTED_CLASSES[name]), name.rsplit(".", 1)[1])
        state = self.node(node.get("state"))
        if "args" in node:
            args = self.node(node["args"])
            if not isinstance(args, tuple):
                raise self.fail(f"{name}: arguments {args!r}")
            if name == TREE:
                _check_tree(args, state, self.fail)
            try:
                obj = cls(*args)
            except _BUILD_ERRORS as exc:
                raise self.fail(f"{name}: {exc}") from None
        else:
            obj = cls.__new__(cls)
        if state is not None:
            if "args" not in node and not isinstance(state, dict):
                raise self.fail(f"{name}: state of type {type(state).__name__}, expected a mapping")
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    if hasattr(obj, "__setstate__"):
                        obj.__setstate__(state)
                    else:
                        obj.__dict__.update(state)
            except _BUILD_ERRORS as exc:
                raise self.fail(f"{name}: {exc}") from None
            for warning in caught:
                # scikit-learn's InconsistentVersionWarning: saved with another version; the card says which
                self.notes.add(str(warning.message).split(". ", 1)[0])
        return obj


def _check_tree(args: tuple[Any, ...], state: Any, fail: Any) -> None:
    """A tree that scikit-learn's compiled code can walk safely: every child after its parent and inside
    the node array, every split on an existing feature, values shaped for every node."""
    import numpy as np
    from sklearn.tree._tree import NODE_DTYPE

    if len(args) != 3 or not isinstance(args[0], int) or not isinstance(args[2], int) or not isinstance(args[1], np.ndarray):
        raise fail(f"Tree: arguments {args!r}")
    n_features, n_classes, n_outputs = args
    if not isinstance(state, dict) or not isinstance(state.get("nodes"), np.ndarray) or not isinstance(state.get("values"), np.ndarray):
        raise fail("Tree: state without nodes and values")
    nodes, values, count = state["nodes"], state["values"], state.get("node_count")
    if nodes.dtype != NODE_DTYPE or nodes.ndim != 1 or count != len(nodes) or count == 0:
        raise fail(f"Tree: {count!r} nodes in an array of {nodes.shape} {nodes.dtype}")
    if n_classes.ndim != 1 or len(n_classes) != n_outputs or n_outputs < 1 or (n_classes < 1).any():
        raise fail("Tree: classes do not match the outputs")
    if values.shape != (count, n_outputs, int(n_classes.max())) or values.dtype != np.float64:
        raise fail(f"Tree: values of shape {values.shape}, expected {(count, n_outputs, int(n_classes.max()))}")
    index = np.arange(count)
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    leaf = left == -1
    if (right[leaf] != -1).any() or (feature[leaf] != -2).any():
        raise fail("Tree: a leaf with a child or a split")
    inner = ~leaf
    for child in (left, right):
        if ((child[inner] <= index[inner]) | (child[inner] >= count)).any():
            raise fail("Tree: a child index outside the tree or before its parent")
    if ((feature[inner] < 0) | (feature[inner] >= n_features)).any():
        raise fail(f"Tree: a split on a feature outside 0..{n_features - 1}")


def _skops_io() -> ModuleType:
    """skops.io, for files written in its format by earlier versions; imported without the warnings of
    its module search (it reads names from every loaded module, Airflow's deprecated attributes included)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils$")
        import skops.io
    return skops.io


def load_model_bytes(data: bytes, source: str = "model file") -> Any:
    """Build the model held in `data`; refuse any file naming a type outside TRUSTED_TYPES."""
    archive, description = _open(data, source)
    with archive:
        if description is None:
            _refuse_untrusted(_legacy_types(archive, source), source)
            return _skops_io().loads(data, trusted=list(TRUSTED_TYPES))
        found: set[str] = set()
        try:
            _walk_types(description.get("model"), found)
        except UnsafeModelError as exc:
            raise UnsafeModelError(f"{source}: refused: {exc}") from None
        _refuse_untrusted(found, source)
        reader = _Reader(archive, source)
        model = reader.node(description.get("model"))
    for note in sorted(reader.notes):
        log.warning("%s: %s", source, note)
    return model
