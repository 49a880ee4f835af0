"""Honest size limits for models that hold dense item x item matrices (EASE, ItemKNN).

Their memory grows with the square of the catalog: EASE inverts a float64 (I, I) Gram matrix
(about 36 I^2 bytes at the peak of `fit`), ItemKNN scores through a dense float32 (I, I) similarity
(4 I^2 bytes). Above `max_memory_gb` (a config field, 8 GiB by default) they refuse before allocating,
naming the memory they would need and the models that scale instead (BPR-MF and the enhanced model
score by inner products and use ANN retrieval for big catalogs, see `gpt2rec.retrieval`).
"""

from __future__ import annotations

SCALABLE = "bpr or enhanced (inner-product scores, ANN retrieval for big catalogs)"


def check_dense_items(model: str, n_items: int, bytes_per_cell: float, max_memory_gb: float) -> None:
    """Raise a ValueError when `bytes_per_cell` * n_items^2 exceeds `max_memory_gb` GiB."""
    need = bytes_per_cell * float(n_items) ** 2 / 2**30
    if need > max_memory_gb:
        raise ValueError(
            f"{model} needs dense {n_items} x {n_items} item matrices, about {need:,.2f} GiB, above its "
            f"limit max_memory_gb={max_memory_gb:g}; use {SCALABLE} for a catalog this large, or raise the "
            f"limit with --set max_memory_gb={max(need * 1.1, 0.01):.3g} if the machine has the memory"
        )
