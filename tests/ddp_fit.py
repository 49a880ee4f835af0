"""A tiny BPR-MF training run for the distributed-training tests, run as a script under torchrun
(`torchrun --nproc-per-node 2 tests/ddp_fit.py RUN_DIR EPOCHS [DIE_AT]`) or imported (one process).

Rank 1 exits abruptly at the end of epoch DIE_AT (after rank 0 saved it), like a killed worker.
DDP_FIT_LAZY=1 trains with lazy Adam (sparse embedding gradients, all-reduced as sparse tensors)."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pandas as pd
import torch

N_USERS, N_ITEMS, BATCH = 40, 30, 37  # 37: batches split unevenly over 2 ranks, the last one is short


def frames():
    rng = np.random.default_rng(0)
    pairs = np.unique(np.stack([rng.integers(0, N_USERS, 600), rng.integers(0, N_ITEMS, 600)], 1), axis=0)
    pairs = pairs[rng.permutation(len(pairs))]
    df = pd.DataFrame({"user": pairs[:, 0], "item": pairs[:, 1], "rating": 1.0, "timestamp": 0})
    n = len(df)
    return df[: int(0.8 * n)], df[int(0.8 * n) : int(0.9 * n)], df[int(0.9 * n) :]


def train(run_dir: str, epochs: int, die_at: int | None = None) -> list[float]:
    from gpt2rec import distributed as dist
    from gpt2rec.data.splits import Split, SplitConfig
    from gpt2rec.models.base import ModelContext
    from gpt2rec.models.bpr import BPRMF, BPRConfig
    from gpt2rec.train.loop import TrainConfig, fit

    torch.set_num_threads(1)
    dist.setup("cpu")
    train_df, valid, test = frames()
    split = Split(train_df.reset_index(drop=True), valid.reset_index(drop=True), test.reset_index(drop=True),
                  SplitConfig())  # fmt: skip
    torch.manual_seed(0)
    model = BPRMF(BPRConfig(dim=8, reg=0.01), N_USERS, N_ITEMS)
    ctx = ModelContext(N_USERS, N_ITEMS, train=split.train)
    lazy = os.environ.get("DDP_FIT_LAZY") == "1"
    config = TrainConfig(epochs=epochs, batch_size=BATCH, lr=0.05, patience=0, seed=0, device="cpu", lazy_adam=lazy)

    def on_epoch_end(epoch, record):
        if die_at is not None and epoch == die_at and dist.rank() == 1:
            os._exit(3)

    result = fit(model, ctx, split, config, run_dir, on_epoch_end=on_epoch_end)
    dist.teardown()
    return [r["loss"] for r in result.history]


if __name__ == "__main__":
    run_dir, epochs = sys.argv[1], int(sys.argv[2])
    losses = train(run_dir, epochs, int(sys.argv[3]) if len(sys.argv) > 3 else None)
    if int(os.environ.get("RANK", "0")) == 0:
        with open(os.path.join(run_dir, "losses.json"), "w") as fh:
            json.dump({"losses": losses, "world": int(os.environ.get("WORLD_SIZE", "1"))}, fh)
