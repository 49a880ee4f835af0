"""The demo end to end on a synthetic ML-100K folder with the tiny in-process GPT-2."""

from __future__ import annotations

from conftest import write_ml100k_folder
from gpt2rec.demo import run_demo


def test_demo_trains_compares_explains_and_cold_starts_then_reuses_runs(tiny_lm, tmp_path, capsys):
    (tmp_path / "ml-100k").mkdir()
    ml_folder = write_ml100k_folder(tmp_path / "ml-100k")
    train = {"epochs": 2, "batch_size": 16, "patience": 0}
    results = run_demo(tmp_path / "demo", lm=tiny_lm, user=1, dataset=str(ml_folder), train=train)
    out = capsys.readouterr().out
    assert set(results) == {"bpr", "ease", "l3ae", "enhanced"}
    assert all(0.0 <= r["ndcg@10"] <= 1.0 for r in results.values())
    assert "language model: tiny-gpt2" in out
    assert "Because you liked" in out  # explanations of the l3ae run (the liked items carrying the score)
    assert "top 5 for user 1 from l3ae" in out
    assert "a brand-new user" in out and out.count("(score") >= 6  # 5 explained + cold-start rows
    assert "users with the profiles nearest yours had it" in out  # why, for the new user
    # a second demo reuses both finished runs instead of training again
    assert run_demo(tmp_path / "demo", lm=tiny_lm, user=1, dataset=str(ml_folder), train=train) == results
    assert capsys.readouterr().out.count("reusing the finished run") == 4
