"""adclick_ops.predict: the checks on the rows, and `adclick-ops predict` scoring a CSV file with the champion."""

from __future__ import annotations

import csv
import math
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adclick_ops.cli import main
from adclick_ops.predict import PredictInputError, rows_to_matrix

from tests.support.registry import FEATURES, SEED, train_two_versions


@pytest.fixture
def trained(pipelines, tmp_path):
    return train_two_versions(pipelines, tmp_path / "model")


numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
bad_values = st.one_of(
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.sampled_from([math.inf, -math.inf, math.nan]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_broken_row_is_refused_naming_its_index_and_field(data):
    """Rows of valid numbers, with one row broken in one of the ways a client can break it."""
    n = data.draw(st.integers(1, 20))
    rows = [{f: data.draw(numbers) for f in FEATURES} for _ in range(n)]
    matrix = rows_to_matrix(rows, tuple(FEATURES))
    assert matrix.shape == (n, len(FEATURES)) and np.isfinite(matrix).all()
    i = data.draw(st.integers(0, n - 1))
    field = data.draw(st.sampled_from(FEATURES))
    how = data.draw(st.sampled_from(["missing", "extra", "value"]))
    if how == "missing":
        del rows[i][field]
    elif how == "extra":
        rows[i][data.draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in FEATURES))] = 1
    else:
        rows[i][field] = data.draw(bad_values)
    with pytest.raises(PredictInputError) as info:
        rows_to_matrix(rows, tuple(FEATURES))
    message = str(info.value)
    assert message.startswith(f"rows[{i}]: ")
    if how != "extra":
        assert repr(field) in message


# --- batch -----------------------------------------------------------------------------------------


def test_batch_predict_scores_a_file_with_the_champion(trained, pipelines, tmp_path, capsys):
    """The same numbers as the champion's own predict_proba, and so as POST /api/predict (tests/monitor/test_predict.py)."""
    source = tmp_path / "in.csv"
    SEED[FEATURES].head(50).to_csv(source, index=False)
    target = tmp_path / "out.csv"
    assert main(["predict", "--pipelines", str(pipelines), str(source), str(target)]) == 0
    assert "50 row(s) scored by version 2 of Airflow_Lab2" in capsys.readouterr().out
    out = pd.read_csv(target)
    expected = trained.load_model(2).predict_proba(SEED[FEATURES].head(50).to_numpy(float))[:, 1]
    assert out["click_probability"].tolist() == pytest.approx(expected.tolist())
    assert out["clicked"].tolist() == [int(p > 0.5) for p in expected]
    assert list(out.columns) == [*FEATURES, "click_probability", "clicked"]


