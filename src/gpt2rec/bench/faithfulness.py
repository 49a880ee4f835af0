"""Deletion test of the explanations: the enhanced model's field attention weights, and the liked
items an item-item model (l3ae, l3ae_mf) names.

For many (user, recommended item) pairs — the user's top-1 item, training items excluded — and for
each side (the item's fields, the user's fields):
    drop(f) = score(u, i) - score(u, i with field f masked)
where masking replaces the field's LM vector by that field's mean over all users (items): a neutral
value, so the field carries no information about this entity. The test compares f = the field with
the highest attention weight against f = a field drawn uniformly from the other fields:
    difference = drop(top) - drop(random)
reported as a mean with a normal 95% interval over the pairs. A faithful explanation has a
difference above 0 (the interval's lower end > 0).

Item-item models (l3ae; l3ae_mf, whose residual reads the user's ID, not the history) name the
liked items with the largest share of the score ("Because you liked X and Y"). For the same kind of
pairs:
    drop(S) = score(u, i) - score(u, i with the items S deleted from u's history)
rescored through the model (`score_history`), S = the `NAMED` items the explanation names against
S = as many of the user's other liked items drawn uniformly (users with fewer than 2 x `NAMED`
liked items are skipped); the same difference and interval. The sentence also names the genres the
recommended item shares with the named items ("— both Sci-Fi"); that clause is tested the same
way: S = k of the liked items with those genres against k liked items without them (k the smaller
of the two counts; pairs with no shared genre, or no liked item outside it, are skipped).
"""

from __future__ import annotations

import numpy as np
import torch

from . import plan
from .measure import mean_ci95
from .summary import label

PAIRS, QUICK_PAIRS = 400, 60
ITEM_ITEM = ("l3ae", "l3ae_mf")  # registry models whose explanation names the liked items with the largest share
NAMED = 2  # liked items an explanation names (gpt2rec.explain: n_similar)


def _top1(model, users: torch.Tensor, seen) -> torch.Tensor:
    from ..eval.metrics import mask_seen

    scores = model.score_users(users).float()  # (B, I)
    return mask_seen(scores, seen).argmax(1)  # (B,)


@torch.no_grad()
def deletion_test(model, split, n_users: int, n_items: int, pairs: int, seed: int = 0) -> dict:
    from ..data.splits import interaction_matrix
    from ..eval.protocols import eval_mode, model_device

    rng = np.random.default_rng(seed)
    train = interaction_matrix(split.train, n_users, n_items)
    candidates = np.flatnonzero(np.diff(train.indptr) > 0)
    users_np = np.sort(rng.choice(candidates, size=min(pairs, len(candidates)), replace=False))
    device = model_device(model)
    users = torch.from_numpy(users_np).to(device)
    out = {}
    with eval_mode(model):
        items = _top1(model, users, train[users_np])  # (B,)
        w_user, w_item = model.attention_weights(users, items)  # (B, Fu), (B, Fi)
        for side, idx, weights, table in (("item", items, w_item, model.text.full("item")),
                                          ("user", users, w_user, model.text.full("user"))):  # fmt: skip
            n_fields = table.shape[1]
            if n_fields < 2:
                continue
            text = table[idx]  # (B, F, D)
            neutral = table.mean(0)  # (F, D)
            top = weights.argmax(1)  # (B,)
            offset = torch.from_numpy(rng.integers(1, n_fields, size=len(idx))).to(device)
            other = (top + offset) % n_fields  # uniform over the other fields
            base = _pair_scores(model, users, items)
            drops = {}
            for name, field in (("top", top), ("random", other)):
                masked = text.clone()
                rows = torch.arange(len(idx), device=device)
                masked[rows, field] = neutral[field]
                drops[name] = (base - _pair_scores(model, users, items, **{side: masked})).cpu().numpy()
            names = model.fields(side)
            out[side] = {
                "pairs": int(len(idx)),
                "fields": names,
                "top_field_share": {
                    names[f] if f < len(names) else str(f): float(np.mean(top.cpu().numpy() == f))
                    for f in range(n_fields)
                },  # fmt: skip
                "top_drop": mean_ci95(drops["top"]),
                "random_drop": mean_ci95(drops["random"]),
                "difference": mean_ci95(drops["top"] - drops["random"]),
            }
    return out


