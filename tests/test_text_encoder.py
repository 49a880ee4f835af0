"""TextEncoder on the tiny GPT-2: pooling by hand, batch invariance, fields, training, state dicts."""

import pytest
import torch

from gpt2rec.errors import UserError
from gpt2rec.text.encoder import EncoderConfig, TextEncoder, field_weights, last_pool, mean_pool
from gpt2rec.utils.config import from_dict

TEXTS = [
    "Movie: Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "User profile: Gender is male, Age group is 25-34, Occupation is engineer.",
    "Heat",
    "Movie: GoldenEye (1995). Genres: Action.",
]


def _enc(tiny, **kw):
    model, tok = tiny
    return TextEncoder(EncoderConfig(**kw), model=model, tokenizer=tok)


def test_mean_pool_and_last_pool_by_hand():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2), last token is padding
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(mean_pool(h, mask), torch.tensor([[2.0, 3.0]]))
    assert torch.equal(last_pool(h, mask), torch.tensor([[3.0, 4.0]]))
    left = torch.tensor([[0, 1, 1]])  # left padding: the last valid token is the last position
    assert torch.equal(last_pool(h, left), torch.tensor([[100.0, 100.0]]))


def test_mean_matches_manual_computation_on_the_model(tiny_gpt2):
    enc = _enc(tiny_gpt2)
    model, tok = tiny_gpt2
    got = enc.encode(TEXTS, progress=False)
    for i, text in enumerate(TEXTS):
        ids = torch.tensor([tok(text)["input_ids"]])
        with torch.no_grad():
            states = model(input_ids=ids).last_hidden_state[0]  # (L, D), no padding at all
        assert torch.allclose(got[i], states.mean(0), atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_same_vector_alone_or_in_a_padded_batch(tiny_gpt2, pooling):
    enc = _enc(tiny_gpt2, pooling=pooling, batch_size=3)
    batch = enc.encode(TEXTS, progress=False)
    for i, text in enumerate(TEXTS):
        alone = enc.encode([text], progress=False)[0]
        assert torch.allclose(alone, batch[i], atol=1e-5)
    assert not torch.allclose(batch[0], batch[2], atol=1e-3)  # different texts differ


def test_layer_choice_and_duplicates(tiny_gpt2):
    model, tok = tiny_gpt2
    enc = _enc(tiny_gpt2, layer=0)  # layer 0 = embeddings (token + position)
    got = enc.encode(["Heat", "Heat"], progress=False)
    ids = torch.tensor(tok("Heat")["input_ids"])
    emb = (model.wte(ids) + model.wpe(torch.arange(len(ids)))).mean(0)
    assert torch.allclose(got[0], emb, atol=1e-5) and torch.equal(got[0], got[1])


def test_field_pooling_matches_tokens_of_each_span(tiny_gpt2):
    enc = _enc(tiny_gpt2, pooling="fields")
    model, tok = tiny_gpt2
    text = "Movie: Toy Story (1995). Genres: Animation, Comedy."
    spans = {"title": (7, 23), "genres": (33, 50)}
    assert text[7:23] == "Toy Story (1995)" and text[33:50] == "Animation, Comedy"
    got = enc.encode([text, "Heat"], [spans, {"title": (0, 4)}], progress=False)
    assert got.shape == (2, 2, 32) and enc.fields == ["title", "genres"]
    e = tok(text, return_offsets_mapping=True)
    with torch.no_grad():
        states = model(input_ids=torch.tensor([e["input_ids"]])).last_hidden_state[0]
    for f, (s, t) in enumerate(spans.values()):
        toks = [i for i, (a, b) in enumerate(e["offset_mapping"]) if b > a and a < t and b > s]
        assert "".join(text[a:b] for a, b in [e["offset_mapping"][i] for i in toks]).strip() in text[s - 1 : t + 1]
        assert torch.allclose(got[0, f], states[toks].mean(0), atol=1e-5)
    assert torch.equal(got[1, 1], torch.zeros(32))  # "Heat" has no genres field


def test_field_weights_by_hand():
    w = field_weights([[(0, 2), (2, 3), (0, 0)]], [{"a": (0, 2), "b": (2, 3), "c": (5, 6)}], ["a", "b", "c"], 4)
    assert torch.equal(w[0], torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 0]]))


def test_tokens_pooling_returns_states_and_mask(tiny_gpt2):
    states, mask = _enc(tiny_gpt2, pooling="tokens").encode(TEXTS, progress=False)
    assert states.shape[:2] == mask.shape and mask[2].sum() < mask[0].sum()
    assert torch.equal(states[2][mask[2] == 0], torch.zeros_like(states[2][mask[2] == 0]))


def test_truncation_warns(tiny_gpt2):
    enc = _enc(tiny_gpt2, max_length=5)
    with pytest.warns(UserWarning, match="truncated"):
        out = enc.encode(TEXTS, progress=False)
    assert out.shape == (4, 32)


def test_frozen_encoder_has_no_trainable_weights_and_empty_state(tiny_gpt2):
    enc = _enc(tiny_gpt2)
    assert not any(p.requires_grad for p in enc.parameters())
    assert dict(enc.state_dict()) == {}
    enc.load_state_dict({}, strict=True)  # frozen weights come from config.model, not checkpoints


def test_full_finetune_top_blocks_and_gradients(tiny_gpt2):
    enc = _enc(tiny_gpt2, finetune="full", top_n_blocks=1)
    enc.train()
    enc.encode_train(TEXTS).pow(2).sum().backward()
    grads = {n: p.grad for n, p in enc.backbone.named_parameters()}
    assert all(grads[n] is not None for n in grads if n.startswith("h.1."))
    assert all(grads[n] is None for n in grads if n.startswith("h.0.") or n.startswith("wte"))
    keys = list(enc.state_dict())
    assert keys and all(k.startswith("backbone.h.1.") for k in keys)


def test_config_validation():
    with pytest.raises(ValueError, match="pooling"):
        EncoderConfig(pooling="max")
    with pytest.raises(ValueError, match="top_n_blocks"):
        EncoderConfig(top_n_blocks=1)  # frozen: nothing to fine-tune
    with pytest.raises(ValueError):
        EncoderConfig(finetune="qlora")
    with pytest.raises(UserError, match="finetune must be one of"):  # the edge: one UserError
        from_dict(EncoderConfig, {"finetune": "qlora"})


def test_pad_token_fallback_stays_inside_the_vocabulary(tiny_tokenizer_object):
    from transformers import PreTrainedTokenizerFast

    from gpt2rec.text.encoder import prepare_tokenizer

    tok = PreTrainedTokenizerFast(
        tokenizer_object=tiny_tokenizer_object.__class__.from_str(tiny_tokenizer_object.to_str())
    )
    assert tok.pad_token is None and tok.eos_token is None
    prepare_tokenizer(tok)
    assert tok.pad_token_id is not None and tok.pad_token_id < tiny_tokenizer_object.get_vocab_size()
    assert tok.padding_side == "right"
