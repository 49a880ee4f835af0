"""The GPT-2 recommenders (basic, enhanced) on a tiny in-process GPT-2: gradients, the cache switch,
cold start, explanations, checkpoints. The shared contract (fit/recommend/save/load) is in
test_model_contract.py; training runs and the CLI on these models in test_gpt2_runs.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gpt2_fixtures import BATCH, ctx_for, enhanced, meta_data, nudge_lm, step
from gpt2rec.models.base import ModelContext
from gpt2rec.models.basic import BasicConfig
from gpt2rec.models.basic import build as build_basic
from gpt2rec.models.enhanced import EnhancedConfig
from gpt2rec.models.enhanced_build import build as build_enhanced
from gpt2rec.utils.ranking import ranked_topk


def test_end2end_gradients_reach_lora_only(tiny_lm):
    model, _, _ = enhanced(tiny_lm, strategy="end2end", top_n_blocks=1)
    model.train()
    lora = {n: p for n, p in model.text.lm.named_parameters()}
    assert lora and all("lora_" in n for n in lora)
    step(model, *BATCH)
    assert all(p.grad is not None for p in lora.values())
    assert any(p.grad.abs().sum() > 0 for p in lora.values())
    base = [p for n, p in model.text.lm.runtime.backbone.named_parameters() if "lora_" not in n]
    assert base and all(p.grad is None and not p.requires_grad for p in base)


def test_cached_strategy_never_touches_the_lm(tiny_lm):
    model, _, _ = enhanced(tiny_lm, strategy="cached")
    model.train()
    step(model, *BATCH)
    text = model.text
    assert not text.lm.attached and list(text.lm.parameters()) == [] and text.encoder_calls == 0
    assert not any(".lm." in k for k in model.state_dict())
    assert model.user_emb.weight.grad is not None


def test_use_cache_switch_changes_the_code_path(tiny_lm):
    model, _, _ = enhanced(tiny_lm, strategy="end2end", top_n_blocks=1, contrastive_weight=0.1)
    model.train()
    model.use_cache = True
    step(model, *BATCH)
    assert model.text.encoder_calls == 0
    model.use_cache = False
    step(model, *BATCH)
    # one LM pass for the users, one for the positive items, one for the new negatives: memoised
    # within the step, so the contrastive term adds none
    assert model.text.encoder_calls == 3
    step(model, *BATCH)  # a new step encodes again
    assert model.text.encoder_calls == 6
    nudge_lm(model)  # the optimizer step
    before = model.text.item_cache.clone()
    model.eval()
    with torch.no_grad():
        model.score_users(torch.arange(3))  # notices the changed LM and refreshes the whole cache
        assert model.text.encoder_calls == 6  # evaluation reads the cache, without gradients
        assert not torch.allclose(model.text.item_cache, before)
        fresh = model.text.item_cache.clone()
        model.score_users(torch.arange(3))  # the LM did not change again: no second refresh
    assert model.text.item_cache is not before and torch.equal(model.text.item_cache, fresh)


def test_dynamic_sample_caps_lm_passes_per_step_and_refreshes_the_cache(tiny_lm):
    model, _, _ = enhanced(
        tiny_lm, strategy="end2end", top_n_blocks=1, dynamic_sample=2, id_dropout=0.0, contrastive_weight=0.1
    )
    model.train()
    nudge_lm(model)  # the LM now disagrees with the cache, so the rows it encodes are visible
    before = {kind: model.text.full(kind).clone() for kind in ("user", "item")}
    users, pos, neg = torch.arange(8), torch.tensor([0, 1, 2, 3, 4, 5, 0, 1]), torch.tensor([5, 4, 3, 2, 1, 0, 2, 3])
    step(model, users, pos, neg, seed=7)
    # the step's draw, from its generator alone: users first (8), then items (6), 2 of each
    g = torch.Generator().manual_seed(7)
    expected = {"user": sorted(torch.randperm(8, generator=g)[:2].tolist())}
    expected["item"] = sorted(torch.randperm(6, generator=g)[:2].tolist())
    # one LM pass per kind: the negatives and the contrastive term reuse the step's memo
    assert model.text.encoder_calls == 2
    for kind in ("user", "item"):
        changed = (model.text.full(kind) != before[kind]).flatten(1).any(1).nonzero().squeeze(1).tolist()
        assert changed == expected[kind]  # the cache keeps the fresh passes, and only those
    lora = list(model.text.lm.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lora)  # gradients reach the LM
    step(model, users, pos, neg, seed=7)  # the same generator seed draws the same entities
    assert model.text.encoder_calls == 4


def test_dynamic_and_cached_paths_agree_before_training(tiny_lm):
    model, _, _ = enhanced(tiny_lm, strategy="end2end", top_n_blocks=1, dropout=0.0, id_dropout=0.0)
    for module in model.text.lm.runtime.backbone.modules():  # GPT-2's own dropout would differ per pass
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.train()
    users, pos, _ = BATCH
    with torch.no_grad():
        model.use_cache = True
        cached = model.score_pairs(users, pos)
        model.use_cache = False
        dynamic = model.score_pairs(users, pos)
    assert model.text.encoder_calls == 2  # the dynamic call went through the LM (users, items)
    torch.testing.assert_close(cached, dynamic, atol=1e-4, rtol=1e-4)  # LoRA starts as the identity


def test_hybrid_switches_on_epoch(tiny_lm):
    model, _, _ = enhanced(tiny_lm, strategy="hybrid", hybrid_cached_epochs=1, hybrid_end2end_epochs=1, top_n_blocks=1)
    modes = []
    for epoch in (1, 2, 3):
        model.on_epoch_start(epoch, torch.Generator().manual_seed(epoch))
        modes.append((model.use_cache, all(p.requires_grad for p in model.text.lm.parameters())))
    assert modes == [(True, False), (False, True), (True, False)]


def test_contrastive_weight_zero_switches_it_off(tiny_lm):
    model, _, _ = enhanced(tiny_lm, contrastive_weight=0.0)
    assert model.extra_loss(*BATCH).item() == 0.0
    model2, _, _ = enhanced(tiny_lm, contrastive_weight=0.5)
    value = model2.extra_loss(*BATCH).item()
    assert value > 0.0


def test_unseen_entities_are_scored_from_text(tiny_lm):
    model, dataset, train = enhanced(tiny_lm)
    assert not model.user_known[7] and not model.item_known[5] and model.user_known[:7].all()
    model.eval()
    with torch.no_grad():
        scores = model.score_users(torch.tensor([7]))  # a user with no training interaction
        # its ID view is the 'unknown' vector: changing its (untrained) ID row changes nothing
        model.user_emb.weight[7] += 5.0
        again = model.score_users(torch.tensor([7]))
    assert torch.isfinite(scores).all() and torch.equal(scores, again)


def test_new_users_are_scored_from_their_profile_neighbours(tiny_lm):
    model, dataset, train = enhanced(tiny_lm, cold_user_k=2)
    model.eval()
    with torch.no_grad():
        text = model.text.user_cache.clone()
        # make user 7 (no training interaction) the profile twin of users 1 and 3 (F), far from the rest
        text[:] = -5.0
        text[[1, 3, 7]] = 5.0
        model.text.user_cache.copy_(text)
        scores = model.score_users(torch.tensor([7, 0]))
        pairs = model.score_pairs(torch.tensor([7, 7]), torch.tensor([1, 0]))
    # users 1 and 3 had items 1, 3 (and nothing else) in training: each is held by both neighbours
    torch.testing.assert_close(scores[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(pairs, torch.tensor([1.0, 0.0]))  # pairs agree with full ranking
    assert not torch.equal(scores[1], scores[0])  # a known user keeps the model's scores
    model, _, _ = enhanced(tiny_lm, cold_users="model")
    assert model.neighbours is None
    with pytest.raises(ValueError, match="cold_users must be neighbours or model"):
        EnhancedConfig(lm=tiny_lm, cold_users="nearest")


@pytest.mark.parametrize("cold_users", ["neighbours", "model"])
def test_score_new_user_and_new_items(tiny_lm, cold_users):
    model, _, _ = enhanced(tiny_lm, cold_users=cold_users, cold_user_k=1)
    s = model.score_new_user({"gender": "M", "age": 23, "occupation": "engineer"})  # user 0's profile
    assert s.shape == (6,) and torch.isfinite(s).all()
    t = model.score_new_user({"gender": "F", "age": 17, "occupation": "student"})  # user 1's profile
    assert not torch.equal(s, t)  # the profile matters
    if cold_users == "neighbours":  # the nearest profile is the user's twin: its training items
        torch.testing.assert_close(s, torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0]))
        torch.testing.assert_close(t, torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 0.0]))
    with pytest.raises(
        ValueError, match=r"unknown field\(s\) \['hobby'\].*valid fields: \['gender', 'age', 'occupation', 'zip_code'\]"
    ):
        model.score_new_user({"gender": "F", "age": 31, "occupation": "writer", "hobby": "chess"})
    with pytest.raises(ValueError, match=r"missing field\(s\) \['occupation'\]"):
        model.score_new_user({"gender": "F", "age": 31})
    new = pd.DataFrame({"title": ["Blade Runner (1982)", "Clue (1985)"], "genres": ["Sci-Fi|Thriller", "Comedy"]})
    v = model.score_new_items(0, new)
    assert v.shape == (2,) and torch.isfinite(v).all()
    with pytest.raises(ValueError, match="lack column"):
        model.score_new_items(0, pd.DataFrame({"name": ["x"]}))


def test_explanations(tiny_lm):
    from gpt2rec.explain import explain, short_title

    model, dataset, train = enhanced(tiny_lm)
    model.eval()
    history = train[train["user"] == 0]["item"].to_numpy()  # items 0, 2, 4
    out = explain(model, dataset, 0, [1, 3], history)
    for e in out:
        assert list(e.user_fields) == ["gender", "age_group", "occupation"]
        assert list(e.item_fields) == ["title", "genres"]
        assert sum(e.user_fields.values()) == pytest.approx(1.0, abs=1e-5)
        assert sum(e.item_fields.values()) == pytest.approx(1.0, abs=1e-5)
        assert len(e.similar) == 2 and set(e.similar) <= set(history.tolist())
        # the item field with the highest weight is the stated reason; the user fields (not faithful in
        # the deletion test) are data only
        top = max(e.item_fields, key=e.item_fields.get)
        assert e.reason.startswith("Because you liked ") and e.reason.endswith(f"; its {top} weighed most.")
        assert "profile" not in e.reason
    assert short_title("Godfather, The (1972)") == "The Godfather"


def test_reason_sentence_by_hand():
    from gpt2rec.explain import Explanation, reason

    e = Explanation(
        item=2,
        title="Stargate (1994)",
        score=1.0,
        user_fields={"gender": 0.2, "occupation": 0.5, "age_group": 0.3},
        item_fields={"title": 0.3, "genres": 0.7},
        similar=[0, 1],
        similar_titles=["Star Wars (1977)", "Alien (1979)"],
    )
    genres = [["Action", "Sci-Fi"], ["Horror", "Sci-Fi"], ["Sci-Fi", "Adventure"]]
    assert reason(e, genres) == "Because you liked Star Wars and Alien — both Sci-Fi; its genres weighed most."


def test_enhanced_checkpoint_keeps_adapters_not_base_weights(tiny_lm):
    model, dataset, train = enhanced(tiny_lm, strategy="end2end", top_n_blocks=1)
    model.train()
    model.use_cache = False
    step(model, *BATCH)
    nudge_lm(model, 0.01)  # as an optimiser step would
    model.eval()
    with torch.no_grad():
        model.score_users(torch.arange(8))  # refreshes the caches with the tuned LM
    state = model.state_dict()
    lm_keys = [k for k in state if k.startswith("text.lm.")]
    assert lm_keys and all("lora_" in k for k in lm_keys)
    assert not any("wte" in k or "c_fc.weight" in k and "lora" not in k for k in state)
    saved = model.checkpoint_meta()  # JSON: built at this shape, then a plain strict load
    loaded = build_enhanced(model.config, ModelContext(dataset.n_users, dataset.n_items, saved=saved))
    loaded.load_state_dict(state, strict=True)
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(loaded.score_users(torch.arange(8)), model.score_users(torch.arange(8)))
    # the LM comes back from its name with the trained adapters: cold start agrees
    profile = {"gender": "F", "age": 31, "occupation": "writer"}
    torch.testing.assert_close(loaded.score_new_user(profile), model.score_new_user(profile))


def test_basic_model_scores_and_loads(tiny_lm):
    dataset, train = meta_data()
    torch.manual_seed(0)
    model = build_basic(BasicConfig(lm=tiny_lm, text_cache=False, dim=8, hidden=(16, 8)), ctx_for(dataset, train))
    model.eval()
    users = torch.arange(8)
    with torch.no_grad():
        scores = model.score_users(users)
        pairs = model.score_pairs(users.repeat_interleave(6), torch.arange(6).repeat(8)).view(8, 6)
    torch.testing.assert_close(scores, pairs, atol=1e-5, rtol=1e-5)
    assert model.user_text.shape == (8, 32) and model.user_text.abs().sum() > 0
    loaded = build_basic(model.config, ModelContext(8, 6, saved=model.checkpoint_meta()))
    loaded.load_state_dict(model.state_dict(), strict=True)
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(loaded.score_users(users), scores)
    # it keeps item vectors but cannot read a request: one clear line, not an AttributeError
    from gpt2rec.errors import UserError
    from gpt2rec.query import encode_query

    with pytest.raises(UserError, match="reads them with its LM.*BasicRecommender.*--model l3ae"):
        encode_query(model, "a funny film")


def test_eval_scores_follow_weights_changed_in_place(tiny_lm):
    """Regression: in eval mode score_users reused an item table computed before the item weights
    changed in place (a fine-tuning, a fold-in), disagreeing with score_pairs."""
    model, _, _ = enhanced(tiny_lm, dropout=0.0)
    users, n = torch.arange(8), 6
    model.eval()

    def both():
        with torch.no_grad():
            full = model.score_users(users)  # (8, 6)
            pairs = model.score_pairs(users.repeat_interleave(n), torch.arange(n).repeat(8)).view(8, n)
        return full, pairs

    first, _ = both()
    again, pairs = both()
    assert torch.equal(again, first)  # nothing changed: the same scores
    with torch.no_grad():
        model.item_emb.weight.mul_(3.0).add_(0.5)  # in place, still in eval mode
        model.bias.weight.add_(torch.arange(n, dtype=torch.float32).unsqueeze(1))
    full, pairs = both()
    torch.testing.assert_close(full, pairs, atol=1e-5, rtol=1e-5)
    assert (full - first).abs().max() > 0.5
    for _ in range(2):  # train() / eval() round trips change nothing by themselves
        model.train()
        model.eval()
        again, pairs = both()
        assert torch.equal(again, full)
        torch.testing.assert_close(again, pairs, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        model.text.item_cache.add_(1.0)  # the text side counts too
    full, pairs = both()
    torch.testing.assert_close(full, pairs, atol=1e-5, rtol=1e-5)
    assert model.score_users(users).requires_grad  # with gradients on, nothing is cached


def test_new_item_with_an_existing_items_text_gets_its_score(tiny_lm):
    """Cold start known answer: with use_ids=False an item is its text, so a new item whose metadata
    equals an existing item's gets exactly that item's score (bias: the 'unknown' bias for both)."""
    model, dataset, _ = enhanced(tiny_lm, use_ids=False, item_bias=False, dropout=0.0)
    model.eval()
    row = dataset.items.iloc[[3]].assign(genres=lambda d: d["genres"].map("|".join))  # Heat (1995)
    new = model.score_new_items(2, row.drop(columns=["item_id"]))  # (1,)
    with torch.no_grad():
        known = model.score_pairs(torch.tensor([2]), torch.tensor([3]))  # (1,)
    torch.testing.assert_close(new, known, atol=1e-5, rtol=1e-5)


def test_repeated_texts_are_stored_once_and_read_for_every_entity(tiny_lm):
    from gpt2rec.text.templates import TemplateConfig

    dataset, train = meta_data()
    dataset.users["gender"], dataset.users["occupation"] = "M", "writer"  # one user profile, 8 users
    config = EnhancedConfig(lm=tiny_lm, text_cache=False, dim=8, n_heads=2,
                            template=TemplateConfig(user_template="{gender} {occupation}"))  # fmt: skip
    torch.manual_seed(0)
    model = build_enhanced(config, ctx_for(dataset, train))
    assert model.text.user_cache.shape[0] == 1 and model.text.user_rows.tolist() == [0] * 8
    assert model.text.item_cache.shape[0] == 6  # distinct titles: one row each
    assert model.text.full("user").shape == (8, *model.text.user_cache.shape[1:])
    torch.testing.assert_close(model.text.read("user", torch.tensor([2, 5])), model.text.user_cache[[0, 0]])
    # the standardisation counts each user once (8 equal rows): the mean is that one row's field mean
    torch.testing.assert_close(model.user_keys.mean, model.text.user_cache[0].mean(0))
    model.eval()
    with torch.no_grad():
        scores = model.score_users(torch.arange(8))
    saved = ModelContext(dataset.n_users, dataset.n_items, device=torch.device("cpu"), saved=model.checkpoint_meta())
    twin = build_enhanced(config, saved)  # a checkpoint load: built at the saved (distinct) shape
    twin.load_state_dict(model.state_dict())
    twin.eval()
    with torch.no_grad():
        torch.testing.assert_close(twin.score_users(torch.arange(8)), scores)
    # checkpoints from before the distinct tables: test_run_adapters.py (checkpoint.upgrade_state)


def test_encode_distinct_sends_each_repeated_text_once_and_keeps_batches_otherwise():
    from types import SimpleNamespace

    from gpt2rec.models.text_features import encode_distinct
    from gpt2rec.text.templates import Rendered

    class Counting:
        config = SimpleNamespace(pooling="mean")
        seen: list = []

        def encode(self, texts, spans=None, progress=True, fields=None):
            self.seen.append(list(texts))
            return torch.tensor([[float(len(t))] for t in texts])  # (N, 1): the text's length

    enc = Counting()
    many = [Rendered(t) for t in ["ab", "ab", "abc", "ab", "ab", "ab"]]  # 2 distinct of 6: dedup first
    table, rows = encode_distinct(enc, many, None, use_cache=False)
    assert enc.seen[-1] == ["ab", "abc"] and table.tolist() == [[2.0], [3.0]] and rows.tolist() == [0, 0, 1, 0, 0, 0]
    few = [Rendered(t) for t in ["x", "yy", "x"]]  # 2 of 3 distinct: every text encoded as before
    table, rows = encode_distinct(enc, few, None, use_cache=False)
    assert enc.seen[-1] == ["x", "yy", "x"] and table.tolist() == [[1.0], [2.0]] and rows.tolist() == [0, 1, 0]


def test_enhanced_retrieval_by_factors_equals_its_scores_and_cold_users_keep_theirs(tiny_lm):
    pytest.importorskip("faiss")
    from gpt2rec.retrieval import RetrievalConfig, Retriever

    model, dataset, _ = enhanced(tiny_lm)
    model.eval()
    users = np.arange(dataset.n_users)  # user 7 has no training interaction: neighbours path
    assert model.factor_users(torch.from_numpy(users)).tolist() == [True] * 7 + [False]
    with torch.no_grad():
        dense = model.score_users(torch.from_numpy(users))  # (8, 6)
        torch.testing.assert_close(model.user_factors(torch.arange(7)) @ model.item_factors().T, dense[:7])
    want_values, want_items = ranked_topk(dense, 3)  # (the cold user's neighbour scores tie)
    for config in (RetrievalConfig(mode="exact"), RetrievalConfig(mode="ann", index="flat")):
        retriever = Retriever(model, config)
        assert retriever.kind == ("exact-factors" if config.mode == "exact" else "ann")
        items, scores = retriever.topk(users, 3)
        np.testing.assert_allclose(scores, want_values.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(items, want_items.numpy())


def test_a_read_without_progress_shows_no_bar_through_the_cache(tiny_lm, tmp_path, monkeypatch, capsys):
    """l3ae reads its items with progress=False; through the embedding cache the bar came back
    (`train --quiet` printed "encoding: 33%")."""
    from gpt2rec.models.text_features import encode_rendered, make_encoder
    from gpt2rec.text.templates import item_texts
    from gpt2rec.utils.config import from_dict

    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path / "home"))
    dataset, _ = meta_data()
    encoder = make_encoder(
        from_dict(BasicConfig, {"lm": tiny_lm, "encode_batch_size": 1}), tiny_lm, torch.device("cpu"), "mean"
    )
    capsys.readouterr()
    vecs = encode_rendered(encoder, list(item_texts(dataset)), None, use_cache=True, progress=False)  # a miss
    assert vecs.shape[0] == dataset.n_items and "encoding" not in capsys.readouterr().err


def test_a_model_build_shows_the_encoding_bar_on_a_terminal_only(tiny_lm, tmp_path, monkeypatch, capsys):
    """The bench's log (not a terminal) held every refresh of the encoding bar of each model build;
    asked for (progress=True, as `gpt2rec encode` does), the bar still shows."""
    from gpt2rec.models.text_features import encode_distinct, make_encoder
    from gpt2rec.text.templates import item_texts
    from gpt2rec.utils.config import from_dict

    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path / "home"))
    dataset, _ = meta_data()
    encoder = make_encoder(
        from_dict(BasicConfig, {"lm": tiny_lm, "encode_batch_size": 1}), tiny_lm, torch.device("cpu"), "mean"
    )
    capsys.readouterr()
    encode_distinct(encoder, list(item_texts(dataset)), None, use_cache=False)  # a build's call: the default
    assert "encoding" not in capsys.readouterr().err  # pytest's stderr is not a terminal
    encode_distinct(encoder, list(item_texts(dataset)), None, use_cache=False, progress=True)
    assert "encoding" in capsys.readouterr().err
