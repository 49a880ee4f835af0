"""The scale benchmark's analysis: growth exponents worked out by hand, the report and the plot."""

from __future__ import annotations

import pytest

from gpt2rec.bench.scale import fits, growth_exponent, plot, report


def test_growth_exponent_known_slopes():
    xs = [1e5, 1e6, 1e7]
    assert growth_exponent(xs, [2.0, 20.0, 200.0]) == pytest.approx(1.0)  # linear
    assert growth_exponent(xs, [3.0, 300.0, 30000.0]) == pytest.approx(2.0)  # quadratic
    assert growth_exponent(xs, [5.0, 5.0, 5.0]) == pytest.approx(0.0, abs=1e-12)
    assert growth_exponent([1e5], [1.0]) is None and growth_exponent(xs, [1.0, 0.0, 2.0]) is None


def _records():
    base = {"users": 10, "items": 10, "threads": 1, "load_s": 1.0}
    return [
        {**base, "job": "bpr", "interactions": 10**5, "epoch_s": 1.0, "peak_rss_gib": 0.5, "ann_recall@10": 0.97,
         "ann_speedup": 6.0, "exact_search_s": 6.0, "ann_search_s": 1.0, "ann_build_s": 2.0},
        {**base, "job": "bpr", "interactions": 10**6, "epoch_s": 10.0, "peak_rss_gib": 1.0, "ann_recall@10": 0.96,
         "ann_speedup": 7.0, "exact_search_s": 7.0, "ann_search_s": 1.0, "ann_build_s": 3.0,
         "load_avg_1_5_15": [2.25, 1.5, 1.0]},
        {"job": "enhanced", "interactions": 10**5, "users": 10, "items": 10, "error": "killed"},
    ]  # fmt: skip


def test_fits_report_and_plot(tmp_path):
    recs = _records()
    got = fits(recs)
    assert got["bpr.epoch_s"] == pytest.approx(1.0) and got["bpr.peak_rss_gib"] == pytest.approx(0.301, abs=1e-3)
    assert got["enhanced.epoch_s"] is None  # only a failed record
    data = {"records": recs, "fits": got, "machine": {"cpus": 2, "load_avg_1_5_15": [1.0, 1.0, 1.0]}}
    md = report(data)
    assert "ANN recall@10 0.970, speed-up 6.0x" in md and "failed: killed" in md and "bpr.epoch_s: 1.0" in md
    assert "| 1.00 | 2.2/1.5/1.0 | ANN recall@10 0.960" in md  # each job's load average next to its timing
    assert plot(data, tmp_path / "scale.png") and (tmp_path / "scale.png").stat().st_size > 1000
