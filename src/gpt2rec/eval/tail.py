"""The long tail: items outside the most popular share of the catalogue, by training interactions.

With full ranking over all items, tail items almost never reach a top 10, so a tail view ranks
among the tail items only (`evaluate_candidates` with these candidates): the truth is each user's
held-out interactions with tail items, and the metric says how well a model orders the tail.
"""

from __future__ import annotations

import numpy as np


def tail_items(popularity, head_fraction: float = 0.2) -> np.ndarray:
    """Sorted indices of the items outside the top `head_fraction` by `popularity` (n_items,) counts.

    The head is the round(head_fraction * n_items) most popular items; ties at the boundary go to
    the lower item index (a stable order), so the split is deterministic."""
    pop = np.asarray(popularity)
    if not 0.0 <= head_fraction < 1.0:
        raise ValueError(f"head_fraction must lie in [0, 1), got {head_fraction}")
    n_head = int(round(head_fraction * len(pop)))
    order = np.argsort(-pop, kind="stable")  # most popular first, ties by index
    return np.sort(order[n_head:])
