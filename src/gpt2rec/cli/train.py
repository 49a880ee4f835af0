"""`gpt2rec train --model MODEL --dataset DATASET --out RUN_DIR`: train, evaluate and save a run.

Settings come, later winning, from: the model's defaults, `--config FILE` (a JSON run config like
a run folder's config.json, any part of it), then the flags. Model hyperparameters are set with
`--set key=value` (repeatable), typed by the model's config, e.g. `--set mlp_layers=64,32,16`.
Running the same command again on an unfinished RUN_DIR resumes the training.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import UserError
from ..train.config import TUNE_EPOCHS
from .data_options import add_data_options, given_file_options

SPLIT_KINDS = ("random", "loo", "temporal", "cold-item", "cold-user", "mixed")
# flag -> (section, field) of the run config
TRAIN_FLAGS = {
    "epochs": "epochs", "lr": "lr", "batch_size": "batch_size", "weight_decay": "weight_decay",
    "patience": "patience", "seed": "seed", "device": "device", "metric": "metric", "num_neg": "num_neg",
    "loss": "loss",
    "lazy_adam": "lazy_adam",
}  # fmt: skip


def register(subparsers) -> None:
    from ..models.registry import model_names

    p = subparsers.add_parser("train", help="train a recommender and save a run folder", description=__doc__)
    p.add_argument("--model", choices=model_names(), help="which model (required unless --config names one)")
    p.add_argument(
        "--dataset",
        help="a MovieLens name (ml-100k, ...), a MovieLens folder or your interactions file (default: ml-100k)",
    )
    p.add_argument("--split", choices=SPLIT_KINDS, help="split kind (default random 8:1:1)")
    p.add_argument("--split-seed", type=int, help="seed of the split")
    p.add_argument(
        "--ratios", type=float, nargs=3, metavar=("TRAIN", "VALID", "TEST"),
        help="split shares: random, temporal; mixed: of the known items' interactions (default 0.8 0.1 0.1)",
    )  # fmt: skip
    p.add_argument(
        "--cold-fraction",
        type=float,
        help="share of items (users) held out by cold-item / mixed (cold-user) (default: 0.2)",
    )
    p.add_argument("--split-dir", help="use a split written by `gpt2rec data split` instead")
    p.add_argument(
        "--feedback", metavar="RUN_DIR", help="add the items and interactions `gpt2rec serve` stored in RUN_DIR"
    )
    add_data_options(p, defaults=False)
    p.add_argument("--epochs", type=int, help="maximum epochs")
    p.add_argument("--lr", type=float, help="Adam learning rate")
    p.add_argument("--batch-size", type=int, help="training triples per step")
    p.add_argument("--weight-decay", type=float, help="Adam weight decay")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (0: off)")
    p.add_argument("--metric", help="validation metric for early stopping, e.g. ndcg@10")
    p.add_argument("--num-neg", type=int, help="negatives per positive")
    p.add_argument("--loss", help="training loss: bpr (default), softmax (sampled softmax) or bce")
    p.add_argument(
        "--dense-adam", dest="lazy_adam", action="store_false", default=None,
        help="dense Adam over whole embedding tables (default: lazy row updates from 100,000 embedding rows, "
        "dense below)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, help="training seed (initialisation, sampling)")
    p.add_argument("--device", help="cuda / cpu (default: CUDA when present)")
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads per process (default: torch's choice, about one per core; 1 under --nproc N "
        "or torchrun, unless OMP_NUM_THREADS is set)",
    )
    p.add_argument("--dim", type=int, help="embedding size (shortcut for --set dim=N)")
    p.add_argument(
        "--lm",
        help="GPT-2 recommenders: language model (hub ID, folder, gemma3-270m, minilm; shortcut for --set lm=NAME)",
    )
    p.add_argument(
        "--strategy",
        choices=("cached", "end2end", "hybrid"),
        help="enhanced model: training strategy (shortcut for --set strategy=NAME)",
    )
    p.add_argument(
        "--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help="model hyperparameters (one or more)"
    )
    p.add_argument(
        "--config",
        help="JSON run config file (model, model_config, data, split, train); a run folder's config.json "
        "retrains that run (settings added since it was saved take the values it was fitted with)",
    )
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument(
        "--tune",
        action="store_true",
        help="first search the model's settings on validation and keep the best (the run's tuning.json lists "
        "every point; the search's values replace those given by --set or flags): ease, itemknn, l3ae fit each "
        "point of a grid; bpr, neumf, l3ae_mf, basic, enhanced train short runs from your settings along a few "
        "of them, one at a time (--tune-epochs)",
    )
    p.add_argument(
        "--tune-epochs",
        type=int,
        help=f"with --tune on a model trained by epochs: epochs each point trains at most (default {TUNE_EPOCHS}); the chosen "
        "settings then train in full",
    )
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines or progress bars")
    p.add_argument(
        "--nproc", type=int, default=None,
        help="data-parallel training in N processes (runs torchrun --nproc-per-node N; or launch torchrun yourself)",
    )  # fmt: skip
    p.set_defaults(func=run)


COLD_KINDS = ("cold-item", "cold-user", "mixed")  # the split kinds that read cold_fraction


def build_config(args):
    """The RunConfig described by the --config file and the flags."""
    from ..models.registry import get_spec
    from ..pipeline import RunConfig, with_written_split

    base = _read_config_file(args.config) if args.config else {}
    model = args.model or base.get("model")
    if not model:
        raise UserError('no model given; pass --model NAME (or a --config file with a "model" entry)')
    if args.model and base.get("model") not in (None, args.model):
        base["model_config"] = {}  # the file's hyperparameters belong to another model
    model_config = dict(base.get("model_config") or {})
    spec = get_spec(model)
    shortcuts = {"dim": args.dim, "lm": args.lm, "strategy": args.strategy}
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    for flag, value in shortcuts.items():
        if value is not None and flag not in fields:
            raise UserError(
                f"--{flag}: model '{model}' has no {flag} setting; drop --{flag} (see: gpt2rec train --help)"
            )
    sets = list(args.set) + [f"{key}={value}" for key, value in shortcuts.items() if value is not None]
    model_config.update(parse_sets(sets, spec.config_cls))
    data = dict(base.get("data") or {})
    if args.dataset:
        data["dataset"] = args.dataset
    if args.implicit_threshold is not None:
        data["implicit_threshold"] = args.implicit_threshold
    if args.feedback:
        data["feedback"], data["feedback_until"] = args.feedback, None  # the served folder's writes up to now
    data.update(given_file_options(args))
    if args.split_dir:
        given = [f for f, v in (("--split", args.split), ("--split-seed", args.split_seed), ("--ratios", args.ratios),
                                ("--cold-fraction", args.cold_fraction)) if v is not None]  # fmt: skip
        if given:
            raise UserError(f"--split-dir reads a written split, made as its split.json says; drop {', '.join(given)} "
                            "(or drop --split-dir to split here)")  # fmt: skip
    split = dict(base.get("split") or {})
    if args.split:
        split["kind"] = args.split
    if args.split_seed is not None:
        split["seed"] = args.split_seed
    if args.cold_fraction is not None:
        if split.get("kind", "random") not in COLD_KINDS:
            raise UserError(f"--cold-fraction sets the share held out by a {' / '.join(COLD_KINDS)} split, not a "
                            f"{split.get('kind', 'random')} one; add --split mixed (or another) or drop it")  # fmt: skip
        split["cold_fraction"] = args.cold_fraction
    if args.ratios is not None:
        split["ratios"] = list(args.ratios)
    train = dict(base.get("train") or {})
    for flag, name in TRAIN_FLAGS.items():
        if getattr(args, flag) is not None:
            train[name] = getattr(args, flag)
    split_dir = args.split_dir or base.get("split_dir")
    return with_written_split(RunConfig.create(
        model=model, model_config=model_config, data=data, split=split, train=train, split_dir=split_dir
    ))  # fmt: skip


def _read_config_file(path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"config file {path} not found; check the path") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"config file {path} is not valid UTF-8 JSON ({exc}); fix it or drop --config") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a JSON object with model/model_config/data/split/train")
    unknown = set(data) - {"model", "model_config", "data", "split", "train", "split_dir"}
    if unknown:
        raise UserError(f"config file {path} has unknown sections {sorted(unknown)}; allowed: model, "
                        "model_config, data, split, train, split_dir")  # fmt: skip
    for section in ("model_config", "data", "split", "train"):
        if not isinstance(data.get(section, {}), (dict, type(None))):
            raise UserError(f'config file {path}: "{section}" must be a JSON object ({{"key": value, ...}}), '
                            f"not {type(data[section]).__name__}; fix it or drop the section")  # fmt: skip
    for section in ("model", "split_dir"):
        if not isinstance(data.get(section, ""), (str, type(None))):
            raise UserError(f'config file {path}: "{section}" must be a string, not {type(data[section]).__name__}')
    from ..train.checkpoint import MODEL, upgrade_config

    if (Path(path).parent / MODEL).is_file() and isinstance(data.get("model"), str):
        return upgrade_config(data)  # a saved run's record, not a hand-written partial config
    return data


def parse_sets(items: list[str], config_cls) -> dict:
    """["dim=32", "mlp_layers=64,32"] -> {"dim": 32, "mlp_layers": (64, 32)}, typed by config_cls."""
    from ..utils.config import convert, field_types, type_name

    types_ = field_types(config_cls)
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UserError(f"--set {item!r} must look like key=value, e.g. --set dim=64")
        if key not in types_:
            valid = ", ".join(types_) or "(none)"
            raise UserError(f"--set {key}: {config_cls.__name__} has no such field; valid fields: {valid}")
        try:
            out[key] = convert(types_[key], raw.strip(), key)
        except ValueError:
            raise UserError(f"--set {key}={raw!r}: not a valid {type_name(types_[key])}") from None
    return out


def quiet_hub_progress() -> None:
    """No Hugging Face bars either (transformers' "Loading weights"): transformers takes the hub's
    setting when first imported, and is switched off directly when it already is."""
    import sys

    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()


TABLE_METRICS, TABLE_CUTOFFS = ("ndcg", "recall", "hit", "mrr", "precision"), (10, 20)


def metrics_table(metrics: dict) -> str:
    """Valid and test at @10 and @20, a row each (the run's metrics.json, and --json, have @5 and more)."""
    rows = [" " * 9 + "".join(name.rjust(10) for name in TABLE_METRICS)]
    for part in ("valid", "test"):
        for k in TABLE_CUTOFFS:
            values = [metrics[part].get(f"{name}@{k}") for name in TABLE_METRICS]
            if any(v is not None for v in values):
                cells = ("-" if v is None else f"{v:.4f}" for v in values)
                rows.append(f"{part}@{k}".ljust(9) + "".join(c.rjust(10) for c in cells))
    return "\n".join(rows)


def run(args) -> int:
    from .. import distributed as dist

    if args.nproc is not None and not dist.launched():
        _checked_config(args, nproc=args.nproc)  # bad flags: one line here, before torchrun starts
        return dist.launch(args.nproc, dist.without_nproc(args.argv), threads=args.threads)
    return dist.run_ranked(lambda device: _train(args), args.device)


def _checked_config(args, nproc: int | None = None):
    """The run's config from the flags, with the checks that need no data (also made before
    `--nproc` launches torchrun)."""
    from ..models.registry import get_spec

    config = build_config(args)
    spec = get_spec(config.model)
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}; e.g. --threads 1")
    if args.tune_epochs is not None and not args.tune:
        raise UserError("--tune-epochs sets the budget of --tune's short runs; add --tune or drop --tune-epochs")
    if args.tune_epochs is not None and args.tune_epochs < 1:
        raise UserError(f"--tune-epochs must be >= 1, got {args.tune_epochs}; e.g. --tune-epochs 30")
    if args.tune:
        from ..train.search import check_searchable

        check_searchable(spec, nproc or 1)
        if args.tune_epochs is not None and spec.fit is not None:
            raise UserError(f"{spec.name} is fitted in closed form, so --tune-epochs has nothing to limit; drop it")
    return config


def _train(args) -> int:
    from .. import distributed as dist
    from ..pipeline import train_run
    from ..utils.progress import silenced

    config = _checked_config(args)
    if args.threads is not None:  # (a busy machine: fewer threads than cores can train faster)
        import torch

        torch.set_num_threads(args.threads)
    verbose = not args.quiet and dist.is_main()
    if args.quiet and "lm" in config.model_config:  # (models without an LM never import the hub)
        quiet_hub_progress()
    if verbose:
        print(f"training {config.model} on {config.data.dataset} ({config.split.kind} split) -> {args.out}")
    budget = {} if args.tune_epochs is None else {"tune_epochs": args.tune_epochs}
    with silenced(args.quiet):  # also the bars asked for deep inside (a cold text cache's encoding)
        metrics = train_run(config, args.out, verbose=verbose, tune=args.tune, **budget)
    if not dist.is_main():
        return 0
    info = metrics.get("train", {})
    extra = f", best epoch {info['best_epoch']}" if "best_epoch" in info else ""
    print(f"trained in {info.get('seconds', 0.0):.1f}s{extra}")
    if "tuned" in info:
        shown = (f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in info["tuned"].items())
        took = f" (search {info['tune_seconds']:.1f}s)" if "tune_seconds" in info else ""
        print(f"tuned on validation{took}: " + ", ".join(shown))
    print(metrics_table(metrics))
    print(f"saved to {args.out}")
    return 0
