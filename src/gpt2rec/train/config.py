"""The training settings (`TrainConfig`) and which of them may change when a run is resumed."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..utils.config import check_field_types

# the one list of settings that may differ between a run and its resumption (loop and run folder)
# (lazy_adam: both optimizers keep the same state, and runs saved before the setting existed resume)
TUNE_EPOCHS = 30  # `train --tune` of a gradient model: epochs per point of the search at most
RESUMABLE_CHANGES = frozenset({"epochs", "device", "eval_batch_size", "patience", "lazy_adam"})


@dataclass
class TrainConfig:
    epochs: int = field(default=50, metadata={"help": "maximum number of epochs"})
    batch_size: int = field(default=2048, metadata={"help": "training triples per step"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam weight decay (L2 on all weights)"})
    patience: int = field(default=5, metadata={"help": "stop after this many epochs without improvement (0: never)"})
    metric: str = field(default="ndcg@10", metadata={"help": "validation metric to maximise, name@K"})
    seed: int = field(
        default=0,
        metadata={
            "help": "seed of sampling and dropout in fit; train_run also seeds the model's initialisation with it "
            "(building a model yourself: call torch.manual_seed(seed) first)"
        },
    )
    device: str | None = field(default=None, metadata={"help": "cuda, cpu, ...; None picks CUDA when present"})
    eval_batch_size: int = field(default=1024, metadata={"help": "users scored at once in validation"})
    num_neg: int = field(default=1, metadata={"help": "negatives per positive"})
    loss: str = field(default="bpr", metadata={"help": "bpr, softmax (sampled softmax) or bce (gpt2rec.losses.LOSSES)"})
    lazy_adam: bool | None = field(
        default=None,
        metadata={
            "help": "sparse embedding gradients, Adam updating only the rows a step touched (epochs linear in "
            "the data on big catalogs); False: dense Adam over whole tables; None: lazy from 100,000 table rows"
        },
    )

    def __post_init__(self):
        check_field_types(self, "TrainConfig")
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}"),
            (0 < self.lr < float("inf"), f"lr must be a finite number > 0, got {self.lr}"),
            (
                0 <= self.weight_decay < float("inf"),
                f"weight_decay must be a finite number >= 0, got {self.weight_decay}",
            ),
            (self.patience >= 0, f"patience must be >= 0 (0 disables early stopping), got {self.patience}"),
            (self.num_neg >= 1, f"num_neg must be >= 1, got {self.num_neg}"),
            (self.seed >= 0, f"seed must be an integer >= 0 (numpy rejects negatives), got {self.seed}"),
            (self.loss in _loss_names(), f"loss must be one of {', '.join(_loss_names())}, got {self.loss!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TrainConfig: {message}")
        metric_k(self.metric)

    @property
    def eval_ks(self) -> tuple[int, ...]:
        return tuple(sorted({10, 20, metric_k(self.metric)}))


def _loss_names() -> tuple[str, ...]:
    from ..losses import LOSSES

    return tuple(LOSSES)


def metric_k(metric: str) -> int:
    """K of a validation metric `name@K`; an unknown name is refused here, before anything trains."""
    from ..eval.metrics import RANKING_METRICS

    name, _, k = str(metric).partition("@")
    if not name or not k.isdigit() or int(k) < 1:
        raise ValueError(f"metric {metric!r} must look like name@K, e.g. ndcg@10 or recall@20")
    if name not in RANKING_METRICS:
        raise ValueError(f"unknown metric {name!r} in {metric!r}; choose one of {', '.join(RANKING_METRICS)} as name@K")
    return int(k)


def resumable_view(config: dict) -> dict:
    """A training config dict without the settings that may change on resume (to compare runs)."""
    return {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}


def default_train(model: str, overrides: dict | None = None) -> TrainConfig:
    """TrainConfig for registry model `model`: generic defaults, then the model's
    `ModelSpec.train_defaults`, then `overrides`."""
    from ..models.registry import get_spec
    from ..utils.config import from_dict

    return from_dict(TrainConfig, {**get_spec(model).train_defaults, **(overrides or {})})
