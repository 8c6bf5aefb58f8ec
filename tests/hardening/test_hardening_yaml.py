"""Bad pipeline files, generated: `adclick-ops validate` answers every one with exit 1 and messages
that name the file (and the field, when one is involved), never with a traceback, within a second.

Each kind of mistake is a hypothesis strategy that mutates the shipped pipelines/ files. The cases
tried are tallied (see tests.support.hardening) for docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adclick_ops.cli import main
from adclick_ops.config import models
from adclick_ops.config.yamlio import MAX_FILE_BYTES

from tests.support.hardening import PROJECT, count, dump

LAB2, FLASK = "airflow_lab2.yaml", "airflow_lab2_flask.yaml"
SHIPPED_TEXT = {name: (PROJECT / "pipelines" / name).read_text() for name in (LAB2, FLASK)}
SHIPPED = {name: yaml.safe_load(text) for name, text in SHIPPED_TEXT.items()}
EXAMPLES = int(os.environ.get("HARDENING_EXAMPLES", "200"))  # per kind: over 2,000 cases in all (small kinds run out sooner)
# No per-example deadline: how fast validate answers is measured by benchmarks/validate_scale.py,
# never by a timer in a test (a loaded machine would fail it for nothing).
SPEC = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@dataclass
class Case:
    """A mutated pipelines/ folder: files to write (bytes), and what the answer must name."""

    files: dict[str, bytes]
    error_file: str  # the file the message must name
    field: str | None = None  # a field path the message must name (prefix match), when one is involved
    words: str | None = None  # words the message must contain
    extra: dict[str, bytes] = dataclass_field(default_factory=dict)  # files added beside the shipped ones

    def __repr__(self) -> str:  # failing examples can be megabytes long; show their start
        short = {k: v[:400] + (b"...(%d bytes)" % len(v) if len(v) > 400 else b"") for k, v in {**self.files, **self.extra}.items()}
        return f"Case(files={short!r}, error_file={self.error_file!r}, field={self.field!r}, words={self.words!r})"


def lab2() -> dict:
    return json.loads(json.dumps(SHIPPED[LAB2], default=str))  # a deep copy, start_date as text


def flask() -> dict:
    return json.loads(json.dumps(SHIPPED[FLASK], default=str))


def case_from(name: str, data: Any, field_path: str | None = None, words: str | None = None, error_file: str | None = None) -> Case:
    return Case({name: dump(data).encode()}, error_file or name, field_path, words)


def get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def field_of(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def leaves(data: Any, path: tuple = ()) -> list[tuple]:
    """Every path inside `data` (mappings and lists included), except the document itself."""
    out = [path] if path else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += leaves(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += leaves(v, path + (i,))
    return out


def validate(folder: Path) -> tuple[int, str]:
    """`adclick-ops validate <folder>` in-process: exit code and everything it printed."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["validate", str(folder)])
    except SystemExit as exc:  # argparse and friends
        code = exc.code
    except Exception:  # what a user would see as a traceback
        pytest.fail("validate raised instead of reporting:\n" + traceback.format_exc())
    return code, out.getvalue() + err.getvalue()


def write(case: Case, root: Path) -> Path:
    folder = root / uuid.uuid4().hex  # a fresh folder each time: the validation cache keys on path and mtime
    shutil.copytree(PROJECT / "pipelines", folder)
    for name, content in {**case.files, **case.extra}.items():
        (folder / name).write_bytes(content)
    return folder


def check(case: Case, code: int, out: str, folder: Path) -> None:
    shown = str(folder / case.error_file)
    assert code == 1, f"exit {code} for a bad file:\n{out}\n--- file:\n{case.files}"
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.startswith(shown + ":")]
    assert lines, f"no message names {shown}:\n{out}"
    if case.field is not None:
        assert any(re.search(r"^[^ ]+?(:\d+)?: " + re.escape(case.field), line) for line in lines), (
            f"no message names field {case.field!r}:\n{out}"
        )
    if case.words is not None:
        assert any(case.words in line for line in lines), f"no message says {case.words!r}:\n{out}"


# --- the strategies: one per kind of mistake ---------------------------------------------------

