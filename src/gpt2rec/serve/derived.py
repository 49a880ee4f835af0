"""What the server derives once from its run's data: the item-item cosine of the training matrix and
the scale of ratings."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..run import Run


def rating_range(run: Run) -> tuple[float, float]:
    """Ratings a client may send: from 0 (or the data's lowest, if below) to the data's highest (at
    least 1, the default rating). 0 stays allowed: an implicit threshold may have dropped low ratings."""
    ratings = run.dataset.interactions["rating"]
    if not len(ratings):
        return 0.0, 1.0
    return min(0.0, float(ratings.min())), max(1.0, float(ratings.max()))


def column_normalised(run: Run) -> sp.csc_matrix:
    """The training matrix with unit-norm item columns (U, I): X.T @ X is the item-item cosine."""
    x = run.train_matrix.astype(np.float32).tocsc(copy=True)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(0)).ravel())
    norms[norms == 0] = 1.0
    return (x @ sp.diags((1.0 / norms).astype(np.float32))).tocsc()
