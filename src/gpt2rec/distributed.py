"""torch.distributed plumbing: the process group under `torchrun`, rank queries, gathers, `--nproc`.

    torchrun --nproc-per-node 2 -m gpt2rec encode --dataset ...     # or: gpt2rec encode --nproc 2 ...

`setup()` joins the process group that torchrun describes in the environment (WORLD_SIZE, RANK,
LOCAL_RANK, MASTER_ADDR/PORT): `nccl` when the ranks run on CUDA, `gloo` on CPU; each CUDA rank takes
the GPU of its LOCAL_RANK. Without torchrun (or with a world size of 1) nothing is initialised and
every helper answers as a single process, so the same code runs with and without it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

import torch
import torch.distributed as dist

from .errors import UserError


def launched() -> bool:
    """True inside a torchrun job of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str | None = None) -> torch.device | None:
    """Join torchrun's process group (once); returns this rank's device, or None outside torchrun.

    `device`: None/"auto" -> this rank's CUDA device (LOCAL_RANK) when CUDA is present, else CPU."""
    if not launched():
        return None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and (device in (None, "", "auto") or str(device).startswith("cuda"))
    dev = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dev


def teardown(finished: bool = True) -> None:
    """Leave the process group. `finished`: this rank ended normally, so wait for the others first
    (a rank that leaves while another still works can abort the job); after an error, leave at once."""
    if dist.is_available() and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


class PeerLostError(UserError):
    """Another process of the torchrun job stopped (killed, crashed, interrupted) while this one
    waited for it: one line here instead of the transport's traceback."""


# what gloo / nccl say when the process at the other end of a collective is gone
PEER_LOST_MARKERS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "/gloo/", "NCCL")


def peer_lost(exc: BaseException) -> bool:
    """True when `exc` is a collective's failure (another rank stopped), not this rank's own fault."""
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    return isinstance(exc, RuntimeError) and any(marker in str(exc) for marker in PEER_LOST_MARKERS)


def run_ranked(func, device: str | None = None) -> int:
    """`func(this rank's device or None)` inside torchrun's process group (or in one process), leaving
    the group cleanly: after every rank finished, or at once on an error.

    Under torchrun rank 0 reports: the other ranks' gpt2rec log (the same warnings again) shows
    errors only, and their Ctrl-C ends them quietly (exit 130; rank 0 says it once). A rank whose
    peer stopped raises `PeerLostError` (one line: run the command again to resume)."""
    dev = setup(device)
    world, me = world_size(), rank()
    logger = logging.getLogger("gpt2rec")
    level = logger.level
    if me != 0:
        logger.setLevel(logging.ERROR)
    try:
        code = func(dev)
    except KeyboardInterrupt:
        teardown(finished=False)
        if me != 0:
            return 130
        raise
    except BaseException as exc:
        teardown(finished=False)
        if world > 1 and peer_lost(exc):
            raise PeerLostError(
                f"another process of this torchrun job stopped (rank {me} lost contact with it: {_reason(exc)}); "
                "run the same command again to resume from the last saved epoch"
            ) from None
        raise
    finally:
        logger.setLevel(level)
    teardown()
    return code


def _reason(exc: BaseException) -> str:
    """The transport's words for a lost peer (its message also holds a source path and advice)."""
    return next((m for m in PEER_LOST_MARKERS if m in str(exc) and not m.startswith("/")), type(exc).__name__)


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def all_gather_object(obj) -> list:
    """Every rank's `obj`, in rank order, on every rank ([obj] in a single process)."""
    if world_size() == 1:
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    """`obj` of rank `src` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def launch(nproc: int, argv: Sequence[str], threads: int | None = None) -> int:
    """Run `gpt2rec ARGV` as `torchrun --standalone --nproc-per-node NPROC -m gpt2rec ARGV`; its exit code
    (2 when a worker stopped on a gpt2rec error, which it has printed: no torchrun traceback).
    `threads`: the command's --threads, each worker's OMP_NUM_THREADS (`launch_env`)."""
    if int(nproc) < 1:
        raise UserError(f"--nproc must be >= 1, got {nproc}")
    cmd = [sys.executable, "-c", "from gpt2rec.distributed import torchrun; torchrun()"]
    args = [*cmd, "--standalone", f"--nproc-per-node={int(nproc)}", "-m", "gpt2rec", *argv]
    try:
        return subprocess.call(args, env=launch_env(int(nproc), threads))
    except KeyboardInterrupt:  # Ctrl-C reached the job too, whose rank 0 has said so: not a second line
        return 130


def launch_env(nproc: int, threads: int | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment torchrun starts with (`environ`, default ours), with OMP_NUM_THREADS set where
    torchrun would set it itself (more than one process, the user set none): the workers' threads as
    before (`threads`, else torchrun's own 1), without the 4-line banner torchrun prints as it sets it."""
    env = dict(os.environ if environ is None else environ)
    if nproc > 1 and "OMP_NUM_THREADS" not in env:  # (a user's value, even empty, is torchrun's to read)
        env["OMP_NUM_THREADS"] = str(threads or 1)
    return env


def torchrun() -> None:
    """torchrun's own main on sys.argv, for `launch`. A failed worker ends it without torchrun's
    traceback and error report: a worker's gpt2rec error (exit 2) is already its own one line; any
    other failure (a crash, a kill) becomes one line naming the worker and its exit code."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        main(sys.argv[1:])
    except ChildFailedError as exc:
        worker, failure = exc.get_first_failure()
        if failure.exitcode == 2:
            sys.exit(2)
        print(f"gpt2rec: error: torchrun worker {worker} {_how(failure.exitcode)}", file=sys.stderr)
        sys.exit(1)


def _how(exitcode: int) -> str:
    """How a worker ended, for the launcher's one line (a killed worker wrote nothing to look at)."""
    if exitcode >= 0:
        return f"exited with {exitcode}; see its output above"
    import signal

    try:
        name = f" ({signal.Signals(-exitcode).name})"
    except ValueError:
        name = ""
    return (f"was killed by signal {-exitcode}{name}, e.g. by hand or for lack of memory; run the same command "
            "again to resume from the last saved epoch")  # fmt: skip


def without_nproc(argv: Sequence[str]) -> list[str]:
    """`argv` minus its `--nproc N` / `--nproc=N` option (for the relaunched command line)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out
