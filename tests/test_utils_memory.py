"""keep_freed_memory: large buffers come from the heap (reused) instead of a fresh mmap each time."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gpt2rec.cli import main
from gpt2rec.errors import UserError
from gpt2rec.utils.memory import ENV, _glibc, keep_freed_memory

# In a fresh interpreter (the setting is process-wide): how many mmapped chunks one 40 MB malloc
# adds (mallinfo2().hblks), before and after keep_freed_memory.
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from gpt2rec.utils.memory import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]

    def mapped_by_one_malloc():
        before = libc.mallinfo2().hblks
        p = libc.malloc(40 * 2**20)
        after = libc.mallinfo2().hblks
        libc.free(p)
        return after - before

    default = mapped_by_one_malloc()
    applied = keep_freed_memory(int(sys.argv[1]))
    print(default, applied, mapped_by_one_malloc())
    """
)


def _probe(limit_mb: int) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(limit_mb)], capture_output=True, text=True, check=True)
    return out.stdout.split()


needs_glibc = pytest.mark.skipif(
    _glibc() is None or not hasattr(_glibc(), "mallinfo2"), reason="glibc >= 2.33 only (mallinfo2)"
)


@needs_glibc
def test_a_large_buffer_comes_from_the_heap_once_kept():
    assert _probe(1024) == ["1", "True", "0"]  # glibc maps 40 MB on its own; kept: from the heap


@needs_glibc
def test_a_limit_below_the_buffer_leaves_it_mapped():
    assert _probe(16) == ["1", "True", "1"]  # 40 MB > 16 MiB: still its own mapping


def test_zero_turns_it_off(monkeypatch):
    assert keep_freed_memory(0) is False
    monkeypatch.setenv(ENV, "0")
    assert keep_freed_memory() is False


def test_a_bad_limit_names_the_variable(monkeypatch):
    monkeypatch.setenv(ENV, "1GB")
    with pytest.raises(UserError, match=f"{ENV} must be a whole number of MiB"):
        keep_freed_memory()
    for value in ("-5", "99999999999"):  # were: off, and capped at 2 GiB, without a word
        monkeypatch.setenv(ENV, value)
        with pytest.raises(UserError, match=f"{ENV} must be from 0 \\(off\\) to 2047 MiB"):
            keep_freed_memory()


def test_the_cli_reports_a_bad_limit_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv(ENV, "lots")
    assert main(["data", "info", "ml-100k"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ENV in err and "Traceback" not in err
