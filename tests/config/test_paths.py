"""adclick_ops.config.paths: file system faults as one line naming the path, never a traceback or a blocked read."""

from __future__ import annotations

import os
import socket

import pytest

from adclick_ops.config import ConfigError
from adclick_ops.config.paths import PathFault, folder_entries, regular_file


def test_a_folder_lists_its_entries_sorted(tmp_path):
    for name in ("b.yaml", "a.yaml", "c"):
        (tmp_path / name).write_text("")
    assert [p.name for p in folder_entries(tmp_path)] == ["a.yaml", "b.yaml", "c"]


def test_a_missing_folder_is_one_line_naming_it(tmp_path):
    with pytest.raises(PathFault) as raised:
        folder_entries(tmp_path / "nowhere")
    assert str(raised.value) == f"{tmp_path / 'nowhere'}: pipelines folder: not found"
    assert raised.value.cause == "missing"
    assert isinstance(raised.value, ConfigError) and raised.value.issues[0].path == str(tmp_path / "nowhere")


def test_a_file_given_as_the_folder(tmp_path):
    (tmp_path / "x.yaml").write_text("")
    with pytest.raises(PathFault, match="pipelines folder: not a folder but a file$"):
        folder_entries(tmp_path / "x.yaml")


def test_a_dangling_link_names_its_target(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(PathFault, match=r"dataset: a symbolic link to '.*gone', which does not exist"):
        regular_file(tmp_path / "link", "dataset")


def test_a_link_loop(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(PathFault, match=r"dataset: too many levels of symbolic links \(a link loop\?\)"):
        regular_file(tmp_path / "a", "dataset")


def test_a_name_too_long(tmp_path):
    with pytest.raises(PathFault, match="name too long for the file system"):
        regular_file(tmp_path / ("x" * 300), "dataset")


def test_a_regular_file_gives_its_stat(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n")
    assert regular_file(tmp_path / "d.csv").st_size == 4


def test_a_folder_given_as_the_file_asks_for_the_file_itself(tmp_path):
    with pytest.raises(PathFault) as raised:
        regular_file(tmp_path, "dataset")
    assert str(raised.value) == f"{tmp_path}: dataset: a folder, not a file; name the file itself"
    assert raised.value.cause == "folder"


def test_a_fifo_is_refused_without_being_opened(tmp_path):
    """Opening a FIFO for reading would block until a writer comes."""
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(PathFault) as raised:
        regular_file(tmp_path / "pipe", "dataset")
    assert str(raised.value).endswith("dataset: a FIFO (named pipe), not a file; expected a regular file")
    assert raised.value.cause == "special"


def test_a_device_and_a_socket_are_named_as_such(tmp_path):
    with pytest.raises(PathFault, match="dataset: a device, not a file"):
        regular_file("/dev/null", "dataset")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "s"))
        with pytest.raises(PathFault, match="dataset: a socket, not a file"):
            regular_file(tmp_path / "s", "dataset")


def test_a_nul_byte_in_the_path(tmp_path):
    with pytest.raises(PathFault, match="dataset: .*null byte"):
        regular_file(f"{tmp_path}/a\x00b", "dataset")
