"""`--nproc N` launches torchrun with OMP_NUM_THREADS set when the user set none: torchrun set it to 1
itself, printing a 4-line banner ("Setting OMP_NUM_THREADS environment variable for each process to
be 1 in default, ...") above every `gpt2rec train/encode --nproc` run. The workers' threads stay as
they were: 1, or the command's --threads; a user's own value is left alone."""

from __future__ import annotations

import pytest

from gpt2rec import distributed as dist
from gpt2rec.cli import main


def test_the_launch_environment_sets_omp_threads_only_where_torchrun_would():
    assert dist.launch_env(2, environ={"PATH": "/bin"}) == {"PATH": "/bin", "OMP_NUM_THREADS": "1"}
    assert dist.launch_env(4, threads=3, environ={})["OMP_NUM_THREADS"] == "3"
    for users in ("8", ""):  # the user's value, even an empty one, is torchrun's to read
        assert dist.launch_env(2, threads=3, environ={"OMP_NUM_THREADS": users})["OMP_NUM_THREADS"] == users
    assert "OMP_NUM_THREADS" not in dist.launch_env(1, environ={})  # one process: torch's own choice, as before


def handed(monkeypatch) -> list:
    """The (command, environment) of each process `launch` starts, instead of starting it."""
    calls = []
    monkeypatch.setattr(dist.subprocess, "call", lambda cmd, env=None: calls.append((cmd, env)) or 0)
    return calls


def test_launch_hands_torchrun_the_threads_and_keeps_a_user_s_own(monkeypatch):
    calls = handed(monkeypatch)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("GPT2REC_PROBE", "kept")
    assert dist.launch(2, ["encode", "--dataset", "ml-100k"]) == 0
    cmd, env = calls[-1]
    assert "--nproc-per-node=2" in cmd and cmd[-3:] == ["encode", "--dataset", "ml-100k"]
    assert env["OMP_NUM_THREADS"] == "1" and env["GPT2REC_PROBE"] == "kept"  # the rest of ours goes too
    monkeypatch.setenv("OMP_NUM_THREADS", "6")
    assert dist.launch(2, ["encode"], threads=3) == 0 and calls[-1][1]["OMP_NUM_THREADS"] == "6"


@pytest.mark.parametrize(("flags", "threads"), [([], "1"), (["--threads", "3"], "3")])
def test_train_nproc_runs_its_workers_on_the_threads_asked_for(tmp_path, monkeypatch, flags, threads):
    calls = handed(monkeypatch)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    argv = ["train", "--model", "bpr", "--dataset", "ml-100k", "--nproc", "2", *flags, "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    ((cmd, env),) = calls
    assert env["OMP_NUM_THREADS"] == threads and "--nproc" not in cmd
