"""`gpt2rec recommend RUN_DIR --user ID -k 10`: top items for a user, never one they already have in
the run's data.

Also: `--explain`, a new user (`--profile JSON`), new items (`--items FILE`), and a request in plain
words (`--query "a funny animated film for kids"`, blended with `--user` when given).
"""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("recommend", help="recommend items to a user from a run folder", description=__doc__)
    p.add_argument("run_dir", help="a folder written by `gpt2rec train`")
    p.add_argument("--user", help="the user's raw ID, as in the dataset")
    p.add_argument("-k", type=int, default=10, help="number of items")
    p.add_argument("--device", help="cuda / cpu (default: the run's setting)")
    p.add_argument(
        "--json", action="store_true",
        help="print a JSON list of {item_id, title, score} (with --explain also the reason and its evidence; "
        "with --items the row of each item)",
    )  # fmt: skip
    # GPT-2 recommenders (enhanced model): explanations and cold start
    p.add_argument("--explain", action="store_true", help="say why each item is recommended")
    p.add_argument("--profile", metavar="JSON", help="a NEW user's profile (JSON text or file) instead of --user")
    p.add_argument(
        "--items",
        metavar="FILE",
        help="rank NEW items for --user: a CSV/TSV/Parquet/JSON table with the columns the run's items are read by "
        "(MovieLens: title, genres 'A|B'), item_id optional",
    )
    p.add_argument("--query", metavar="TEXT", help='a request in plain words, e.g. "a funny animated film for kids"')
    p.add_argument("--blend", type=float, help="with --query and --user: share of the user's own scores (default 0.5)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import UserError
    from ..pipeline import recommend
    from .train import quiet_hub_progress

    quiet_hub_progress()  # loading a model is short work: no "Loading weights" bars in the answer
    if args.query is not None:
        return _run_query(args)
    if args.blend is not None:  # was silently ignored
        raise UserError("--blend works only with --query (the share of --user's scores in a plain-words request)")
    if (args.user is None) == (args.profile is None):
        what = (
            "--items needs --user ID (a known user)"
            if args.items is not None
            else ("give exactly one of --user ID (a known user) or --profile JSON (a new user), or --query TEXT")
        )
        raise UserError(what)
    if args.k < 1:  # checked here once for every path (--user, --explain, --profile, --items)
        raise UserError(f"-k must be a positive number of items, got {args.k}; e.g. -k 10")
    if args.explain or args.profile is not None or args.items is not None:
        return _run_text(args)
    items = recommend(args.run_dir, args.user, args.k, device=args.device)
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    width = max((len(str(r["item_id"])) for r in items), default=1)
    for rank, r in enumerate(items, 1):
        print(f"{rank:>3}. {str(r['item_id']):>{width}}  {r['score']:9.4f}  {r['title']}")
    return 0


def _run_query(args) -> int:
    """--query (library: gpt2rec.query), for --user when given."""
    from ..errors import UserError
    from ..pipeline import open_run
    from ..query import query_rows

    if args.profile or args.items or args.explain:
        raise UserError("--query works alone or with --user (not with --profile, --items or --explain)")
    if args.blend is not None and args.user is None:
        raise UserError("--blend sets the share of --user's scores; give --user ID too, or leave --blend out")
    blend = 0.5 if args.blend is None else args.blend
    rows = query_rows(open_run(args.run_dir, args.device), args.query, args.k, args.user, blend)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for rank, r in enumerate(rows, 1):
        print(f"{rank:>3}. {str(r['item_id']):>5}  {r['score']:9.4f}  {r['title']}")
    return 0


def _run_text(args) -> int:
    """--explain / --profile / --items (library: gpt2rec.explain, gpt2rec.coldstart)."""
    from ..coldstart import rank_new_items, recommend_profile
    from ..errors import UserError
    from ..explain import explain_run

    if args.explain:
        if args.profile is not None or args.items is not None:
            raise UserError("--explain works with --user alone (not with --profile or --items)")
        rows = explain_run(args.run_dir, args.user, args.k, device=args.device)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        for rank, r in enumerate(rows, 1):
            print(f"{rank:>3}. {str(r['item_id']):>5}  {r['score']:9.4f}  {r['title']}")
            print(f"       {r['reason']}")
            for name in ("user_fields", "item_fields"):
                if r[name]:
                    print(
                        "       "
                        + name.replace("_", " ")
                        + ": "
                        + ", ".join(f"{k} {v:.2f}" for k, v in r[name].items())
                    )
        return 0
    if args.profile is not None:
        if args.items is not None:  # was silently ignored: the catalogue came back instead
            raise UserError("--items ranks new items for a known --user; with --profile only the catalogue is ranked")
        rows = recommend_profile(args.run_dir, args.profile, args.k, device=args.device)
    else:
        rows = rank_new_items(args.run_dir, args.user, args.items, args.k, device=args.device)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for rank, r in enumerate(rows, 1):
        name = f"row {r['row']}" if r.get("item_id") is None and "row" in r else str(r["item_id"])
        print(f"{rank:>3}. {name:>5}  {r['score']:9.4f}  {r['title']}")
        if r.get("reason"):
            print(f"       {r['reason']}")
    return 0
