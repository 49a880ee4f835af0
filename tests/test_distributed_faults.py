"""`train` under torchrun, in process: a rank whose peer died says so in one line, the other ranks
do not repeat rank 0's warnings or its Ctrl-C line, DDP's deprecation notice of broadcast_buffers is
not shown, and the launcher's line for a killed worker does not point at output it never wrote."""

from __future__ import annotations

import logging
import sys
import warnings

import pytest
import torch
import torch.distributed as tdist

from gpt2rec import distributed as dist
from gpt2rec.errors import UserError

GLOO_RESET = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:1250: "
    "Connection reset by peer. This is typically caused by a remote worker hanging or bugs in the application."
)


def as_rank(monkeypatch, rank: int, world: int = 2) -> None:
    monkeypatch.setattr(dist, "world_size", lambda: world)
    monkeypatch.setattr(dist, "rank", lambda: rank)


def fail(exc):
    def func(device):
        raise exc

    return func


def test_a_rank_whose_peer_was_killed_says_so_in_one_line(monkeypatch):
    """Rank 0 of a job whose rank 1 was killed printed gloo's traceback from inside backward()."""
    as_rank(monkeypatch, 0)
    with pytest.raises(UserError) as info:
        dist.run_ranked(fail(RuntimeError(GLOO_RESET)))
    message = str(info.value)
    assert "another process of this torchrun job stopped" in message and "Connection reset by peer" in message
    assert "run the same command again to resume" in message and "pair.cc" not in message


def test_a_rank_s_own_error_is_not_called_a_lost_peer(monkeypatch):
    as_rank(monkeypatch, 0)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        dist.run_ranked(fail(RuntimeError("shape mismatch")))
    as_rank(monkeypatch, 0, world=1)  # one process: no peer to lose
    with pytest.raises(RuntimeError, match="Connection reset"):
        dist.run_ranked(fail(RuntimeError(GLOO_RESET)))


def test_other_ranks_leave_warnings_and_ctrl_c_to_rank_0(monkeypatch, caplog):
    """Each rank printed the same warnings (a loo split without timestamps: once per process) and
    its own 'interrupted' line."""
    as_rank(monkeypatch, 1)

    def warn(device):
        logging.getLogger("gpt2rec.data.splits").warning("said once, by rank 0")
        logging.getLogger("gpt2rec.data.splits").error("a rank's own error still shows")
        return 0

    with caplog.at_level(logging.INFO, logger="gpt2rec"):
        assert dist.run_ranked(warn) == 0
        assert logging.getLogger("gpt2rec").level == logging.INFO  # put back after the job
    assert [r.getMessage() for r in caplog.records] == ["a rank's own error still shows"]
    assert dist.run_ranked(fail(KeyboardInterrupt())) == 130
    as_rank(monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):  # rank 0 says it (the CLI's one line)
        dist.run_ranked(fail(KeyboardInterrupt()))


def test_ddp_is_built_without_torch_s_broadcast_buffers_notice(monkeypatch, tmp_path):
    """Printed on every rank at every start, even with --quiet (3-4 lines of 'gpt2rec: `broadcast_buffers`
    is deprecated ...')."""
    from gpt2rec.losses import bpr_loss
    from gpt2rec.train.ddp import Replicas
    from gpt2rec.train.loop import score_negatives

    tdist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        as_rank(monkeypatch, 0)  # a wrapped model, as under torchrun (the group itself has one process)
        model = torch.nn.Linear(2, 2)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            replicas = Replicas(model, bpr_loss, score_negatives, torch.device("cpu"))
        assert replicas.ddp is not None
        assert not [w for w in seen if "broadcast_buffers" in str(w.message)], [str(w.message) for w in seen]
    finally:
        tdist.destroy_process_group()


@pytest.mark.parametrize("exitcode, needle", [(-9, "killed by signal 9 (SIGKILL)"), (1, "exited with 1; see its")])
def test_the_launcher_line_for_a_failed_worker(monkeypatch, capsys, exitcode, needle):
    """A worker killed by a signal wrote nothing, yet the line said 'see its output above'."""
    import torch.distributed.run as run
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    def main(argv):
        raise ChildFailedError("gpt2rec", {1: ProcessFailure(1, 4242, exitcode, "/nonexistent")})

    monkeypatch.setattr(run, "main", main)
    monkeypatch.setattr(sys, "argv", ["torchrun"])
    with pytest.raises(SystemExit):
        dist.torchrun()
    line = capsys.readouterr().err.strip()
    assert line.startswith("gpt2rec: error: torchrun worker 1 ") and needle in line
    assert ("see its output above" in line) == (exitcode > 0)
    assert ("run the same command again to resume" in line) == (exitcode < 0)


def test_tune_under_torchrun_names_torchrun_too():
    """Launched with torchrun (no --nproc given), the refusal told the user to drop --nproc."""
    from gpt2rec.models.registry import get_spec
    from gpt2rec.train.search import check_searchable

    with pytest.raises(UserError, match=r"tune without --nproc \(or torchrun\).*--config RUN/config.json"):
        check_searchable(get_spec("bpr"), 2)
