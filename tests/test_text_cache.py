"""Embedding cache: miss then hit, keys that change with the encoder/texts, damaged entries rebuilt."""

import pytest
import torch

from gpt2rec.text.cache import EmbeddingCache, cached_encode
from gpt2rec.text.encoder import EncoderConfig, TextEncoder

TEXTS = ["Movie: Toy Story (1995). Genres: Comedy.", "Heat", "User profile: Gender is female."]


class Counting(TextEncoder):
    calls = 0

    def encode(self, *args, **kwargs):
        Counting.calls += 1
        return super().encode(*args, **kwargs)


@pytest.fixture
def enc(tiny_gpt2):
    Counting.calls = 0
    return Counting(EncoderConfig(), *tiny_gpt2)


def test_miss_then_hit_returns_the_same_tensor(enc, tmp_path):
    cache = EmbeddingCache(tmp_path)
    first = cache.encode(enc, TEXTS, progress=False)
    second = cache.encode(enc, TEXTS, progress=False)
    assert Counting.calls == 1 and (cache.misses, cache.hits) == (1, 1)
    assert torch.equal(first, second)
    files = list(tmp_path.rglob("*.safetensors"))
    assert len(files) == 1 and files[0].parent.name == "injected"


def test_default_root_is_home_embeddings(enc, tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path))
    cached_encode(enc, TEXTS, progress=False)
    assert list((tmp_path / "embeddings").rglob("*.safetensors"))


def test_key_changes_with_texts_pooling_and_layer(tiny_gpt2, tmp_path):
    cache = EmbeddingCache(tmp_path)
    base = TextEncoder(EncoderConfig(), *tiny_gpt2)
    k = cache.key(base.fingerprint(), "t", TEXTS)
    assert cache.path(k) == cache.path(cache.key(base.fingerprint(), "t", list(TEXTS)))
    assert cache.path(k) != cache.path(cache.key(base.fingerprint(), "t", TEXTS[:2]))
    assert cache.path(k) != cache.path(cache.key(base.fingerprint(), "other template", TEXTS))
    for cfg in (EncoderConfig(pooling="last"), EncoderConfig(layer=1), EncoderConfig(max_length=8)):
        other = TextEncoder(cfg, *tiny_gpt2)
        assert cache.path(cache.key(other.fingerprint(), "t", TEXTS)) != cache.path(k)


def test_key_changes_with_trained_adapters(tiny_gpt2, tmp_path):
    enc = TextEncoder(EncoderConfig(finetune="lora"), *tiny_gpt2)
    before = enc.fingerprint()
    with torch.no_grad():
        next(p for n, p in enc.backbone.named_parameters() if "lora_B" in n).add_(1.0)
    assert enc.fingerprint() != before


@pytest.mark.parametrize("damage", ["garbage", "truncate", "flip", "other_key"])
def test_damaged_entry_is_detected_and_rebuilt(enc, tmp_path, damage):
    cache = EmbeddingCache(tmp_path)
    good = cache.encode(enc, TEXTS, progress=False)
    path = next(tmp_path.rglob("*.safetensors"))
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\x00" * 20)
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # one byte of the tensor data: only the checksum can tell
        path.write_bytes(data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:])
    else:  # a valid file written for other texts, copied over this entry
        other = EmbeddingCache(tmp_path / "o")
        other.encode(enc, TEXTS[:1], progress=False)
        path.write_bytes(next((tmp_path / "o").rglob("*.safetensors")).read_bytes())
    calls = Counting.calls
    with pytest.warns(UserWarning, match="rebuilding"):
        again = cache.encode(enc, TEXTS, progress=False)
    assert Counting.calls == calls + 1
    assert torch.equal(again, good)
    assert cache.load(cache.key(enc.fingerprint(), "", TEXTS)) is not None  # rewritten, valid


def test_fields_and_tokens_pooling_cache(tiny_gpt2, tmp_path):
    cache = EmbeddingCache(tmp_path)
    f = TextEncoder(EncoderConfig(pooling="fields"), *tiny_gpt2)
    spans = [{"a": (0, 5), "b": (7, 10)}, {"a": (0, 4)}, {"a": (0, 4), "b": (5, 9)}]
    first = cache.encode(f, TEXTS, spans, progress=False)
    f.fields = []
    assert torch.equal(cache.encode(f, TEXTS, spans, progress=False), first) and cache.hits == 1
    assert f.fields == ["a", "b"]
    t = TextEncoder(EncoderConfig(pooling="tokens"), *tiny_gpt2)
    states, mask = cache.encode(t, TEXTS, progress=False)
    states2, mask2 = cache.encode(t, TEXTS, progress=False)
    assert torch.equal(states, states2) and torch.equal(mask, mask2)


def test_no_temporary_files_left(enc, tmp_path):
    EmbeddingCache(tmp_path).encode(enc, TEXTS, progress=False)
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_key_is_the_same_before_and_after_the_tokenizer_first_runs(tiny_gpt2):
    """MiniLM's tokenizer ships with truncation and padding set; its first call clears them. `gpt2rec
    encode` ran the tokenizer before taking the key and training did not: two cache entries, each
    re-encoded by the other path."""
    model, tokenizer = tiny_gpt2
    tokenizer.backend_tokenizer.enable_truncation(8)
    tokenizer.backend_tokenizer.enable_padding(length=8)
    before = TextEncoder(EncoderConfig(), model, tokenizer).fingerprint()  # training: the key first
    tokenizer("warm up")  # `gpt2rec encode`: the tokenizer runs, then the key
    assert tokenizer.backend_tokenizer.truncation is None  # the call did clear the shipped state
    assert TextEncoder(EncoderConfig(), model, tokenizer).fingerprint() == before