TASKS = list(SHIPPED[LAB2]["Airflow_Lab2"]["tasks"])
ORDER = TASKS  # the shipped graph lists tasks upstream first; each of the first five feeds all later ones
PYTHON_TASKS = [t for t, s in SHIPPED[LAB2]["Airflow_Lab2"]["tasks"].items() if "python_callable" in s]
scalar = st.one_of(st.integers(-(10**6), 10**6), st.text(max_size=20), st.booleans(), st.floats(allow_nan=False), st.none())
identifier = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)


@st.composite
def dropped_key(draw) -> Case:
    """Required keys, or keys whose absence breaks the graph, removed."""
    lab = lab2()
    dag = lab["Airflow_Lab2"]
    options: list[tuple[str, Callable[[], Case]]] = [
        ("tasks", lambda: (dag.pop("tasks"), case_from(LAB2, lab, "Airflow_Lab2.tasks", "required field is missing"))[1]),
        ("notify.email", lambda: (dag["notify"].pop("email"), case_from(LAB2, lab, "Airflow_Lab2.notify.email"))[1]),
        ("notify.email.to", lambda: (dag["notify"]["email"].pop("to"), case_from(LAB2, lab, "Airflow_Lab2.notify.email.to"))[1]),
        ("trigger.dag_id", lambda: (dag["trigger"].pop("dag_id"), case_from(LAB2, lab, "Airflow_Lab2.trigger.dag_id"))[1]),
        (
            "training",
            lambda: (dag.pop("training"), case_from(LAB2, lab, "Airflow_Lab2.tasks.load_data_task", "need a `training` section"))[1],
        ),
        ("notify", lambda: (dag.pop("notify"), case_from(LAB2, lab, "Airflow_Lab2.tasks.send_email", "need a `notify` section"))[1]),
        (
            "trigger",
            lambda: (dag.pop("trigger"), case_from(LAB2, lab, "Airflow_Lab2.tasks.my_trigger_task", "need a `trigger` section"))[1],
        ),
    ]
    task = draw(st.sampled_from(TASKS))
    options.append(
        ("operator", lambda: (dag["tasks"][task].pop("operator"), case_from(LAB2, lab, f"Airflow_Lab2.tasks.{task}.operator"))[1])
    )
    ptask = draw(st.sampled_from(PYTHON_TASKS))
    options.append(
        (
            "python_callable",
            lambda: (
                dag["tasks"][ptask].pop("python_callable"),
                case_from(LAB2, lab, f"Airflow_Lab2.tasks.{ptask}", "needs python_callable"),
            )[1],
        )
    )
    upstream = draw(st.sampled_from(TASKS[:5]))  # each of these feeds another task
    options.append(
        ("a needed task", lambda: (dag["tasks"].pop(upstream), case_from(LAB2, lab, "Airflow_Lab2.tasks.", "is not a task of this DAG"))[1])
    )
    fl = flask()
    options.append(
        (
            "monitor",
            lambda: (
                fl["Airflow_Lab2_Flask"].pop("monitor"),
                case_from(FLASK, fl, "Airflow_Lab2_Flask.tasks.start_Flask_API", "need a `monitor` section"),
            )[1],
        )
    )
    options.append(
        (
            "the triggered DAG",
            lambda: (
                fl.pop("Airflow_Lab2_Flask"),
                fl.update(
                    Other_Dag=lab2()["Airflow_Lab2"]
                    | {"tasks": {"t": {"operator": models.EMPTY_OPERATOR}}, "trigger": None, "notify": None}
                ),
                case_from(FLASK, fl, error_file=LAB2, field_path="Airflow_Lab2.trigger.dag_id", words="is not declared"),
            )[2],
        )
    )
    _, make = draw(st.sampled_from(options))
    return make()


@st.composite
def wrong_type(draw) -> Case:
    """Any value of either file replaced by one of the wrong shape: a scalar by a list or a mapping, and back."""
    name = draw(st.sampled_from([LAB2, FLASK]))
    data = lab2() if name == LAB2 else flask()
    path = draw(st.sampled_from([p for p in leaves(data) if len(p) >= 2]))
    parent, key = get(data, path[:-1]), path[-1]
    if isinstance(parent[key], (dict, list)):
        new = draw(st.one_of(st.integers(), st.text(min_size=1, max_size=30), st.booleans(), st.floats(allow_nan=False)))
        if isinstance(parent[key], list) and isinstance(new, str) and False:
            pass
    else:
        new = draw(st.one_of(st.lists(scalar, min_size=1, max_size=4), st.dictionaries(identifier, scalar, min_size=1, max_size=4)))
    parent[key] = new
    return case_from(name, data, field_of(path))


