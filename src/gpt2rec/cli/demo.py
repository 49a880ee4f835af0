"""`gpt2rec demo`: the main job end to end on ML-100K (what `make demo` runs)."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="fetch ML-100K, train l3ae + enhanced next to BPR-MF and EASE, explain, cold start",
        description=__doc__,
    )  # fmt: skip
    p.add_argument("--out", default="runs/demo", help="folder for the demo's runs (reused when run again)")
    p.add_argument("--lm", default="auto", help="language model (default: gpt2 if available locally, else gemma3-270m)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the training (default: 0)")
    p.add_argument("--user", type=int, default=196, help="raw user ID whose recommendations are shown")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo

    show(run_demo(args.out, lm=args.lm, seed=args.seed, user=args.user))
    return 0


def show(result) -> None:
    """Print a DemoResult: the metrics table, an explained top 5, a cold-start top 5, what to try next."""
    from ..demo import COLD, DEMO_PROFILE, EXPLAINED, SERVED, SHOWN

    d, out = result.dataset, result.out
    fallback = " (gpt2 is not available locally)" if result.lm_fallback else ""
    print(f"{d['name']}: {d['users']} users, {d['items']} items, {d['ratings']} ratings (implicit feedback); "
          f"language model: {result.lm}{fallback}")  # fmt: skip
    print("\ntest metrics (random 8:1:1 split, full ranking over all items)")
    names = list(result.metrics)
    print(f"{'metric':<14}" + "".join(f"{name:>12}" for name in names))
    for key in SHOWN:
        print(f"{key:<14}" + "".join(f"{result.metrics[n].get(key, float('nan')):>12.4f}" for n in names))
    print(f"\ntop 5 for user {result.user} from {EXPLAINED}, with explanations "
          f"(gpt2rec recommend {out / EXPLAINED} --user {result.user} --explain)")  # fmt: skip
    _rows(result.explained)
    print(f"\na brand-new user, from metadata alone ({COLD}): {DEMO_PROFILE}")
    _rows(result.cold_start)
    print(f"\ndone in {result.seconds:.0f} s; runs are in {out}"
          + (f" (reused: {', '.join(result.reused)})" if result.reused else ""))  # fmt: skip
    print(f"try it in a browser: gpt2rec serve {out / SERVED}  then open http://127.0.0.1:8000/")


def _rows(rows: list) -> None:
    for rank, row in enumerate(rows, 1):
        print(f"{rank:>3}. {row['title']}  (score {row['score']:.3f})")
        if row.get("reason"):
            print(f"     {row['reason']}")
