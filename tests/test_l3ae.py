"""L3AE closed form: known answers on tiny matrices, and the model on metadata with an obvious answer."""

from __future__ import annotations

import pytest
import torch

from gpt2rec.errors import UserError
from gpt2rec.models.ease import ease_weights
from gpt2rec.models.l3ae import L3AEConfig, l3ae_weights, semantic_matrix


def _gram(seed: int = 0, users: int = 30, items: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(users, items, generator=g) < 0.4).double()  # (U, I)
    return x.T @ x  # (I, I)


def test_two_items_ease_by_hand():
    # G = [[2, 1], [1, 2]], lambda = 1: P = inv([[3, 1], [1, 3]]) = [[3, -1], [-1, 3]] / 8,
    # B_01 = -P_01 / P_11 = 1/3
    b = ease_weights(torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64), 1.0)
    assert torch.allclose(b, torch.tensor([[0.0, 1 / 3], [1 / 3, 0.0]], dtype=torch.float64))


def test_text_weight_zero_is_exactly_ease():
    gram, c = _gram(), torch.rand(6, 6, dtype=torch.float64).fill_diagonal_(0)
    assert torch.equal(l3ae_weights(gram, c, 5.0, 0.0), ease_weights(gram, 5.0))
    # and the general formula agrees with EASE as text_weight -> 0
    assert torch.allclose(l3ae_weights(gram, c, 5.0, 1e-9), ease_weights(gram, 5.0), atol=1e-7)


def test_no_interactions_by_hand():
    # G = 0: P = I / (reg + mu), so B = mu / (reg + mu) * C; reg = 1, mu = 3 -> 0.75 C
    c = torch.tensor([[0.0, 0.4, -0.2], [0.1, 0.0, 0.3], [0.5, -0.6, 0.0]], dtype=torch.float64)
    b = l3ae_weights(torch.zeros(3, 3, dtype=torch.float64), c, 1.0, 3.0)
    assert torch.allclose(b, 0.75 * c)


def test_huge_text_weight_pulls_b_to_c():
    gram = _gram(1)
    c = semantic_matrix(torch.randn(6, 4, generator=torch.Generator().manual_seed(2)), 0.5)
    far = (l3ae_weights(gram, c, 2.0, 1.0) - c).abs().max()
    near = (l3ae_weights(gram, c, 2.0, 1e7) - c).abs().max()
    assert near < 1e-4 < far


def test_solution_is_the_constrained_minimum():
    """B has zero diagonal and the gradient of the objective vanishes off the diagonal."""
    gram, reg, mu = _gram(3), 2.0, 4.0
    c = semantic_matrix(torch.randn(6, 3, generator=torch.Generator().manual_seed(4)), 1.0)
    b = l3ae_weights(gram, c, reg, mu)
    grad = -gram @ (torch.eye(6, dtype=torch.float64) - b) + reg * b + mu * (b - c)  # (I, I), /2
    off = ~torch.eye(6, dtype=torch.bool)
    assert torch.all(b.diagonal() == 0)
    assert grad[off].abs().max() < 1e-9


def test_semantic_matrix_links_items_with_similar_text():
    # items 0 and 1 share a direction, item 2 is orthogonal: C_01 > 0, C_02 = C_12 = 0
    vecs = torch.tensor([[1.0, 0.0, 0.1], [1.0, 0.0, -0.1], [0.0, 1.0, 0.0]])
    c = semantic_matrix(vecs, 0.1)
    assert c[0, 1] > 0.4 and c[1, 0] > 0.4
    assert abs(c[0, 2]) < 1e-9 and abs(c[2, 1]) < 1e-9


@pytest.mark.parametrize("bad", [{"reg": 0}, {"text_reg": -1}, {"text_weight": -0.5}, {"pooling": "cls"}])
def test_bad_config_is_one_line_error(bad):
    with pytest.raises(UserError):
        L3AEConfig(**bad)