MODEL_AT: dict[tuple, type] = {
    ("Airflow_Lab2",): models.Dag,
    ("Airflow_Lab2", "training"): models.Training,
    ("Airflow_Lab2", "training", "split"): models.Split,
    ("Airflow_Lab2", "training", "estimator"): models.Estimator,
    ("Airflow_Lab2", "notify"): models.Notify,
    ("Airflow_Lab2", "notify", "email"): models.EmailNotification,
    ("Airflow_Lab2", "trigger"): models.Trigger,
    ("Airflow_Lab2", "default_args"): models.DefaultArgs,
    **{("Airflow_Lab2", "tasks", t): models.Task for t in TASKS},
}


@st.composite
def unknown_key(draw) -> Case:
    """A key that the section does not have (a typo, a field of another section, an invented one)."""
    if draw(st.booleans()):
        path, model = draw(st.sampled_from(sorted(MODEL_AT.items())))
        data, name = lab2(), LAB2
    else:
        path, model = draw(st.sampled_from([(("Airflow_Lab2_Flask",), models.Dag), (("Airflow_Lab2_Flask", "monitor"), models.Monitor)]))
        data, name = flask(), FLASK
    key = draw(identifier.filter(lambda k: k not in model.model_fields and k not in ("y", "n")))
    get(data, path)[key] = draw(scalar)
    return case_from(name, data, field_of(path + (key,)), "unknown field")


# (file, path, smallest allowed, largest allowed, integer?)
BOUNDED = [
    (LAB2, ("Airflow_Lab2", "max_active_runs"), 1, 64, True),
    (LAB2, ("Airflow_Lab2", "default_args", "retries"), 0, 10, True),
    (LAB2, ("Airflow_Lab2", "default_args", "retry_delay_sec"), 0, 86_400, True),
    (LAB2, ("Airflow_Lab2", "default_args", "execution_timeout_secs"), 1, 604_800, True),
    (LAB2, ("Airflow_Lab2", "training", "split", "test_size"), 0.0, 1.0, False),
    (LAB2, ("Airflow_Lab2", "training", "split", "random_state"), 0, 2**32 - 1, True),
    (LAB2, ("Airflow_Lab2", "training", "min_accuracy"), 0.0, 1.0, False),
    (LAB2, ("Airflow_Lab2", "tasks", "load_data_task", "retries"), 0, 10, True),
    (FLASK, ("Airflow_Lab2_Flask", "monitor", "port"), 1, 65_535, True),
    (FLASK, ("Airflow_Lab2_Flask", "monitor", "serve_for"), 1, None, True),
    (FLASK, ("Airflow_Lab2_Flask", "max_active_runs"), 1, 64, True),
]


@st.composite
def out_of_range(draw) -> Case:
    """Huge, negative, zero, infinite or not-a-number values of bounded numbers."""
    name, path, low, high, integer = draw(st.sampled_from(BOUNDED))
    if integer:
        below = st.integers(min_value=-(10**300), max_value=low - 1)
        above = st.integers(min_value=high + 1, max_value=10**300) if high is not None else below
    else:  # test_size is exclusive at both ends; min_accuracy inclusive
        exclusive = path[-1] == "test_size"
        below = st.floats(max_value=low, exclude_max=not exclusive, allow_nan=False)
        above = st.floats(min_value=high, exclude_min=not exclusive, allow_nan=False) | st.just(float("nan"))
    value = draw(below | above)
    data = lab2() if name == LAB2 else flask()
    get(data, path[:-1])[path[-1]] = value
    return case_from(name, data, field_of(path))


@st.composite
def cycle(draw) -> Case:
    """A task made to depend on itself or on one of its own downstream tasks."""
    data = lab2()
    tasks = data["Airflow_Lab2"]["tasks"]
    i = draw(st.integers(0, 4))
    j = draw(st.integers(i, len(ORDER) - 1))
    deps = tasks[ORDER[i]].setdefault("dependencies", [])
    deps.insert(draw(st.integers(0, len(deps))), ORDER[j])
    words = "depends on itself" if i == j else "the tasks form a cycle"
    return case_from(LAB2, data, "Airflow_Lab2.tasks.", words)


