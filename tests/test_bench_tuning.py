"""Tuning a baseline on validation (coordinate search) and the loss named by the training config."""

from __future__ import annotations

import json

import pytest
import torch

from gpt2rec.bench import tuning
from gpt2rec.models.registry import get_spec
from gpt2rec.train.loop import TrainConfig, fit


def test_the_bpr_tuning_grid_names_real_fields():
    from gpt2rec.bench.plan import config_fields

    protocol, start, axes = tuning.TUNING["bpr"]
    fields = config_fields("bpr")
    train_fields = set(TrainConfig.__dataclass_fields__)
    for axis in axes:
        section, _, name = axis.partition(".")
        assert name in (fields if section == "model" else train_fields), axis
    assert set(start["model"]) <= fields and set(start["train"]) <= train_fields


def test_train_config_names_the_loss():
    with pytest.raises(ValueError, match="loss must be one of bpr, softmax, bce, got 'hinge'"):
        TrainConfig(loss="hinge")


def _fit_losses(loss: str) -> list[float]:
    from gpt2rec.models.base import ModelContext
    from test_train_loop import N_ITEMS, N_USERS, block_split

    torch.manual_seed(0)
    spec = get_spec("bpr")
    model = spec.build(spec.config_cls(dim=4), ModelContext(N_USERS, N_ITEMS))
    cfg = TrainConfig(epochs=2, patience=0, batch_size=16, lr=0.05, seed=0, num_neg=1, loss=loss)
    return [h["loss"] for h in fit(model, ModelContext(N_USERS, N_ITEMS), block_split(), cfg, None).history]


def test_fit_trains_with_the_configs_loss():
    # with one negative, sampled softmax -log(e^p / (e^p + e^n)) = softplus(n - p) IS the BPR loss
    bpr, softmax, bce = _fit_losses("bpr"), _fit_losses("softmax"), _fit_losses("bce")
    assert softmax == pytest.approx(bpr, rel=1e-5)
    assert bce[0] != pytest.approx(bpr[0], rel=1e-3)


def _tune_setup(tmp_path, monkeypatch):
    """A tiny CSV, a two-point grid, and a count of the trainings."""
    from gpt2rec.bench import training
    from test_bench_checks import csv_frame

    csv = tmp_path / "ratings.csv"
    csv_frame(n_items=120).to_csv(csv, index=False)
    protocol, start, _ = tuning.TUNING["bpr"]
    monkeypatch.setitem(tuning.TUNING, "bpr", (protocol, start, {"train.lr": (1e-3, 1e-2)}))
    trained = []
    real = training.train_one

    def counting(run, entry, candidate, job, split):
        trained.append((job.protocol, candidate.get("train", {}).get("lr")))
        return real(run, entry, candidate, job, split)

    monkeypatch.setattr(training, "train_one", counting)
    return csv, trained


def _tune_config(csv, out, **kw):
    from gpt2rec.bench import BenchConfig

    values = dict(dataset=str(csv), out_dir=str(out), models=("bpr",), epochs=1, plots=False, device="cpu")
    return BenchConfig(**{**values, **kw})


def test_tuned_points_are_reused_only_under_the_settings_they_were_scored_with(tmp_path, monkeypatch, caplog):
    """QA: points scored under --epochs 1 were reused by a run under --epochs 2."""
    from gpt2rec.bench.runner import run_tuning

    csv, trained = _tune_setup(tmp_path, monkeypatch)
    run_tuning(_tune_config(csv, tmp_path / "out"))
    assert len(trained) == 2
    run_tuning(_tune_config(csv, tmp_path / "out"))  # the same settings: every point memoised
    assert len(trained) == 2
    caplog.set_level("INFO")
    run_tuning(_tune_config(csv, tmp_path / "out", epochs=2))
    assert len(trained) == 4
    assert "the 2 points stored were scored under other settings (epochs 1 there, 2 here)" in caplog.text
    path = tmp_path / "out" / "ratings.csv.json"
    data = json.loads(path.read_text())
    stored = data["tuning"]["warm|bpr"]
    assert stored["settings"]["epochs"] == 2 and len(stored["tried"]) == 2
    # points stored before settings were (the committed search) count as the full bench's
    del stored["settings"], data["meta"]["signature"]
    path.write_text(json.dumps(data))
    run_tuning(_tune_config(csv, tmp_path / "out", epochs=None))
    assert len(trained) == 4


def test_tune_honours_protocols_and_refuses_one_its_model_does_not_run_on(tmp_path, monkeypatch):
    """QA: `bench tune --protocols ...` tuned on warm whatever was asked."""
    from gpt2rec.bench.runner import run_tuning
    from gpt2rec.errors import UserError

    csv, trained = _tune_setup(tmp_path, monkeypatch)
    run_tuning(_tune_config(csv, tmp_path / "out", protocols=("sparse-50",)))
    assert {p for p, _ in trained} == {"sparse-50"}
    assert set(json.loads((tmp_path / "out" / "ratings.csv.json").read_text())["tuning"]) == {"sparse-50|bpr"}
    with pytest.raises(UserError, match=r"bpr does not run on cold-item in the bench \(it runs on warm, ncf"):
        run_tuning(_tune_config(csv, tmp_path / "out2", protocols=("cold-item",)))
    assert not (tmp_path / "out2").exists()


def test_tune_refuses_a_quality_results_file_made_under_other_settings(tmp_path, monkeypatch):
    """QA: `bench tune --epochs 1` wrote its points into a full run's file, whose report then showed them as its own."""
    from gpt2rec.bench import run_bench
    from gpt2rec.bench.runner import run_tuning
    from gpt2rec.errors import UserError

    csv, trained = _tune_setup(tmp_path, monkeypatch)
    quality = _tune_config(csv, tmp_path / "out", epochs=None, models=("popularity",), protocols=("warm",),
                           speed=False, faithfulness=False)  # fmt: skip
    assert run_bench(quality)["failed"] == 0
    trained.clear()
    before = (tmp_path / "out" / "ratings.csv.json").read_text()
    with pytest.raises(UserError, match=r"holds results made with other settings \(--epochs: not set there, 1 here\)"):
        run_tuning(_tune_config(csv, tmp_path / "out"))
    assert trained == [] and (tmp_path / "out" / "ratings.csv.json").read_text() == before
