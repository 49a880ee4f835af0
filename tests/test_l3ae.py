"""L3AE closed form: known answers on tiny matrices, and the model on metadata with an obvious answer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from gpt2rec.errors import UserError
from gpt2rec.models.ease import ease_weights, emphasised_l2
from gpt2rec.models.l3ae import L3AEConfig, l3ae_weights, side_gram
from gpt2rec.models.l3ae_text import semantic_matrix
from gpt2rec.utils.config import from_dict


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


def test_per_item_l2_is_the_constrained_minimum():
    """With dropout emphasis reg_j = reg + p/(1-p) G_jj on row j, B still has zero diagonal and a
    vanishing gradient off the diagonal (text on and off)."""
    gram, mu = _gram(5), 4.0
    reg = emphasised_l2(gram, 2.0, 0.5)  # p/(1-p) = 1: reg_j = 2 + G_jj
    assert torch.equal(reg, 2.0 + gram.diagonal())
    assert emphasised_l2(gram, 2.0, 0.0) == 2.0  # p = 0: the plain scalar
    c = semantic_matrix(torch.randn(6, 3, generator=torch.Generator().manual_seed(6)), 1.0)
    off = ~torch.eye(6, dtype=torch.bool)
    for weight in (mu, 0.0):
        b = l3ae_weights(gram, c, reg, weight)
        grad = -gram @ (torch.eye(6, dtype=torch.float64) - b) + reg.unsqueeze(1) * b + weight * (b - c)
        assert torch.all(b.diagonal() == 0) and grad[off].abs().max() < 1e-9


def test_dropout_emphasis_two_items_by_hand():
    # G = [[4, 1], [1, 1]], reg = 1, p = 0.5: reg_j = 1 + G_jj = (5, 2); P = inv([[9, 1], [1, 3]])
    # = [[3, -1], [-1, 9]] / 26, so B_01 = -P_01 / P_11 = 1/9 and B_10 = -P_10 / P_00 = 1/3. Plain
    # EASE (reg 1): P = inv([[5, 1], [1, 2]]) = [[2, -1], [-1, 5]] / 9, B_01 = 1/5, B_10 = 1/2; the
    # frequent item 0's row is shrunk most (x0.56 against x0.67).
    gram = torch.tensor([[4.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    b = ease_weights(gram, emphasised_l2(gram, 1.0, 0.5))
    assert torch.allclose(b, torch.tensor([[0.0, 1 / 9], [1 / 3, 0.0]], dtype=torch.float64))
    plain = ease_weights(gram, 1.0)
    assert torch.allclose(plain, torch.tensor([[0.0, 1 / 5], [1 / 2, 0.0]], dtype=torch.float64))


def test_auto_pooling_reads_every_lm_by_its_fields():
    auto = L3AEConfig()
    assert {auto.item_pooling(lm) for lm in ("gemma3-270m", "gpt2", "minilm", "some/bert")} == {"fields"}
    assert L3AEConfig(pooling="last").item_pooling("minilm") == "last"  # an explicit choice stands
    with pytest.raises(ValueError, match="pooling=last or mean"):
        L3AEConfig(prompt="eol")  # a prompt wraps the sentence: auto could mean fields


def test_side_rows_by_hand():
    # two items with the same text and no interactions: G = side F F^T = [[1, 1], [1, 1]] (side = 1,
    # unit vectors); reg = 1: P = inv([[2, 1], [1, 2]]) = [[2, -1], [-1, 2]] / 3, B_01 = -P_01 / P_11 = 1/2
    g = side_gram(torch.tensor([[3.0, 0.0], [5.0, 0.0]]), 1.0)  # rows L2-normalised first
    assert torch.allclose(g, torch.ones(2, 2, dtype=torch.float64))
    b = l3ae_weights(g, torch.zeros(2, 2, dtype=torch.float64), 1.0, 0.0)
    assert torch.allclose(b, torch.tensor([[0.0, 0.5], [0.5, 0.0]], dtype=torch.float64))


def test_centering_ignores_a_direction_every_item_shares():
    # decoder states share one large direction: it makes every cosine ~1 unless removed first
    vecs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]], dtype=torch.float64)
    shared = vecs + torch.tensor([50.0, 50.0])
    assert side_gram(shared, 1.0).min() > 0.99  # uncentred: every pair looks alike
    torch.testing.assert_close(side_gram(shared, 1.0, center=True), side_gram(vecs, 1.0, center=True))
    torch.testing.assert_close(semantic_matrix(shared, 0.5, center=True), semantic_matrix(vecs, 0.5, center=True))
    # by hand: the mean row (2/3, 11/30) removed, items 0 and 2 point the same way, item 1 the other
    g = side_gram(vecs, 1.0, center=True)
    assert g[0, 2] > 0.9 and g[0, 1] < -0.9


def test_side_rows_are_ease_on_x_with_the_vectors_stacked_under_it():
    """Collective EASE (Jeunen et al. 2020): the side term is EASE on [X; sqrt(side) F^T]."""
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(20, 6, generator=g) < 0.4).double()  # (U, I)
    vecs = torch.randn(6, 3, generator=g)  # (I, D)
    unit = torch.nn.functional.normalize(vecs.double(), dim=1)
    stacked = torch.cat([x, 2.0 * unit.T])  # (U + D, I), side = 4
    c = semantic_matrix(vecs, 1.0)
    got = l3ae_weights(x.T @ x + side_gram(vecs, 4.0), c, 3.0, 2.0)
    assert torch.allclose(got, l3ae_weights(stacked.T @ stacked, c, 3.0, 2.0), atol=1e-12)
    assert torch.allclose(
        l3ae_weights(x.T @ x + side_gram(vecs, 4.0), c, 3.0, 0.0), ease_weights(stacked.T @ stacked, 3.0)
    )


def test_semantic_matrix_links_items_with_similar_text():
    # items 0 and 1 share a direction, item 2 is orthogonal: C_01 > 0, C_02 = C_12 = 0
    vecs = torch.tensor([[1.0, 0.0, 0.1], [1.0, 0.0, -0.1], [0.0, 1.0, 0.0]])
    c = semantic_matrix(vecs, 0.1)
    assert c[0, 1] > 0.4 and c[1, 0] > 0.4
    assert abs(c[0, 2]) < 1e-9 and abs(c[2, 1]) < 1e-9


@pytest.mark.parametrize(
    "bad",
    [{"reg": 0}, {"text_reg": -1}, {"text_weight": -0.5}, {"side_weight": -1}, {"pooling": "cls"}, {"dropout": 1.0}],
)
def test_bad_config_is_one_line_error(bad):
    with pytest.raises(ValueError):
        L3AEConfig(**bad)
    with pytest.raises(UserError):  # the edge (--set, config files)
        from_dict(L3AEConfig, bad)


def _fitted(tiny_lm, text_weight=1.0, side_weight=0.0):
    from gpt2rec.models.base import ModelContext
    from gpt2rec.models.registry import get_spec
    from test_model_contract import make_data

    dataset, split = make_data()
    spec = get_spec("l3ae")
    cfg = L3AEConfig(
        lm=tiny_lm, text_cache=False, reg=1.0, text_weight=text_weight, side_weight=side_weight, pooling="mean"
    )
    ctx = ModelContext(dataset.n_users, dataset.n_items, dataset, split.train)
    model = spec.build(cfg, ctx)
    spec.fit(model, ctx)
    return model, split


def test_explanations_name_the_liked_items_that_carry_the_score_deletion_test(tiny_lm):
    """The reason's liked items are the largest B_ij; deleting one lowers the score by exactly B_ij,
    more than deleting any other liked item (the deletion test passes by construction)."""
    model, split = _fitted(tiny_lm, side_weight=1.0)
    user, item = 0, 1  # item 1 is user 0's held-out test item (block 0)
    history = torch.as_tensor(sorted(split.train.loc[split.train["user"] == 0, "item"].tolist()))
    contrib = model.item_contributions(torch.tensor([item]), history)[0]  # (H,)
    x = torch.zeros(model.n_items)
    x[history] = 1.0
    full = float(x @ model.weight[:, item])
    assert full == pytest.approx(float(model.score_users(torch.tensor([user]))[0, item]), abs=1e-5)
    drops = []
    for h in history.tolist():
        x_minus = x.clone()
        x_minus[h] = 0.0
        drops.append(full - float(x_minus @ model.weight[:, item]))
    assert drops == pytest.approx(contrib.tolist(), abs=1e-5)
    top = int(torch.argmax(contrib))
    assert drops[top] == max(drops) and drops[top] > float(np.median(drops))

    from gpt2rec.explain import explain

    (e,) = explain(model, None, user, [item], history.tolist(), n_similar=1)
    assert e.similar == [int(history[top])]
    assert explain(model, None, user, [], history.tolist()) == []  # nothing recommended: it raised IndexError


def test_cold_item_is_scored_from_its_text(tiny_lm):
    """An item with no training interaction gets its column from C (mu (P C)_:j) and/or from the side
    rows, so it is scored; with both off it scores 0 for everybody."""
    from gpt2rec.models.base import ModelContext
    from gpt2rec.models.registry import get_spec
    from test_model_contract import make_data

    dataset, split = make_data()
    cold = 3
    train = split.train[split.train["item"] != cold]
    for weight, side, expect_zero in ((1.0, 0.0, False), (0.0, 1.0, False), (0.0, 0.0, True)):
        spec = get_spec("l3ae")
        cfg = L3AEConfig(lm=tiny_lm, text_cache=False, reg=1.0, text_weight=weight, side_weight=side, pooling="mean")
        ctx = ModelContext(dataset.n_users, dataset.n_items, dataset, train)
        model = spec.build(cfg, ctx)
        spec.fit(model, ctx)
        col = model.score_users(torch.arange(dataset.n_users))[:, cold]  # (U,)
        assert bool((col.abs() < 1e-8).all()) == expect_zero


def test_a_brand_new_item_is_scored_by_its_text_column_alone(tiny_lm):
    """Item L (block 1's text) is left out of the catalogue. `score_new_items` reads its metadata
    row: for user u, s mu / (reg + mu) x_u^T F (F^T F + text_reg I)^-1 f_L (its text column, worked
    out here from the kept unit vectors; s = new_item_scale, default 3), so other users' co-counts
    do not move it (the joint fit's P, which shrinks a catalogue item nobody chose, would)."""
    from gpt2rec import coldstart
    from gpt2rec.data.dataset import Dataset
    from gpt2rec.models.base import ModelContext
    from gpt2rec.models.registry import get_spec
    from gpt2rec.query import encode_query
    from test_model_contract import BLOCK, make_data

    full, split = make_data()
    last = full.n_items - 1
    row = full.items[full.items["item_id"] == last + 1]
    spec = get_spec("l3ae")
    cfg = L3AEConfig(lm=tiny_lm, text_cache=False, reg=1.0, text_weight=5.0, text_reg=0.5, side_weight=0.0,
                     pooling="mean")  # fmt: skip

    def fitted(train, config=cfg):
        raw = train.rename(columns={"user": "user_id", "item": "item_id"}) + 1  # raw IDs are internal + 1
        data = Dataset.from_frames("blocks", raw, items=full.items[full.items["item_id"] != last + 1])
        assert (data.n_users, data.n_items) == (full.n_users, full.n_items - 1)
        ctx = ModelContext(data.n_users, data.n_items, data, train)
        model = spec.build(config, ctx)
        spec.fit(model, ctx)
        return model

    train = split.train[split.train["item"] != last]
    model = fitted(train)
    users = torch.arange(full.n_users)
    got = torch.stack([coldstart.score_new_items(model, int(u), row)[0] for u in users]).double()  # (U,)
    f, f_new = model.item_text.double(), coldstart.new_item_table(model, row).text[0, 0].double()  # (I, D), (D,)
    ridge = f @ torch.linalg.solve(f.T @ f + 0.5 * torch.eye(f.shape[1], dtype=f.dtype), f_new)  # (I,)
    expected = 3.0 * 5.0 / 6.0 * (model.user_rows(users).double() @ ridge)  # (U,): new_item_scale 3
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    mates = train[train["item"] >= BLOCK]["user"].unique().tolist()
    # block 0's users also had block 1's items: block 1's users' histories are unchanged
    extra = train[train["item"] < BLOCK].assign(item=lambda d: d["item"] + BLOCK)
    extra = extra[extra["item"] != last]
    again = fitted(pd.concat([train, extra], ignore_index=True))
    assert not torch.allclose(again.weight, model.weight, atol=1e-4)
    for u in mates:
        moved = coldstart.score_new_items(again, int(u), row)[0]
        assert float(moved) == pytest.approx(float(got[u]), rel=1e-4, abs=1e-6)
    # text off: no route, one line
    off = fitted(train, L3AEConfig(lm=tiny_lm, text_cache=False, text_weight=0.0, side_weight=0.0))
    with pytest.raises(UserError, match="text_weight > 0"):
        coldstart.score_new_items(off, 0, row)
    with pytest.raises(UserError, match="keeps no item text vectors.*text_weight > 0"):
        encode_query(off, "block 1")


def test_items_the_fit_is_told_are_new_get_their_text_column(tiny_lm):
    """Item L has no training interaction. Left as is, its column is the joint fit's (shrunk by P);
    declared new (`ModelContext.new_items`, a cold-item split's held-out items) it is
    s mu / (reg + mu) C[:, L] (s = new_item_scale, default 3), C the text EASE of the kept unit
    vectors; the other columns do not move."""
    from gpt2rec.models.base import ModelContext
    from gpt2rec.models.registry import get_spec
    from test_model_contract import make_data

    data, split = make_data()
    last = data.n_items - 1
    train = split.train[split.train["item"] != last]
    spec = get_spec("l3ae")
    cfg = L3AEConfig(lm=tiny_lm, text_cache=False, reg=1.0, text_weight=5.0, text_reg=0.5, side_weight=0.0,
                     pooling="mean")  # fmt: skip
    fitted = []
    for new, config in ((None, cfg), (np.array([last]), cfg), (np.array([last]), replace(cfg, new_item_scale=12.0))):
        ctx = ModelContext(data.n_users, data.n_items, data, train, new_items=new)
        fitted.append(spec.build(config, ctx))
        spec.fit(fitted[-1], ctx)
    joint, declared, lifted = (m.weight.double() for m in fitted)
    expected = 3.0 * 5.0 / 6.0 * semantic_matrix(fitted[1].item_text, 0.5)[:, last]  # (I,): new_item_scale 3
    torch.testing.assert_close(declared[:, last], expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(joint[:, last], expected, rtol=1e-2, atol=1e-4)
    torch.testing.assert_close(declared[:, :last], joint[:, :last])
    # new_item_scale multiplies the new items' columns (and the brand-new items' map), nothing else: 12 = 4 x 3
    torch.testing.assert_close(lifted[:, last], 4.0 * expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(lifted[:, :last], joint[:, :last])
    torch.testing.assert_close(fitted[2].item_map, 4.0 * fitted[1].item_map)
    with pytest.raises(ValueError, match="new_item_scale must be > 0"):
        replace(cfg, new_item_scale=0.0)


def test_cold_user_gets_the_items_of_the_users_with_the_same_profile(tiny_lm, caplog):
    """Two groups of users, each liking its own block of items, told apart only by their profile
    (occupation). A user with no training item is scored by the k known users with the nearest
    profiles: its group mates, so every item of the other block scores exactly 0; with
    cold_users=none it scores 0 everywhere, and evaluating such users says their lists mean nothing.
    A checkpoint round trip keeps the route."""
    from gpt2rec import coldstart
    from gpt2rec.data.dataset import Dataset
    from gpt2rec.data.splits import Split
    from gpt2rec.models.base import ModelContext, new_users_blind
    from gpt2rec.models.registry import get_spec
    from gpt2rec.pipeline import _warn_blind_spots
    from test_model_contract import BLOCK, GROUP_SIZES, make_data

    base, split = make_data()
    group = np.repeat(np.arange(len(GROUP_SIZES)), GROUP_SIZES)  # (U,) internal user -> group
    users = pd.DataFrame({"user_id": base.users["user_id"], "occupation": [f"job{g}" for g in group]})
    raw = base.interactions.rename(columns={"user": "user_id", "item": "item_id"})
    raw[["user_id", "item_id"]] += 1  # raw IDs are internal + 1, as in make_data
    dataset = Dataset.from_frames("blocks", raw, items=base.items, users=users)
    cold = 2  # a group-0 user
    train = split.train[split.train["user"] != cold]
    spec = get_spec("l3ae")
    for route in ("neighbours", "none"):
        cfg = L3AEConfig(lm=tiny_lm, text_cache=False, reg=1.0, pooling="mean", cold_users=route,
                         cold_user_k=GROUP_SIZES[0] - 1)  # fmt: skip
        ctx = ModelContext(dataset.n_users, dataset.n_items, dataset, train)
        model = spec.build(cfg, ctx)
        spec.fit(model, ctx)
        row = model.score_users(torch.tensor([cold, 0]))  # (2, I)
        held = Split(train, split.train[split.train["user"] == cold], split.test, split.config)
        caplog.clear()
        _warn_blind_spots(held, spec, model)
        if route == "none":
            assert torch.all(row[0] == 0)
            assert "1 of the 24 test users have no training interactions; l3ae has no user profiles" in caplog.text
            with pytest.raises(UserError, match="cold_users=neighbours"):
                coldstart.score_new_user(model, {"occupation": "job0"})
            continue
        assert new_users_blind(spec, model) is None and "no training interactions" not in caplog.text
        # a brand-new user with the cold user's profile takes the same route
        assert torch.allclose(coldstart.score_new_user(model, {"occupation": "job0"}), row[0], atol=1e-6)
        with pytest.raises(UserError, match="unknown field.*'gender'.*valid fields: \\['occupation'\\]"):
            coldstart.score_new_user(model, {"gender": "F"})
        assert torch.all(row[0, BLOCK:] == 0) and torch.all(row[0, :BLOCK] > 0.5)
        assert torch.allclose(row[1], model.history.dense(torch.tensor([0]))[0] @ model.weight)  # warm: X_u B
        pairs = model.score_pairs(torch.tensor([cold, cold]), torch.tensor([1, BLOCK + 1]))
        assert pairs.tolist() == pytest.approx([float(row[0, 1]), 0.0])
        saved = ModelContext(dataset.n_users, dataset.n_items, saved=model.checkpoint_meta())
        again = spec.build(cfg, saved)
        again.load_state_dict(model.state_dict())
        assert torch.equal(again.score_users(torch.tensor([cold])), row[:1])
        # the other group (10 users) and 3 of the nearest next: its own block first
        other = again.score_new_user({"occupation": "job1"})  # (I,)
        assert other[BLOCK:].min() > other[:BLOCK].max()
        assert torch.equal(other, model.score_new_user({"occupation": "job1"}))


def test_a_run_without_a_users_table_names_the_users_flag(tiny_lm):
    """It said "retrain it with cold_users=neighbours", which cannot help without profiles."""
    from gpt2rec import coldstart
    from gpt2rec.data.dataset import Dataset
    from gpt2rec.models.base import ModelContext
    from gpt2rec.models.registry import get_spec
    from test_model_contract import make_data

    base, split = make_data()
    raw = base.interactions.rename(columns={"user": "user_id", "item": "item_id"})
    dataset = Dataset.from_frames("blocks", raw, items=base.items)  # no users table
    spec = get_spec("l3ae")
    ctx = ModelContext(dataset.n_users, dataset.n_items, dataset, split.train)
    model = spec.build(L3AEConfig(lm=tiny_lm, text_cache=False, reg=1.0, pooling="mean"), ctx)
    spec.fit(model, ctx)
    with pytest.raises(UserError, match="trained without a users table.*--users FILE") as err:
        coldstart.score_new_user(model, {"age": 30})
    assert "cold_users" not in str(err.value)
