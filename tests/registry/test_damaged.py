"""A damaged registry: every command answers in one line naming the file, what is wrong and how to repair it, and
exits 1; `promote VERSION` repairs the champion pointer; `models check` lists every problem; promote and rollback
move the champion only to a version whose file passes its checks, and the champion's copy is the champion or absent."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from adclick_ops.cli import main
from adclick_ops.registry import Registry, RegistryError
from adclick_ops.registry.registry import DamagedRegistryError

from tests.support import PROJECT
from tests.support.registry import model_rows, train_two_versions


@pytest.fixture
def trained(pipelines, tmp_path) -> Registry:
    """Version 1 (a stump) and version 2 (the seed's model, champion), with a pristine copy to restore between cases."""
    registry = train_two_versions(pipelines, tmp_path / "model")
    shutil.copytree(tmp_path / "model", tmp_path / "pristine")
    return registry


def restore(tmp_path: Path) -> None:
    shutil.rmtree(tmp_path / "model")
    shutil.copytree(tmp_path / "pristine", tmp_path / "model")


def pointer(registry: Registry) -> Path:
    return Path(registry.location) / "champion.json"


def card(registry: Registry, number: int) -> Path:
    return Path(registry.location) / "versions" / f"{number:06d}.json"


def model_file(registry: Registry, number: int) -> Path:
    return Path(registry.location) / json.loads(card(registry, number).read_text())["model"]["file"]


def truncations(path_of: Callable[[Registry], Path], label: str):
    for fraction in (0.0, 0.1, 0.5, 0.9, 0.99):
        yield f"{label} truncated to {fraction:.0%}", path_of, lambda data, f=fraction: data[: int(len(data) * f)]


def damages():
    """(name, the file it damages, how, the words the answer must hold)."""
    for name, path_of, how in truncations(pointer, "champion.json"):
        yield name, path_of, how, ("champion.json",)
    for name, path_of, how in truncations(lambda r: card(r, 2), "the champion's card"):
        yield name, path_of, how, ("000002.json",)
    yield "champion.json: a list", pointer, lambda d: b"[]", ("champion.json", "expected a JSON object")
    yield (
        "champion.json: unknown field",
        pointer,
        lambda d: json.dumps(json.loads(d) | {"chmpion": 1}).encode(),
        ("unknown field(s) chmpion",),
    )
    yield (
        "champion.json: champion not a number",
        pointer,
        lambda d: json.dumps(json.loads(d) | {"champion": "2"}).encode(),
        ("champion must be",),
    )
    yield "champion.json: not UTF-8", pointer, lambda d: b"\xff\xfe" + d, ("champion.json",)
    yield (
        "card: unknown field",
        lambda r: card(r, 2),
        lambda d: json.dumps(json.loads(d) | {"metricz": {}}).encode(),
        ("unknown field(s) metricz",),
    )
    yield "card: another version's", lambda r: card(r, 2), lambda d: json.dumps(json.loads(d) | {"version": 1}).encode(), ("version field",)
    # one change of the history, each field every reader relies on: list, show, rollback and later runs' decisions
    for field, value in [
        ("reason", None),
        ("reason", 7),
        ("version", {}),
        ("version", True),
        ("version", 0),
        ("action", "promted"),
        ("action", ["promoted"]),
        ("from", "1"),
        ("by", []),
        ("at", None),
    ]:
        yield (
            f"champion.json: an event's {field} is {value!r}",
            pointer,
            lambda d, field=field, value=value: _with_event_field(d, field, value),
            ("champion.json: events[1]: ", field),
        )
    yield "champion.json: an event that is a list", pointer, lambda d: _with_event(d, []), ("events[1]: found list",)


def _with_event(data: bytes, event) -> bytes:
    state = json.loads(data)
    state["events"][1] = event
    return json.dumps(state).encode()


def _with_event_field(data: bytes, field: str, value) -> bytes:
    state = json.loads(data)
    event = state["events"][1]
    if value is None:
        event.pop(field)
    else:
        event[field] = value
    return _with_event(data, event)


def damage(registry: Registry, path_of, how) -> Path:
    path = path_of(registry)
    path.write_bytes(how(path.read_bytes()))
    return path


def one_line_error(capsys, words) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "Traceback" not in err
    return lines[0]


def test_every_command_on_a_damaged_registry_answers_in_one_line_and_promote_repairs(trained, pipelines, tmp_path, capsys):
    rows = tmp_path / "rows.csv"
    import pandas as pd

    pd.DataFrame(model_rows(3)).to_csv(rows, index=False)
    p = ["--pipelines", str(pipelines)]
    commands = {
        "list": ["models", "list", *p],
        "show": ["models", "show", "2", *p],
        "rollback": ["models", "rollback", *p],
        "predict": ["predict", *p, str(rows), str(tmp_path / "out.csv")],
    }
    cases = list(damages())
    assert len(cases) >= 15
    for name, path_of, how, words in cases:
        restore(tmp_path)
        path = damage(trained, path_of, how)
        for command, argv in commands.items():
            if command == "rollback" and path.name != "champion.json":
                continue  # rollback to version 1 reads neither the damaged card nor its model: it is a repair too
            assert main(argv) == 1, (name, command)
            line = one_line_error(capsys, words)
            assert str(path) in line and ("repair" in line or "restore" in line), (name, command, line)
        assert main(["models", "check", *p]) == 1, name
        listed = capsys.readouterr().out
        assert str(path) in listed, (name, listed)
        if path.name == "champion.json":
            # promote VERSION is the repair: the damaged file is kept beside the new pointer
            assert main(["models", "promote", "1", "--reason", "repair", *p]) == 0, (name, capsys.readouterr())
            capsys.readouterr()
            assert trained.champion() == 1 and list(path.parent.glob("champion.json.damaged-*"))
            assert (tmp_path / "model" / "model.sav").read_bytes() == trained.model_bytes(1)
            assert main(["models", "check", *p]) == 0, (name, capsys.readouterr())
            capsys.readouterr()
        else:  # the champion's card: promote another version, then the damaged card is the only problem left
            assert main(["models", "promote", "1", "--reason", "repair", *p]) == 0, (name, capsys.readouterr())
            capsys.readouterr()
            assert (tmp_path / "model" / "model.sav").read_bytes() == trained.model_bytes(1)
            assert main(["models", "check", *p]) == 1
            assert capsys.readouterr().out.strip().splitlines() == [line for line in listed.strip().splitlines() if "000002.json" in line]


@pytest.mark.parametrize("fault", ["missing", "flipped byte", "truncated"])
def test_promote_and_rollback_only_to_a_version_whose_file_passes_its_checks(trained, pipelines, tmp_path, capsys, fault):
    p = ["--pipelines", str(pipelines)]
    target = model_file(trained, 1)
    data = target.read_bytes()
    if fault == "missing":
        target.unlink()
    elif fault == "flipped byte":
        target.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    else:
        target.write_bytes(data[: len(data) // 2])
    before = pointer(trained).read_bytes()
    copy = (tmp_path / "model" / "model.sav").read_bytes()
    for argv in (["models", "promote", "1", "--reason", "back", *p], ["models", "rollback", *p]):
        assert main(argv) == 1
        line = one_line_error(capsys, ("version 1 cannot be the champion", "nothing changed", "models check"))
        assert ("missing" in line) if fault == "missing" else ("sha256" in line)
        assert pointer(trained).read_bytes() == before and (tmp_path / "model" / "model.sav").read_bytes() == copy
    assert main(["models", "check", *p]) == 1
    assert "the model file of version 1" in capsys.readouterr().out


def test_the_champions_copy_is_the_champion_or_absent(trained, tmp_path):
    """When the champion's own file fails its checks, its copy is removed rather than left holding other bytes."""
    copy = tmp_path / "model" / "model.sav"
    model_file(trained, 2).write_bytes(b"not a model")
    copy.write_bytes(trained.model_bytes(1))  # stale bytes of another version
    assert trained.sync_champion_file() is not None
    assert not copy.exists()


def _foreign(kind: str, copy: Path, tmp_path: Path) -> Callable[[], object]:
    """Put something this registry did not write where the champion's copy goes; returns how to read it back."""
    outside = tmp_path / "outside.txt"
    outside.write_text("someone else's file\n")
    if kind == "a file of its own":
        copy.write_bytes(b"\x80\x04the seed's pickled model")
        return copy.read_bytes
    if kind == "the DAG file":
        copy.write_bytes((PROJECT / "dags" / "adclick_dags.py").read_bytes())
        return copy.read_bytes
    if kind in ("a link to another file", "a link to a version's file"):
        copy.symlink_to(outside if kind == "a link to another file" else sorted((copy.parent / "registry").rglob("*.onnx"))[0])
        return lambda: (os.readlink(copy), outside.read_text())
    if kind == "a folder":
        copy.mkdir()
        (copy / "kept").write_text("x")
        return lambda: sorted(p.name for p in copy.iterdir())
    os.mkfifo(copy)
    return lambda: stat.S_ISFIFO(os.lstat(copy).st_mode)


FOREIGN = ["a file of its own", "the DAG file", "a link to another file", "a link to a version's file", "a folder", "a FIFO"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", FOREIGN)
def test_a_file_the_registry_did_not_write_is_never_replaced_or_removed(trained, tmp_path, pipelines, capsys, kind):
    """model_dir and model_file may name any path: what is there is left as it is, and every surface says why."""
    copy = tmp_path / "model" / "model.sav"
    copy.unlink()
    read = _foreign(kind, copy, tmp_path)
    before = read()
    problem = trained.sync_champion_file()
    assert problem is not None and problem.startswith(f"RegistryError: {copy}: ") and "leaves it as it is: move it away" in problem
    # the registry decides all the same; the copy stays what it was
    assert main(["models", "promote", "1", "--reason", "test", "--pipelines", str(pipelines)]) == 0
    assert trained.champion() == 1 and read() == before
    assert f"warning: {copy} was not updated: " in capsys.readouterr().err
    # when the champion's own file fails its checks, a foreign copy is not removed either
    model_file(trained, 1).write_bytes(b"not a model")
    assert trained.sync_champion_file() is not None and read() == before
    assert main(["models", "check", "--pipelines", str(pipelines)]) == 1
    assert "this registry did not write it" in capsys.readouterr().out


# --- files that are not what the registry wrote: special files, oversized files, cards naming other files ---------


def _special(kind: str, path: Path) -> None:
    path.unlink()
    if kind == "a FIFO":
        os.mkfifo(path)
    elif kind == "a link to /dev/zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()


SPECIAL = ["a FIFO", "a link to /dev/zero", "a folder"]
REGISTRY_FILES = {
    "the champion's model file": lambda r: model_file(r, 2),
    "the champion's card": lambda r: card(r, 2),
    "champion.json": pointer,
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("which", list(REGISTRY_FILES))
@pytest.mark.parametrize("kind", SPECIAL)
def test_a_special_file_in_place_of_a_registry_file_is_refused_never_read(trained, pipelines, tmp_path, capsys, which, kind):
    """A FIFO would block every command (and the monitor, holding its lock), /dev/zero would be read without end."""
    path = REGISTRY_FILES[which](trained)
    _special(kind, path)
    p = ["--pipelines", str(pipelines)]
    rows = tmp_path / "rows.csv"
    import pandas as pd

    pd.DataFrame(model_rows(3)).to_csv(rows, index=False)
    commands = [["predict", *p, str(rows), str(tmp_path / "out.csv")]]
    if which != "the champion's model file":  # list and show read the cards and the pointer, not the model files
        commands += [["models", "list", *p], ["models", "show", "2", *p]]
    for argv in commands:
        assert main(argv) == 1, argv
        one_line_error(capsys, (f"{path}: not a regular file",))
    assert main(["models", "check", *p]) == 1
    assert f"{path}: not a regular file" in capsys.readouterr().out
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", SPECIAL)
def test_promote_names_why_a_special_model_file_cannot_serve(trained, pipelines, capsys, kind):
    path = model_file(trained, 1)
    _special(kind, path)
    before = pointer(trained).read_bytes()
    assert main(["models", "promote", "1", "--reason", "back", "--pipelines", str(pipelines)]) == 1
    line = one_line_error(capsys, ("version 1 cannot be the champion", f"{path}: not a regular file", "nothing changed"))
    assert "checks: ;" not in line
    assert pointer(trained).read_bytes() == before


def test_an_oversized_json_file_is_refused_before_it_is_read(trained, pipelines, capsys):
    from adclick_ops.registry.store import MAX_JSON_BYTES

    path = pointer(trained)
    os.truncate(path, MAX_JSON_BYTES + 1)  # sparse: no disk used
    assert main(["models", "list", "--pipelines", str(pipelines)]) == 1
    one_line_error(capsys, (f"{path}: {MAX_JSON_BYTES + 1:,} bytes, more than such a file ever holds",))


def _edit_card(registry: Registry, number: int, **model) -> Path:
    path = card(registry, number)
    data = json.loads(path.read_text())
    data["model"].update(model)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "value",
    [
        "/etc/passwd",
        "../../../../../../etc/passwd",
        "",
        123,
        None,
        ["a"],
        "models/{other}.onnx",
        "models/{sha}.skops",
        "./models/{sha}.onnx",
    ],
)
def test_a_card_naming_another_file_than_its_model_is_refused(trained, pipelines, capsys, value):
    """A card only ever names models/<its sha256>.onnx (or .model, the earlier format): nothing else is opened."""
    sha = trained.card(2)["model"]["sha256"]
    other = trained.card(1)["model"]["sha256"]
    if isinstance(value, str):
        value = value.format(sha=sha, other=other)
    path = _edit_card(trained, 2, file=value)
    with pytest.raises(DamagedRegistryError) as info:
        trained.card(2)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and f"model.file is {json.dumps(value)}" in message
    assert f"expected 'models/{sha}.onnx' or 'models/{sha}.model'" in message
    assert main(["models", "list", "--pipelines", str(pipelines)]) == 1
    one_line_error(capsys, (str(path), "model.file", "restore"))


@pytest.mark.parametrize("value", [None, 123, "g" * 64, "A" * 64, "0" * 63])
def test_a_card_whose_sha256_is_not_one_is_refused(trained, value):
    path = _edit_card(trained, 2, sha256=value)
    with pytest.raises(DamagedRegistryError, match="model.sha256 is .*; expected 64 lowercase hexadecimal digits") as info:
        trained.card(2)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    "value,words",
    [
        (["Age"] * 5, 'model.features names "Age" more than once'),
        ([1, 2, 3, 4, 5], "model.features is [1, 2, 3, 4, 5]; expected a list of feature names"),
        (None, "model.features is null; expected a list of feature names"),
        ([], "model.features is []; expected a list of feature names"),
        (["Daily Time Spent on Site", "", "Area Income", "Daily Internet Usage", "Male"], "expected a list of feature names"),
    ],
)
def test_a_card_whose_features_are_not_unique_names_is_refused(trained, pipelines, capsys, value, words):
    path = _edit_card(trained, 2, features=value)
    with pytest.raises(DamagedRegistryError) as info:
        trained.card(2)
    assert str(info.value).startswith(f"{path}: ") and words in str(info.value), str(info.value)
    assert main(["models", "check", "--pipelines", str(pipelines)]) == 1
    assert words in capsys.readouterr().out


def test_a_card_whose_features_differ_from_its_model_files_is_refused_when_loading(trained, pipelines, tmp_path, capsys):
    """Two features swapped in the card would score every row with two values swapped: refused, naming both lists."""
    features = trained.card(2)["model"]["features"]
    swapped = [features[0], features[4], features[2], features[3], features[1]]
    _edit_card(trained, 2, features=swapped)
    with pytest.raises(RegistryError) as info:
        trained.load_model(2)
    assert json.dumps(features) in str(info.value) and json.dumps(swapped) in str(info.value)
    p = ["--pipelines", str(pipelines)]
    assert main(["models", "check", *p]) == 1
    assert json.dumps(swapped) in capsys.readouterr().out
    rows = tmp_path / "rows.csv"
    import pandas as pd

    pd.DataFrame(model_rows(3)).to_csv(rows, index=False)
    assert main(["predict", *p, str(rows), str(tmp_path / "out.csv")]) == 1
    one_line_error(capsys, ("the model file was trained on the features", json.dumps(swapped)))
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("change", ["promote", "rollback"])
def test_a_process_killed_between_the_pointer_and_the_copy_leaves_no_other_versions_bytes(trained, tmp_path, monkeypatch, change):
    """The copy is the champion's file or absent, even when the process stops right after the pointer's write."""
    copy = tmp_path / "model" / "model.sav"
    assert trained.champion() == 2 and copy.read_bytes() == trained.model_bytes(2)
    with monkeypatch.context() as m:
        m.setattr(Registry, "sync_champion_file", lambda self: None)  # the process stops before it writes the copy
        trained.promote(1, reason="test") if change == "promote" else trained.rollback(reason="test")
    assert trained.champion() == 1 and not copy.exists()
    assert trained.sync_champion_file() is None and copy.read_bytes() == trained.model_bytes(1)


# --- promote repairs a champion.json of any kind; check lists each card and goes on ----------------------------------


def _blocked_writer(path: Path) -> tuple[threading.Thread, dict]:
    """A thread opening the FIFO at `path` to write: its open returns only once something opens the FIFO to read."""
    opened: dict = {}

    def write() -> None:
        with open(path, "wb") as fh:
            opened["at"] = True
            fh.write(b"{}")

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread, opened


def _release(thread: threading.Thread, fifo: Path) -> None:
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    thread.join(timeout=10)
    os.close(fd)


POINTER_KINDS = ["a FIFO", "a link to /dev/zero", "a folder holding files", "an empty folder", "a file too large"]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", POINTER_KINDS)
def test_promote_repairs_a_champion_json_of_any_kind_keeping_it_as_it_is(trained, pipelines, tmp_path, capsys, kind):
    """Nothing in place of champion.json is opened or removed: it is kept beside the new pointer, a folder with all
    it holds; the messages before the repair name the command that repairs."""
    from adclick_ops.registry.store import MAX_JSON_BYTES

    path = pointer(trained)
    p = ["--pipelines", str(pipelines)]
    path.unlink()
    writer = None
    if kind == "a FIFO":
        os.mkfifo(path)
        writer, opened = _blocked_writer(path)
    elif kind == "a link to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "a file too large":
        path.write_bytes(b"{")
        os.truncate(path, MAX_JSON_BYTES + 1)  # sparse: no disk used
    else:
        path.mkdir()
        if kind == "a folder holding files":
            (path / "notes.txt").write_text("someone's notes\n")
            (path / "sub").mkdir()
            (path / "sub" / "champion.json").write_text("{}")
    try:
        assert main(["models", "list", *p]) == 1
        one_line_error(capsys, (str(path), "adclick-ops models promote VERSION"))
        assert main(["models", "promote", "1", "--reason", "repair", *p]) == 0, capsys.readouterr()
        said = capsys.readouterr()
        assert said.err == "" and "version 1 is the champion now" in said.out and "the damaged file is kept as" in said.out
        assert trained.champion() == 1 and (tmp_path / "model" / "model.sav").read_bytes() == trained.model_bytes(1)
        [kept] = path.parent.glob("champion.json.damaged-*")
        assert kept.name in said.out
        if writer is not None:
            assert not opened and stat.S_ISFIFO(os.lstat(kept).st_mode)  # never opened to be read
        if kind == "a link to /dev/zero":
            assert os.readlink(kept) == "/dev/zero"
        if kind == "a folder holding files":
            assert (kept / "notes.txt").read_text() == "someone's notes\n" and (kept / "sub" / "champion.json").read_text() == "{}"
        if kind == "a file too large":
            assert kept.stat().st_size == MAX_JSON_BYTES + 1
        assert main(["models", "check", *p]) == 0, capsys.readouterr()
    finally:
        if writer is not None:
            _release(writer, next(path.parent.glob("champion.json*")) if not path.exists() or path.is_fifo() else kept)


def test_a_second_repair_in_the_same_second_keeps_both_damaged_files(trained, monkeypatch):
    """The name a damaged champion.json is kept under is never one already taken: an earlier kept file stays."""
    from adclick_ops.registry import registry as module

    monkeypatch.setattr(module, "now", lambda: "2026-01-01T00:00:00+00:00")
    path = pointer(trained)
    earlier = path.parent / "champion.json.damaged-2026-01-01T000000+0000"
    earlier.write_text("kept by an earlier repair\n")
    path.write_text("{")
    event = trained.promote(1, reason="repair")
    assert earlier.read_text() == "kept by an earlier repair\n"
    assert (path.parent / f"{earlier.name}-2").read_text() == "{"
    assert f"kept as {earlier.name}-2)" in event["reason"] and trained.champion() == 1


@pytest.mark.timeout(120)
def test_check_reports_a_card_that_is_a_folder_in_one_line_and_checks_the_others(trained, pipelines, capsys):
    """The champion's card is a folder, version 1's model file fails its checks: two lines, one each, nothing else."""
    folder = card(trained, 2)
    folder.unlink()
    folder.mkdir()
    (folder / "kept.txt").write_text("x")
    model_file(trained, 1).write_bytes(b"not a model")
    assert main(["models", "check", "--pipelines", str(pipelines)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{card(trained, 1)}: the model file of version 1 fails its checks"), lines
    assert lines[1].startswith(f"{folder}: not a regular file but a folder; restore it from a backup, or move it out of"), lines
    assert (folder / "kept.txt").read_text() == "x"


def test_check_reports_a_card_it_cannot_read_and_goes_on(trained, pipelines, capsys, monkeypatch):
    """A card the user may not read (or any error of the file system) is one line of the list, not the end of it."""
    from adclick_ops.registry.store import LocalStore

    unreadable = card(trained, 1)
    read = LocalStore.read

    def refuse_one(self, name):
        if self.path(name) == unreadable:
            raise PermissionError(13, "Permission denied", str(unreadable))
        return read(self, name)

    monkeypatch.setattr(LocalStore, "read", refuse_one)
    model_file(trained, 2).write_bytes(b"not a model")
    assert main(["models", "check", "--pipelines", str(pipelines)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"{unreadable}: cannot be read: Permission denied; check its owner and permissions, or restore it from a backup"
    assert any("the model file of version 2 fails its checks" in line for line in lines[1:]), lines


def test_a_foreign_copy_is_named_whatever_characters_the_path_holds(trained, tmp_path):
    """A `%` in model_dir is a character of the path, not a format."""
    shutil.copytree(tmp_path / "model", tmp_path / "100%s model")
    registry = Registry(str(tmp_path / "100%s model"), trained.dag_id)
    copy = tmp_path / "100%s model" / "model.sav"
    copy.unlink()
    copy.mkdir()
    problem = registry.sync_champion_file()
    assert problem == (
        f"RegistryError: {copy}: not a regular file but a folder; this registry did not write it and leaves it as it is: "
        f"move it away, or set training.model_file (or model_dir) of {trained.dag_id} to a name of its own"
    )
