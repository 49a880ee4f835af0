"""The enhanced model's fusion: its single-query attention is exactly `nn.MultiheadAttention`, and a
training step's memo computes each entity once and hands back only the columns asked for."""

import pytest
import torch

from gpt2rec.models.enhanced_lm import StepState
from gpt2rec.models.fusion import CrossAttentionFusion


@pytest.mark.parametrize("training", [False, True])
def test_single_query_attention_is_multihead_attention_with_its_dropout_draws(training):
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(16, 3, n_heads=4, dropout=0.3, norm=False).train(training)
    ids = torch.randn(40, 16, requires_grad=True)  # (B, d)
    fields = torch.randn(40, 3, 16, requires_grad=True)  # (B, F, d)
    torch.manual_seed(7)
    attended, weights = fusion._attend(ids, fields)
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