@pytest.mark.parametrize(
    "make,words",
    [
        (lambda f: f.drop(columns=["Age"]), "missing column(s) 'Age'"),
        (lambda f: f.assign(extra=1), "unknown column(s) 'extra'"),
        (
            lambda f: f.astype({"Age": object}).assign(Age=["x"] + [35] * (len(f) - 1)),
            "column 'Age' must be numeric; found 'x' at line 2",
        ),
    ],
)
def test_batch_predict_refuses_bad_files_naming_the_problem(trained, pipelines, tmp_path, capsys, make, words):
    source = tmp_path / "in.csv"
    make(SEED[FEATURES].head(10)).to_csv(source, index=False)
    assert (
        main(
            [
                "predict",
                "--pipelines",
                str(pipelines),
                str(source),
                str(tmp_path / "out.csv"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith(f"error: {source}: ") and words in err
    assert not (tmp_path / "out.csv").exists()


def test_batch_predict_keeps_extra_columns_when_asked(trained, pipelines, tmp_path):
    source = tmp_path / "in.csv"
    SEED.head(20).to_csv(source, index=False)
    assert (
        main(
            [
                "predict",
                "--pipelines",
                str(pipelines),
                "--ignore-extra-columns",
                str(source),
                str(tmp_path / "out.csv"),
            ]
        )
        == 0
    )
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == [*SEED.columns, "click_probability", "clicked"] and len(out) == 20


@pytest.mark.parametrize("damage", ["bytes changed", "hostile graph, card matching", "wrong number of inputs"])
def test_batch_predict_refuses_a_tampered_champion_with_exit_1(trained, pipelines, tmp_path, capsys, damage):
    """A separate process, as a user runs it: exit status 1 and one line saying why; no traceback, no crash."""
    import subprocess
    import sys
    from pathlib import Path

    import onnx

    from tests.support.registry import force_champion, hostile, plant_version

    if damage == "bytes changed":
        path = Path(trained.location) / trained.card(2)["model"]["file"]
        path.write_bytes(b"\x08" + path.read_bytes()[1:-1])
        reason = "the model file of version 2 does not match its card's sha256"
    elif damage == "hostile graph, card matching":
        force_champion(trained, plant_version(trained, hostile(trained.model_bytes(1)), like=1), "from elsewhere")
        reason = "refused: node 'TreeEnsembleClassifier' (TreeEnsembleClassifier): a split on feature 1099511627777, outside 0..4"
    else:
        model = onnx.load_from_string(trained.model_bytes(2))
        extra = model.graph.input.add()
        extra.CopyFrom(model.graph.input[0])
        extra.name = "second"
        force_champion(trained, plant_version(trained, model.SerializeToString(), like=2), "from elsewhere")
        reason = "refused: 2 inputs (features, second); expected one, 'features'"
    source = tmp_path / "in.csv"
    SEED[FEATURES].head(5).to_csv(source, index=False)
    proc = subprocess.run(
        [sys.executable, "-m", "adclick_ops.cli", "predict", "--pipelines", str(pipelines), str(source), str(tmp_path / "out.csv")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and reason in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out.csv").exists()


# --- the input and the output stay whole -------------------------------------------------------------


def input_file(tmp_path, extra: dict | None = None):
    frame = SEED[FEATURES].head(5).copy()
    for name, value in (extra or {}).items():
        frame[name] = value
    path = tmp_path / "in.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name", ["clicked", "click_probability"])
@pytest.mark.parametrize("value", [7, "kept", 0.25])
def test_an_input_column_named_like_a_prediction_is_refused_and_nothing_is_written(trained, pipelines, tmp_path, capsys, name, value):
    source = input_file(tmp_path, {name: value, "id": range(5)})
    before = source.read_bytes()
    out = tmp_path / "out.csv"
    assert main(["predict", "--pipelines", str(pipelines), "--ignore-extra-columns", str(source), str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"'{name}' would be overwritten by the predictions" in err and "nothing was written" in err
    assert not out.exists() and source.read_bytes() == before


def test_the_output_may_not_be_the_input(trained, pipelines, tmp_path, capsys):
    source = input_file(tmp_path)
    before = source.read_bytes()
    link = tmp_path / "same.csv"
    link.symlink_to(source)
    for target in (source, link):
        assert main(["predict", "--pipelines", str(pipelines), str(source), str(target)]) == 1
        assert "is the input file" in capsys.readouterr().err
    assert source.read_bytes() == before


@pytest.mark.parametrize("kind", ["link to a file", "link to a missing file", "link to a link", "fifo", "dash", "/dev/stdout"])
def test_the_output_is_written_through_links_and_pipes_never_replacing_them(trained, pipelines, tmp_path, kind):
    import os
    import subprocess
    import sys
    import threading

    source = input_file(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    real = shared / "predictions.csv"
    out = tmp_path / "out.csv"
    got: dict[str, bytes] = {}
    reader = None
    if kind == "link to a file":
        real.write_text("old\n")
        out.symlink_to(real)
    elif kind == "link to a missing file":
        out.symlink_to(real)
    elif kind == "link to a link":
        real.write_text("old\n")
        (tmp_path / "middle.csv").symlink_to(real)
        out.symlink_to(tmp_path / "middle.csv")
    elif kind == "fifo":
        os.mkfifo(out)

        def read() -> None:
            with open(out, "rb") as fh:
                got["fifo"] = fh.read()

        reader = threading.Thread(target=read)
        reader.start()
    target = {"dash": "-", "/dev/stdout": "/dev/stdout"}.get(kind, str(out))
    proc = subprocess.run(
        [sys.executable, "-m", "adclick_ops.cli", "predict", "--pipelines", str(pipelines), str(source), target],
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    if reader is not None:
        reader.join(timeout=60)
    written = got.get("fifo") or (proc.stdout if kind in ("dash", "/dev/stdout") else real.read_bytes())
    frame = pd.read_csv(__import__("io").BytesIO(written))
    assert list(frame.columns) == [*FEATURES, "click_probability", "clicked"] and len(frame) == 5
    assert b"row(s) scored by version 2" in (proc.stderr if kind in ("dash", "/dev/stdout") else proc.stdout)
    if kind.startswith("link"):
        assert out.is_symlink()  # the link stays a link
    if kind == "fifo":
        assert out.is_fifo()


@pytest.mark.parametrize(
    "lines,words",
    [
        (["68.95,35,61833.9,256.09,0,9", "68.95,35,61833.9,256.09,0,8"], "line 2: 6 fields, the header has 5"),
        (["68.95,35,61833.9,256.09,0", "68.95,35,61833.9,256.09,0,8", "68.95,35,61833.9,256.09,0"], "line 3: 6 fields"),
        (["68.95,35,61833.9,256.09,0,8", "68.95,35,61833.9,256.09,0"], "line 2: 6 fields, the header has 5"),
        (["68.95,35,61833.9,256.09,0", "68.95,35,61833.9,256.09"], "line 3: 4 fields, the header has 5"),
        (["68.95,3\x005,61833.9,256.09,0"], "line 2: field 2 holds a NUL byte"),
    ],
)
def test_batch_predict_refuses_a_row_whose_fields_do_not_match_the_header(trained, pipelines, tmp_path, capsys, lines, words):
    """Never a row scored with its values shifted, padded or cut: exit 1 naming the first such line; nothing written."""
    source = tmp_path / "rows.csv"
    source.write_text("\n".join([",".join(FEATURES), *lines]) + "\n")
    assert main(["predict", "--pipelines", str(pipelines), str(source), str(tmp_path / "out.csv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {source}: {words}"), err
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    "target,words",
    [
        ("", "the output must not be empty"),
        ("a\x00b", "the output contains a NUL byte"),
        ("ftp://h/x.csv", "the output 'ftp://h/x.csv' is a ftp:// address"),
    ],
)
def test_an_output_that_names_no_place_is_refused_in_one_line(trained, pipelines, tmp_path, capsys, target, words):
    source = tmp_path / "rows.csv"
    source.write_text(",".join(FEATURES) + "\n68.95,35,61833.9,256.09,0\n")
    assert main(["predict", "--pipelines", str(pipelines), str(source), target]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {words}") and len(err.strip().splitlines()) == 1, err


def test_extra_columns_are_copied_as_written(trained, pipelines, tmp_path, capsys):
    """--ignore-extra-columns: a zip code with leading zeros, NA, TRUE, an empty cell and a date stay as they are."""
    source, out = tmp_path / "rows.csv", tmp_path / "out.csv"
    header = ",".join([*FEATURES, "zip", "note", "flag", "day"])
    rows = ["68.95,35,61833.9,256.09,0,00501,NA,TRUE,2026-01-02", "80.23,31,68435.19,193.77,1,02139,,false,1e3"]
    source.write_text("\n".join([header, *rows]) + "\n")
    assert main(["predict", "--pipelines", str(pipelines), str(source), str(out), "--ignore-extra-columns"]) == 0, capsys.readouterr()
    with out.open() as fh:
        written = list(csv.DictReader(fh))
    assert [(r["zip"], r["note"], r["flag"], r["day"]) for r in written] == [
        ("00501", "NA", "TRUE", "2026-01-02"),
        ("02139", "", "false", "1e3"),
    ]


# --- the input and the output named on the command line: text that is not UTF-8, a folder, standard input --------------


def test_an_input_that_is_not_utf8_is_refused_naming_the_byte_and_its_line(trained, pipelines, tmp_path, capsys):
    source = tmp_path / "latin1.csv"
    head = (",".join(FEATURES) + "\n68.95,35,61833.9,256.09,0\n").encode()
    source.write_bytes(head + "80.23,31,68435.19,193.77,1\n69.47,26,59785.94,236.5,0 # Zürich\n".encode("latin-1"))
    assert main(["predict", "--pipelines", str(pipelines), str(source), str(tmp_path / "out.csv")]) == 1
    err = capsys.readouterr().err
    offset = source.read_bytes().index(b"\xfc")
    assert err == (
        f"error: {source}: line 4: not UTF-8 text: byte {offset:,} (counted from 0) is 0xfc, which UTF-8 does not allow there "
        "(a file saved as Latin-1 or Windows-1252?); expected UTF-8: save the file as UTF-8\n"
    )
    assert not (tmp_path / "out.csv").exists()


def test_an_output_that_is_a_folder_is_refused_in_one_line(trained, pipelines, tmp_path, capsys):
    source = input_file(tmp_path)
    folder = tmp_path / "predictions"
    folder.mkdir()
    assert main(["predict", "--pipelines", str(pipelines), str(source), str(folder)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: the output {folder}: is a folder; expected a file to write, such as {folder / 'predictions.csv'}, "
        "or - for standard output\n"
    )
    assert list(folder.iterdir()) == []


def _predict_stdin(pipelines, data: bytes, target: str, cwd):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "adclick_ops.cli", "predict", "--pipelines", str(pipelines), "-", target],
        input=data,
        capture_output=True,
        timeout=300,
        cwd=cwd,
    )


def test_the_input_may_be_standard_input(trained, pipelines, tmp_path):
    """`-` reads the rows from standard input, with every check of a file; nothing is left behind."""
    import tempfile

    source = input_file(tmp_path)
    from_file = tmp_path / "from_file.csv"
    assert main(["predict", "--pipelines", str(pipelines), str(source), str(from_file)]) == 0
    before = set(os.listdir(tempfile.gettempdir()))
    proc = _predict_stdin(pipelines, source.read_bytes(), "-", tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == from_file.read_bytes()
    assert b"5 row(s) scored by version 2" in proc.stderr
    bad = source.read_bytes().replace(b"\n", b"\nTrue,", 2).replace(b"True,", b"", 1)  # a sixth field on line 3
    proc = _predict_stdin(pipelines, bad, str(tmp_path / "out.csv"), tmp_path)
    assert (
        proc.returncode == 1
        and proc.stderr.decode() == "error: standard input: line 3: 6 fields, the header has 5; each row must have one field per column\n"
    )
    assert not (tmp_path / "out.csv").exists()
    assert not {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("adclick-predict.")}


@pytest.mark.parametrize("column", ["Male", "Age"])
def test_a_column_of_true_and_false_is_refused_as_the_api_refuses_it(trained, pipelines, tmp_path, capsys, column):
    source = tmp_path / "rows.csv"
    SEED[FEATURES].head(5).assign(**{column: [True, False, True, True, False]}).to_csv(source, index=False)
    assert main(["predict", "--pipelines", str(pipelines), str(source), str(tmp_path / "out.csv")]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: {source}: column {column!r} must be numeric; found True (a true/false value) at line 2 (5 such value(s)); "
        "expected a number, such as 1 or 0\n"
    )
    assert not (tmp_path / "out.csv").exists()


# --- read, checked, scored and written a chunk at a time ------------------------------------------------------------


def whole_file_output(path, model, ignore_extra: bool = False) -> bytes:
    """What predict wrote when it read the file whole: pandas' types for the whole file, the extra columns as written."""
    frame = pd.read_csv(path, index_col=False)
    extra = [c for c in frame.columns if c not in FEATURES]
    if extra:
        written = pd.read_csv(path, usecols=extra, dtype=str, keep_default_na=False, index_col=False)
        frame = frame.assign(**{str(c): written[c].to_numpy() for c in extra})
    probability = model.predict_proba(frame[FEATURES].to_numpy(dtype="float64"))[:, 1]
    frame["click_probability"] = probability
    frame["clicked"] = (probability > 0.5).astype("int64")
    return frame.to_csv(index=False).encode()


def golden_inputs() -> dict[str, str]:
    header = ",".join(FEATURES)
    rows = [",".join(map(str, r)) for r in SEED[FEATURES].head(40).itertuples(index=False)]
    ints = [",".join(str(int(float(v))) for v in r.split(",")) for r in rows]
    return {
        "seed rows": "\n".join([header, *rows]) + "\n",
        "integers, a float in the last chunk": "\n".join([header, *ints[:30], rows[30], *ints[31:]]) + "\n",
        "blank lines, CR LF, no last newline": "\r\n".join([header, "", *rows[:10], "  ", *rows[10:20]]),
        "a trailing comma on every row": "\n".join([header, *(r + "," for r in rows[:20])]) + "\n",
        "1e5, +3, 0035, -0": "\n".join([header, "1e5,+3,0035,-0,1", *rows[:12], "68.95,35,61833.9,256.09,-0"]) + "\n",
    }


def golden_extra_input() -> str:
    header = ",".join([*FEATURES, "zip", "note"])
    notes = ['"a, b"', '"two\nlines"', "NA", "", "TRUE", '"say ""hi"""', "2026-01-02"]
    return (
        "\n".join(
            [
                header,
                *(
                    f"{r},{i:05d},{notes[i % len(notes)]}"
                    for i, r in enumerate(",".join(map(str, r)) for r in SEED[FEATURES].head(25).itertuples(index=False))
                ),
            ]
        )
        + "\n"
    )


@pytest.mark.parametrize("name", [*golden_inputs(), "extra columns: quotes, commas, new lines, NA"])
def test_the_output_is_the_same_byte_for_byte_whatever_the_chunk_size(trained, pipelines, tmp_path, monkeypatch, name):
    """Chunks of 1, 7 and CHUNK_ROWS rows write what reading the whole file wrote, to the byte."""
    import adclick_ops.predict as predict

    extra = name.startswith("extra")
    source = tmp_path / "in.csv"
    source.write_bytes((golden_extra_input() if extra else golden_inputs()[name]).encode())
    expected = whole_file_output(source, trained.load_model(2), extra)
    default = predict.CHUNK_ROWS
    for size in (1, 7, default):
        monkeypatch.setattr(predict, "CHUNK_ROWS", size)
        out = tmp_path / f"out-{size}.csv"
        flags = ["--ignore-extra-columns"] if extra else []
        assert main(["predict", "--pipelines", str(pipelines), *flags, str(source), str(out)]) == 0
        assert out.read_bytes() == expected, (name, size)


def test_the_rows_are_scored_and_written_a_chunk_at_a_time(trained, pipelines, tmp_path, monkeypatch):
    """The memory predict needs does not grow with the file: never more than CHUNK_ROWS rows scored at once."""
    import adclick_ops.predict as predict

    monkeypatch.setattr(predict, "CHUNK_ROWS", 16)
    scored: list[int] = []
    real_score = predict.score

    def counting(model, x):
        scored.append(len(x))
        return real_score(model, x)

    monkeypatch.setattr(predict, "score", counting)
    source = tmp_path / "in.csv"
    SEED[FEATURES].head(100).to_csv(source, index=False)
    assert main(["predict", "--pipelines", str(pipelines), str(source), str(tmp_path / "out.csv")]) == 0
    assert scored == [16] * 6 + [4]
    assert len(pd.read_csv(tmp_path / "out.csv")) == 100


FAULTS = {
    "text": ("oops", "column 'Age' must be numeric; found 'oops' at line {line} (1 non-numeric value(s))"),
    "missing": ("", "column 'Age' has 1 missing value(s), first at line {line}"),
    "infinite": ("inf", "column 'Age' has 1 infinite value(s), first at line {line} (inf)"),
    "true": ("true", "column 'Age' must be numeric; found 'true' at line {line}"),
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("extra", [False, True])
def test_a_bad_row_in_a_later_chunk_names_its_line_in_the_file(trained, pipelines, tmp_path, monkeypatch, capsys, fault, extra):
    """Chunks of 7 rows, blank lines and (with extra columns) quoted fields holding new lines: the line of the file."""
    import adclick_ops.predict as predict

    monkeypatch.setattr(predict, "CHUNK_ROWS", 7)
    lines = [",".join([*FEATURES, "note"] if extra else FEATURES)]
    for i, row in enumerate(SEED[FEATURES].head(30).itertuples(index=False)):
        cells = [str(v) for v in row]
        if i == 17:  # the 4th row of the 3rd chunk, after two blank lines and (with notes) 8 new lines in quotes
            cells[1] = FAULTS[fault][0]
            bad_line = sum(line.count("\n") + 1 for line in lines) + 1
        if extra:
            cells.append('"one\ntwo\nthree"' if i < 4 else '"x"')
        lines.append(",".join(cells))
        if i in (2, 9):
            lines.append("")
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines) + "\n")
    flags = ["--ignore-extra-columns"] if extra else []
    assert main(["predict", "--pipelines", str(pipelines), *flags, str(source), str(tmp_path / "out.csv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {source}: " + FAULTS[fault][1].format(line=bad_line)), (err, bad_line)
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("size", [1, 2, 3])
def test_a_wider_row_that_starts_a_chunk_is_refused(trained, pipelines, tmp_path, monkeypatch, capsys, size):
    """pandas drops, without a word, the extra field of a row that starts a chunk: the file's text is checked first."""
    import adclick_ops.predict as predict

    monkeypatch.setattr(predict, "CHUNK_ROWS", size)
    source = tmp_path / "rows.csv"
    row = "68.95,35,61833.9,256.09,0"
    source.write_text("\n".join([",".join(FEATURES), row, row, row, row + ",8", row]) + "\n")
    assert main(["predict", "--pipelines", str(pipelines), str(source), str(tmp_path / "out.csv")]) == 1
    assert capsys.readouterr().err.startswith(f"error: {source}: line 5: 6 fields, the header has 5")


def test_a_failure_in_a_later_chunk_leaves_the_output_as_it_was(trained, pipelines, tmp_path, monkeypatch, capsys):
    """The rows are written to a temporary file beside the output, renamed over it at the end: a bad row in the 3rd
    chunk leaves the good output of an earlier run whole, and no temporary file; on stdout nothing is printed."""
    import adclick_ops.predict as predict

    monkeypatch.setattr(predict, "CHUNK_ROWS", 4)
    good, bad, out = tmp_path / "good.csv", tmp_path / "bad.csv", tmp_path / "out" / "predictions.csv"
    SEED[FEATURES].head(12).to_csv(good, index=False)
    SEED[FEATURES].head(12).astype({"Age": object}).assign(Age=[35] * 10 + ["x", 35]).to_csv(bad, index=False)
    assert main(["predict", "--pipelines", str(pipelines), str(good), str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    for target in (str(out), "-"):
        assert main(["predict", "--pipelines", str(pipelines), str(bad), target]) == 1
        said = capsys.readouterr()
        assert said.out == "" and said.err == f"error: {bad}: column 'Age' must be numeric; found 'x' at line 12 (1 non-numeric value(s))\n"
    assert out.read_bytes() == before and os.listdir(out.parent) == ["predictions.csv"]
    assert main(["predict", "--pipelines", str(pipelines), str(good), "-"]) == 0
    assert capsys.readouterr().out.encode() == before
