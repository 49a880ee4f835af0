"""`gpt2rec encode` end to end on a tiny GPT-2 folder and a tiny dataset: files and figures."""

import json

import pandas as pd
import pytest
from safetensors.torch import load_file

from gpt2rec.cli import main
from gpt2rec.data.dataset import Dataset


@pytest.fixture
def tiny_dataset(monkeypatch):
    inter = pd.DataFrame(
        {"user_id": [1, 1, 2, 3], "item_id": [5, 6, 5, 7], "rating": [5, 3, 4, 1], "timestamp": [1, 2, 3, 4]}
    )
    users = pd.DataFrame(
        {"user_id": [1, 2, 3], "gender": ["M", "F", "M"], "age": [30, 18, 30], "occupation": ["x", "y", "x"]}
    )
    items = pd.DataFrame(
        {"item_id": [5, 6, 7], "title": ["A (1990)", "B (1991)", "C (1992)"], "genres": [["Drama"], [], ["Comedy"]]}
    )
    ds = Dataset.from_frames("tiny", inter, users, items)
    import gpt2rec.data.load as load

    monkeypatch.setattr(load, "load_dataset", lambda cfg: ds)
    return ds


def test_encode_writes_embeddings_and_figures(tiny_gpt2, tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path / "home"))
    model, tok = tiny_gpt2
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    out = tmp_path / "out"
    argv = ["encode", "--dataset", "tiny", "--lm", str(tmp_path / "lm"), "--out", str(out), "--pooling", "mean"]
    assert main(argv) == 0
    report = json.loads((out / "encode.json").read_text())
    assert report["texts"] == 6 and report["users"] == 3 and report["items"] == 3
    assert report["unique_texts"] == 5  # users 1 and 3 share a profile
    assert report["cached"] is False and report["ratio_to_limit"] > 0
    for key in ("seconds", "texts_per_s", "limit_texts_per_s"):
        assert report[key] > 0
    users = load_file(str(out / "users.safetensors"))["embeddings"]
    assert users.shape == (3, 32) and (users[0] == users[2]).all()
    assert list((tmp_path / "home" / "embeddings").rglob("*.safetensors"))  # through the cache
    assert main(argv) == 0
    again = json.loads((out / "encode.json").read_text())
    assert again["cached"] is True and again["ratio_to_limit"] is None


@pytest.mark.parametrize(("pooling", "models"), [("fields", ["enhanced", "l3ae"]), ("mean", ["basic"])])
def test_training_reads_the_vectors_encode_cached(tiny_gpt2, tmp_path, monkeypatch, pooling, models):
    """`gpt2rec encode` warms the very cache entries the models read: training adds none. Six users
    of two profiles, so the users' distinct sentences are what goes through the LM."""
    import gpt2rec.data.load as load
    import gpt2rec.pipeline as pipeline  # imported first, so its own `load_dataset` is the one patched

    users = pd.DataFrame({"user_id": range(1, 7), "gender": ["M", "F"] * 3, "age": [30, 18] * 3,
                          "occupation": ["x", "y"] * 3})  # fmt: skip
    items = pd.DataFrame({"item_id": range(1, 7), "title": [f"T{i} (1990)" for i in range(6)],
                          "genres": [["Drama"], ["Comedy"]] * 3})  # fmt: skip
    inter = pd.DataFrame([(u, i, 4, u * 10 + i) for u in range(1, 7) for i in range(1, 7) if (u + i) % 3],
                         columns=["user_id", "item_id", "rating", "timestamp"])  # fmt: skip
    for module in (load, pipeline):
        monkeypatch.setattr(module, "load_dataset", lambda cfg: Dataset.from_frames("six", inter, users, items))
    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path / "home"))
    model, tok = tiny_gpt2
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    lm = str(tmp_path / "lm")
    assert main(["encode", "--dataset", "six", "--lm", lm, "--pooling", pooling, "--out", str(tmp_path / "e")]) == 0
    cached = sorted((tmp_path / "home" / "embeddings").rglob("*.safetensors"))
    assert len(cached) == 2  # users (their 2 distinct sentences) and items
    for name in models:
        argv = ["train", "--model", name, "--dataset", "six", "--lm", lm, "--split", "loo", "--epochs", "1", "--quiet"]
        assert main([*argv, "--out", str(tmp_path / name)]) == 0
    assert sorted((tmp_path / "home" / "embeddings").rglob("*.safetensors")) == cached


def test_encode_unavailable_lm_is_one_line_exit_2(tiny_dataset, monkeypatch, capsys):
    from gpt2rec.text import offline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(offline, "in_hf_cache", lambda name: False)
    assert main(["encode", "--dataset", "tiny", "--lm", "gpt2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gpt2rec: error:") and "\n" not in err and "gemma3-270m" in err


def test_limit_is_timed_on_each_job_batch_and_hooks_are_removed(tiny_gpt2, tiny_dataset, tmp_path):
    from gpt2rec.text.cache import EmbeddingCache
    from gpt2rec.text.encoder import EncoderConfig, TextEncoder
    from gpt2rec.text.precompute import encode_dataset

    enc = TextEncoder(EncoderConfig(batch_size=2), *tiny_gpt2)
    calls = []
    enc.backbone.register_forward_hook(lambda m, a, o: calls.append(1))
    report = encode_dataset(tiny_dataset, enc, cache=EmbeddingCache(tmp_path), progress=False)
    job_batches = 1 + 2  # 2 unique users (batch 2) + 3 items
    assert report["limit_batches"] == job_batches
    assert len(calls) == 1 + 2 * job_batches  # warm-up, then each batch twice (job + timed limit)
    assert len(enc.backbone._forward_hooks) == 1 and not enc.backbone._forward_pre_hooks
