"""Splits: every kind is a partition, seeded, and cold sets are really cold; files round-trip."""

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from gpt2rec.data.dataset import Dataset
from gpt2rec.data.split_files import read_split, write_split
from gpt2rec.data.splits import SPLITTERS, SplitConfig, interaction_matrix, make_split
from gpt2rec.errors import DataError, UserError
from gpt2rec.utils.config import from_dict

KINDS = list(SPLITTERS)


def _dataset(n_users=30, n_items=40, density=0.4, seed=0) -> Dataset:
    """Unique (user, item) pairs, raw IDs that are not 0..n-1, timestamps with some ties."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[:, 0] = True  # every user has at least one interaction
    u, i = np.nonzero(mask)
    df = pd.DataFrame(
        {
            "user_id": u * 3 + 100,
            "item_id": i * 7 + 5,
            "rating": rng.integers(1, 6, len(u)).astype(float) / 2,
            "timestamp": rng.integers(0, 200, len(u)),
        }
    )
    return Dataset.from_frames("toy", df.sample(frac=1.0, random_state=1).reset_index(drop=True))


def _pairs(df):
    return set(zip(df["user"].tolist(), df["item"].tolist()))


def _rows(df):
    return sorted(map(tuple, df[["user", "item", "rating", "timestamp"]].to_numpy().tolist()))


@pytest.fixture(scope="module")
def ds():
    return _dataset()


@pytest.mark.parametrize("kind", KINDS)
def test_partition_disjoint_and_complete(ds, kind):
    s = make_split(ds, SplitConfig(kind=kind))
    parts = [_pairs(s.train), _pairs(s.valid), _pairs(s.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert _rows(pd.concat([s.train, s.valid, s.test])) == _rows(ds.interactions)
    assert len(s.train) and len(s.test)
    for df in (s.train, s.valid, s.test):
        assert list(df.columns) == list(ds.interactions.columns)
        assert (df.dtypes == ds.interactions.dtypes).all()


@pytest.mark.parametrize("kind", KINDS)
def test_seeded_identical(ds, kind):
    a, b = make_split(ds, SplitConfig(kind=kind, seed=3)), make_split(ds, SplitConfig(kind=kind, seed=3))
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("kind", ["random", "cold-item", "cold-user"])
def test_different_seeds_differ(ds, kind):
    a, b = make_split(ds, SplitConfig(kind=kind, seed=0)), make_split(ds, SplitConfig(kind=kind, seed=1))
    assert _pairs(a.test) != _pairs(b.test)


def test_random_ratios_and_train_floor():
    # user 1 has 1 interaction, user 2 has 2, user 3 has 20
    df = pd.DataFrame({"user_id": [1] + [2] * 2 + [3] * 20, "item_id": [1, 1, 2] + list(range(20))})
    d = Dataset.from_frames("t", df)
    s = make_split(d, SplitConfig(kind="random", ratios=(0.5, 0.25, 0.25), seed=0))
    count = lambda f, u: int((f["user"] == u).sum())  # noqa: E731
    # n=1: 0.25 rounds to 0 -> all train. n=2: 0.5 rounds up to 1 each, capped so 1 stays in train
    assert [count(s.train, 0), count(s.valid, 0), count(s.test, 0)] == [1, 0, 0]
    assert count(s.train, 1) == 1 and count(s.valid, 1) + count(s.test, 1) == 1
    assert [count(s.train, 2), count(s.valid, 2), count(s.test, 2)] == [10, 5, 5]


def test_loo_last_by_time_ties_by_item():
    df = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2, 2, 3],
            "item_id": [10, 11, 12, 13, 10, 11, 12],
            "timestamp": [5, 9, 9, 1, 3, 2, 7],
        }
    )
    s = make_split(Dataset.from_frames("t", df), SplitConfig(kind="loo"))
    # user 1: items 11 and 12 tie at t=9 -> higher item index (12) is "last" -> test, 11 valid
    # user 2: 2 interactions -> latest (10 @ t=3) to test, none to valid; user 3: 1 -> train
    assert _pairs(s.test) == {(0, 2), (1, 0)}
    assert _pairs(s.valid) == {(0, 1)}
    assert _pairs(s.train) == {(0, 0), (0, 3), (1, 1), (2, 2)}


def test_temporal_cut_is_global(ds):
    s = make_split(ds, SplitConfig(kind="temporal", ratios=(0.6, 0.2, 0.2)))
    assert s.train["timestamp"].max() < s.valid["timestamp"].min()
    assert s.valid["timestamp"].max() < s.test["timestamp"].min()
    assert abs(len(s.train) / len(ds.interactions) - 0.6) < 0.05


def test_temporal_without_timestamps_errors():
    d = Dataset.from_frames("t", pd.DataFrame({"user_id": [1, 2, 3], "item_id": [1, 2, 3]}))
    with pytest.raises(DataError, match="random or loo"):
        make_split(d, SplitConfig(kind="temporal"))


@pytest.mark.parametrize("kind,col", [("cold-item", "item"), ("cold-user", "user")])
def test_cold_really_absent_from_train(ds, kind, col):
    s = make_split(ds, SplitConfig(kind=kind, cold_fraction=0.25, seed=5))
    cold = s.cold_items if col == "item" else s.cold_users
    n_present = ds.interactions[col].nunique()
    assert len(cold) == round(0.25 * n_present)
    assert not set(cold) & set(s.train[col])
    valid_cold, test_cold = set(s.valid[col]), set(s.test[col])
    assert not valid_cold & test_cold and valid_cold | test_cold == set(cold)
    assert len(valid_cold) == len(cold) // 2
    # all interactions of a cold entity left train
    assert (ds.interactions[col].isin(cold)).sum() == len(s.valid) + len(s.test)


@pytest.mark.parametrize("kind", KINDS)
def test_write_read_round_trip(ds, kind, tmp_path):
    s = make_split(ds, SplitConfig(kind=kind, seed=2))
    write_split(s, ds, tmp_path / "sp")
    header = (tmp_path / "sp" / "train.tsv").read_text().splitlines()[0]
    assert header == "user_id\titem_id\trating\ttimestamp"
    first = (tmp_path / "sp" / "train.tsv").read_text().splitlines()[1].split("\t")
    assert int(first[0]) == ds.user_ids[s.train["user"].iloc[0]]  # raw IDs, not indices
    assert json.loads((tmp_path / "sp" / "split.json").read_text())["config"]["kind"] == kind
    r = read_split(ds, tmp_path / "sp")
    assert r.config == s.config
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(r, name), getattr(s, name))
    for a, b in ((r.cold_items, s.cold_items), (r.cold_users, s.cold_users)):
        assert (a is None and b is None) or np.array_equal(a, b)


def test_read_errors(ds, tmp_path):
    with pytest.raises(DataError, match="gpt2rec data split"):
        read_split(ds, tmp_path / "nothing")
    s = make_split(ds, SplitConfig())
    write_split(s, ds, tmp_path / "sp")
    other = _dataset(n_users=5, seed=1)  # other data: fewer interactions than the split holds
    with pytest.raises(DataError, match=r"holds \d+ interactions .* but \S+ has \d+: it was made from other data"):
        read_split(other, tmp_path / "sp")
    inter = ds.interactions  # as many interactions, of other users: their IDs are named
    raw = pd.DataFrame({"user_id": ds.user_ids[inter["user"]] + 1, "item_id": ds.item_ids[inter["item"]],
                        "rating": inter["rating"], "timestamp": inter["timestamp"]})  # fmt: skip
    with pytest.raises(DataError, match="user IDs not in dataset"):
        read_split(Dataset.from_frames("toy", raw), tmp_path / "sp")
    (tmp_path / "sp" / "valid.tsv").unlink()
    with pytest.raises(DataError, match="valid.tsv is missing"):
        read_split(ds, tmp_path / "sp")


def test_ratios_as_a_list_mean_the_same_split():
    df = pd.DataFrame({"user_id": [1] * 20, "item_id": list(range(20))})
    d = Dataset.from_frames("t", df)
    config = SplitConfig(ratios=[0.5, 0.25, 0.25])
    assert config.ratios == (0.5, 0.25, 0.25)
    a, b = make_split(d, config), make_split(d, SplitConfig(ratios=(0.5, 0.25, 0.25)))
    assert a.test.equals(b.test) and len(a.test) == 5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"ratios": (0.8, 0.1, 0.2)}, r"sum to 1\.1.*e\.g\. 0\.8 0\.1 0\.1"),
        ({"ratios": (0.8, 0.2)}, "three numbers"),
        ({"ratios": (1.2, -0.1, -0.1)}, ">= 0"),
        ({"kind": "weird"}, "random, loo, temporal, cold-item, cold-user"),
        ({"cold_fraction": 1.0}, "strictly between 0 and 1"),
        ({"cold_fraction": 0.0}, "strictly between 0 and 1"),
        ({"seed": -1}, "seed -1 must be an integer >= 0"),  # numpy's raw "expected non-negative integer"
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):  # the library: __post_init__ validates
        SplitConfig(**kwargs)
    with pytest.raises(UserError, match=match):  # the edge (CLI, config files): one UserError
        from_dict(SplitConfig, kwargs)


@pytest.mark.parametrize(
    "n_per_user,kind,ratios,match",
    [
        # 4 interactions per user: 0.1 * 4 rounds to 0, so valid and test were silently empty
        (
            4,
            "random",
            (0.8, 0.1, 0.1),
            "valid and test empty: users have too few interactions.*--split loo; data split --kind loo",
        ),
        (2, "loo", (0.8, 0.1, 0.1), "left valid empty: no user has the 3 interactions"),
    ],
)
def test_empty_valid_or_test_errors(n_per_user, kind, ratios, match):
    df = pd.DataFrame({"user_id": np.repeat(np.arange(20), n_per_user), "item_id": np.tile(np.arange(n_per_user), 20)})
    with pytest.raises(DataError, match=match):
        make_split(Dataset.from_frames("t", df), SplitConfig(kind=kind, ratios=ratios))


def test_zero_shares_on_purpose_warn(caplog):
    df = pd.DataFrame({"user_id": np.repeat(np.arange(5), 4), "item_id": np.tile(np.arange(4), 5)})
    with caplog.at_level("WARNING", logger="gpt2rec"):
        s = make_split(Dataset.from_frames("t", df), SplitConfig(ratios=(1.0, 0.0, 0.0)))
    assert len(s.train) == 20 and "left valid and test empty by --ratios 1 0 0" in caplog.text


def test_cold_fraction_too_small_errors(ds):
    with pytest.raises(DataError, match="--cold-fraction"):
        make_split(ds, SplitConfig(kind="cold-item", cold_fraction=0.01))


def test_interaction_matrix_binary():
    df = pd.DataFrame({"user": [0, 0, 1, 1], "item": [2, 2, 0, 1]})
    m = interaction_matrix(df, 3, 4)
    assert m.shape == (3, 4) and m.nnz == 3
    assert m.toarray().tolist() == [[0, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]]


def test_cli_split_writes_files(ds, tmp_path, monkeypatch):
    from gpt2rec.cli import data_split

    monkeypatch.setattr("gpt2rec.data.load.load_dataset", lambda config: ds)
    parser = argparse.ArgumentParser()
    data_split.register(parser.add_subparsers())
    args = parser.parse_args(["split", "toy", "--kind", "cold-item", "--seed", "4", "--out", str(tmp_path / "o")])
    assert args.func(args) == 0
    r = read_split(ds, tmp_path / "o")
    assert r.config == SplitConfig(kind="cold-item", seed=4)
    with pytest.raises(UserError, match="sum to"):
        args = parser.parse_args(["split", "toy", "--ratios", "0.5", "0.5", "0.5", "--out", str(tmp_path)])
        args.func(args)


def test_cli_split_says_it_replaces_another_kind(ds, tmp_path, monkeypatch, caplog):
    from gpt2rec.cli import data_split

    monkeypatch.setattr("gpt2rec.data.load.load_dataset", lambda config: ds)
    parser = argparse.ArgumentParser()
    data_split.register(parser.add_subparsers())
    out = str(tmp_path / "o")
    for kind in ("loo", "loo", "random"):  # the same split again is quiet; another kind used to be silent too
        args = parser.parse_args(["split", "toy", "--kind", kind, "--out", out])
        with caplog.at_level("WARNING", logger="gpt2rec"):
            assert args.func(args) == 0
    assert (
        caplog.text.count("replacing") == 1 and "held a loo split (seed 0); replacing it with a random" in caplog.text
    )


def test_loo_without_timestamps_warns_that_the_item_id_decides(caplog):
    """QA: `data split --kind loo` on a file without timestamps ran silently, holding out each user's
    highest item ID as if it were the latest."""
    pairs = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 2], "item_id": [30, 10, 20, 10, 30, 20]})
    with caplog.at_level("WARNING", logger="gpt2rec"):
        s = make_split(Dataset.from_frames("t", pairs), SplitConfig(kind="loo"))
    assert sorted(s.test["item"].tolist()) == [2, 2]  # item ID 30 (index 2) for both users
    mine = [r.getMessage() for r in caplog.records if r.name.startswith("gpt2rec")]
    assert len(mine) == 1 and "highest item ID, not the latest" in mine[0] and "--timestamp-col" in mine[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="gpt2rec"):
        make_split(Dataset.from_frames("t", pairs.assign(timestamp=range(6))), SplitConfig(kind="loo"))
    assert not caplog.records
