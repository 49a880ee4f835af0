"""info_nce against values worked by hand, and its lower bound."""

import math

import pytest
import torch

from gpt2rec.contrastive import info_nce, unique_rows

EYE = torch.eye(2)


def test_aligned_orthonormal_views():
    # logits = I / T; each row: -log(e^(1/T) / (e^(1/T) + e^0)) = log(1 + e^(-1/T))
    assert info_nce(EYE, EYE, temperature=1.0).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    assert info_nce(EYE, EYE, temperature=0.5).item() == pytest.approx(math.log(1 + math.exp(-2)), abs=1e-6)


def test_swapped_views_cost_more():
    # logits = [[0, 1], [1, 0]]; each row: -log(1 / (1 + e)) = log(1 + e) = 1.31326
    swapped = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert info_nce(EYE, swapped, temperature=1.0).item() == pytest.approx(1.3132617, abs=1e-6)


def test_asymmetric_case_by_hand():
    # a = e1, e2; b = e1, (e1 + e2)/sqrt2 -> cosines [[1, .7071], [0, .7071]]
    a = EYE
    b = torch.tensor([[1.0, 0.0], [3.0, 3.0]])  # normalised inside
    c = 1 / math.sqrt(2)
    a_to_b = 0.5 * (math.log(1 + math.exp(c - 1)) + math.log(1 + math.exp(-c)))
    b_to_a = 0.5 * (math.log(1 + math.exp(-1)) + math.log(2))
    assert info_nce(a, b, 1.0, symmetric=False).item() == pytest.approx(a_to_b, abs=1e-6)  # 0.479105
    assert info_nce(a, b, 1.0).item() == pytest.approx(0.5 * (a_to_b + b_to_a), abs=1e-6)  # 0.491155


def test_bounded_below_by_zero_and_reaches_it():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        a, b = torch.randn(8, 4, generator=gen), torch.randn(8, 4, generator=gen)
        assert info_nce(a, b, 0.07).item() >= 0.0
    # one pair: no negatives, the loss is exactly 0; perfect separation at low T tends to 0
    assert info_nce(torch.randn(1, 3), torch.randn(1, 3), 0.1).item() == pytest.approx(0.0, abs=1e-7)
    assert info_nce(torch.eye(4), torch.eye(4), 0.01).item() < 1e-6


def test_gradient_pulls_views_together():
    a = torch.tensor([[1.0, 0.2], [0.1, 1.0]], requires_grad=True)
    b = torch.eye(2)
    before = info_nce(a, b, 0.5)
    before.backward()
    with torch.no_grad():
        after = info_nce(a - 0.5 * a.grad, b, 0.5)
    assert after < before


def test_bad_inputs():
    with pytest.raises(ValueError, match="temperature"):
        info_nce(EYE, EYE, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        info_nce(EYE, torch.eye(3), 1.0)


def test_unique_rows_keeps_first_occurrence_in_order():
    assert unique_rows(torch.tensor([5, 3, 5, 7, 3])).tolist() == [0, 1, 3]
