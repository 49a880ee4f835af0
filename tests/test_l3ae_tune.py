"""l3ae's contrastive LM tuning: co-occurrence positives by hand, the tuning's effect on the items'
vectors, and the tuned adapters kept for new items through a checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from conftest import pairs_frame
from gpt2rec.errors import UserError
from gpt2rec.models.l3ae import L3AEConfig
from gpt2rec.models.l3ae_tune import AdapterStore, cooccurrence_neighbours
from gpt2rec.utils.config import from_dict


def test_cooccurrence_neighbours_by_hand():
    # users 0-2 had items {0, 1}, user 3 had {1, 2}, user 4 had {3} alone; item 4 was never had.
    # cos(0, 1) = 3 / sqrt(3 * 4) = 0.87, cos(1, 2) = 1 / sqrt(4 * 1) = 0.5, cos(0, 2) = 0.
    train = pairs_frame([(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (3, 1), (3, 2), (4, 3)])
    items, nbrs = cooccurrence_neighbours(train, n_users=5, n_items=5, k=1)
    assert items.tolist() == [0, 1, 2]  # items 3 and 4 share no user with another item: never anchors
    assert [int(items[j]) for j in nbrs[:, 0]] == [1, 0, 1]
    items, nbrs = cooccurrence_neighbours(train, n_users=5, n_items=5, k=10)
    assert nbrs.shape == (3, 2)  # at most the other W - 1 items
    # item 0 was never had with item 2: its nearest (item 1) stands in; never its own positive
    assert [[int(items[j]) for j in row] for row in nbrs] == [[1, 1], [0, 2], [1, 1]]
    with pytest.raises(ValueError, match="at least 2 items"):
        cooccurrence_neighbours(pairs_frame([(0, 0), (1, 1)]), 2, 3)


def test_adapter_store_round_trips_peft_names():
    store = AdapterStore()
    assert store.tensors() == {} and store.shapes() == {}
    store.load({"h.1.attn.c_attn.lora_A.weight": torch.ones(2, 3)})
    assert store.shapes() == {"h.1.attn.c_attn.lora_A.weight": [2, 3]}
    again = AdapterStore(store.shapes())
    again.load_state_dict(store.state_dict())
    assert torch.equal(again.tensors()["h.1.attn.c_attn.lora_A.weight"], torch.ones(2, 3))


@pytest.mark.parametrize("bad", [{"tune_epochs": -1}, {"tune_lr": 0}, {"tune_blocks": 0},
                                 {"tune_epochs": 2, "layer": 1}])  # fmt: skip
def test_bad_tuning_config_is_one_line_error(bad):
    with pytest.raises(UserError, match="tune"):
        from_dict(L3AEConfig, bad)


def _fit(tiny_lm, data, train, tune_epochs: int, tune_blocks: int = 1, **extra):
    from gpt2rec.models.base import ModelContext
    from gpt2rec.models.registry import get_spec

    spec = get_spec("l3ae")
    cfg = L3AEConfig(lm=tiny_lm, text_cache=False, reg=1.0, text_weight=5.0, text_reg=0.5, side_weight=0.0,
                     pooling="mean", tune_epochs=tune_epochs, tune_blocks=tune_blocks, **extra)  # fmt: skip
    ctx = ModelContext(data.n_users, data.n_items, data, train)
    model = spec.build(cfg, ctx)
    spec.fit(model, ctx)
    return spec, cfg, model


def test_tuning_pulls_apart_the_sentences_of_items_never_had_together(tiny_lm):
    """Two blocks of items, each block had by its own users and described as "block 0" / "block 1":
    every positive is in the anchor's block, so the tuning lowers the cosine between the blocks'
    sentences; the frozen run keeps no adapters."""
    from test_model_contract import BLOCK, make_data

    data, split = make_data()

    def cross_cosine(model):
        f = model.item_text  # (I, D) unit vectors
        return float(f[0] @ f[BLOCK])

    _, _, frozen = _fit(tiny_lm, data, split.train, 0)
    _, _, tuned = _fit(tiny_lm, data, split.train, 20, tune_lr=1e-3)
    assert frozen.lm_adapter.tensors() == {} and tuned.lm_adapter.tensors()
    assert cross_cosine(tuned) < cross_cosine(frozen) - 0.05
    _, _, again = _fit(tiny_lm, data, split.train.sample(frac=1.0, random_state=1), 20, tune_lr=1e-3)
    assert cross_cosine(again) == pytest.approx(cross_cosine(tuned), abs=1e-5)  # retuned (new memo key), same seed


def test_new_items_are_read_by_the_tuned_lm_after_a_checkpoint_round_trip(tiny_lm):
    """Item L has no training interaction, so the tuning (on the other items' co-occurrences) is the
    same with and without L in the catalogue, and a brand-new item L scores exactly as the text
    column of the catalogue's L (`l3ae_new`), only if it is read by the tuned LM. The same after
    rebuilding the model from its checkpoint."""
    from gpt2rec import coldstart
    from gpt2rec.data.dataset import Dataset
    from gpt2rec.models.base import ModelContext
    from test_model_contract import make_data

    full, split = make_data()
    last = full.n_items - 1
    train = split.train[split.train["item"] != last]
    raw = train.rename(columns={"user": "user_id", "item": "item_id"}) + 1
    without = Dataset.from_frames("blocks", raw, items=full.items[full.items["item_id"] != last + 1])
    # tune_blocks 5 > the tiny LM's 2 blocks: all of them get adapters
    _, _, with_l = _fit(tiny_lm, full, train, 2, tune_blocks=5, tune_lr=3e-3)
    spec, cfg, model = _fit(tiny_lm, without, train, 2, tune_blocks=5, tune_lr=3e-3)
    assert {k.split(".")[1] for k in model.lm_adapter.tensors()} == {"0", "1"}  # h.0, h.1
    users = torch.arange(full.n_users)
    f, f_l = model.item_text.double(), with_l.item_text[last].double()  # (I, D), (D,): the tuned readings
    column = f @ torch.linalg.solve(f.T @ f + 0.5 * torch.eye(f.shape[1], dtype=f.dtype), f_l)  # (I,)
    expected = (3.0 * 5.0 / 6.0 * model.user_rows(users).double() @ column).float()  # 3 mu / (reg + mu) x_u^T c_L
    row = full.items[full.items["item_id"] == last + 1]
    saved = spec.build(cfg, ModelContext(without.n_users, without.n_items, saved=model.checkpoint_meta()))
    saved.load_state_dict(model.state_dict())
    for m in (model, saved):
        got = torch.stack([coldstart.score_new_items(m, int(u), row)[0] for u in users])  # (U,)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    # read by the frozen LM instead, the new item scores differently: the adapters matter
    saved.lm_adapter.load({})
    saved._lm.clear()
    frozen = torch.stack([coldstart.score_new_items(saved, int(u), row)[0] for u in users])
    assert not torch.allclose(frozen, expected, rtol=1e-3, atol=1e-5)
