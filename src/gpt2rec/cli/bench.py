"""`gpt2rec bench [--quick]`: the benchmark (quality per protocol, ablations, speed, faithfulness).
`gpt2rec bench scale [--quick]`: time and memory against data size (see gpt2rec.bench.scale).
`gpt2rec bench tune [--models bpr] [--protocols warm]`: a baseline's coordinate search on validation
(gpt2rec.bench.tuning).

Writes benchmarks/results/<dataset>.json (one record per protocol, model, lm and seed), <dataset>.md
and PNG figures. Interrupt it at any time: running the same command again resumes.
By default ML-100K, then ML-1M when it is in the local cache (its NCF protocol with the ID baselines).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="run the benchmark (resumable)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument(
        "what", nargs="?", choices=["quality", "scale", "tune"], default="quality",
        help="quality (default): the ML benchmark; scale: time and memory on synthetic 10^5..10^7 interactions; "
             "tune: a baseline's coordinate search on validation, on warm or each of --protocols (written to the results store)",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help="quality: one seed, few epochs, a subset of models (~10 min); scale: stop at 10^6 interactions",
    )  # fmt: skip
    from ..bench.plan import PROTOCOL_ALIASES, PROTOCOLS  # light: no torch

    parser.add_argument(
        "--dataset", default=None,
        help="only this dataset: a MovieLens name (ml-100k, ml-1m), a MovieLens folder, or an interactions file "
             "(CSV/Parquet; with --users for cold-user, --items for the text models' metadata)",
    )  # fmt: skip
    from .data_options import add_data_options

    add_data_options(parser.add_argument_group("your own files (with --dataset FILE)"), defaults=False)
    parser.add_argument("--out", default="benchmarks/results", help="output folder")
    parser.add_argument(
        "--protocols", nargs="+", default=None,
        help=f"subset (default: all): {' '.join([*PROTOCOLS, *PROTOCOL_ALIASES])} "
             f"({', '.join(a + ' = ' + ' + '.join(ps) for a, ps in PROTOCOL_ALIASES.items())})",
    )  # fmt: skip
    parser.add_argument("--models", nargs="+", default=None, help="subset of the bench's model names")
    parser.add_argument(
        "--lms", nargs="+", default=None, help="language models (default: gpt2 if cached, gemma3-270m, minilm)"
    )
    parser.add_argument("--seeds", type=int, default=None, help="seeds per protocol (default 3; 5 for cold)")
    parser.add_argument("--epochs", type=int, default=None, help="cap on training epochs")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: CUDA when present)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice; bench scale: 1)"
    )
    parser.add_argument("--no-speed", action="store_true", help="skip the speed section")
    parser.add_argument("--no-faithfulness", action="store_true", help="skip the explanation deletion test")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.set_defaults(func=bench_cmd)


def bench_cmd(args, argv: list[str] | None = None) -> int:
    """Run the benchmark for each dataset in turn and print where the reports are."""
    import sys
    from dataclasses import replace

    from ..bench.resume import check_out_dir

    check_out_dir(args.out)  # quality, tune and scale alike: one line, before any data is read
    if not sys.stderr.isatty():  # a log file: Hugging Face's "Loading weights" bars are only noise there
        from .train import quiet_hub_progress

        quiet_hub_progress()
    if args.what == "scale":
        from ..bench.scale import ScaleConfig, run_scale

        _refuse_unused_by_scale(args)

        paths = run_scale(ScaleConfig(quick=args.quick, out_dir=args.out, threads=args.threads or 1))
        print(f"scale: {paths['md']} ({paths['json']}, {paths['png']})")
        return 0

    from ..bench import BenchConfig, run_bench
    from ..bench.datasets import datasets_to_run
    from ..utils.config import from_dict

    values = dict(
        quick=args.quick, out_dir=args.out, protocols=tuple(args.protocols or ()), models=tuple(args.models or ()),
        lms=tuple(args.lms or ()), seeds=args.seeds, epochs=args.epochs, device=args.device, threads=args.threads,
        speed=not args.no_speed, faithfulness=not args.no_faithfulness, plots=not args.no_plots,
        data=_file_options(args),
    )  # fmt: skip
    base = from_dict(BenchConfig, values, flags=_FLAG_OF)  # "--threads must be >= 1", not "BenchConfig: threads"
    if args.what == "tune":
        from ..bench.runner import run_tuning

        paths = run_tuning(replace(base, dataset=args.dataset or "ml-100k"))
        print(f"tune: {paths['md']} ({paths['json']})")
        return 0
    argv = argv if argv is not None else sys.argv[2:]
    failed = 0
    for config in datasets_to_run(base, args.dataset):
        paths = run_bench(config, argv=argv)
        print(f"{config.stem}: {paths['md']} ({paths['json']})")
        if paths["failed"]:
            print(f"{config.stem}: {paths['failed']} of {paths['jobs']} jobs failed (see the lines above)")
            failed += paths["failed"]
    return 1 if failed else 0  # not 2: the input was fine, some jobs were not


# bench scale times synthetic data of its own sizes; only --quick, --out and --threads shape it
_SCALE_IGNORES = ("dataset", "protocols", "models", "lms", "seeds", "epochs", "device", "no_speed", "no_faithfulness",
                  "no_plots", "implicit_threshold")  # fmt: skip


def _refuse_unused_by_scale(args) -> None:
    """One line for flags `bench scale` would ignore (it ran without a word, on other data than asked)."""
    from ..errors import UserError
    from .data_options import given_file_options

    unused = [n for n in _SCALE_IGNORES if getattr(args, n, None) is not None and getattr(args, n) is not False]
    unused += list(given_file_options(args))
    if unused:
        flags = ", ".join("--" + name.replace("_", "-") for name in unused)
        raise UserError(f"{flags}: not used by bench scale, which times synthetic data of 10^5..10^7 "
                        f"interactions (only --quick, --out and --threads apply); leave them out")  # fmt: skip


# how a BenchConfig refusal starts -> the same words led by the flag
_FLAG_OF = {
    "unknown protocol(s)": "--protocols: unknown protocol(s)",
    "unknown bench model(s)": "--models: unknown bench model(s)",
    **{f"{name} ": f"--{name} " for name in ("seeds", "threads", "epochs")},
}


def _file_options(args) -> dict:
    """The DataConfig options given for the user's own files; refused without an interactions file."""
    from pathlib import Path

    from ..errors import UserError
    from .data_options import given_file_options

    given = given_file_options(args)
    if args.implicit_threshold is not None:
        given["implicit_threshold"] = args.implicit_threshold
    if given and not (args.dataset and Path(args.dataset).expanduser().is_file()):
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UserError(f"{flags}: describe your own files; pass your interactions file with --dataset FILE")
    return given
