"""Losses against numbers worked by hand: softplus(x) = log(1 + e^x)."""

import math

import pytest
import torch

from gpt2rec.losses import bce_loss, bpr_loss, sampled_softmax_loss


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


def test_sampled_softmax_hand_worked():
    # row 1: pos 0 among negs 0, 0, 0 -> -log(1/4) = ln 4
    # row 2: pos ln 3 among negs 0, 0, 0 -> -log(3 / (3 + 3)) = ln 2
    pos = torch.tensor([0.0, math.log(3.0)])
    neg = torch.zeros(2, 3)
    assert sampled_softmax_loss(pos, neg).item() == pytest.approx((math.log(4) + math.log(2)) / 2, abs=1e-6)


def test_sampled_softmax_temperature_and_single_negative():
    # t = 0.5 doubles the logits: pos ln 3 vs neg 0 -> -log(9 / (9 + 1)) = ln(10/9)
    loss = sampled_softmax_loss(torch.tensor([math.log(3.0)]), torch.tensor([0.0]), temperature=0.5)
    assert loss.item() == pytest.approx(math.log(10 / 9), abs=1e-6)
    # one negative at t = 1 is exactly BPR: -log(e^p / (e^p + e^n)) = softplus(n - p)
    pos, neg = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.5])
    assert sampled_softmax_loss(pos, neg).item() == pytest.approx(bpr_loss(pos, neg).item(), abs=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        sampled_softmax_loss(pos, neg, temperature=0.0)


def test_sampled_softmax_is_stable_and_its_gradient_is_the_softmax():
    assert sampled_softmax_loss(torch.tensor([1000.0]), torch.tensor([[0.0, 0.0]])).item() == pytest.approx(
        0.0, abs=1e-6
    )
    pos = torch.tensor([0.0], requires_grad=True)
    neg = torch.zeros(1, 3, requires_grad=True)
    sampled_softmax_loss(pos, neg).backward()
    # d/dpos = softmax_pos - 1 = 1/4 - 1; d/dneg_n = softmax_n = 1/4
    assert pos.grad.item() == pytest.approx(-0.75)
    assert neg.grad[0].tolist() == pytest.approx([0.25, 0.25, 0.25])
