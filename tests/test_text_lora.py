"""LoRA: gradients reach adapters only; adapters save/load alone (safetensors) with identical output."""

import pytest
import torch

from gpt2rec.errors import UserError
from gpt2rec.text.encoder import EncoderConfig, TextEncoder
from gpt2rec.text.lora import adapter_state_dict, default_lora_targets, load_adapter, save_adapter

TEXTS = ["Movie: Toy Story (1995). Genres: Comedy.", "User profile: Gender is male.", "Heat", "Heat"]


def _lora(tiny, **kw):
    model, tok = tiny
    return TextEncoder(EncoderConfig(finetune="lora", lora_r=4, **kw), model=model, tokenizer=tok)


def test_gradients_reach_lora_params_and_never_frozen_ones(tiny_gpt2):
    enc = _lora(tiny_gpt2)
    enc.train()
    enc.encode_train(TEXTS).pow(2).sum().backward()
    named = dict(enc.backbone.named_parameters())
    lora = {n: p for n, p in named.items() if "lora_" in n}
    assert lora and all(p.requires_grad for p in lora.values())
    # lora_B starts at zero, so lora_A gets no gradient on step one; B must
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n)
    assert all(p.grad is None and not p.requires_grad for n, p in named.items() if "lora_" not in n)
    targets = {n.split(".lora_")[0].split(".")[-1] for n in lora}
    assert targets == {"c_attn", "c_proj"}  # GPT-2 default targets (attn and mlp c_proj)


def test_top_n_blocks_limits_adapters(tiny_gpt2):
    enc = _lora(tiny_gpt2, top_n_blocks=1)
    names = [n for n in adapter_state_dict(enc.backbone)]
    assert names and all(n.startswith("h.1.") for n in names)


def _perturb(enc, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in enc.backbone.named_parameters():
            if "lora_" in n:
                p.add_(torch.randn(p.shape, generator=g) * 0.5)


def test_save_load_round_trip_gives_identical_embeddings(tiny_gpt2, tiny_gpt2_factory, tmp_path):
    enc = _lora(tiny_gpt2)
    _perturb(enc)
    before = enc.encode(TEXTS, progress=False)
    base = TextEncoder(EncoderConfig(), *tiny_gpt2_factory()).encode(TEXTS, progress=False)
    assert not torch.allclose(before, base, atol=1e-4)  # the adapters change the output
    path = tmp_path / "adapter.safetensors"
    save_adapter(enc, path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    assert keys and all("lora_" in k for k in keys)  # never the base model
    again = _lora(tiny_gpt2_factory())
    assert torch.allclose(again.encode(TEXTS, progress=False), base, atol=1e-6)
    load_adapter(again, path)
    assert torch.equal(again.encode(TEXTS, progress=False), before)


def test_encoder_state_dict_holds_only_adapters_and_round_trips(tiny_gpt2, tiny_gpt2_factory):
    enc = _lora(tiny_gpt2)
    _perturb(enc)
    state = enc.state_dict()
    assert state and all("lora_" in k for k in state)
    other = _lora(tiny_gpt2_factory())
    other.load_state_dict(state, strict=True)
    assert torch.equal(other.encode(TEXTS, progress=False), enc.encode(TEXTS, progress=False))
    with pytest.raises(RuntimeError, match="Missing"):
        other.load_state_dict({}, strict=True)  # adapters are required


def test_adapter_settings_mismatch_is_a_clear_error(tiny_gpt2, tiny_gpt2_factory, tmp_path):
    enc = _lora(tiny_gpt2)
    save_adapter(enc, tmp_path / "a.safetensors")
    other = TextEncoder(EncoderConfig(finetune="lora", lora_r=2), *tiny_gpt2_factory())
    with pytest.raises(UserError, match="settings"):
        load_adapter(other, tmp_path / "a.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(UserError, match="unreadable"):
        load_adapter(enc, tmp_path / "bad.safetensors")


def test_default_targets_by_architecture():
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel

    bert = BertModel(
        BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8, vocab_size=10)
    )
    llama = LlamaModel(
        LlamaConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8, vocab_size=10)
    )
    assert default_lora_targets(bert) == ("query", "value")
    assert default_lora_targets(llama) == ("q_proj", "k_proj", "v_proj", "o_proj")
