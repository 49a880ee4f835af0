"""Which texts go through the LM: each distinct sentence once when sentences repeat a lot.

Every caller that reads frozen-LM vectors of a dataset's users or items (the models, and `gpt2rec
encode`, which warms the on-disk cache for them) picks its texts here, so they send the LM the same
list and meet the same cache entry.
"""

from __future__ import annotations

import torch

from .templates import Rendered

# encode only the distinct texts when they are at most this share of all texts; above it, encode
# every text (the same cache entry and batches as before this rule: catalogue items rarely repeat)
DEDUP_SHARE = 0.5


def distinct_rows(rendered: list[Rendered]) -> tuple[list[int], torch.Tensor]:
    """(index of the first entity of each distinct text, (N,) row of each entity among them)."""
    first: dict[tuple, int] = {}
    rows = [first.setdefault((r.text, tuple(sorted(r.spans.items()))), len(first)) for r in rendered]
    starts = [0] * len(first)
    for i in range(len(rendered) - 1, -1, -1):  # the first entity of each row wins
        starts[rows[i]] = i
    return starts, torch.tensor(rows, dtype=torch.long)


def texts_to_encode(rendered: list[Rendered]) -> tuple[list[Rendered], torch.Tensor, torch.Tensor]:
    """(the texts to send the LM, (K,) row among their vectors of each distinct text, (N,) row among
    the distinct texts of each entity): entity n's vectors are `vectors[distinct[rows[n]]]`."""
    starts, rows = distinct_rows(rendered)
    if len(starts) <= DEDUP_SHARE * len(rendered):
        return [rendered[i] for i in starts], torch.arange(len(starts)), rows
    return rendered, torch.as_tensor(starts), rows


def field_names(rendered: list[Rendered]) -> list[str]:
    """Field names in order of first appearance over all texts (a set shared by every row)."""
    names: dict[str, None] = {}
    for r in rendered:
        for name in r.spans:
            names.setdefault(name, None)
    return list(names)
