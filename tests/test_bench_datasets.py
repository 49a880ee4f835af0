"""Which datasets a bench run covers (`gpt2rec.bench.datasets`)."""

from __future__ import annotations

from gpt2rec.bench import plan
from gpt2rec.bench.datasets import datasets_to_run


def test_ml1m_joins_the_full_run_only_when_cached(monkeypatch):
    import gpt2rec.data.fetch as fetch

    base = plan.BenchConfig()
    monkeypatch.setattr(fetch, "is_fetched", lambda name: False)
    assert [c.dataset for c in datasets_to_run(base)] == ["ml-100k"]
    monkeypatch.setattr(fetch, "is_fetched", lambda name: True)
    configs = datasets_to_run(base)
    assert [c.dataset for c in configs] == ["ml-100k", "ml-1m"]
    assert configs[1].protocols == ("ncf",) and "neumf" in configs[1].models and not configs[1].speed
    assert [c.dataset for c in datasets_to_run(plan.BenchConfig(quick=True))] == ["ml-100k"]
    assert [c.stem for c in datasets_to_run(base, "/data/my-ml")] == ["my-ml"]
