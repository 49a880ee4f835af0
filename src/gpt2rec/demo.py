"""The main job end to end (`make demo` / `gpt2rec demo`): ML-100K, the default language model,
the headline model (l3ae) and the enhanced recommender (cached strategy) next to BPR-MF and EASE,
explanations (l3ae: the liked items that carry each score) and a cold-start user (enhanced).

Runs are kept in `out_dir`; a second demo reuses finished runs and the embedding cache.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .data.load import DataConfig, load_dataset
from .data.splits import SplitConfig
from .pipeline import RunConfig, train_run
from .train import checkpoint as ckpt

log = logging.getLogger(__name__)

DEMO_PROFILE = {"gender": "F", "age": 25, "occupation": "writer"}
SHOWN = ("ndcg@10", "recall@10", "hit@10", "mrr@10", "coverage@10")
EXPLAINED = "l3ae"  # the run whose recommendations are explained
COLD = "l3ae"  # the run that scores a brand-new user (its nearest known profiles' items)
SERVED = "l3ae"  # the run the demo suggests serving (profiles, plain words and new items included)


@dataclass
class DemoResult:
    """What the demo found; `gpt2rec demo` prints it."""

    out: Path
    dataset: dict  # {"name", "users", "items", "ratings"}
    lm: str  # the language model used
    lm_fallback: bool  # True when lm="auto" could not use gpt2
    metrics: dict  # {run name: test metrics}
    user: int
    explained: list = field(default_factory=list)  # top-k rows of the EXPLAINED run for `user`, with reasons
    cold_start: list = field(default_factory=list)  # top-k rows of the COLD run for DEMO_PROFILE
    reused: list = field(default_factory=list)  # runs that were already finished
    seconds: float = 0.0


def _run(name: str, config: RunConfig, out: Path, reused: list) -> dict:
    """Train (or resume) one run; a finished run with the same config is reused as it is."""
    run_dir = out / name
    if (run_dir / ckpt.METRICS).is_file() and (run_dir / ckpt.CONFIG).is_file():
        if ckpt.read_config(run_dir) == _config_dict(config):
            log.info("%s: reusing the finished run in %s", name, run_dir)
            reused.append(name)
            return ckpt.read_metrics(run_dir)
    log.info("%s: training into %s", name, run_dir)
    return train_run(config, run_dir)


def _config_dict(config: RunConfig) -> dict:
    """The config as `config.json` holds it (JSON turns tuples into lists)."""
    import json

    from .utils.config import to_dict

    return json.loads(json.dumps(to_dict(config)))


def run_demo(
    out_dir: str | Path = "runs/demo",
    lm: str = "auto",
    seed: int = 0,
    user: int = 196,
    dataset: str = "ml-100k",
    train: dict | None = None,
) -> DemoResult:
    """Fetch, encode, train, compare, explain, cold-start; the findings as a `DemoResult`.

    `dataset` and `train` (TrainConfig overrides for the trained models) let tests run it small."""
    from .coldstart import recommend_profile
    from .explain import explain_run
    from .models.text_features import resolve_lm_name

    start = time.perf_counter()
    out = Path(out_dir)
    data = DataConfig(dataset=dataset)
    loaded = load_dataset(data)
    lm_name = resolve_lm_name(lm)
    log.info("%s: %d users, %d items; language model %s", loaded.name, loaded.n_users, loaded.n_items, lm_name)
    split = SplitConfig(kind="random", seed=seed)
    runs = {
        "bpr": RunConfig.create(model="bpr", data=data, split=split, train={"seed": seed, **(train or {})}),
        "ease": RunConfig.create(model="ease", data=data, split=split, train={"seed": seed}),
        # the headline model: EASE guided by the LM's reading of the items (closed form, seconds)
        "l3ae": RunConfig.create(
            model="l3ae", model_config={"lm": lm_name}, data=data, split=split, train={"seed": seed}
        ),
        "enhanced": RunConfig.create(
            model="enhanced",
            model_config={"lm": lm_name, "strategy": "cached"},
            data=data,
            split=split,
            train={"seed": seed, **(train or {})},
        ),
    }
    reused: list = []
    metrics = {name: _run(name, cfg, out, reused)["test"] for name, cfg in runs.items()}
    return DemoResult(
        out=out,
        dataset={"name": loaded.name, "users": loaded.n_users, "items": loaded.n_items,
                 "ratings": len(loaded.interactions)},
        lm=lm_name,
        lm_fallback=lm == "auto" and lm_name != "gpt2",
        metrics=metrics,
        user=user,
        explained=explain_run(out / EXPLAINED, user, 5),
        cold_start=recommend_profile(out / COLD, DEMO_PROFILE, 5),
        reused=reused,
        seconds=time.perf_counter() - start,
    )  # fmt: skip
