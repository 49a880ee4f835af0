"""Losses against numbers worked by hand: softplus(x) = log(1 + e^x)."""

import math

import pytest
import torch

from gpt2rec.losses import bce_loss, bpr_loss


def test_bpr_loss_hand_worked():
    # pairs (pos, neg) = (2, 1) and (0, 0): softplus(-1) = 0.3132617, softplus(0) = ln 2 = 0.6931472
    loss = bpr_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx((0.3132617 + 0.6931472) / 2, abs=1e-6)


def test_bpr_loss_several_negatives_compare_to_their_own_positive():
    # user 1: pos 1 vs negs 1, 3 -> softplus(0), softplus(2); user 2: pos 4 vs negs 1, 5 -> softplus(-3), softplus(1)
    pos = torch.tensor([1.0, 4.0])
    neg = torch.tensor([[1.0, 3.0], [1.0, 5.0]])
    expected = (0.6931472 + 2.1269280 + 0.0485874 + 1.3132617) / 4
    assert bpr_loss(pos, neg).item() == pytest.approx(expected, abs=1e-6)


def test_bpr_loss_is_stable_and_ordered():
    # large margins: no overflow; a correctly ordered pair costs ~0, a reversed one ~ its margin
    assert bpr_loss(torch.tensor([100.0]), torch.tensor([0.0])).item() == pytest.approx(0.0, abs=1e-30)
    assert bpr_loss(torch.tensor([0.0]), torch.tensor([100.0])).item() == pytest.approx(100.0)


def test_bpr_loss_gradient_pushes_pos_up_and_neg_down():
    pos = torch.tensor([0.0], requires_grad=True)
    neg = torch.tensor([0.0], requires_grad=True)
    bpr_loss(pos, neg).backward()
    assert pos.grad.item() == pytest.approx(-0.5) and neg.grad.item() == pytest.approx(0.5)


def test_bce_loss_hand_worked():
    # logit 0 -> ln 2 for either label; pos logit ln 3 -> -ln(3/4) = 0.2876821
    assert bce_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(math.log(2))
    loss = bce_loss(torch.tensor([math.log(3)]), torch.tensor([[0.0]]))
    assert loss.item() == pytest.approx((0.2876821 + math.log(2)) / 2, abs=1e-6)
