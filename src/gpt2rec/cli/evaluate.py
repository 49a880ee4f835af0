"""`gpt2rec evaluate RUN_DIR`: reload a run folder and evaluate it on its own split."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a trained run folder", description=__doc__)
    p.add_argument("run_dir", help="a folder written by `gpt2rec train`")
    p.add_argument("--device", help="cuda / cpu (default: the run's setting)")
    p.add_argument("--json", action="store_true", help="print all metrics as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline import evaluate_run
    from .train import metrics_table, quiet_hub_progress

    quiet_hub_progress()  # loading the model is short work: no "Loading weights" bars (gpt2rec's own stay)
    metrics = evaluate_run(args.run_dir, device=args.device)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(metrics_table(metrics))
    return 0
