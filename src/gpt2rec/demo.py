"""The main job end to end (`make demo` / `gpt2rec demo`): ML-100K, the default language model,
the headline model (l3ae) and the enhanced recommender (cached strategy) next to BPR-MF and EASE,
explanations (l3ae: the liked items that carry each score) and a cold-start user (enhanced).

Runs are kept in `out_dir`; a second demo reuses finished runs and the embedding cache.
"""

from __future__ import annotations

import time
from pathlib import Path

from .data.load import DataConfig, load_dataset
from .data.splits import SplitConfig
from .pipeline import RunConfig, train_run
from .train import checkpoint as ckpt

DEMO_PROFILE = {"gender": "F", "age": 25, "occupation": "writer"}
SHOWN = ("ndcg@10", "recall@10", "hit@10", "mrr@10", "coverage@10")


def _run(name: str, config: RunConfig, out: Path) -> dict:
    """Train (or resume) one run; a finished run with the same config is reused as it is."""
    run_dir = out / name
    if (run_dir / ckpt.METRICS).is_file() and (run_dir / ckpt.CONFIG).is_file():
        if ckpt.read_config(run_dir) == _config_dict(config):
            print(f"[demo] {name}: reusing the finished run in {run_dir}")
            return ckpt.read_metrics(run_dir)
    print(f"[demo] {name}: training into {run_dir}")
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
) -> dict:
    """Fetch, encode, train, compare, explain, cold-start. Returns {model: test metrics}.

    `dataset` and `train` (TrainConfig overrides for both models) let tests run it small."""
    from .models.text_features import resolve_lm_name

    start = time.perf_counter()
    out = Path(out_dir)
    data = DataConfig(dataset=dataset)
    loaded = load_dataset(data)
    print(
        f"[demo] dataset: {loaded.n_users} users, {loaded.n_items} items, "
        f"{len(loaded.interactions)} ratings (all used as implicit feedback)"
    )
    lm_name = resolve_lm_name(lm)
    print(
        f"[demo] language model: {lm_name}"
        + (" (gpt2 is not available locally)" if lm == "auto" and lm_name != "gpt2" else "")
    )
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
    results = {name: _run(name, cfg, out)["test"] for name, cfg in runs.items()}

    print(f"\n[demo] test metrics ({loaded.name}, random 8:1:1 split, full ranking; LM = {lm_name})")
    print(f"{'metric':<14}" + "".join(f"{name:>12}" for name in results))
    for key in SHOWN:
        print(f"{key:<14}" + "".join(f"{results[n].get(key, float('nan')):>12.4f}" for n in results))

    _show_recommendations(out / "l3ae", user)
    _show_cold_start(out / "enhanced")
    print(f"\n[demo] done in {time.perf_counter() - start:.0f} s; runs are in {out}")
    print(f"[demo] try it in a browser: gpt2rec serve {out / 'enhanced'}  then open http://127.0.0.1:8000/")
    return results


def _show_recommendations(run_dir: Path, user: int) -> None:
    from .explain import explain_run

    print(
        f"\n[demo] top 5 for user {user} from {run_dir.name}, with explanations (gpt2rec recommend {run_dir} --user {user} --explain)"
    )
    for rank, row in enumerate(explain_run(run_dir, user, 5), 1):
        print(f"{rank:>3}. {row['title']}  (score {row['score']:.3f})")
        print(f"     {row['reason']}")


def _show_cold_start(run_dir: Path) -> None:
    from .coldstart import recommend_profile

    print(f"\n[demo] a brand-new user, from metadata alone: {DEMO_PROFILE}")
    for rank, row in enumerate(recommend_profile(run_dir, DEMO_PROFILE, 5), 1):
        print(f"{rank:>3}. {row['title']}  (score {row['score']:.3f})")
        if row.get("reason"):
            print(f"     {row['reason']}")
