"""`gpt2rec demo`: the main job end to end on ML-100K (what `make demo` runs)."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="fetch ML-100K, train enhanced + BPR-MF, explain, cold start", description=__doc__
    )
    p.add_argument("--out", default="runs/demo", help="folder for the demo's runs (reused when run again)")
    p.add_argument("--lm", default="auto", help="language model (default: gpt2 if available locally, else gemma3-270m)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--user", type=int, default=196, help="raw user ID whose recommendations are shown")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo

    run_demo(args.out, lm=args.lm, seed=args.seed, user=args.user)
    return 0
