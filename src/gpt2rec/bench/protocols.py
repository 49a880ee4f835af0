"""A protocol's split and its evaluation of a trained model on the valid or the test part.

- warm (`full`): rank every item; seen = train (valid part) or train + valid (test part).
- ncf (`sampled`): each held-out item among 99 distinct unseen negatives (seeded by the bench
  seed; never an item of the user's train, valid or test), hit@10 / ndcg@10.
- cold-item (`candidates`): rank only among the cold items of the part (valid or test);
  seen = train (+ valid for test), which never holds a cold item.
- cold-user (`full`): the cold users of the part ranked among all items; they have no seen items.
- sparse-20 / sparse-50 (`full`): warm's split, then the training part subsampled per interaction
  (seeded) to that fraction; valid and test are warm's, unchanged.
- warm-tail (`tail`): warm's split; ranked among the items outside the top 20% by training
  popularity (`eval.tail`), seen items masked; truth = the held-out interactions with those items.
- mixed (`mixed`): a live catalogue, the `mixed` split kind: a cold-item draw of 5% of the items,
  then 10% of the training interactions held out too (seeded; half to valid, half to test): the
  part's known and new items ranked together (the other part's new items are not candidates), seen
  items masked; `new_recall@10` is the recall@10 of the part's new-item interactions alone, so a
  model that ignores new items shows 0.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ..data.dataset import Dataset
from ..data.splits import Split, SplitConfig, make_split
from ..errors import DataError
from ..eval.protocols import (
    evaluate_candidates,
    evaluate_full,
    evaluate_sampled,
    held_cold_items,
    mixed_candidates,
    sample_eval_negatives,
)
from ..eval.tail import tail_items
from ..models.genre_content import genre_matrix
from .plan import COLD_USER, KS, NCF, PROTOCOLS, SAMPLED_NEGATIVES, TAIL_HEAD_FRACTION


def unusable_protocols(dataset: Dataset) -> dict[str, str]:
    """Protocols that cannot measure anything on `dataset`, with why: the bench skips them, or
    refuses them when asked for by name (rather than failing every job, or scoring ties)."""
    out = {}
    if not [c for c in dataset.users.columns if c != "user_id"]:
        # a new user is known by the users table alone: without it every text model scores all items alike
        out[COLD_USER] = (
            "the dataset has no users table to read for a new user, or one with IDs only (every one would get "
            "the same scores; pass yours with --users, with profile columns besides the ID)"
        )
    pairs = dataset.interactions[["user", "item"]].drop_duplicates()
    unseen = dataset.n_items - (int(pairs.groupby("user").size().max()) if len(pairs) else 0)
    if unseen < SAMPLED_NEGATIVES:
        out[NCF] = (f"it ranks each held-out item among {SAMPLED_NEGATIVES} unseen items, and a user here "
                    f"has only {unseen} unseen items ({dataset.n_items} in all)")  # fmt: skip
    elif dataset.interactions["timestamp"].nunique() < 2:  # the "latest" would be the highest item ID
        out[NCF] = ("it holds out each user's latest interaction, and the data has no timestamps (pass the "
                    "interactions' time column with --timestamp-col)")  # fmt: skip
    return out


def unusable_models(dataset: Dataset) -> dict[str, str]:
    """Registry models `dataset` cannot feed, with why: the bench leaves them out (or refuses them
    when named), rather than failing each of their jobs and the speed tables with them."""
    genres = dataset.items["genres"] if "genres" in dataset.items.columns else []
    if not genre_matrix(genres)[1]:  # no vocabulary: the check genre_content's builder makes
        return {"genre_content": "the items have no genres (pass --items with a genres column)"}
    return {}


def split_problem(dataset: Dataset, protocol: str) -> str | None:
    """Why `protocol`'s first split (seed 0) of `dataset` leaves a part with nothing to train,
    validate or test on, or too few candidates to rank for its figures to mean anything, with what to
    do, in the bench's words (its splits are the protocol's, not flags); None when the split is usable.
    Checked before any job, so each does not fail alike (or score alike)."""
    spec = PROTOCOLS[protocol]
    try:
        split = protocol_split(dataset, protocol, 0)
    except DataError:
        return _split_failure(dataset, spec)
    empty = [part for part in ("train", "valid", "test") if not len(getattr(split, part))]
    if spec.evaluation == "candidates":  # scored among the part's cold items: none, nothing to rank
        empty += [f"the cold items of {p}" for p in ("valid", "test") if p not in empty and not len(held_cold_items(split, p))]  # fmt: skip
    if empty:
        return f"its first split (seed 0) leaves {' and '.join(empty)} empty; {_more(spec)}"
    return _too_few_candidates(dataset, split, spec)


def _too_few_candidates(dataset: Dataset, split: Split, spec) -> str | None:
    """Why a protocol that ranks each part among candidates of its own measures nothing: with no more
    of them than the k of its metric, every one is in the top k (recall@10 is 1 for every user, whatever
    the model). None when each part has more. A cold-item part of a small catalogue is the real case
    (20% of the items held out, half per part: about 110 items or fewer); mixed ranks the known items too,
    29 or more once its split holds out any, and is checked alike."""
    if spec.evaluation not in ("candidates", "mixed"):  # the others rank every item, 100 (ncf) or the tail
        return None
    k = int(spec.metric.rpartition("@")[2])
    counts = {part: len(part_candidates(split, spec, part, dataset.n_items)) for part in ("valid", "test")}
    few = {part: n for part, n in counts.items() if n <= k}
    if not few:
        return None
    kind = "new items" if spec.evaluation == "candidates" else "items"
    parts = [f"{n} {kind} to rank in {part}" if not i else f"{n} in {part}" for i, (part, n) in enumerate(few.items())]
    return (f"its first split (seed 0) has only {' and '.join(parts)}, so every one is in the top {k} and "
            f"recall@{k} is 1 for every user, whatever the model; {_more(spec)}")  # fmt: skip


def part_candidates(split: Split, spec, part: str, n_items: int) -> np.ndarray:
    """The items `part` is ranked among under a `candidates` or `mixed` evaluation."""
    if spec.evaluation == "candidates":
        return held_cold_items(split, part)
    return mixed_candidates(split, part, n_items)


def _split_failure(dataset: Dataset, spec) -> str:
    """What `make_split` refused, said for the protocol's fixed split."""
    inter = dataset.interactions
    if spec.split_kind in ("cold-item", "cold-user", "mixed"):
        col = "user" if spec.split_kind == "cold-user" else "item"
        present = inter[col].nunique()
        held = int(np.floor(present * spec.cold_fraction + 0.5))
        return (f"it holds out {spec.cold_fraction:.0%} of the {present} {col}s with interactions (half for valid, "
                f"half for test), {held} here, and needs at least 2; {_more(spec)}")  # fmt: skip
    most = int(inter.groupby("user").size().max()) if len(inter) else 0
    if spec.split_kind == "loo":
        why = f"leave-one-out needs users with 3 interactions (2 for test), and a user here has at most {most}"
    else:
        need = int(np.ceil(0.5 / min(spec.ratios[1:]) - 1e-9))
        ratios = ":".join(f"{r * 10:g}" for r in spec.ratios)
        why = (f"a per-user {ratios} split holds out one interaction only from users with {need} or more, "
               f"and users here have at most {most}")  # fmt: skip
    return f"its first split (seed 0) leaves valid and test empty: {why}; {_more(spec)}"


