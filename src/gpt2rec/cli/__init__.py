"""gpt2rec: recommendations from a language model's reading of user and item metadata, fused with ID embeddings.

Each subcommand parses its arguments and calls one library function.

Every subcommand module exposes `register(subparsers)`, which adds its parser and sets `func`.
A `UserError` becomes one line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from . import commands

    parser = argparse.ArgumentParser(prog="gpt2rec", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in commands.MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for relaunching under torchrun (--nproc)
    try:
        code = args.func(args)
    except UserError as exc:
        print(f"gpt2rec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpt2rec: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return int(code or 0)


def run() -> None:
    sys.exit(main())