@st.composite
def dangling_dependency(draw) -> Case:
    data = lab2()
    tasks = data["Airflow_Lab2"]["tasks"]
    task = draw(st.sampled_from(TASKS))
    missing = draw(st.from_regex(r"[A-Za-z0-9_.\-]{1,40}", fullmatch=True).filter(lambda t: t not in tasks))
    deps = tasks[task].setdefault("dependencies", [])
    at = draw(st.integers(0, len(deps)))
    deps.insert(at, missing)
    return case_from(LAB2, data, f"Airflow_Lab2.tasks.{task}.dependencies[{at}]")


def task_block(text: str, task: str) -> str:
    lines = text.splitlines(keepends=True)
    start = lines.index(f"    {task}:\n")
    end = start + 1
    while end < len(lines) and lines[end].startswith("      "):
        end += 1
    return "".join(lines[start:end])


@st.composite
def duplicate_id(draw) -> Case:
    """The same task id twice in a file, or the same DAG id in two files."""
    if draw(st.booleans()):
        text = SHIPPED_TEXT[LAB2]
        task = draw(st.sampled_from(TASKS))
        block = task_block(text, task)
        anchor = task_block(text, draw(st.sampled_from(TASKS)))
        text = text.replace(anchor, anchor + block, 1) if anchor != block else text.replace(block, block + block, 1)
        return Case({LAB2: text.encode()}, LAB2, None, f"duplicate key {task!r}")
    name = draw(st.sampled_from(["copy.yaml", "zz_more.yaml", "other.yml"]))
    source = draw(st.sampled_from([LAB2, FLASK]))
    dag_id = next(iter(SHIPPED[source]))
    return Case({}, name, dag_id, f"DAG id {dag_id!r} is also declared in", extra={name: SHIPPED_TEXT[source].encode()})


@st.composite
def unknown_scaler_or_estimator(draw) -> Case:
    data = lab2()
    training = data["Airflow_Lab2"]["training"]
    what = draw(st.sampled_from(["scaler", "estimator", "parameter"]))
    bogus = draw(identifier)
    if what == "scaler":
        bogus = draw(identifier.filter(lambda s: s not in models.SCALERS))
        scalers = draw(st.lists(st.sampled_from(models.SCALERS), unique=True, max_size=3))
        at = draw(st.integers(0, len(scalers)))
        training["scalers"] = scalers[:at] + [bogus] + scalers[at:]
        return case_from(LAB2, data, f"Airflow_Lab2.training.scalers[{at}]")
    if what == "estimator":
        training["estimator"]["name"] = draw(identifier.filter(lambda s: s not in models.ESTIMATOR_PARAMS))
        return case_from(LAB2, data, "Airflow_Lab2.training.estimator.name")
    name = draw(st.sampled_from(sorted(models.ESTIMATOR_PARAMS)))
    bogus = draw(identifier.filter(lambda s: s not in models.ESTIMATOR_PARAMS[name]))
    training["estimator"] = {"name": name, "params": {bogus: draw(st.integers(0, 100))}}
    return case_from(LAB2, data, "Airflow_Lab2.training.estimator", "unknown parameter")


local = st.from_regex(r"[a-z0-9._%+-]{1,12}", fullmatch=True)
domain = st.from_regex(r"[a-z0-9-]{1,10}", fullmatch=True)
bad_address = st.one_of(
    local,  # no @ at all
    st.builds(lambda name, d: f"{name}@{d}", local, domain),  # no dot in the domain
    st.builds(lambda d: f"@{d}.com", domain),  # nobody before the @
    st.builds(lambda name, d: f"{name}@@{d}.com", local, domain),
    st.builds(lambda name, d: f"{name} x@{d}.com", local, domain),  # a space
    st.builds(lambda name, d: f"{name}@{d}.com, other@{d}.com", local, domain),  # two in one string
    st.builds(lambda name, d: f"<{name}@{d}.com>", local, domain),
    st.builds(lambda name, d: f"{name}@{d}..com", local, domain),
    # a line end after it: Python's `$` matches before a final newline, JSON Schema's does not
    st.builds(lambda name, d, end: f"{name}@{d}.com{end}", local, domain, st.sampled_from(["\n", "\r\n", "\r", " ", "\t"])),
    st.just(""),
)


