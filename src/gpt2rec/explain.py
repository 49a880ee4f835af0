"""Why an item was recommended: field attention, similar liked items, and one plain sentence.

    for e in explain(model, dataset, user=12, items=[50, 172], history=train_items_of_user_12):
        print(e.reason)   # "Because you liked Star Wars and Alien — both Sci-Fi; its genres weighed most."

- `user_fields` / `item_fields`: the cross-attention weights of the user's ID over their profile
  fields and of the item's ID over its fields (each set sums to 1) — enhanced model with attention.
- `similar`: the items in the user's training history closest to the recommended item in the LM's
  text space (cosine of the items' text vectors); for an item-item model (l3ae) the history items with
  the largest share of the score (`item_contributions`, B_ij: deleting item i lowers the score by
  exactly that much).

The sentence prints only the kinds of reason that pass the benchmark's deletion test (95% CI of
drop(named) - drop(random) above 0, `gpt2rec.bench.faithfulness`): the liked items an item-item
model names, and the item field with the highest attention weight. The user-field weights failed
it for the cached enhanced model (benchmarks/results/ml-100k.md), so they stay in `user_fields`
as data but are not stated as a reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .data.dataset import display_titles
from .errors import UserError
from .run import plain
from .utils.config import check_k

_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_FIELD_WORDS = {"age_group": "age group", "zip_code": "zip code"}


@dataclass
class Explanation:
    item: int  # internal index
    title: str
    score: float | None
    user_fields: dict[str, float] = field(default_factory=dict)
    item_fields: dict[str, float] = field(default_factory=dict)
    similar: list[int] = field(default_factory=list)  # internal indices of history items
    similar_titles: list[str] = field(default_factory=list)
    similarity: list[float] = field(default_factory=list)
    reason: str = ""

    def to_dict(self, item_ids: Sequence | None = None) -> dict:
        """With `item_ids`, raw IDs only, as the server answers: `item_id`, and `similar` as raw IDs
        (the internal indices beside them, `item` 215 next to `item_id` 216, read as IDs)."""
        out = asdict(self)
        if item_ids is not None:
            out = {"item_id": plain(item_ids[out.pop("item")]), **out}
            out["similar"] = [plain(item_ids[i]) for i in self.similar]
        return out


def explain(
    model,
    dataset,
    user: int,
    items: Sequence[int],
    history: Sequence[int],
    n_similar: int = 2,
    scores: Sequence[float] | None = None,
) -> list[Explanation]:
    """One `Explanation` per recommended item (internal indices) for internal user `user`."""
    if not hasattr(model, "item_text_vectors") and not hasattr(model, "item_contributions"):
        raise UserError(
            f"explanations need a text model (basic, enhanced, l3ae, l3ae_mf); {type(model).__name__} reads no metadata"
        )
    items = [int(i) for i in items]
    if not items:  # nothing recommended (a user who has nearly every item): nothing to explain
        return []
    history = np.unique(np.asarray(history, dtype=np.int64))
    with torch.no_grad():
        if hasattr(model, "item_contributions"):  # item-item models: each liked item's exact share of the score
            sim = model.item_contributions(torch.tensor(items), torch.as_tensor(history))  # (K, H)
        else:
            device = model.item_text_vectors().device
            text = F.normalize(model.item_text_vectors().float(), dim=-1)  # (I, D)
            sim = text[torch.tensor(items, device=device)] @ text[torch.as_tensor(history, device=device)].T  # (K, H)
        uw = iw = None
        if getattr(getattr(model, "config", None), "use_attention", False):
            users = torch.full((len(items),), int(user), dtype=torch.long)
            uw, iw = model.attention_weights(users, torch.tensor(items))  # (K, Fu), (K, Fi)
    ufields = model.fields("user") if hasattr(model, "fields") else []
    ifields = model.fields("item") if hasattr(model, "fields") else []
    titles = _titles(dataset, model.n_items)
    genres = item_genres(dataset)
    out = []
    for k, item in enumerate(items):
        order = _top(sim[k], n_similar) if len(history) else []
        similar = [int(history[j]) for j in order]
        e = Explanation(
            item=item,
            title=titles[item],
            score=None if scores is None else float(scores[k]),
            user_fields={} if uw is None else dict(zip(ufields, uw[k].tolist())),
            item_fields={} if iw is None else dict(zip(ifields, iw[k].tolist())),
            similar=similar,
            similar_titles=[titles[i] for i in similar],
            similarity=[float(sim[k, j]) for j in order],
        )
        e.reason = reason(e, genres)
        out.append(e)
    return out


def _top(row: torch.Tensor, n: int) -> list[int]:
    """Positions of the `n` largest values of `row` (ties: the earlier position first)."""
    return torch.argsort(row, descending=True, stable=True)[:n].tolist()


def named_history(model, item: int, history: Sequence[int], n: int = 2) -> list[int]:
    """The liked items an item-item model's explanation of `item` names: the `n` of `history`
    with the largest share of its score (what `explain` shows as `similar`)."""
    history = np.unique(np.asarray(history, dtype=np.int64))
    with torch.no_grad():
        share = model.item_contributions(torch.tensor([int(item)]), torch.as_tensor(history))[0]  # (H,)
    return [int(history[j]) for j in _top(share.cpu(), n)]


def reason(e: Explanation, genres: list[list[str]] | None) -> str:
    """One sentence: the liked items it resembles, the genres they share, the item field that led."""
    parts = []
    if e.similar:
        names = [short_title(t) for t in e.similar_titles]
        liked = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        text = f"Because you liked {liked}"
        if genres is not None:
            shared = shared_genres(genres, e.item, e.similar)
            if shared:
                text += (" — both " if len(e.similar) > 1 else " — also ") + " and ".join(shared)
        parts.append(text)
    else:
        parts.append("Recommended from your profile")
    if e.item_fields:
        top = max(e.item_fields, key=e.item_fields.get)
        parts.append(f"its {_FIELD_WORDS.get(top, top.replace('_', ' '))} weighed most")
    return "; ".join(parts) + "."


def shared_genres(genres: list[list[str]], item: int, similar: Sequence[int]) -> list[str]:
    """The genres the sentence names: those of `item` that every named liked item has (at most two)."""
    return [g for g in genres[item] if all(g in genres[i] for i in similar)][:2]


def short_title(title: str) -> str:
    """'Star Wars (1977)' -> 'Star Wars'; 'Godfather, The (1972)' -> 'The Godfather'."""
    t = _YEAR.sub("", str(title))
    for article in ("The", "A", "An"):
        if t.endswith(", " + article):
            t = f"{article} {t[: -len(article) - 2]}"
    return t


def _titles(dataset, n_items: int) -> list[str]:
    if dataset is not None and "item_id" in dataset.items.columns:
        return display_titles(dataset.items)
    return [f"item {i}" for i in range(n_items)]


def item_genres(dataset) -> list[list[str]] | None:
    if dataset is None or "genres" not in dataset.items.columns:
        return None
    return [list(g) if isinstance(g, (list, tuple, np.ndarray)) else [] for g in dataset.items["genres"].tolist()]


def explain_run(run_dir, raw_user, k: int = 10, n_similar: int = 2, device=None) -> list[dict]:
    """`gpt2rec recommend --explain`: the user's top-k unseen items, each with its explanation."""
    from .pipeline import open_run

    k = check_k(k)  # before the run is loaded
    return explain_user(open_run(run_dir, device), raw_user, k, n_similar)


def explain_user(run, raw_user, k: int = 10, n_similar: int = 2) -> list[dict]:
    """The top-k unseen items of a raw user of a loaded `Run`, each with its explanation (a dict)."""
    k = check_k(k)
    user = run.user_index(raw_user)
    items, scores = run.top_items(user, k)
    explained = explain(run.model, run.dataset, user, items, run.seen(user), n_similar, scores)
    return [e.to_dict(run.item_ids) for e in explained]
