"""The synthetic catalog: exact sizes, determinism, and the structure it promises (clusters in the
metadata, power-law popularity); it loads through the generic Parquet loader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpt2rec.cli import main
from gpt2rec.data.load import DataConfig, load_dataset
from gpt2rec.data.synth import SynthConfig, generate
from gpt2rec.errors import UserError
from gpt2rec.utils.config import from_dict

CFG = dict(users=400, items=300, interactions=6000, n_clusters=6)


def test_sizes_distinct_pairs_and_minimum_per_user():
    data = generate(SynthConfig(**CFG))
    inter = data.interactions
    assert len(inter) == 6000
    assert not inter.duplicated(["user_id", "item_id"]).any()
    assert inter["user_id"].value_counts().min() >= 3  # min_per_user
    assert len(data.users) == 400 and len(data.items) == 300


def test_same_seed_same_tables_other_seed_differs():
    a, b, c = generate(SynthConfig(**CFG)), generate(SynthConfig(**CFG)), generate(SynthConfig(**CFG, seed=1))
    for name in ("interactions", "users", "items"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert not a.interactions.equals(c.interactions)


def test_metadata_names_the_taste_cluster():
    data = generate(SynthConfig(**CFG))
    inter = data.interactions.merge(data.users, on="user_id").merge(data.items, on="item_id")
    # a user's items mostly carry the user's favourite genre (chance level would be ~1/6 + seconds)
    liked = np.array([fav in g.split("|") for fav, g in zip(inter["favourite_genre"], inter["genres"])])
    per_user = pd.Series(liked).groupby(inter["user_id"].to_numpy()).mean()
    assert per_user.mean() > 0.6
    # with signal=0 and affinity=0 there is no such structure
    flat = generate(SynthConfig(**CFG, signal=0.0, affinity=0.0))
    inter = flat.interactions.merge(flat.users, on="user_id").merge(flat.items, on="item_id")
    liked = np.array([fav in g.split("|") for fav, g in zip(inter["favourite_genre"], inter["genres"])])
    assert liked.mean() < 0.4


def test_item_popularity_is_heavy_tailed():
    counts = np.sort(generate(SynthConfig(**CFG)).interactions["item_id"].value_counts().to_numpy())[::-1]
    assert counts[:30].sum() / counts.sum() > 0.3  # top 10% of items: > 3x their uniform share


def test_too_dense_request_is_refused():
    with pytest.raises(ValueError, match="do not fit"):
        SynthConfig(users=10, items=10, interactions=80)
    with pytest.raises(UserError, match="do not fit"):  # the edge (CLI, config files) says it as a UserError
        from_dict(SynthConfig, {"users": "10", "items": 10, "interactions": 80})


def test_cli_writes_parquet_the_generic_loader_reads(tmp_path):
    out = tmp_path / "synth"
    assert main(["data", "synth", "--users", "50", "--items", "40", "--interactions", "500", "--out", str(out)]) == 0
    ds = load_dataset(
        DataConfig(dataset=str(out / "interactions.parquet"), users=str(out / "users.parquet"),
                   items=str(out / "items.parquet"))
    )  # fmt: skip
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (50, 40, 500)
    assert set(ds.users.columns) >= {"gender", "age", "favourite_genre"}
    assert all(isinstance(g, list) and g for g in ds.items["genres"])
    raw = pd.read_parquet(out / "interactions.parquet")
    # internal indices map back to the raw IDs row for row
    assert (ds.user_ids[ds.interactions["user"]] == raw["user_id"].to_numpy()).all()
    assert (ds.item_ids[ds.interactions["item"]] == raw["item_id"].to_numpy()).all()


def test_cli_names_its_flags_and_keeps_out_of_a_run_folder(tmp_path, capsys):
    """ "SynthConfig: synth n_clusters must be in 1..20": the flag is --clusters; and --out RUN wrote
    the Parquet files in beside a run's own files without a word."""
    assert main(["data", "synth", "--clusters", "0", "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err.strip() == "gpt2rec: error: --clusters must be in 1..20, got 0"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    assert main(["data", "synth", "--users", "50", "--items", "40", "--interactions", "400", "--out",
                 str(tmp_path / "run")]) == 2  # fmt: skip
    assert "holds a run (config.json)" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json"]