@st.composite
def invalid_email(draw) -> Case:
    data = lab2()
    email = data["Airflow_Lab2"]["notify"]["email"]
    good = draw(st.lists(st.sampled_from(["ml-team@example.com", "a.b+c@example.org", "x@sub.example.net"]), max_size=3))
    at = draw(st.integers(0, len(good)))
    email["to"] = good[:at] + [draw(bad_address)] + good[at:]
    return case_from(LAB2, data, "Airflow_Lab2.notify.email.to", "not an e-mail address")


dotted = st.lists(identifier, min_size=1, max_size=5).map(".".join)


@st.composite
def outside_allow_list(draw) -> Case:
    """Operators and callables that a pipeline file may not name."""
    data = lab2()
    tasks = data["Airflow_Lab2"]["tasks"]
    if draw(st.booleans()):
        task = draw(st.sampled_from(TASKS))
        tasks[task]["operator"] = draw(
            st.one_of(
                st.sampled_from(
                    [
                        "airflow.providers.standard.operators.bash.BashOperator",
                        "os.system",
                        "builtins.eval",
                        "airflow.operators.python.PythonOperator",
                        models.PYTHON_OPERATOR + " ",
                        models.PYTHON_OPERATOR.upper(),
                    ]
                ),
                dotted,
            ).filter(lambda o: o not in models.OPERATORS)
        )
        return case_from(LAB2, data, f"Airflow_Lab2.tasks.{task}.operator", "is not allowed")
    task = draw(st.sampled_from(PYTHON_TASKS))
    tasks[task]["python_callable"] = draw(
        st.one_of(
            st.sampled_from(
                [
                    "os.system",
                    "builtins.eval",
                    "subprocess.run",
                    "adclick_ops.tasks._adapter",
                    "adclick_ops.cli.main",
                    "adclick_ops.tasks.load_data()",
                    "adclick_ops.tasks.load_data\n",
                ]
            ),
            dotted,
            dotted.map(lambda s: "adclick_ops.tasks." + s),
        ).filter(lambda c: c not in models.CALLABLES)
    )
    return case_from(LAB2, data, f"Airflow_Lab2.tasks.{task}.python_callable", "is not allowed")


