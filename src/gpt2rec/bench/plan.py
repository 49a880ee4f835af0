"""What the benchmark runs: protocols, the model table, language models, seeds, and the job list.

A job is one (protocol, model, lm, seed) and gives one record. Jobs run in two phases: the main
table, then the ablations of the best enhanced variant (chosen by mean VALIDATION ndcg@10 on the
warm protocol, never by test).

Hyperparameters are chosen on validation only:
- every gradient model trains with early stopping on the protocol's own validation metric
  (ndcg@10; hit@10 among the sampled negatives for `ncf`; cold items ranked among the valid cold
  items for `cold-item`) with the model's default patience, and keeps its best-validation epoch;
- models with a `grid` try each candidate on the FIRST seed of a protocol, pick the best validation
  score, and reuse that choice for the other seeds (`--quick` uses the first candidate only);
- everything else is the model's documented default.
The headline candidates (`HEADLINE_CANDIDATES`) and their text-off ablations are tuned (grid and
early stopping) on a seeded half of the validation users only, on the protocols where a headline is
chosen (`HEADLINE_PROTOCOLS`); the headline is the candidate with the best mean score on the other
half (`select_metrics`), which nothing was chosen on. Chosen on the tuned-on half, the validation
score is a maximum over candidates (and over epochs, for a model that stops early), and favours the
model with the noisier curve.
Epoch caps: the models' defaults (`ModelSpec.train_defaults`), `DYNAMIC_TRAIN` (end2end),
hybrid `HYBRID_EPOCHS` (cached, then dynamic); `--quick` caps every model at `QUICK_EPOCHS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .l3ae_grids import (
    L3AE_COLD_ITEM_GRID,
    L3AE_DROPOUT_GRID,
    L3AE_GRID,
    L3AE_MF_GRID,
    L3AE_MIXED_GRID,
    L3AE_POOLING_GRID,
    L3AE_REGS,
    L3AE_TEXT_OFF_DROPOUT_GRID,
    L3AE_TUNED_COLD_ITEM_GRID,
    L3AE_TUNED_MIXED_GRID,
)

# ---------------------------------------------------------------- protocols


COLD_FRACTION = 0.2  # cold-item, cold-user: the share of items / users held out


@dataclass(frozen=True)
class ProtocolSpec:
    name: str
    split_kind: str  # gpt2rec.data.splits.SplitConfig.kind
    seeds: int  # seeds of the full run (each seed = a new split draw / negatives and init)
    evaluation: str  # full | sampled | candidates
    metric: str  # the validation metric used to choose
    description: str
    train_fraction: float = 1.0  # < 1: the training part subsampled per interaction (sparse levels)
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)  # random, temporal; mixed: of the known interactions
    cold_fraction: float = COLD_FRACTION  # the share of items (cold-item, mixed) or users (cold-user) held out


PROTOCOLS: dict[str, ProtocolSpec] = {
    p.name: p
    for p in (
        ProtocolSpec("warm", "random", 3, "full", "ndcg@10",
                     "random per-user 8:1:1; rank every item, training (and validation) items masked"),
        ProtocolSpec("ncf", "loo", 3, "sampled", "hit@10",
                     "leave-one-out by time; the held-out item among 99 sampled unseen negatives"),
        ProtocolSpec("cold-item", "cold-item", 5, "candidates", "ndcg@10",
                     "20% of items never in training (half valid, half test); each test user's held-out "
                     "cold items ranked among all cold test items"),
        ProtocolSpec("cold-user", "cold-user", 5, "full", "ndcg@10",
                     "20% of users never in training (half valid, half test); ranked among all items "
                     "from their profile alone"),
        ProtocolSpec("sparse-20", "random", 3, "full", "ndcg@10",
                     "warm's split with the training part subsampled (seeded, per interaction) to 20%; valid and "
                     "test unchanged; every model re-tuned on validation", 0.2),
        ProtocolSpec("sparse-50", "random", 3, "full", "ndcg@10",
                     "warm's split with the training part subsampled (seeded, per interaction) to 50%; valid and "
                     "test unchanged; every model re-tuned on validation", 0.5),
        ProtocolSpec("warm-tail", "random", 3, "tail", "ndcg@10",
                     "warm's split and training; candidates = items outside the top 20% by training popularity, "
                     "truth = each user's held-out interactions with them (training items masked)"),
        ProtocolSpec("mixed", "mixed", 5, "mixed", "ndcg@10",
                     "a live catalogue: 5% of items new (half valid, half test) plus 10% of the other interactions "
                     "held out (half valid, half test), so about a third of the held-out interactions are with "
                     "new items; every known item and the part's new items ranked together, seen items masked; "
                     "new_recall@10 = recall@10 of the new items' interactions alone",
                     ratios=(0.9, 0.05, 0.05), cold_fraction=0.05),
    )
}  # fmt: skip
PROTOCOL_ALIASES = {"sparse": ("sparse-20", "sparse-50")}  # --protocols sparse = both levels
TAIL_HEAD_FRACTION = 0.2  # warm-tail: the most popular 20% of items are left out of the candidates
SAMPLED_NEGATIVES = 99
KS = (5, 10, 20)

# ---------------------------------------------------------------- models

# Training defaults of the bench (gpt2rec.train.loop.TrainConfig fields); entries override them.
TRAIN: dict = {}  # bench-wide overrides of the models' own defaults (none: the defaults are the tuned ones)
QUICK_EPOCHS = 2

WARM, NCF, COLD_ITEM, COLD_USER = "warm", "ncf", "cold-item", "cold-user"
SPARSE_20, SPARSE_50, WARM_TAIL, MIXED = "sparse-20", "sparse-50", "warm-tail", "mixed"
BASE = (WARM, NCF, COLD_ITEM, COLD_USER)
WARM_VIEWS = (SPARSE_20, SPARSE_50, WARM_TAIL)  # warm's split: subsampled training, or the tail candidates
ALL = BASE + WARM_VIEWS + (MIXED,)
ID_PROTOCOLS = (WARM, NCF)  # ID-only models: every test user and item must be seen in training
CLAIM_PROTOCOLS = (WARM, SPARSE_20, SPARSE_50, COLD_ITEM)  # where the design's claims are checked
HEADLINE_PROTOCOLS = (WARM, SPARSE_20, SPARSE_50, WARM_TAIL)  # where a headline is chosen and held to EASE
# the headline candidates, each with its text-off ablation (the same model and grid, text removed)
HEADLINE_CANDIDATES = {"l3ae": "l3ae-text-off", "l3ae_mf": "l3ae_mf-text-off"}


def tunes_on_half(name: str, protocol: str) -> bool:
    """Whether entry `name` is tuned on half the validation users on `protocol` (the other half
    chooses the headline)."""
    return protocol in HEADLINE_PROTOCOLS and name in {*HEADLINE_CANDIDATES, *HEADLINE_CANDIDATES.values()}


@dataclass(frozen=True)
class ModelEntry:
    """One row of the model table.

    lm: which language models it runs with: "" none; "all" every LM on warm (the LM comparison) and
    the main LM elsewhere; "main" the main LM; "cheapest" the cheapest LM (dynamic strategies, whose
    every training step runs the LM); "=name" that LM (the ablations, pinned to the base's LM). grid: candidate overrides {"model": {...}, "train": {...}},
    the first being the default; extra_grid: more candidates on a given protocol. quick: the protocols it runs on in --quick. seeds: a cap on the
    protocol's seeds (the knob for the most expensive entries).
    """

    name: str
    model: str  # registry name
    protocols: tuple[str, ...]
    lm: str = ""
    overrides: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    grid: tuple[dict, ...] = ()
    extra_grid: dict = field(default_factory=dict)  # protocol -> more candidates tried there only
    quick: tuple[str, ...] = ()
    group: str = "main"  # main | ablation
    seeds: int | None = None  # cap on the protocol's seeds (None: all of them)
    lm_overrides: dict = field(default_factory=dict)  # lm -> model overrides with that LM only
    stacked_on: str = ""  # an entry whose choice (same protocol, LM) each candidate here starts from

    def grid_for(self, protocol: str) -> tuple[dict, ...]:
        """The candidates tried on `protocol`'s validation: the grid, then that protocol's extras."""
        return tuple(self.grid) + tuple(self.extra_grid.get(protocol, ()))


# Dynamic strategies run the LM's top block on every step (at most `dynamic_sample` users and as
# many items per step, see EnhancedConfig): large batches (fewer steps per epoch), the cheapest
# LM, warm only.
GPT2_TRAIN: dict = {}
DYNAMIC_STRATEGIES = ("end2end", "hybrid")
DYNAMIC_TRAIN = {"epochs": 15, "batch_size": 8192, "patience": 3, "num_neg": 4}
DYNAMIC_MODEL = {"top_n_blocks": 1}  # LoRA on the top block only
HYBRID_EPOCHS = (12, 4)  # cached, then dynamic; no early stop (the best validation epoch is kept)
# The enhanced rows were measured with the contrastive term on (its old default, 0.1); the library
# default is now off (the claim was refuted on cold-item): the no-contrastive ablation is the default.
CONTRASTIVE = {"contrastive_weight": 0.1}
ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry("popularity", "popularity", ALL, quick=ALL),
    ModelEntry("itemknn", "itemknn", ID_PROTOCOLS, grid=({"model": {"k": 100}}, {"model": {"k": 50}}, {"model": {"k": 200}})),
    ModelEntry("ease", "ease", ID_PROTOCOLS + WARM_VIEWS + (MIXED,), quick=ID_PROTOCOLS,
               grid=({"model": {"reg": 300.0}}, {"model": {"reg": 100.0}}, {"model": {"reg": 1000.0}},
                     {"model": {"reg": 30.0}}, {"model": {"reg": 3000.0}})),
    ModelEntry("bpr", "bpr", ID_PROTOCOLS + WARM_VIEWS, quick=ID_PROTOCOLS,
               grid=({"model": {"reg": 1e-2}}, {"model": {"reg": 1e-3}})),  # tuned default, L2 neighbour
    ModelEntry("neumf", "neumf", ID_PROTOCOLS),
    ModelEntry("genre_content", "genre_content", (WARM, COLD_ITEM, COLD_USER, MIXED), quick=(WARM, COLD_ITEM, COLD_USER)),
    ModelEntry("basic", "basic", ID_PROTOCOLS, "main", train=GPT2_TRAIN, quick=(WARM,)),
    # the headline model (closed form) and its text-off ablation: the same model and grid, text removed
    ModelEntry("l3ae", "l3ae", ID_PROTOCOLS + (COLD_ITEM, COLD_USER) + WARM_VIEWS + (MIXED,), "all", quick=(WARM,),
               grid=L3AE_GRID, extra_grid={WARM: L3AE_POOLING_GRID + L3AE_DROPOUT_GRID, WARM_TAIL: L3AE_DROPOUT_GRID,
                                           COLD_ITEM: L3AE_COLD_ITEM_GRID + L3AE_TUNED_COLD_ITEM_GRID,
                                           MIXED: L3AE_MIXED_GRID + L3AE_TUNED_MIXED_GRID}),
    ModelEntry("l3ae-text-off", "l3ae", ID_PROTOCOLS + WARM_VIEWS, "", {"text_weight": 0.0, "side_weight": 0.0},
               grid=tuple({"model": {"reg": r}} for r in L3AE_REGS),
               extra_grid={WARM: L3AE_TEXT_OFF_DROPOUT_GRID, WARM_TAIL: L3AE_TEXT_OFF_DROPOUT_GRID}),
    # l3ae + a BPR-trained residual (for sparse data) and its text-off ablation (EASE + the residual)
    ModelEntry("l3ae_mf", "l3ae_mf", (SPARSE_20, SPARSE_50, WARM, WARM_TAIL), "main", grid=L3AE_MF_GRID,
               stacked_on="l3ae"),
    ModelEntry("l3ae_mf-text-off", "l3ae_mf", (SPARSE_20, SPARSE_50, WARM, WARM_TAIL), "",
               {"text_weight": 0.0, "side_weight": 0.0}, grid=L3AE_MF_GRID, stacked_on="l3ae-text-off"),
    ModelEntry("enhanced-cached", "enhanced", ALL, "all", {"strategy": "cached", **CONTRASTIVE}, GPT2_TRAIN, quick=BASE),
    ModelEntry("enhanced-end2end", "enhanced", CLAIM_PROTOCOLS, "cheapest",
               {"strategy": "end2end", **DYNAMIC_MODEL, **CONTRASTIVE}, DYNAMIC_TRAIN),
    ModelEntry("enhanced-hybrid", "enhanced", (WARM,), "cheapest",
               {"strategy": "hybrid", "hybrid_cached_epochs": HYBRID_EPOCHS[0], "hybrid_end2end_epochs": HYBRID_EPOCHS[1],
                **DYNAMIC_MODEL, **CONTRASTIVE},
               {**DYNAMIC_TRAIN, "epochs": sum(HYBRID_EPOCHS), "patience": 0}),
)  # fmt: skip

# Ablations of the best enhanced variant: (suffix, model overrides, protocols), with its LM. The
# design's claims (cross-attention, the contrastive term) are checked on warm, the sparse levels and
# cold-item; text-only / ids-only where they apply (cold items have no ID to fall back on).
ABLATIONS: tuple[tuple[str, dict, tuple[str, ...]], ...] = (
    ("no-attention", {"use_attention": False}, CLAIM_PROTOCOLS),
    ("no-contrastive", {"contrastive_weight": 0.0}, CLAIM_PROTOCOLS),
    ("text-only", {"use_ids": False}, (WARM,)),
    ("ids-only", {"use_text": False}, (WARM, SPARSE_20, SPARSE_50)),
)
ABLATION_PROTOCOLS = tuple(p for p in ALL if any(p in protocols for _, _, protocols in ABLATIONS))
ABLATION_SEEDS = None  # as many seeds as the protocol
QUICK_ABLATIONS = ("no-attention",)

# Language models in order of preference (the first available is the main LM), and by cost.
LM_ORDER = ("gpt2", "gemma3-270m", "minilm")
LM_COST = ("minilm", "gpt2", "gemma3-270m")  # cheapest first; unknown names cost the most
QUICK_LMS = ("minilm",)


def train_settings(entry: ModelEntry) -> dict:
    """The entry's training settings: the model's documented defaults (`ModelSpec.train_defaults`,
    chosen on ML-100K validation), then `TRAIN`, then the entry's overrides."""
    from ..train.config import default_train
    from ..utils.config import to_dict

    return to_dict(default_train(entry.model, {**TRAIN, **entry.train}))


def config_fields(model: str) -> set[str]:
    import dataclasses

    from ..models.registry import get_spec

    return {f.name for f in dataclasses.fields(get_spec(model).config_cls)}


def missing_ablations(best: ModelEntry) -> list[str]:
    """Ablations the model's config cannot express (a field it lacks): reported, not run."""
    fields = config_fields(best.model)
    return [suffix for suffix, overrides, _ in ABLATIONS if not set(overrides) <= fields]


def ablation_base(entry: ModelEntry, lm: str | None) -> ModelEntry:
    """`entry` pinned to one LM (`lm="=name"`): the base of the ablations."""
    from dataclasses import replace

    return replace(entry, lm=f"={lm}" if lm else "")


def ablation_entries(best: ModelEntry, quick: bool = False) -> list[ModelEntry]:
    out = []
    missing = missing_ablations(best)
    for suffix, overrides, where in ABLATIONS:
        if (quick and suffix not in QUICK_ABLATIONS) or suffix in missing:
            continue
        protocols = tuple(p for p in where if p in best.protocols)
        out.append(
            ModelEntry(
                f"{best.name}/{suffix}", best.model, protocols, best.lm, {**best.overrides, **overrides},
                dict(best.train), quick=protocols[:1], group="ablation", seeds=ABLATION_SEEDS,
            )
        )  # fmt: skip
    return out


# ---------------------------------------------------------------- config and jobs


@dataclass
class BenchConfig:
    dataset: str = field(default="ml-100k", metadata={"help": "dataset name, MovieLens folder or interactions file"})
    quick: bool = field(default=False, metadata={"help": "one seed, few epochs, a subset of models"})
    out_dir: str = field(default="benchmarks/results", metadata={"help": "where the JSON/MD/PNG go"})
    name: str | None = field(
        default=None, metadata={"help": "output file stem (default: the dataset name, plus -quick in quick mode)"}
    )
    protocols: tuple[str, ...] = field(default=(), metadata={"help": "subset of protocols (default: all)"})
    models: tuple[str, ...] = field(default=(), metadata={"help": "subset of model names (default: the plan)"})
    lms: tuple[str, ...] = field(default=(), metadata={"help": "language models (default: those available)"})
    seeds: int | None = field(default=None, metadata={"help": "seeds per protocol (default: 3, 5 for cold)"})
    epochs: int | None = field(default=None, metadata={"help": "cap on training epochs"})
    device: str | None = field(default=None, metadata={"help": "cuda, cpu; default: CUDA when present"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's choice)"})
    speed: bool = field(default=True, metadata={"help": "run the speed section"})
    faithfulness: bool = field(default=True, metadata={"help": "run the explanation deletion test"})
    plots: bool = field(default=True, metadata={"help": "write PNG figures"})
    data: dict = field(
        default_factory=dict,
        metadata={"help": "DataConfig options for your own files (users, items, user_col, sep, ...)"},
    )

    def __post_init__(self):  # validation only (typed conversion: utils.config.from_dict)
        bad = [p for p in self.protocols if p not in PROTOCOLS and p not in PROTOCOL_ALIASES]
        if bad:
            raise ValueError(f"unknown protocol(s) {bad}; choose from: {', '.join([*PROTOCOLS, *PROTOCOL_ALIASES])}")
        known, bases = {e.name for e in ENTRIES}, sorted(e.name for e in ENTRIES if e.model == "enhanced")
        ablation = lambda m: m.partition("/")[0] in bases and m.partition("/")[2] in {s for s, _, _ in ABLATIONS}  # noqa: E731
        bad = [m for m in self.models if m not in known and not ablation(m)]
        if bad:  # an ablation is <enhanced entry>/<suffix>
            raise ValueError(f"unknown bench model(s) {bad}; choose from: {', '.join(sorted(known))}, or an ablation "
                             f"{bases[0]}/<{'|'.join(s for s, _, _ in ABLATIONS)}>")  # fmt: skip
        for name in ("seeds", "threads", "epochs"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def protocol_names(self) -> tuple[str, ...]:
        """The protocols asked for, aliases (e.g. sparse) expanded, each once (`sparse sparse-20` ran
        sparse-20's jobs twice); () means all."""
        expanded = (p for name in self.protocols for p in PROTOCOL_ALIASES.get(name, (name,)))
        return tuple(dict.fromkeys(expanded))

    @property
    def stem(self) -> str:
        from pathlib import Path

        return self.name or Path(self.dataset.rstrip("/")).name + ("-quick" if self.quick else "")

    def signature(self) -> dict:
        """What makes records comparable: a results file holds the records of one signature."""
        return {
            "quick": self.quick,
            "epochs": self.epochs,
            "train": TRAIN,
            **({"data": self.data} if self.data else {}),
        }

    def n_seeds(self, protocol: str) -> int:
        if self.seeds is not None:
            return int(self.seeds)
        return 1 if self.quick else PROTOCOLS[protocol].seeds

    def epochs_for(self, entry: ModelEntry) -> int:
        epochs = int(train_settings(entry)["epochs"])
        if self.quick:
            epochs = min(epochs, QUICK_EPOCHS)
        return min(epochs, int(self.epochs)) if self.epochs else epochs


@dataclass(frozen=True)
class Job:
    protocol: str
    model: str  # entry name
    lm: str | None
    seed: int

    @property
    def key(self) -> tuple:
        return (self.protocol, self.model, self.lm, self.seed)


def entries(config: BenchConfig, best: ModelEntry | None = None) -> list[ModelEntry]:
    """The model table in force: main entries, or the ablations of `best` when it is given."""
    table = list(ENTRIES) if best is None else ablation_entries(best, config.quick)
    if config.quick:
        table = [e for e in table if e.quick]
    if config.models:
        table = [e for e in table if e.name in config.models or e.name.split("/")[0] in config.models]
    return table


def plan_jobs(config: BenchConfig, lms: list[str], best: ModelEntry | None = None) -> list[Job]:
    """Jobs of one phase, protocol by protocol, seed-major so a partial run covers every model."""
    protocols = config.protocol_names or tuple(PROTOCOLS)
    jobs = []
    for protocol in protocols:
        for seed in range(config.n_seeds(protocol)):
            for entry in entries(config, best):
                if protocol not in (entry.quick if config.quick else entry.protocols):
                    continue
                if entry.seeds is not None and seed >= entry.seeds:
                    continue
                for lm in lms_for(entry, lms, protocol):
                    jobs.append(Job(protocol, entry.name, lm, seed))
    return jobs


def cheapest_lm(lms: list[str]) -> str | None:
    rank = {name: i for i, name in enumerate(LM_COST)}
    return min(lms, key=lambda lm: rank.get(lm, len(rank))) if lms else None


def lms_for(entry: ModelEntry, lms: list[str], protocol: str = WARM) -> list[str | None]:
    if not entry.lm:
        return [None]
    if not lms:
        return []
    if entry.lm.startswith("="):  # pinned (ablations)
        return [entry.lm[1:]]
    if entry.lm == "all":
        return list(lms) if protocol == WARM else [lms[0]]
    return [cheapest_lm(lms) if entry.lm == "cheapest" else lms[0]]


def primary_lm(entry: ModelEntry, lms: list[str]) -> str | None:
    """The one LM an entry uses outside the warm LM comparison (None: no LM, or none available)."""
    found = lms_for(entry, lms, protocol="")
    return found[0] if found else None


def entry_named(name: str, best: ModelEntry | None = None) -> ModelEntry:
    for entry in list(ENTRIES) + (ablation_entries(best, False) if best else []):
        if entry.name == name:
            return entry
    raise ValueError(f"no bench model named {name!r}")
