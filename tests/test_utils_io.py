"""The inter-process lock of shared files (filelock) and atomic writes."""

from __future__ import annotations

import pytest
from filelock import FileLock, Timeout

from gpt2rec.utils.io import file_lock, write_text


def test_file_lock_excludes_other_holders_until_released(tmp_path):
    path = tmp_path / "sub" / "cache.lock"  # the folder is created
    with file_lock(path):
        with pytest.raises(Timeout):
            FileLock(str(path), timeout=0).acquire()  # another holder (another open file) must wait
    with FileLock(str(path), timeout=0):  # released at the end of the block
        pass


def test_file_lock_is_released_when_the_block_raises(tmp_path):
    path = tmp_path / "x.lock"
    with pytest.raises(RuntimeError), file_lock(path):
        raise RuntimeError("boom")
    with FileLock(str(path), timeout=0):
        pass


def test_write_text_is_atomic_and_leaves_no_temp_files(tmp_path):
    write_text(tmp_path / "a.txt", "one")
    write_text(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
