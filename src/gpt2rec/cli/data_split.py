"""`gpt2rec data split DATASET --kind KIND --out DIR`: write a train/valid/test split of raw IDs."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .data_options import add_data_options, data_config

log = logging.getLogger("gpt2rec")


class DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: X)" after each option's help, but not "(default: None)": an option
    without a default says in its help what happens when it is left out."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def register(sub) -> None:
    """Add `split` to the `gpt2rec data` sub-subparsers."""
    from ..data.splits import SPLITTERS, SplitConfig

    default = SplitConfig()
    p = sub.add_parser(
        "split",
        help="split a dataset into train/valid/test files",
        description=__doc__.splitlines()[0],
        formatter_class=DefaultsShown,
    )
    p.add_argument("dataset", help="dataset name or folder, as for `gpt2rec data info`")
    p.add_argument("--kind", choices=list(SPLITTERS), default=default.kind, help="how to split")
    p.add_argument(
        "--ratios",
        type=float,
        nargs=3,
        metavar=("TRAIN", "VALID", "TEST"),
        default=list(default.ratios),
        help="shares for random and temporal splits (sum to 1); mixed: of the known items' interactions",
    )
    p.add_argument("--seed", type=int, default=default.seed, help="random seed")
    p.add_argument(
        "--cold-fraction",
        type=float,
        default=default.cold_fraction,
        help="share of items (users) held out for cold-item and mixed (cold-user) splits",
    )
    p.add_argument("--out", required=True, help="folder to write train.tsv, valid.tsv, test.tsv, split.json")
    add_data_options(p)  # your own files: columns, separator, encoding, metadata, the implicit threshold
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.load import load_dataset
    from ..data.split_files import write_split
    from ..data.splits import SplitConfig, make_split
    from ..utils.config import from_dict

    config = from_dict(
        SplitConfig, dict(kind=args.kind, ratios=args.ratios, seed=args.seed, cold_fraction=args.cold_fraction)
    )
    dataset = load_dataset(data_config(args))
    split = make_split(dataset, config)
    _note_replaced(Path(args.out), config)
    out = write_split(split, dataset, args.out)
    sizes = split.sizes()
    line = (
        f"{dataset.name}: {config.kind} split -> train {sizes['train']}, valid {sizes['valid']}, test {sizes['test']}"
    )
    cold = split.cold_items if split.cold_items is not None else split.cold_users
    if cold is not None:
        line += f"; {len(cold)} cold {'items' if split.cold_items is not None else 'users'}"
    print(f"{line}; written to {out}")
    return 0


def _note_replaced(out: Path, config) -> None:
    """Say when another split is overwritten: runs that used the old one would no longer match it."""
    from ..utils.io import read_json

    try:
        old = read_json(out / "split.json")["config"]
        kind, seed = old["kind"], old["seed"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # nothing (readable) there: nothing to replace
    if (kind, seed) != (config.kind, config.seed):
        log.warning(
            "%s held a %s split (seed %s); replacing it with a %s split (seed %s)",
            out,
            kind,
            seed,
            config.kind,
            config.seed,
        )
