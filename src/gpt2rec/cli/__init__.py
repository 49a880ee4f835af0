"""gpt2rec: recommendations from a language model's reading of user and item metadata, fused with ID embeddings.

Each subcommand parses its arguments and calls one library function.

Every subcommand module exposes `register(subparsers)`, which adds its parser and sets `func`.
The library reports through `logging` (logger "gpt2rec"); the CLI shows its INFO messages on
stderr, and with `-v` its DEBUG ones too (e.g. one line per training epoch), above the progress bars;
gpt2rec's own Python warnings (e.g. texts cut at max_length) show as one such line too.
A `UserError`, an `OSError` (permissions, disk full, ...) or a non-finite training loss becomes one
line on stderr and exit code 2; no traceback. A closed output pipe (`| head`) ends quietly. Ctrl-C is
one line and exit 130; it is held back while the native libraries load (`interrupts_held`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import NonFiniteLossError, UserError
from ..utils.memory import keep_freed_memory


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (via UserError) instead of the usage block."""

    def error(self, message: str):
        raise UserError(f"{message}; see: {self.prog} --help")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from . import commands

    parser = _Parser(prog="gpt2rec", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gpt2rec {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in commands.MODULES:
        module.register(subparsers)
    for name, sub in subparsers.choices.items():
        epochs = "; a line per training epoch" if name in ("train", "bench") else ""
        sub.add_argument("-v", "--verbose", action="store_true", help=f"more detail (debug messages{epochs})")
    return parser


@contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """Library log messages on stderr for the duration of a command, written above tqdm bars."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    logger = logging.getLogger("gpt2rec")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("gpt2rec: %(message)s"))
    level = logger.level
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.addHandler(handler)
    shown = warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):
        """gpt2rec's own warnings as one 'gpt2rec: ...' line (no file path, no source line)."""
        if f"{os.sep}gpt2rec{os.sep}" in str(filename):
            logger.warning("%s", message)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = one_line
    try:
        with logging_redirect_tqdm(loggers=[logger]):
            yield
    finally:
        warnings.showwarning = shown
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C back for the block; one that came meanwhile is raised as it ends. An interrupt
    inside a C++ extension's import (torch, scipy: pybind11) can abort the process ("terminate called
    after throwing ... KeyboardInterrupt") instead of reaching our one line."""
    import signal

    if not hasattr(signal, "pthread_sigmask"):  # (not on Windows: nothing to hold there)
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _load_libraries(with_torch: bool) -> None:
    """The heavy native libraries of a command, loaded with Ctrl-C held back (`gpt2rec data`
    needs no torch)."""
    with interrupts_held():
        import numpy  # noqa: F401
        import pandas  # noqa: F401
        import scipy.sparse  # noqa: F401

        if with_torch:
            import torch  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra:  # named with the subcommand's help, not the top level's
            where = " ".join(x for x in ("gpt2rec", args.command, getattr(args, "data_command", None)) if x)
            raise UserError(f"unrecognized arguments: {' '.join(extra)}; see: {where} --help")
        args.argv = list(sys.argv[1:] if argv is None else argv)  # for relaunching under torchrun (--nproc)
        keep_freed_memory()  # large per-step buffers reused, not re-mapped (utils/memory.py)
        _load_libraries(with_torch=args.command != "data")
        with _logging(getattr(args, "verbose", False)):
            return int(args.func(args) or 0)
    except UserError as exc:
        if os.environ.get("RANK", "0") != "0":  # under torchrun every rank meets the same bad input: rank 0 says it
            return 2
        return _fail(str(exc))
    except NonFiniteLossError as exc:
        return _fail(str(exc))
    except BrokenPipeError:
        return _closed_pipe()
    except OSError as exc:
        from ..data.home import home_dir
        from ..utils.oserrors import describe

        return _fail(describe(exc, home_dir()))
    except MemoryError:
        return _fail("out of memory; use a smaller --dim, --batch-size or dataset")
    except KeyboardInterrupt:
        print("gpt2rec: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    line = " ".join(str(message).split()) or "unknown error"  # always one line
    try:
        print(f"gpt2rec: error: {line}", file=sys.stderr)
    except OSError:  # stderr itself is gone: nothing left to tell
        pass
    return 2


def _closed_pipe() -> int:
    """The reader of our output (e.g. `| head`) went away: stop quietly, like other Unix tools."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail again
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, as a shell reports `yes | head`


def run() -> None:
    code = main()
    try:
        sys.stdout.flush()  # output still buffered here can meet a closed pipe too
    except BrokenPipeError:
        code = _closed_pipe()
    sys.exit(code)
