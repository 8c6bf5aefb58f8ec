"""adclick_ops.config.models: the pipeline file format, one pydantic model per concept."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adclick_ops.config import models as m


def refusal(model: type, **fields) -> str:
    with pytest.raises(ValidationError) as raised:
        model(**fields)
    [error] = raised.value.errors()
    return str(error["ctx"]["error"]) if "ctx" in error else error["msg"]


def test_a_python_task_names_an_allowed_callable_and_only_it_does():
    assert m.Task(operator=m.PYTHON_OPERATOR, python_callable=m.TRAINING_CALLABLES[0]).python_callable == m.TRAINING_CALLABLES[0]
    assert refusal(m.Task, operator=m.PYTHON_OPERATOR) == "a PythonOperator task needs python_callable"
    assert (
        refusal(m.Task, operator=m.EMPTY_OPERATOR, python_callable=m.TRAINING_CALLABLES[0])
        == "python_callable is only for PythonOperator, not EmptyOperator"
    )
    assert refusal(m.Task, operator=m.PYTHON_OPERATOR, python_callable="os.system").startswith(
        "python_callable 'os.system' is not allowed; expected one of: "
    )
    assert refusal(m.Task, operator="airflow.operators.bash.BashOperator").startswith(
        "operator 'airflow.operators.bash.BashOperator' is not allowed"
    )


def test_a_model_does_not_learn_from_its_label():
    assert (
        refusal(m.Training, target="y", features=["a", "y"])
        == "the target 'y' is also listed in features; a model may not learn from its label"
    )


def test_the_gates_in_force_and_the_field_that_set_them():
    assert m.Training().gates() == m.Promotion() and m.Training().gates_field() == "training.promotion"
    earlier = m.Training(min_accuracy=0.8)
    assert (earlier.gates().min_accuracy, earlier.gates().fail_run, earlier.gates_field()) == (0.8, "below_floor", "training")
    both = refusal(m.Training, min_accuracy=0.8, promotion={})
    assert (
        both
        == "training.min_accuracy and training.promotion are both set; move it into the promotion section as promotion.min_accuracy: 0.8"
    )


def test_the_last_good_tag_is_reserved():
    words = refusal(m.Dag, tags=[m.LAST_GOOD_TAG], tasks={"t": {"operator": m.EMPTY_OPERATOR}})
    assert words.startswith(f"the tag {m.LAST_GOOD_TAG!r} is set by adclick-ops")


def test_graph_problems_name_the_task_and_the_dependency():
    problems = m.dag_problems({"tasks": {"a": {"dependencies": ["b"]}, "b": {"dependencies": ["a"]}, "c": {"dependencies": ["c", "zz"]}}})
    assert problems == [
        (("tasks", "c", "dependencies", 0), "task 'c' depends on itself"),
        (("tasks", "c", "dependencies", 1), "'zz' is not a task of this DAG; expected one of: 'a', 'b', 'c'"),
        (("tasks", "a", "dependencies"), "the tasks form a cycle: a -> b -> a"),
    ]


def test_a_cycle_through_thousands_of_tasks_is_found_without_recursion():
    n = 5000
    tasks = {f"t{i}": {"dependencies": [f"t{(i + 1) % n}"]} for i in range(n)}
    [(loc, message)] = m.dag_problems({"tasks": tasks})
    assert loc == ("tasks", "t0", "dependencies") and message.startswith("the tasks form a cycle: t0 -> t4999 -> t4998")


def test_a_task_needs_the_section_it_reads_and_continuous_runs_one_at_a_time():
    body = {
        "schedule": "@continuous",
        "max_active_runs": 2,
        "tasks": {"t": {"operator": m.PYTHON_OPERATOR, "python_callable": m.TRAINING_CALLABLES[0]}},
    }
    assert m.dag_problems(body) == [
        (("tasks", "t"), "task(s) 't' need a `training` section in this DAG; it is missing"),
        (("max_active_runs",), "schedule @continuous allows one active run at a time; expected 1, found 2"),
    ]


def test_graph_checks_skip_what_has_the_wrong_shape():
    """The field checks report those; the graph checks must not crash on them."""
    assert m.dag_problems({"tasks": {"a": "not a mapping", "b": {"dependencies": "a"}, "c": {"dependencies": [3]}}}) == []
    assert m.dag_problems({"tasks": ["a"]}) == []


def test_every_text_field_is_checked_for_template_syntax():
    """No field takes a bare str: each is Text (or a template/address/URL type), or has a pattern or an allow-list."""
    import typing

    from pydantic import BaseModel

    from adclick_ops.config import models

    checked_by_allow_list = {("Task", "operator"), ("Task", "python_callable"), ("Task", "trigger_rule"), ("Estimator", "params")}

    # validators whose accepted text holds no template syntax
    safe = ("_plain_text", "_template_text", "_subject_text", "_email", "_schedule")

    def checks(m: object) -> bool:
        if any(checks(inner) for inner in getattr(m, "metadata", []) or []):
            return True
        return bool(getattr(m, "pattern", None)) or getattr(getattr(m, "func", None), "__name__", "") in safe

    def bare_str(annotation: object, metadata: list) -> bool:
        if annotation is str:
            return not any(checks(m) for m in metadata)
        if typing.get_origin(annotation) is typing.Annotated:
            inner, *extra = typing.get_args(annotation)
            return bare_str(inner, [*extra, *(metadata if inner is str else [])])
        return any(bare_str(a, []) for a in typing.get_args(annotation))

    found = []
    for model in vars(models).values():
        if isinstance(model, type) and issubclass(model, BaseModel) and model.__module__ == models.__name__:
            for name, field in model.model_fields.items():
                if (model.__name__, name) not in checked_by_allow_list and bare_str(field.annotation, field.metadata):
                    found.append(f"{model.__name__}.{name}")
    assert not found, found


# --- what a text may hold, and numbers as JSON reads them --------------------------------------------------------

SETTINGS = {"tasks": {"t": {"operator": m.EMPTY_OPERATOR}}}


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x0b", "\x1b", "\x7f", "\x85", "\x9f", "\ud800", "\udfff"])
@pytest.mark.parametrize(
    "model,fields,key",
    [
        (m.Dag, SETTINGS, "description"),
        (m.Dag, SETTINGS, "tags"),
        (m.Task, {"operator": m.EMPTY_OPERATOR}, "doc_md"),
        (m.DefaultArgs, {}, "owner"),
        (m.Training, {}, "target"),
        (m.Trigger, {"dag_id": "x"}, "conf"),
        (m.EmailNotification, {"to": ["a@example.com"]}, "subject"),
    ],
)
def test_a_control_character_or_a_lone_surrogate_is_refused_in_every_text(model, fields, key, char):
    """PostgreSQL, where Airflow keeps tags, descriptions and docs, stores no NUL; a lone surrogate has no UTF-8 spelling."""
    value = f"ab{char}c"
    shaped = {"tags": [value], "conf": {"k": value}}.get(key, value)
    message = refusal(model, **fields, **{key: shaped})
    if char >= "\ud800" and message == "Input should be a valid string, unable to parse raw data as a unicode string":
        return  # a length bound (min_length) is checked first, by pydantic, which cannot read the text either
    assert f"U+{ord(char):04X} at character 3 of {value!r}" in message
    assert "; expected " in message and ("NUL" not in message or char == "\x00")


@pytest.mark.parametrize("char", ["\t", "\n", "\r"])
def test_text_of_several_lines_keeps_tabs_and_line_breaks_and_one_line_text_does_not(char):
    assert m.Dag(**SETTINGS, description=f"a{char}b").description == f"a{char}b"
    assert m.Task(operator=m.EMPTY_OPERATOR, doc_md=f"a{char}b").doc_md == f"a{char}b"
    assert "expected one line of text without control characters" in refusal(m.Dag, **SETTINGS, tags=[f"a{char}b"])
    assert "expected one line of text without control characters" in refusal(m.DefaultArgs, owner=f"a{char}b")


def test_the_schema_s_control_classes_are_the_validators():
    assert m.NO_TEMPLATE["not"]["anyOf"][-1] == {"pattern": f"[{m.TEXT_CONTROL}]"}
    assert m.LINE_SCHEMA["not"]["anyOf"][-1] == {"pattern": f"[{m.LINE_CONTROL}]"}
    assert {"pattern": f"[{m.TEXT_CONTROL}]"} in m.PATH_SCHEMA["not"]["anyOf"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize(
    "model,field", [(m.Split, "test_size"), (m.Promotion, "min_improvement"), (m.Promotion, "min_roc_auc"), (m.Promotion, "holdout")]
)
def test_a_number_is_finite(model, field, value):
    assert refusal(model, **{field: value}) == "Input should be a finite number"


@pytest.mark.parametrize(
    "model,field,value",
    [(m.DefaultArgs, "retries", 2.0), (m.Split, "random_state", 7.0), (m.Monitor, "port", 8080.0), (m.Task, "retries", 1e1)],
)
def test_an_integer_written_with_a_fraction_of_zero_is_that_integer_as_json_reads_it(model, field, value):
    extra = {"operator": m.EMPTY_OPERATOR} if model is m.Task else {}
    got = getattr(model(**extra, **{field: value}), field)
    assert got == int(value) and type(got) is int


@pytest.mark.parametrize("value", [1.5, True, "1", float("nan")])
def test_an_integer_field_still_refuses_what_is_not_an_integer(value):
    assert "valid integer" in refusal(m.DefaultArgs, retries=value)


def test_serve_for_is_bounded():
    assert m.Monitor(serve_for=2**31 - 1).serve_for == 2**31 - 1
    with pytest.raises(ValidationError, match="less than or equal to 2147483647"):
        m.Monitor(serve_for=2**31)
