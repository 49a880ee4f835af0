"""`gpt2rec encode --nproc 2` (torchrun, gloo on CPU): the ranks share the distinct texts and rank 0
writes exactly the vectors and the cache entry one process writes."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from conftest import write_ml100k_folder
from gpt2rec.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _entries(home: Path) -> dict[str, dict]:
    return {str(p.relative_to(home)): load_file(str(p)) for p in sorted(home.rglob("*.safetensors"))}


def test_two_process_encode_equals_one_process(tiny_gpt2, tmp_path, monkeypatch):
    model, tok = tiny_gpt2
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    (tmp_path / "ml").mkdir()
    data = write_ml100k_folder(tmp_path / "ml", n_users=20, n_items=24)
    args = ["encode", "--dataset", str(data), "--lm", str(tmp_path / "lm"), "--batch-size", "3", "--no-limit"]

    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path / "home1"))
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path / "home2"))
    monkeypatch.setenv("PYTHONPATH", SRC)  # the torchrun workers import this checkout
    assert main([*args, "--out", str(tmp_path / "two"), "--nproc", "2"]) == 0

    report = json.loads((tmp_path / "two" / "encode.json").read_text())
    assert report["processes"] == 2 and report["texts"] == 44 and report["cached"] is False
    for name in ("users", "items"):
        one = load_file(str(tmp_path / "one" / f"{name}.safetensors"))["embeddings"]
        two = load_file(str(tmp_path / "two" / f"{name}.safetensors"))["embeddings"]
        assert one.shape == two.shape and one.abs().sum() > 0
        assert (one == two).all()  # bit for bit: every batch ran exactly as in one process
    cache1, cache2 = _entries(tmp_path / "home1" / "embeddings"), _entries(tmp_path / "home2" / "embeddings")
    assert list(cache1) == list(cache2) and len(cache1) == 2  # the same two entries (same keys)
    for path in cache1:
        assert all((cache1[path][k] == cache2[path][k]).all() for k in cache1[path])


def test_each_rank_runs_every_world_th_batch(tiny_gpt2, monkeypatch):
    """Rank 1 of 2 runs batches 1, 3, 5, ...: seen through a gather that returns only its own rows."""
    import gpt2rec.distributed as dist
    from gpt2rec.text.encoder import EncoderConfig, TextEncoder

    model, tok = tiny_gpt2
    enc = TextEncoder(EncoderConfig(batch_size=2), model=model, tokenizer=tok)
    texts = [f"Movie {i}: a story number {i}." for i in range(9)]
    prepared = enc.prepare(texts)
    full = enc.encode(texts, progress=False)
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    monkeypatch.setattr(dist, "rank", lambda: 1)
    monkeypatch.setattr(dist, "all_gather_object", lambda obj: [obj])
    part = enc.encode(texts, progress=False, distributed=True)
    mine = sorted(j for rows in prepared.batches[1::2] for j in rows)
    ran = sorted(int(prepared.inverse[i]) for i in range(9) if part[i].abs().sum() > 0)
    assert ran == mine and 0 < len(mine) < 9
    for i in range(9):
        if int(prepared.inverse[i]) in mine:
            assert (part[i] == full[i]).all()
