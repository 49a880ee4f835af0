"""A tiny enhanced-model run with LoRA adapters trained end to end (frozen GPT-2 base weights), for
the distributed-training tests: `torchrun --nproc-per-node 2 tests/ddp_lora_fit.py RUN_DIR EPOCHS`,
or imported (one process). Dropout (the fusion's and GPT-2's) and the contrastive term are off: they draw per rank (InfoNCE is
taken over the rank's own rows), so only then do 2 processes follow the 1-process trajectory."""

from __future__ import annotations

import json
import os
import sys

import torch

BATCH = 9  # uneven over 2 ranks


def _no_dropout(model, tokenizer):
    """GPT-2's own dropout draws from each rank's RNG: off, so the ranks compute what one process does."""
    for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        setattr(model.config, name, 0.0)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model, tokenizer


def train(run_dir: str, epochs: int) -> list[float]:
    from conftest import make_tiny_gpt2, train_tiny_tokenizer
    from gpt2_fixtures import meta_data
    from gpt2rec import distributed as dist
    from gpt2rec.data.splits import Split, SplitConfig
    from gpt2rec.models.base import ModelContext
    from gpt2rec.models.enhanced import EnhancedConfig
    from gpt2rec.models.enhanced_build import build as build_enhanced
    from gpt2rec.models.text_features import register_lm
    from gpt2rec.train.loop import TrainConfig, fit

    torch.set_num_threads(1)
    dist.setup("cpu")
    tokenizer = train_tiny_tokenizer()
    register_lm("tiny-gpt2", lambda: _no_dropout(*make_tiny_gpt2(tokenizer)))
    dataset, inter = meta_data()
    inter = inter.sample(frac=1.0, random_state=0).reset_index(drop=True)
    split = Split(inter[4:].reset_index(drop=True), inter[:2].reset_index(drop=True),
                  inter[2:4].reset_index(drop=True), SplitConfig())  # fmt: skip
    config = EnhancedConfig(lm="tiny-gpt2", text_cache=False, dim=8, n_heads=2, strategy="end2end", top_n_blocks=1,
                            dropout=0.0, id_dropout=0.0, contrastive_weight=0.0)  # fmt: skip
    ctx = ModelContext(dataset.n_users, dataset.n_items, dataset, split.train, torch.device("cpu"))
    torch.manual_seed(0)
    model = build_enhanced(config, ctx)
    train_config = TrainConfig(epochs=epochs, batch_size=BATCH, lr=0.005, patience=0, seed=0, device="cpu", num_neg=2)
    result = fit(model, ctx, split, train_config, run_dir)
    dist.teardown()
    return [r["loss"] for r in result.history]


if __name__ == "__main__":
    run_dir, epochs = sys.argv[1], int(sys.argv[2])
    losses = train(run_dir, epochs)
    if int(os.environ.get("RANK", "0")) == 0:
        with open(os.path.join(run_dir, "losses.json"), "w") as fh:
            json.dump({"losses": losses, "world": int(os.environ.get("WORLD_SIZE", "1"))}, fh)
