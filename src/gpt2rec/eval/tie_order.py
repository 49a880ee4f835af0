"""The order in which evaluation ranks equal scores: a fixed random order of the items, not their IDs.

Item IDs carry information: on ML-100K they fall with popularity (Spearman -0.81 between ID and
number of ratings; items 1-200 average 152 ratings, items 1001-1682 eleven). Ranked by the lower index, a model that ties items (popularity on
new items, which all have zero interactions; genre overlap) recommends the low IDs and scores as if
it knew their popularity (popularity on ML-100K's new items: ndcg@10 0.17 instead of 0.04).
Evaluation therefore ranks ties in one seeded shuffle of the items: a model gets no credit for its
ties, and the same run always gives the same numbers. Serving keeps the lower index (`ranked_topk`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..retrieval import has_factors

TIE_SEED = 0


def tie_order(items) -> np.ndarray:
    """`items` (an int count n, or an array of item indices) in the fixed random order ties rank in."""
    items = np.arange(items) if np.ndim(items) == 0 else np.asarray(items, dtype=np.int64)
    return np.random.default_rng(TIE_SEED).permutation(items)


class ShuffledItems(torch.nn.Module):
    """`model` with its items renumbered: position p is item `order[p]`. Ranked by position, equal
    scores fall in `order`; `order[top]` gives the item indices back. The wrapped model is a
    submodule, so its device and eval mode are the wrapper's."""

    def __init__(self, model, order: np.ndarray):
        super().__init__()
        self.model = model
        self.n_users, self.n_items = int(model.n_users), len(order)
        self.register_buffer("order", torch.as_tensor(order, dtype=torch.long), persistent=False)
        if has_factors(model):  # keeps the retriever's item-block and ANN paths
            self.user_factors = model.user_factors
            self.item_factors = self._item_factors
        if callable(getattr(model, "factor_users", None)):
            self.factor_users = model.factor_users

    def _item_factors(self) -> torch.Tensor:
        items = self.model.item_factors()  # (I, D)
        return items[self.order.to(items.device)]

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        scores = self.model.score_users(users)  # (B, I)
        return scores[:, self.order.to(scores.device)]
