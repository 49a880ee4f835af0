"""`gpt2rec data fetch|info|split|synth`: get MovieLens, describe a dataset, split it, make synthetic data."""

from __future__ import annotations

from . import data_split
from .data_options import add_data_options, data_config
from .data_split import DefaultsShown


def register(subparsers) -> None:
    from ..data.fetch import SOURCES

    parser = subparsers.add_parser("data", help="fetch, describe and split datasets", description=__doc__)
    sub = parser.add_subparsers(dest="data_command", required=True)

    p = sub.add_parser("fetch", help="download and extract a MovieLens dataset", description=fetch_cmd.__doc__)
    p.add_argument("name", help=f"one of: {', '.join(SOURCES)}")
    p.add_argument("--force", action="store_true", help="extract again even if the dataset is already there")
    p.set_defaults(func=fetch_cmd)

    p = sub.add_parser(
        "info", help="print a dataset's size and columns", description=info_cmd.__doc__,
        formatter_class=DefaultsShown,
    )  # fmt: skip
    p.add_argument("dataset", help="a MovieLens name, an extracted MovieLens folder, or your interactions file")
    add_data_options(p)
    p.set_defaults(func=info_cmd)

    data_split.register(sub)
    _register_synth(sub)


def _register_synth(sub) -> None:
    from ..data.synth import SynthConfig

    d = SynthConfig()
    p = sub.add_parser(
        "synth", help="write a large synthetic catalog (Parquet) with taste clusters", description=synth_cmd.__doc__,
        formatter_class=DefaultsShown,
    )  # fmt: skip
    p.add_argument("--users", type=int, default=d.users, help="number of users")
    p.add_argument("--items", type=int, default=d.items, help="number of items")
    p.add_argument("--interactions", type=int, default=d.interactions, help="number of interactions")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (same seed, same files)")
    p.add_argument("--clusters", type=int, default=d.n_clusters, help="taste clusters (one genre each)")
    p.add_argument("--out", required=True, help="folder for interactions/users/items.parquet")
    p.set_defaults(func=synth_cmd)


def fetch_cmd(args) -> int:
    """Download, verify and extract a MovieLens dataset into the gpt2rec cache ($GPT2REC_HOME)."""
    from ..data.fetch import fetch

    folder = fetch(args.name, force=args.force)
    print(folder)
    return 0


def info_cmd(args) -> int:
    """Load a dataset and print its size, density and metadata columns."""
    from ..data.load import load_dataset

    info = load_dataset(data_config(args)).describe()
    for key, value in info.items():
        if isinstance(value, float):
            value = f"{value:.4%}" if key == "density" else f"{value:g}"
        elif isinstance(value, list):
            value = ", ".join(value) or "-"
        print(f"{key}: {value}")
    return 0


def synth_cmd(args) -> int:
    """Write a synthetic catalog (power-law popularity, taste clusters named in the metadata) as Parquet;
    train on it with `gpt2rec train --dataset DIR/interactions.parquet --users DIR/users.parquet
    --items DIR/items.parquet`."""
    from pathlib import Path

    from ..data.synth import SynthConfig, write
    from ..errors import UserError
    from ..utils.config import from_dict

    # in the flags' words: "--clusters must be in 1..20", not "SynthConfig: synth n_clusters must be ..."
    flags = {f"synth {name} ": f"--{name} " for name in ("users", "items", "interactions", "seed")}
    flags |= {"synth n_clusters ": "--clusters ", "synth ": ""}
    cfg = from_dict(SynthConfig, dict(
        users=args.users, items=args.items, interactions=args.interactions, seed=args.seed, n_clusters=args.clusters
    ), flags=flags)  # fmt: skip
    if (Path(args.out) / "config.json").is_file():  # its Parquet files went in beside a run's files
        raise UserError(f"--out {args.out} holds a run (config.json); write the synthetic data to a folder of its own")
    summary = write(cfg, args.out)
    print(f"wrote {summary['written_interactions']} interactions, {cfg.users} users, {cfg.items} items to {args.out}")
    return 0
