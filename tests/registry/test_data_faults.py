"""Dataset faults around the model: duplicated header names, blank lines and line numbers, a folder as dataset."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_support import (
    FEATURES,
    SEED,
    TARGET,
    run_chain,
    set_training,
    settings_for,
)

from adclick_ops.steps.data import DataError, read_dataset


def test_a_duplicated_column_name_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    frame = SEED[[*FEATURES, TARGET]].head(20)
    header = ",".join([*FEATURES, "Age", TARGET])
    body = "\n".join(
        ",".join(map(str, [*row[:-1], row[1], row[-1]]))
        for row in frame.itertuples(index=False)
    )
    path.write_text(header + "\n" + body + "\n")
    with pytest.raises(
        DataError,
        match=rf"^{path}: line 1: column 'Age' appears twice in the header \(columns 2 and 6\)",
    ):
        read_dataset(path, FEATURES, TARGET)


def test_a_folder_as_dataset_is_named(tmp_path, pipelines):
    folder = tmp_path / "data"
    folder.mkdir()
    with pytest.raises(DataError, match=rf"^{folder}: is a folder, not a CSV file"):
        read_dataset(folder, FEATURES, TARGET)
    set_training(pipelines, dataset=str(folder))
    with pytest.raises(DataError, match="is a folder"):
        run_chain(settings_for(pipelines), "folder")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    blanks=st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from(["", "   ", "\t", " \t "])),
        max_size=8,
    ),
    bad_row=st.integers(0, 29),
    column=st.sampled_from([*FEATURES, TARGET]),
    fault=st.sampled_from(["text", "missing", "inf"]),
)
def test_line_numbers_are_those_of_the_file_even_with_blank_lines(
    tmp_path_factory, blanks, bad_row, column, fault
):
    """Blank lines anywhere (pandas skips them): the error names the physical line of the bad cell."""
    frame = SEED[[*FEATURES, TARGET]].head(30).astype(object)
    frame.loc[bad_row, column] = {"text": "oops", "missing": "", "inf": "inf"}[fault]
    lines = [",".join(frame.columns)] + [
        ",".join(map(str, r)) for r in frame.itertuples(index=False)
    ]
    # insert the blank lines after the header, bottom-up so positions stay those drawn
    for position, blank in sorted(blanks, reverse=True):
        lines.insert(1 + position, blank)
    bad_line = next(
        i
        for i, line in enumerate(lines, 1)
        if i > 1
        and line.strip()
        and line.split(",")[list(frame.columns).index(column)]
        == {"text": "oops", "missing": "", "inf": "inf"}[fault]
    )
    path = tmp_path_factory.mktemp("blank") / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        read_dataset(path, FEATURES, TARGET)
    message = str(info.value)
    assert message.startswith(f"{path}: column {column!r}"), message
    assert f"line {bad_line}" in message, (message, bad_line)
