"""The enhanced model's fusion: its single-query attention is exactly `nn.MultiheadAttention`, IDs
sharing a field set (users of one profile) share its projection with unchanged results, and a
training step's memo computes each entity once and hands back only the columns asked for."""

import pytest
import torch

from gpt2_fixtures import BATCH, ctx_for, meta_data, step
from gpt2rec.models import enhanced as enhanced_module
from gpt2rec.models.enhanced import EnhancedConfig
from gpt2rec.models.enhanced_build import build as build_enhanced
from gpt2rec.models.enhanced_lm import StepState
from gpt2rec.models.fusion import CrossAttentionFusion
from gpt2rec.text.templates import TemplateConfig


@pytest.mark.parametrize("training", [False, True])
def test_single_query_attention_is_multihead_attention_with_its_dropout_draws(training):
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(16, 3, n_heads=4, dropout=0.3, norm=False).train(training)
    ids = torch.randn(40, 16, requires_grad=True)  # (B, d)
    fields = torch.randn(40, 3, 16, requires_grad=True)  # (B, F, d)
    torch.manual_seed(7)
    attended, weights = fusion._attend(ids, fields, None)
    torch.manual_seed(7)  # the same draws: the same entries dropped
    ref, ref_weights = fusion.attn(ids.unsqueeze(1), fields, fields, need_weights=True, average_attn_weights=True)
    assert torch.allclose(attended, ref.squeeze(1), atol=1e-6)
    assert torch.allclose(weights, ref_weights.squeeze(1), atol=1e-6)
    wanted = [ids, fields, fusion.attn.in_proj_weight, fusion.attn.out_proj.weight]
    grads = torch.autograd.grad((attended * torch.arange(16.0)).sum() + weights[:, 0].sum(), wanted)
    ref_grads = torch.autograd.grad((ref.squeeze(1) * torch.arange(16.0)).sum() + ref_weights[:, 0, 0].sum(), wanted)
    for got, want in zip(grads, ref_grads):
        assert torch.allclose(got, want, atol=1e-5)


def test_identical_fields_share_the_attention_and_the_weights_sum_to_one():
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(8, 2, n_heads=2).eval()
    fields = torch.randn(5, 1, 8).expand(5, 2, 8)  # both fields the same vector
    fused, weights = fusion(torch.randn(5, 8), fields)
    assert fused.shape == (5, 8)
    assert torch.allclose(weights, torch.full((5, 2), 0.5))
    _, weights = fusion(torch.randn(5, 8), torch.randn(5, 2, 8))
    assert torch.allclose(weights.sum(1), torch.ones(5))


@pytest.mark.parametrize("use_attention", [True, False])
def test_ids_sharing_a_field_set_get_what_their_own_copies_give(use_attention):
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(8, 2, n_heads=2, dropout=0.3, use_attention=use_attention).train()
    ids = torch.randn(5, 8)  # (B, d)
    fields = torch.randn(3, 2, 8, requires_grad=True)  # (K, F, d) three distinct field sets
    rows = torch.tensor([0, 2, 0, 1, 2])  # (B,)
    outs = []
    for shared in (True, False):
        torch.manual_seed(7)  # the same dropout draws
        fused, _ = fusion(ids, fields, rows) if shared else fusion(ids, fields[rows])
        grads = torch.autograd.grad((fused * torch.arange(8.0)).sum(), [fields, *fusion.parameters()])
        outs.append((fused, grads))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    for got, want in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(got, want)


def test_a_step_projects_each_user_profile_once_with_unchanged_results(tiny_lm, monkeypatch):
    dataset, train = meta_data()
    dataset.users["gender"], dataset.users["occupation"] = "M", "writer"
    dataset.users.loc[4:, "gender"] = "F"  # two profiles among 8 users
    template = TemplateConfig(user_template="{gender} {occupation}")
    config = EnhancedConfig(lm=tiny_lm, text_cache=False, dim=8, n_heads=2, template=template, contrastive_weight=0.1)

    def run(share: float):
        monkeypatch.setattr(enhanced_module, "DEDUP_SHARE", share)  # 0: every user projects its own copy
        torch.manual_seed(0)
        model = build_enhanced(config, ctx_for(dataset, train)).train()
        projected = []
        model.user_keys.register_forward_hook(lambda _m, inputs, _o: projected.append(len(inputs[0])))
        users = torch.tensor([0, 1, 5, 4, 6, 2])  # 6 users of the 2 profiles
        loss = step(model, users, BATCH[1].repeat(2)[:6], BATCH[2].repeat(2)[:6])
        return projected, loss, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    shared, plain = run(0.5), run(0.0)
    assert shared[0] == [2] and plain[0] == [6]  # one projection per distinct profile, not per user
    torch.testing.assert_close(shared[1], plain[1])
    assert shared[2].keys() == plain[2].keys() and "user_keys.proj.weight" in shared[2]
    for name, grad in shared[2].items():
        torch.testing.assert_close(grad, plain[2][name], msg=name)


def test_step_memo_encodes_each_entity_once_and_returns_its_row():
    calls = []

    def encode(new):  # rows [id, 10 * id]
        calls.append(new.tolist())
        return torch.stack([new.float(), 10.0 * new.float()], 1)

    step = StepState(torch.Generator().manual_seed(0))
    assert step.memo("item", torch.tensor([3, 1, 3]), encode).tolist() == [[3, 30], [1, 10], [3, 30]]
    rows, pos = step.memo_rows("item", torch.tensor([5, 1, 5, 3]), encode)
    assert calls == [[1, 3], [5]]  # only 5 was new
    assert rows[pos][:, 1].tolist() == [50, 10, 50, 30]