def _more(spec) -> str:
    if spec.split_kind in ("cold-item", "mixed"):
        return "give it more items"
    return "give it more users" if spec.split_kind == "cold-user" else "give it more interactions per user"


def protocol_split(dataset: Dataset, protocol: str, seed: int) -> Split:
    spec = PROTOCOLS[protocol]
    config = SplitConfig(kind=spec.split_kind, ratios=spec.ratios, seed=seed, cold_fraction=spec.cold_fraction)
    split = make_split(dataset, config)
    if spec.train_fraction < 1.0:
        split = replace(split, train=subsample(split.train, spec.train_fraction, seed))
    return split


def subsample(train: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """round(fraction * rows) training interactions drawn uniformly without replacement (seeded; its
    own random stream, so the split itself is warm's), in their original order."""
    rng = np.random.default_rng([seed, 20_50])
    keep = np.sort(rng.choice(len(train), size=int(round(fraction * len(train))), replace=False))
    return train.iloc[keep].reset_index(drop=True)


def halve_validation(split: Split, seed: int) -> tuple[Split, Split]:
    """(tune, select): `split` with its validation part cut in two by user, a seeded half of the
    users with validation interactions going to `select`. Train and test are `split`'s; evaluate
    test on `split` itself, whose seen items include both halves. With fewer than 2 validation users
    there is nothing to halve: both are `split` (the choice is then tuned and selected on the same user)."""
    users = np.unique(split.valid["user"].to_numpy())
    if len(users) < 2:
        return split, split
    rng = np.random.default_rng([seed, 50_50])
    chosen = rng.choice(users, size=len(users) // 2, replace=False)
    mask = split.valid["user"].isin(chosen).to_numpy()
    part = lambda m: replace(split, valid=split.valid[m].reset_index(drop=True))  # noqa: E731
    return part(~mask), part(mask)


def seen_for(split: Split, part: str) -> list[pd.DataFrame]:
    return [split.train] if part == "valid" else [split.train, split.valid]


def item_popularity(split: Split, n_items: int) -> np.ndarray:
    return np.bincount(split.train["item"].to_numpy(np.int64), minlength=n_items)


def evaluate(
    model, dataset: Dataset, split: Split, protocol: str, part: str, seed: int = 0, batch_size: int = 512
) -> dict:
    """Metrics of `model` on `split.<part>` under `protocol` (keys as gpt2rec.eval.metrics)."""
    spec = PROTOCOLS[protocol]
    target = getattr(split, part)
    n_users, n_items = dataset.n_users, dataset.n_items
    pop = item_popularity(split, n_items)
    if spec.evaluation == "sampled":
        everything = [split.train, split.valid, split.test]
        # a different stream for valid and test so they do not share negatives
        negatives = sample_eval_negatives(
            target, everything, n_items, SAMPLED_NEGATIVES, seed=seed * 2 + (part == "test"), n_users=n_users
        )
        return evaluate_sampled(model, target, negatives, ks=(10,), batch_size=256)  # x100 candidate pairs
    if spec.evaluation == "candidates":
        cand = part_candidates(split, spec, part, n_items)
        return evaluate_candidates(model, target, seen_for(split, part), cand, n_users, n_items, KS, batch_size, pop)
    if spec.evaluation == "mixed":
        cand, seen = part_candidates(split, spec, part, n_items), seen_for(split, part)
        out = evaluate_candidates(model, target, seen, cand, n_users, n_items, KS, batch_size, pop)
        new = target[target["item"].isin(split.cold_items)]
        if len(new):
            out["new_recall@10"] = evaluate_candidates(model, new, seen, cand, n_users, n_items, (10,), batch_size)[
                "recall@10"
            ]
        return out
    if spec.evaluation == "tail":
        cand = tail_items(pop, TAIL_HEAD_FRACTION)
        return evaluate_candidates(model, target, seen_for(split, part), cand, n_users, n_items, KS, batch_size, pop)
    return evaluate_full(model, target, seen_for(split, part), n_users, n_items, KS, batch_size, pop)
