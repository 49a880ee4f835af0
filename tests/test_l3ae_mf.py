"""l3ae_mf: l3ae's closed form plus a BPR residual. Known answers on the contract's block data."""

from __future__ import annotations

import pytest
import torch

from gpt2rec.errors import UserError
from gpt2rec.models.base import ModelContext
from gpt2rec.models.l3ae_mf import L3AEMFConfig
from gpt2rec.models.registry import get_spec
from gpt2rec.utils.config import from_dict


def _built(tiny_lm, train=None, **overrides):
    from test_model_contract import make_data

    dataset, split = make_data()
    train = split.train if train is None else train
    values = dict(lm=tiny_lm, text_cache=False, reg=1.0, text_weight=1.0, side_weight=0.0, pooling="mean", dim=4)
    cfg = L3AEMFConfig(**(values | overrides))
    ctx = ModelContext(dataset.n_users, dataset.n_items, dataset, train)
    torch.manual_seed(0)
    model = get_spec("l3ae_mf").build(cfg, ctx)
    l3ae = get_spec("l3ae")
    backbone = l3ae.build(cfg, ctx)
    l3ae.fit(backbone, ctx)
    return model, backbone, dataset, train


def test_build_fits_the_backbone_and_its_scale(tiny_lm):
    """Before training, the score is backbone_weight / scale times l3ae's, plus the near-zero residual;
    scale is the std of l3ae's scores over the training users."""
    model, backbone, dataset, train = _built(tiny_lm, backbone_weight=0.5)
    users = torch.arange(dataset.n_users)
    with torch.no_grad():
        l3 = backbone.score_users(users)  # (U, I)
        model.residual.user_emb.weight.zero_()
        scores = model.score_users(users)
    assert float(model.scale) == pytest.approx(float(l3[train["user"].unique()].double().std()), rel=1e-5)
    torch.testing.assert_close(scores, 0.5 / model.scale * l3)


def test_residual_is_off_for_items_and_users_without_training_data(tiny_lm):
    """A cold item (no training interaction) and a cold user are scored by the backbone alone, however
    large the residual's embeddings are; a known pair gets the residual's dot product on top."""
    from test_model_contract import make_data

    _, split = make_data()
    cold_item, cold_user = 3, 0
    train = split.train[(split.train["item"] != cold_item) & (split.train["user"] != cold_user)]
    model, backbone, dataset, _ = _built(tiny_lm, train=train)
    with torch.no_grad():
        model.residual.user_emb.weight.fill_(1.0)
        model.residual.item_emb.weight.fill_(1.0)  # residual = dim = 4 for every known pair
        users = torch.arange(dataset.n_users)
        diff = model.score_users(users) - model._weight * backbone.score_users(users)  # (U, I)
    assert torch.all(diff[:, cold_item] == 0) and torch.all(diff[cold_user] == 0)
    known = torch.ones_like(diff, dtype=torch.bool)
    known[:, cold_item] = False
    known[cold_user] = False
    torch.testing.assert_close(diff[known], torch.full_like(diff[known], 4.0))


def test_contributions_are_the_backbone_part_of_the_score(tiny_lm):
    """The liked items' shares sum to the backbone's part of the score (the residual is not history)."""
    model, backbone, _, train = _built(tiny_lm, backbone_weight=2.0)
    user, item = 0, 1
    history = torch.as_tensor(sorted(train.loc[train["user"] == user, "item"].tolist()))
    with torch.no_grad():
        contrib = model.item_contributions(torch.tensor([item]), history)[0]  # (H,)
        part = model._weight * backbone.score_users(torch.tensor([user]))[0, item]
    assert float(contrib.sum()) == pytest.approx(float(part), rel=1e-5)
    # deleting a liked item from the history lowers the score by exactly its share (the deletion test)
    hist = torch.zeros(1, model.n_items)
    hist[0, history] = 1.0
    with torch.no_grad():
        full = model.score_history(hist, torch.tensor([item]))
        less = model.score_history(hist.index_fill(1, history[:1], 0.0), torch.tensor([item]))
    assert float(full - less) == pytest.approx(float(contrib[0]), rel=1e-5, abs=1e-7)
    assert float(full) == pytest.approx(float(part), rel=1e-5)


def test_new_items_are_the_backbone_route_in_this_models_units(tiny_lm):
    model, backbone, dataset, _ = _built(tiny_lm, backbone_weight=2.0)
    row = dataset.items.iloc[[3]]
    torch.testing.assert_close(model.score_new_items(0, row), model._weight * backbone.score_new_items(0, row))


@pytest.mark.parametrize("bad", [{"backbone_weight": 0.0}, {"dim": 0}, {"mf_reg": -1.0}, {"init_std": 0.0}])
def test_bad_config_is_one_line_error(bad):
    with pytest.raises(ValueError):
        L3AEMFConfig(**bad)
    with pytest.raises(UserError):
        from_dict(L3AEMFConfig, bad)


def test_a_resumed_run_rebuilds_the_backbone_scores_it_trains_on(tiny_lm):
    """Resuming loads the weights, which drops the kept (U, I) backbone scores (they may be stale).
    The next training step rebuilds them from the loaded backbone, so a resumed run does not score
    every pair through the backbone; evaluation does not build them."""
    model, backbone, dataset, _ = _built(tiny_lm)
    everyone = torch.arange(dataset.n_users)
    with torch.no_grad():
        expected = backbone.score_users(everyone)  # (U, I)
    torch.testing.assert_close(model.base_cache, expected)  # kept by the fit
    model.load_state_dict(model.state_dict())  # what resuming a run does
    assert model.base_cache.numel() == 0
    users, items = torch.tensor([0, 1, 2]), torch.tensor([3, 0, 5])
    model.eval()
    with torch.no_grad():
        before = model.score_pairs(users, items)  # through the backbone
    assert model.base_cache.numel() == 0
    model.train()
    with torch.no_grad():
        after = model.score_pairs(users, items)
    torch.testing.assert_close(model.base_cache, expected)
    torch.testing.assert_close(after, before)