INVALID_UTF8 = st.sampled_from([b"\xff", b"\xfe", b"\xc0\xaf", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x28\xa1", b"\xc3"])


@st.composite
def not_utf8(draw) -> Case:
    name = draw(st.sampled_from([LAB2, FLASK, "defaults.yaml"]))
    raw = (PROJECT / "pipelines" / name).read_bytes()
    at = draw(st.integers(0, len(raw)))
    bad = draw(INVALID_UTF8)
    if bad == b"\xc3":
        return Case({name: raw[:at] + bad + b"A" + raw[at:]}, name, None, "not valid UTF-8")
    return Case({name: raw[:at] + bad + raw[at:]}, name, None, "not valid UTF-8")


@st.composite
def alias(draw) -> Case:
    """Billion-laughs documents, and one anchor with an alias in a shipped file."""
    if draw(st.booleans()):
        depth, width = draw(st.integers(1, 12)), draw(st.integers(2, 12))
        lines = ['a0: &a0 ["lol"]']
        for i in range(1, depth + 1):
            lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
        text = "Bomb:\n" + "\n".join("  " + ln for ln in lines) + "\n"
        return Case({"bomb.yaml": text.encode()}, "bomb.yaml", None, "anchors and aliases")
    text = SHIPPED_TEXT[LAB2]
    text = text.replace("owner: adclick-ops", "owner: &who adclick-ops", 1)
    spot = draw(
        st.sampled_from(
            [
                "description: Train the ad-click model, evaluate it, e-mail the report and trigger the monitor.",
                "target: Clicked on Ad",
                "model_dir: model",
                "conn_id: smtp_default",
            ]
        )
    )
    key = spot.split(":")[0]
    text = text.replace(spot, f"{key}: *who", 1)
    return Case({LAB2: text.encode()}, LAB2, None, "anchors and aliases")


@st.composite
def empty_or_not_a_mapping(draw) -> Case:
    """Empty files, comments only, a lone value, and lists where mappings belong."""
    name = draw(st.sampled_from([LAB2, FLASK]))
    kind = draw(st.sampled_from(["empty", "lone value", "top-level list", "dag is a list", "section is a list"]))
    if kind == "empty":
        text = draw(st.sampled_from(["", "\n", "   \n\t\n", "# only a comment\n", "---\n", "---\n...\n", "\ufeff", "# a\n\n# b\n"]))
        # "---" alone is reported as "a single value ('')": right exit code, odd words (see test_document_marker_alone...)
        return Case({name: text.encode()}, name, None, None if text.startswith("---") else "empty")
    if kind == "lone value":
        text = draw(st.sampled_from(["~", "null", "42", "hello", '"Airflow_Lab2"', "true", "3.14", "2024-01-01"]))
        return Case({name: text.encode()}, name, None, "at the top level; expected a mapping")
    data = lab2() if name == LAB2 else flask()
    dag_id = next(iter(data))
    if kind == "top-level list":
        return case_from(
            name,
            [{k: v} for k, v in data.items()] if draw(st.booleans()) else list(data[dag_id].items()),
            None,
            "found a list at the top level",
        )
    if kind == "dag is a list":
        data[dag_id] = list(data[dag_id].items())
        return case_from(name, data, dag_id, "expected a mapping")
    section = draw(st.sampled_from([k for k, v in data[dag_id].items() if isinstance(v, dict)]))
    data[dag_id][section] = list(data[dag_id][section].values())
    return case_from(name, data, f"{dag_id}.{section}")


def nested(depth: int, innermost: Any, mapping: bool) -> Any:
    value = innermost
    for _ in range(depth):
        value = {"k": value} if mapping else [value]
    return value


@st.composite
def deep_nesting(draw) -> Case:
    """A value replaced by lists or mappings nested up to 5,000 deep (a file of a few kilobytes)."""
    data = lab2()
    path = draw(st.sampled_from([p for p in leaves(data) if len(p) >= 2 and not isinstance(get(data, p), (dict, list))]))
    depth = draw(st.integers(2, 5_000))
    flow = draw(st.booleans())
    if flow:  # written by hand: "[[[[...]]]]", a few bytes per level
        inner = "[" * depth + "1" + "]" * depth
        text = dump(data).replace("\n", "\n", 0)
        get(data, path[:-1])[path[-1]] = "@@DEEP@@"
        text = dump(data).replace("'@@DEEP@@'", inner).replace('"@@DEEP@@"', inner).replace("@@DEEP@@", inner)
        return Case({LAB2: text.encode()}, LAB2, None)
    if depth > 400:  # block style grows with the square of the depth; keep the file under the size limit
        depth = depth % 400 + 2
    get(data, path[:-1])[path[-1]] = nested(depth, 1, draw(st.booleans()))
    return case_from(LAB2, data, None)


@st.composite
def path_escape(draw) -> Case:
    """`..` in the dataset, model and artifact paths, or a path in model_file."""
    data = lab2()
    training = data["Airflow_Lab2"]["training"]
    key = draw(st.sampled_from(["dataset", "model_dir", "artifacts_root", "model_file"]))
    segments = draw(st.lists(st.from_regex(r"[a-z0-9_]{1,8}", fullmatch=True), max_size=4))
    ups = draw(st.integers(1, 4))
    at = draw(st.integers(0, len(segments)))
    sep = draw(st.sampled_from(["/", "\\"]))
    parts = segments[:at] + [".."] * ups + segments[at:]
    training[key] = sep.join(parts) + (draw(st.sampled_from(["", sep])) if key != "model_file" else "")
    return case_from(LAB2, data, f"Airflow_Lab2.training.{key}")


@st.composite
def file_uri_escape(draw) -> Case:
    """The same `..` escape written as a file:// URI."""
    data = lab2()
    key = draw(st.sampled_from(["dataset", "model_dir", "artifacts_root"]))
    ups = draw(st.integers(1, 4))
    tail = draw(st.from_regex(r"[a-z0-9_]{1,8}", fullmatch=True))
    prefix = draw(st.sampled_from(["", "dags/"]))
    data["Airflow_Lab2"]["training"][key] = "file://" + prefix + "../" * ups + tail
    return case_from(LAB2, data, f"Airflow_Lab2.training.{key}")


TAGS = [
    "!!python/object/apply:os.system",
    "!!python/name:os.system",
    "!!python/object:object",
    "!!binary",
    "!!set",
    "!custom",
    "!!python/tuple",
    "!!omap",
    "!<tag:example.com,2024:x>",
]


@st.composite
def yaml_tag(draw) -> Case:
    tag = draw(st.sampled_from(TAGS))
    value = {
        "!!binary": "aGVsbG8=",
        "!!set": "{a, b}",
        "!!omap": "[{a: 1}]",
        "!!python/tuple": "[1, 2]",
        "!!python/object/apply:os.system": '["true"]',
    }.get(tag, "x")
    spot = draw(st.sampled_from(["owner: adclick-ops", "target: Clicked on Ad", "model_dir: model", "catchup: false"]))
    key = spot.split(":")[0]
    text = SHIPPED_TEXT[LAB2].replace(spot, f"{key}: {tag} {value}", 1)
    return Case({LAB2: text.encode()}, LAB2, None)


@st.composite
def impossible_date(draw) -> Case:
    """start_date written as a date that no calendar has (2024-02-30, month 13)."""
    data = lab2()
    year = draw(st.integers(1000, 9999))
    month, day = draw(
        st.one_of(
            st.tuples(st.integers(13, 99), st.integers(1, 28)),
            st.tuples(st.just(2), st.integers(30, 31)),
            st.tuples(st.sampled_from([4, 6, 9, 11]), st.just(31)),
            st.tuples(st.integers(1, 12), st.integers(32, 99)),
            st.tuples(st.just(0), st.integers(1, 28)),
        )
    )
    data["Airflow_Lab2"]["start_date"] = "@@DATE@@"
    text = dump(data).replace("'@@DATE@@'", f"{year}-{month:02d}-{day:02d}")
    return Case({LAB2: text.encode()}, LAB2, "Airflow_Lab2.start_date")


@st.composite
def very_long_integer(draw) -> Case:
    """An integer of thousands of digits (Python refuses to parse more than 4,300 by default)."""
    data = lab2()
    _, path, *_ = draw(st.sampled_from([b for b in BOUNDED if b[0] == LAB2 and b[4]]))
    digits = draw(st.integers(1_000, 20_000))
    get(data, path[:-1])[path[-1]] = "@@INT@@"
    text = dump(data).replace("'@@INT@@'", "9" * digits)
    return Case({LAB2: text.encode()}, LAB2, field_of(path))


@st.composite
def bad_dag_id(draw) -> Case:
    """The monitor DAG renamed to something that is not a DAG id (a number, spaces, a newline...)."""
    data = flask()
    body = data.pop("Airflow_Lab2_Flask")
    new_id = draw(
        st.one_of(
            st.integers(),
            st.floats(allow_nan=False),
            st.booleans(),
            st.text(min_size=1, max_size=30).filter(lambda s: not re.fullmatch(r"[A-Za-z0-9_.\-]{1,250}", s)),
            st.from_regex(r"[A-Za-z0-9_]{1,20}", fullmatch=True).map(lambda s: s + "\n"),
        )
    )
    data[new_id] = body
    return case_from(FLASK, data)


@st.composite
def oversized_or_large(draw) -> Case:
    """Files near and over the size limit: a long list of tags, many tasks, or padding."""
    kind = draw(st.sampled_from(["tags", "padding", "over"]))
    size = draw(st.integers(10_000, MAX_FILE_BYTES))
    if kind == "over":
        text = SHIPPED_TEXT[LAB2] + "#" * (MAX_FILE_BYTES + 1 - len(SHIPPED_TEXT[LAB2]) + draw(st.integers(0, 1000)))
        return Case({LAB2: text.encode()}, LAB2, None, "limited to")
    if kind == "tags":  # a dense flow list: the slowest thing to parse per byte
        n = size // 3
        text = "Big:\n  tags: [" + ",".join(["xx"] * n) + "]\n"
    else:
        text = SHIPPED_TEXT[FLASK].replace("Airflow_Lab2_Flask:", "Big:") + "  doc_md_padding: " + "x" * size + "\n"
    return Case({"big.yaml": text.encode()[:MAX_FILE_BYTES]}, "big.yaml", None)


KINDS: dict[str, Any] = {
    "dropped key": dropped_key(),
    "wrong type": wrong_type(),
    "unknown key": unknown_key(),
    "number out of range (huge, negative, inf, nan)": out_of_range(),
    "cycle or self-dependency": cycle(),
    "dangling dependency": dangling_dependency(),
    "duplicate task id / DAG id": duplicate_id(),
    "unknown scaler, estimator or parameter": unknown_scaler_or_estimator(),
    "invalid e-mail address": invalid_email(),
    "operator or callable outside the allow-list": outside_allow_list(),
    "bytes that are not UTF-8": not_utf8(),
    "anchors, aliases, billion laughs": alias(),
    "empty file, lone value, list instead of mapping": empty_or_not_a_mapping(),
    "path with ../": path_escape(),
    "YAML tags (!!python/..., !!binary, custom)": yaml_tag(),
}
# Kinds that found bugs in the project (see the report / docs/reliability.md); they fail until fixed.
BUG_KINDS: dict[str, Any] = {
    "deep nesting": deep_nesting(),
    "file:// URI with ../": file_uri_escape(),
    "impossible calendar date": impossible_date(),
    "integer of thousands of digits": very_long_integer(),
    "DAG id that is not a DAG id": bad_dag_id(),
    "large file under the size limit": oversized_or_large(),
}


def _run(kind: str, case: Case, tmp_path: Path) -> None:
    count(f"validate: {kind}")
    folder = write(case, tmp_path)
    try:
        code, out = validate(folder)
        check(case, code, out, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("kind", list(KINDS))
def test_validate_reports_every_generated_mistake(kind, tmp_path):
    @SPEC
    @given(case=KINDS[kind])
    def run(case: Case) -> None:
        _run(kind, case, tmp_path)

    run()


@pytest.mark.parametrize("kind", list(BUG_KINDS))
def test_validate_reports_mistakes_that_found_bugs(kind, tmp_path):
    @SPEC
    @given(case=BUG_KINDS[kind])
    def run(case: Case) -> None:
        _run(kind, case, tmp_path)

    run()


# --- single cases, named, for the bugs the generated ones found -------------------------------------

REGRESSIONS = {
    "document marker alone": (b"---\n", FLASK, None, "empty"),
    "impossible date": (
        SHIPPED_TEXT[LAB2].replace("start_date: 2024-01-01", "start_date: 2024-02-30").encode(),
        LAB2,
        "Airflow_Lab2.start_date",
        None,
    ),
    "integer of 5,000 digits": (
        SHIPPED_TEXT[LAB2].replace("retries: 1", "retries: " + "9" * 5000, 1).encode(),
        LAB2,
        "Airflow_Lab2.default_args.retries",
        None,
    ),
    "numeric DAG id": (SHIPPED_TEXT[FLASK].replace("Airflow_Lab2_Flask:", "1:").encode(), FLASK, "1", "not a valid DAG id"),
    "DAG id ending in a newline": (
        SHIPPED_TEXT[FLASK].replace("Airflow_Lab2_Flask:", '"Monitor\\n":').encode(),
        FLASK,
        None,
        "not a valid DAG id",
    ),
    "recipient ending in a newline": (
        SHIPPED_TEXT[LAB2].replace("to: [ml-team@example.com]", 'to: ["ml-team@example.com\\n"]').encode(),
        LAB2,
        "Airflow_Lab2.notify.email.to[0]",
        "not an e-mail address",
    ),
    "nesting 3,000 deep": (SHIPPED_TEXT[LAB2].replace("catchup: false", "catchup: " + "[" * 3000 + "]" * 3000).encode(), LAB2, None, None),
    "dataset as file:// URI with ..": (
        SHIPPED_TEXT[LAB2].replace("dataset: dags/data/advertising.csv", "dataset: file://../x.csv").encode(),
        LAB2,
        "Airflow_Lab2.training.dataset",
        None,
    ),
}


@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_found_bug_regression(name, tmp_path):
    content, file, field_path, words = REGRESSIONS[name]
    case = Case({file: content}, file, field_path, words)
    count(f"validate: regression: {name}")
    folder = write(case, tmp_path)
    code, out = validate(folder)
    check(case, code, out, folder)


@SPEC
@given(case=st.sampled_from([REGRESSIONS["nesting 3,000 deep"]]))
def test_deep_nesting_is_answered_within_a_second(case, tmp_path_factory):
    content, file, _, _ = case
    folder = write(Case({file: content}, file), tmp_path_factory.mktemp("deep"))
    code, out = validate(folder)
    assert code == 1 and "Traceback" not in out
