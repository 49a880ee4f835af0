"""Fast mode: cached lower-block states + top blocks == the plain full forward; gradients; dedup."""

import pytest
import torch

from gpt2rec.text.encoder import EncoderConfig, TextEncoder
from gpt2rec.text.fast import FastEncoder

TEXTS = [
    "User profile: Gender is male, Age group is 25-34, Occupation is engineer.",
    "Movie: Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "Heat",
    "User profile: Gender is male, Age group is 25-34, Occupation is engineer.",
    "Movie: GoldenEye (1995). Genres: Action.",
]


def _pair(tiny, pooling="mean", top=2):
    model, tok = tiny
    enc = TextEncoder(EncoderConfig(finetune="lora", top_n_blocks=top, pooling=pooling, batch_size=2), model, tok)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-zero adapters so the top blocks differ from the base model
        for n, p in enc.backbone.named_parameters():
            if "lora_" in n:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return enc, FastEncoder(enc)


@pytest.mark.parametrize("pooling", ["mean", "last", "fields"])
def test_fast_equals_full_forward(tiny_gpt2_4layers, pooling):
    enc, fast = _pair(tiny_gpt2_4layers, pooling, top=2)
    spans = [{"a": (0, 4), "b": (5, 12)}] * len(TEXTS) if pooling == "fields" else None
    fast(TEXTS[2:], spans[2:] if spans else None)  # warm the cache from another batch composition
    expected = enc.encode_train(TEXTS, spans)
    got = fast(TEXTS, spans)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)
    assert len(fast) == 4  # distinct texts cached once


def test_fast_gradients_match_and_reach_only_top_adapters(tiny_gpt2_4layers):
    enc, fast = _pair(tiny_gpt2_4layers)
    params = {n: p for n, p in enc.backbone.named_parameters() if p.requires_grad}
    assert params and all(n.startswith(("h.2.", "h.3.")) for n in params)
    enc.encode_train(TEXTS).pow(2).sum().backward()
    plain = {n: p.grad.clone() for n, p in params.items()}
    enc.zero_grad()
    fast(TEXTS).pow(2).sum().backward()
    for n, p in params.items():
        assert (p.grad - plain[n]).norm() <= 1e-4 * plain[n].norm() + 1e-6, n  # float noise, amplified
    assert all(p.grad is None for n, p in enc.backbone.named_parameters() if not p.requires_grad)


def test_fast_restores_blocks_and_counts_hits(tiny_gpt2_4layers):
    enc, fast = _pair(tiny_gpt2_4layers)
    blocks = list(enc.backbone.h)
    fast(TEXTS)
    assert list(enc.backbone.h) == blocks
    assert (fast.cache_misses, fast.cache_hits) == (4, 0)
    fast(TEXTS[:2])
    assert fast.cache_hits == 2
    assert "encoder" in dict(fast.named_children()) and "_blocks" not in dict(fast.named_children())


def test_fast_needs_top_n_blocks(tiny_gpt2):
    model, tok = tiny_gpt2
    with pytest.raises(ValueError, match="top_n_blocks"):
        FastEncoder(TextEncoder(EncoderConfig(finetune="lora"), model, tok))


def _tiny_other(kind, tok):
    import transformers as tf

    torch.manual_seed(0)
    if kind == "gemma3":  # rotary positions, sliding-window layers, <bos>-free tiny tokenizer
        cfg = tf.Gemma3TextConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=4,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            sliding_window=4,
            max_position_embeddings=64,
            pad_token_id=tok.pad_token_id,
        )
        return tf.Gemma3TextModel(cfg).eval()
    cfg = tf.BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=2,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
    )
    return tf.BertModel(cfg, add_pooling_layer=False).eval()


@pytest.mark.parametrize("kind", ["gemma3", "bert"])
def test_fast_equals_full_forward_on_other_architectures(tiny_gpt2, kind):
    _, tok = tiny_gpt2
    enc, fast = _pair((_tiny_other(kind, tok), tok), "mean", top=1)
    assert all(
        n.startswith(("layers.3.", "encoder.layer.3.")) for n, p in enc.backbone.named_parameters() if p.requires_grad
    )
    fast(TEXTS[1:3])
    assert torch.allclose(fast(TEXTS), enc.encode_train(TEXTS), atol=1e-5)
