"""The basic GPT-2 recommender on MovieLens-100K with the Python API (a few epochs).

    python examples/basic.py [--lm minilm] [--epochs 5] [--out runs/example-basic]

Frozen-LM text embeddings of every user and item (cached on disk) are concatenated with ID
embeddings and scored by an MLP. `--lm auto` uses gpt2 when it is available locally, else
gemma3-270m; `minilm` is the fastest offline choice.
"""

from __future__ import annotations

import argparse

from gpt2rec.data.load import DataConfig
from gpt2rec.data.splits import SplitConfig
from gpt2rec.pipeline import RunConfig, recommend, train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", default="minilm")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default="runs/example-basic")
    args = parser.parse_args()

    config = RunConfig.create(
        model="basic",
        model_config={"lm": args.lm, "dim": 64},
        data=DataConfig(dataset="ml-100k"),
        split=SplitConfig(kind="random", ratios=(0.8, 0.1, 0.1), seed=0),
        train={"epochs": args.epochs, "seed": 0},
    )
    metrics = train_run(config, args.out)
    print({k: round(v, 4) for k, v in metrics["test"].items() if k.endswith("@10")})
    for row in recommend(args.out, raw_user_id=196, k=5):
        print(f"{row['score']:8.3f}  {row['title']}")


if __name__ == "__main__":
    main()
