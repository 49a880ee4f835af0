"""The demo end to end on a synthetic ML-100K folder with the tiny in-process GPT-2."""

from __future__ import annotations

import argparse

from conftest import write_ml100k_folder
from gpt2rec.cli import demo as demo_cli
from gpt2rec.demo import run_demo


def test_demo_trains_compares_explains_and_cold_starts_then_reuses_runs(tiny_lm, tmp_path, capsys, monkeypatch):
    (tmp_path / "ml-100k").mkdir()
    ml_folder = write_ml100k_folder(tmp_path / "ml-100k")
    train = {"epochs": 2, "batch_size": 16, "patience": 0}
    result = run_demo(tmp_path / "demo", lm=tiny_lm, user=1, dataset=str(ml_folder), train=train)
    assert capsys.readouterr().out == ""  # the library prints nothing: it returns what it found (and logs)
    assert set(result.metrics) == {"bpr", "ease", "l3ae", "enhanced"} and result.reused == []
    assert all(0.0 <= r["ndcg@10"] <= 1.0 for r in result.metrics.values())
    assert result.lm == "tiny-gpt2" and len(result.explained) == 5 and len(result.cold_start) == 5
    assert all(r["reason"].startswith("Because you liked") for r in result.explained)  # the liked items behind it
    assert all(" users had it" in r["reason"] for r in result.cold_start)  # (all of them: a tiny folder)

    # `gpt2rec demo` again: it reuses every finished run instead of training again, and prints the table
    calls = []

    def same_demo(out, lm, seed, user):
        calls.append((out, lm, seed, user))
        again = run_demo(tmp_path / "demo", lm=tiny_lm, seed=seed, user=1, dataset=str(ml_folder), train=train)
        assert again.metrics == result.metrics and again.reused == ["bpr", "ease", "l3ae", "enhanced"]
        assert again.explained == result.explained and again.cold_start == result.cold_start
        return again

    monkeypatch.setattr("gpt2rec.demo.run_demo", same_demo)
    assert demo_cli.run(argparse.Namespace(out="runs/demo", lm="auto", seed=0, user=196)) == 0
    assert calls == [("runs/demo", "auto", 0, 196)]
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "language model: tiny-gpt2" in lines[0] and lines[3].split() == ["metric", "bpr", "ease", "l3ae", "enhanced"]
    assert lines[4].startswith("ndcg@10") and "top 5 for user 1 from l3ae" in out
    assert (
        "a brand-new user, from metadata alone (l3ae)" in out
        and out.count("(score") == 10
        and out.count("Because you liked") == 5
    )
    assert "reused: bpr, ease, l3ae, enhanced" in out and "demo/l3ae  then open" in out
    assert len(lines) <= 40  # one screen
