"""The enhanced GPT-2 recommender on MovieLens-100K, one training strategy per run.

    python examples/enhanced.py 1   # cached:  frozen LM, cached per-field vectors (fast)
    python examples/enhanced.py 2   # end2end: LoRA on the LM's top block, dynamic encoding (slow on CPU)
    python examples/enhanced.py 3   # hybrid:  cached epochs, then end-to-end epochs

Options: --lm (default minilm, the cheapest offline LM), --epochs, --out. After training it shows
recommendations with explanations and a cold-start recommendation for a made-up profile.
"""

from __future__ import annotations

import argparse

from gpt2rec.coldstart import recommend_profile
from gpt2rec.data.load import DataConfig
from gpt2rec.data.splits import SplitConfig
from gpt2rec.explain import explain_run
from gpt2rec.pipeline import RunConfig, train_run

STRATEGIES = {
    1: ("cached", {}, {}),
    2: ("end2end", {"top_n_blocks": 1}, {"batch_size": 8192}),
    3: ("hybrid", {"top_n_blocks": 1, "hybrid_cached_epochs": 3, "hybrid_end2end_epochs": 1}, {"batch_size": 8192}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("strategy", type=int, choices=sorted(STRATEGIES), help="1 cached, 2 end2end, 3 hybrid")
    parser.add_argument("--lm", default="minilm")
    parser.add_argument("--epochs", type=int, default=None, help="default: 20 cached, 1 end2end, 4 hybrid")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    name, model_overrides, train_overrides = STRATEGIES[args.strategy]
    epochs = args.epochs or {"cached": 20, "end2end": 1, "hybrid": 4}[name]
    out = args.out or f"runs/example-enhanced-{name}"
    config = RunConfig.create(
        model="enhanced",
        model_config={"lm": args.lm, "strategy": name, **model_overrides},
        data=DataConfig(dataset="ml-100k"),
        split=SplitConfig(kind="random", seed=0),
        train={"epochs": epochs, "seed": 0, **train_overrides},
    )
    metrics = train_run(config, out)
    print(f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics["test"].items() if k in ("ndcg@10", "recall@10")))
    for row in explain_run(out, 196, k=3):
        print(f"{row['title']}: {row['reason']}")
    for row in recommend_profile(out, {"gender": "F", "age": 25, "occupation": "writer"}, k=3):
        print(f"new user -> {row['title']} ({row['score']:.3f})")


if __name__ == "__main__":
    main()
