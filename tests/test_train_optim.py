"""LazyAdam: sparse embedding gradients update only the rows a step touched, with Adam's numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gpt2rec.train.optim import LAZY_ROWS, LazyAdam, embedding_rows, make_optimizer, sparse_embeddings


def _step(opt, emb, rows, grad_rows):
    """One step whose loss gives the looked-up rows the gradient `grad_rows` (R, D)."""
    opt.zero_grad(set_to_none=True)
    (emb(torch.tensor(rows)) * grad_rows).sum().backward()
    opt.step()


def test_first_step_moves_each_touched_weight_by_lr_against_its_gradient():
    emb = nn.Embedding(4, 2)
    nn.init.zeros_(emb.weight)
    opt = make_optimizer(emb, lr=0.1, weight_decay=0.0, lazy=True)
    assert isinstance(opt, LazyAdam) and emb.sparse
    _step(opt, emb, [1, 3], torch.tensor([[2.0, -0.5], [-1.0, 4.0]]))
    # Adam's first step: m^ = g, v^ = g^2, so each weight moves by lr * sign(g) (eps aside)
    expected = torch.tensor([[0.0, 0.0], [-0.1, 0.1], [0.0, 0.0], [0.1, -0.1]])
    torch.testing.assert_close(emb.weight.detach(), expected, atol=1e-6, rtol=0)


def test_rows_not_touched_stay_put_while_dense_adam_keeps_moving_them():
    torch.manual_seed(0)
    lazy, dense = nn.Embedding(3, 2), nn.Embedding(3, 2)
    dense.load_state_dict(lazy.state_dict())
    opt_lazy = make_optimizer(lazy, lr=0.1, weight_decay=0.0, lazy=True)
    opt_dense = make_optimizer(dense, lr=0.1, weight_decay=0.0, lazy=False)
    assert type(opt_dense) is torch.optim.Adam and not dense.sparse
    g1, g2 = torch.tensor([[1.0, 2.0], [3.0, -1.0]]), torch.tensor([[0.5, -2.0]])
    for opt, emb in ((opt_lazy, lazy), (opt_dense, dense)):
        _step(opt, emb, [0, 1], g1)  # step 1 touches rows 0 and 1
    torch.testing.assert_close(lazy.weight, dense.weight)  # identical after a first step
    after_one = lazy.weight.detach().clone()
    for opt, emb in ((opt_lazy, lazy), (opt_dense, dense)):
        _step(opt, emb, [0], g2)  # step 2 touches row 0 only
    torch.testing.assert_close(lazy.weight[0], dense.weight[0])  # a row touched every step: plain Adam
    assert torch.equal(lazy.weight[1], after_one[1])  # lazy: row 1 untouched, unchanged
    assert not torch.allclose(dense.weight[1], after_one[1])  # dense: moved by its momentum
    assert torch.equal(lazy.weight[2], after_one[2])
    assert float(opt_lazy.state[lazy.weight]["step"]) == 2  # bias correction counts every step


def test_duplicate_rows_are_summed_and_dense_parameters_take_adams_step():
    torch.manual_seed(0)
    model = nn.ModuleDict({"emb": nn.Embedding(3, 2), "lin": nn.Linear(2, 1)})
    twin = nn.ModuleDict({"emb": nn.Embedding(3, 2), "lin": nn.Linear(2, 1)})
    twin.load_state_dict(model.state_dict())
    opt = make_optimizer(model, lr=0.01, weight_decay=0.01, lazy=True)
    ref = make_optimizer(twin, lr=0.01, weight_decay=0.01, lazy=False)
    idx = torch.tensor([2, 2, 0])  # row 2 twice: its gradient is the sum
    for _ in range(3):  # the batch touches the same rows every step: lazy == dense on them
        for o, m in ((opt, model), (ref, twin)):
            o.zero_grad(set_to_none=True)
            m["lin"](m["emb"](idx)).pow(2).sum().backward()
            o.step()
    assert model["emb"].weight.grad.is_sparse
    torch.testing.assert_close(model["lin"].weight, twin["lin"].weight)
    torch.testing.assert_close(model["emb"].weight[[0, 2]], twin["emb"].weight[[0, 2]])
    assert not torch.allclose(model["emb"].weight[1], twin["emb"].weight[1])  # dense decays row 1 (L2)


def test_the_loop_trains_bpr_with_lazy_rows_and_resumes_exactly(tmp_path):
    from gpt2rec.models.registry import get_spec
    from gpt2rec.train.loop import TrainConfig, fit
    from test_train_loop import CTX, block_split

    spec = get_spec("bpr")
    split = block_split()
    config = TrainConfig(epochs=4, batch_size=16, lr=0.05, patience=0, seed=0, device="cpu", lazy_adam=True)
    torch.manual_seed(0)
    whole = spec.build(spec.config_cls(dim=8), CTX)
    fit(whole, CTX, split, config, tmp_path / "whole")
    assert whole.user_emb.sparse  # the loop switched the tables to sparse gradients
    torch.manual_seed(0)
    part = spec.build(spec.config_cls(dim=8), CTX)
    fit(part, CTX, split, TrainConfig(**{**config.__dict__, "epochs": 2}), tmp_path / "part")
    fit(part, CTX, split, config, tmp_path / "part")  # resumes epochs 3-4 with the optimizer's rows
    for (name, a), (_, b) in zip(whole.state_dict().items(), part.state_dict().items()):
        assert torch.equal(a, b), name
    assert sparse_embeddings(part, False) == 2 and not part.user_emb.sparse


@pytest.mark.parametrize("lazy", [True, False])
def test_make_optimizer_keeps_the_learning_rate_and_decay(lazy):
    opt = make_optimizer(nn.Embedding(2, 2), lr=0.3, weight_decay=0.2, lazy=lazy)
    assert opt.param_groups[0]["lr"] == 0.3 and opt.param_groups[0]["weight_decay"] == 0.2


def test_lazy_none_is_lazy_from_lazy_rows_embedding_rows():
    small = nn.ModuleDict({"u": nn.Embedding(LAZY_ROWS // 2, 1), "i": nn.Embedding(LAZY_ROWS // 2 - 1, 1)})
    big = nn.ModuleDict({"u": nn.Embedding(LAZY_ROWS // 2, 1), "i": nn.Embedding(LAZY_ROWS // 2, 1)})
    assert embedding_rows(small) == LAZY_ROWS - 1 and embedding_rows(big) == LAZY_ROWS
    assert type(make_optimizer(small, 0.1, 0.0, lazy=None)) is torch.optim.Adam and not small["u"].sparse
    assert isinstance(make_optimizer(big, 0.1, 0.0, lazy=None), LazyAdam) and big["u"].sparse