@torch.no_grad()
def history_deletion_test(
    model, split, n_users: int, n_items: int, pairs: int, seed: int = 0, genres: list[list[str]] | None = None
) -> dict:
    """The liked items an item-item model's explanation names vs as many random other liked items;
    with `genres`, also the liked items with the genres the sentence names vs as many without."""
    from ..data.splits import interaction_matrix
    from ..eval.protocols import eval_mode, model_device
    from ..explain import named_history

    rng = np.random.default_rng(seed)
    train = interaction_matrix(split.train, n_users, n_items)
    candidates = np.flatnonzero(np.diff(train.indptr) >= 2 * NAMED)
    users_np = np.sort(rng.choice(candidates, size=min(pairs, len(candidates)), replace=False))
    device = model_device(model)
    users = torch.from_numpy(users_np).to(device)
    with eval_mode(model):
        items = _top1(model, users, train[users_np])  # (B,)
        hist = model.history.dense(users)  # (B, I) 0/1
        base = model.score_history(hist, items)  # (B,)
        drops = {}
        named = torch.stack([torch.as_tensor(named_history(model, int(i), train[int(u)].indices, NAMED))
                             for u, i in zip(users_np, items.tolist())]).to(device)  # (B, NAMED)  # fmt: skip
        noise = torch.from_numpy(rng.random((len(users_np), n_items))).to(device)  # (B, I)
        others = noise.masked_fill(hist == 0, -1.0).scatter(1, named, -1.0).topk(NAMED, dim=1).indices  # (B, NAMED)
        for name, deleted in (("top", named), ("random", others)):
            drops[name] = (base - model.score_history(hist.scatter(1, deleted, 0.0), items)).cpu().numpy()
        out = {"liked items": _summary(drops["top"], drops["random"])}
        if genres is not None:
            out["shared genre"] = _genre_drops(model, hist, items, named, genres, rng)
    return out


def _summary(top: np.ndarray, random: np.ndarray) -> dict:
    return {"pairs": int(len(top)), "fields": [], "top_field_share": {}, "top_drop": mean_ci95(top),
            "random_drop": mean_ci95(random), "difference": mean_ci95(top - random)}  # fmt: skip


def _genre_drops(model, hist, items, named, genres, rng) -> dict:
    """drop(k liked items with the named genres) vs drop(k liked items without them), per pair."""
    from ..explain import shared_genres

    top, random = [], []
    for b, item in enumerate(items.tolist()):
        shared = shared_genres(genres, item, named[b].tolist())
        liked = torch.nonzero(hist[b]).flatten().cpu().numpy()
        has = np.asarray([all(g in genres[h] for g in shared) for h in liked], dtype=bool)
        k = min(int(has.sum()), int((~has).sum()))
        if not shared or k == 0:
            continue
        row, col = hist[b : b + 1], items[b : b + 1]
        base = float(model.score_history(row, col))
        for chosen, out in ((liked[has], top), (liked[~has], random)):
            deleted = torch.as_tensor(rng.choice(chosen, size=k, replace=False), device=row.device)
            out.append(base - float(model.score_history(row.index_fill(1, deleted, 0.0), col)))
    return _summary(np.asarray(top), np.asarray(random))


def genres_to_test(dataset) -> list[list[str]] | None:
    """The items' genres for the shared-genre test, or None when no item has one: the explanation
    never names a genre then, and the test would have no pair (every mean NaN)."""
    from ..explain import item_genres

    genres = item_genres(dataset)
    return genres if genres is not None and any(genres) else None


def _pair_scores(model, users, items, user=None, item=None) -> torch.Tensor:
    u, _ = model.represent("user", users, text=user)  # (B, d)
    i, _ = model.represent("item", items, text=item)  # (B, d)
    return (u * i).sum(-1)  # (B,)


def run_deletion_test(run) -> None:
    """Deletion test of every enhanced model with attention and of the item-item text models (l3ae,
    l3ae_mf) (warm, first seed, main LM)."""
    from .training import ensure_trained

    def explained(e) -> bool:
        attention = e.model == "enhanced" and e.overrides.get("use_attention", True)
        return attention or (e.model in ITEM_ITEM and e.overrides.get("text_weight", 1.0) > 0)

    chosen = [e for e in plan.entries(run.config) if explained(e) and plan.WARM in e.protocols]
    models = dict(run.store.section("faithfulness").get("models", {}))
    pairs = QUICK_PAIRS if run.config.quick else PAIRS
    for entry in chosen:
        lm = plan.primary_lm(entry, run.lms)
        key = label(entry.name, lm)
        if lm is None or key in models:
            continue
        trained = ensure_trained(run, entry.name, lm)
        if trained is None:  # a dynamic model trained by an earlier, interrupted run
            run.log(f"faithfulness: {key} skipped (trained by an earlier run; not retrained)")
            continue
        run.log(f"faithfulness: {key}")
        args = (trained.model, run.split(plan.WARM, 0), run.dataset.n_users, run.dataset.n_items, pairs)
        if entry.model in ITEM_ITEM:
            models[key] = history_deletion_test(*args, genres=genres_to_test(run.dataset))
        else:
            models[key] = deletion_test(*args)
        run.store.put("faithfulness", "models", models)
    if not models:
        run.store.put("faithfulness", "skipped", "no enhanced model with attention (and an LM) in this run")
        return
    section = run.store.section("faithfulness")
    section.pop("skipped", None)
    run.store.put("faithfulness", "method", __doc__.split("\n\n", 1)[1].strip())
