"""The bench's checks on its input: dataset fingerprint on resume, failed jobs in the exit code,
model-name validation, help text, protocols a dataset cannot support (QA findings on `gpt2rec bench`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpt2rec.bench import plan
from gpt2rec.bench.store import ResultStore
from gpt2rec.data.dataset import Dataset
from gpt2rec.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def csv_frame(n_users=30, n_items=40, per_user=8, seed=0) -> pd.DataFrame:
    """Interactions only (as a CSV file gives them): no users table."""
    rng = np.random.default_rng(seed)
    rows = [(u + 1, int(i) + 1, 4.0, 1000 * u + t)
            for u in range(n_users) for t, i in enumerate(rng.choice(n_items, per_user, replace=False))]  # fmt: skip
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def quick(out, **kw):
    from gpt2rec.bench import BenchConfig

    values = dict(dataset="ratings.csv", quick=True, out_dir=str(out), protocols=("warm",),
                  models=("popularity",), lms=("unused",), speed=False, faithfulness=False, plots=False)  # fmt: skip
    return BenchConfig(**{**values, **kw})


def test_a_different_dataset_with_the_same_file_name_is_refused(tmp_path):
    from gpt2rec.bench import run_bench

    first = Dataset.from_frames("ratings", csv_frame(seed=0))
    run_bench(quick(tmp_path), dataset=first)
    run_bench(quick(tmp_path), dataset=first)  # the same data resumes
    other = Dataset.from_frames("ratings", csv_frame(seed=1))  # same sizes, other interactions
    with pytest.raises(UserError, match=r"holds results of another dataset.*--out DIR.*delete"):
        run_bench(quick(tmp_path), dataset=other)


def test_a_results_file_without_a_fingerprint_resumes_on_the_same_sizes(tmp_path):
    from gpt2rec.bench.runner import check_dataset

    path = tmp_path / "ml-100k.json"
    legacy = json.loads((REPO / "benchmarks/results/ml-100k.json").read_text())
    legacy["meta"].pop("dataset_fingerprint", None)  # as written before fingerprints
    path.write_text(json.dumps(legacy))
    rng = np.random.default_rng(0)
    users = np.r_[np.arange(943), rng.integers(0, 943, 100_000 - 943)] + 1
    items = np.r_[np.arange(1682), rng.integers(0, 1682, 100_000 - 1682)] + 1
    like_ml100k = Dataset.from_frames("ml-100k", pd.DataFrame({"user_id": users, "item_id": items}))
    store = ResultStore(path)
    assert store.records
    check_dataset(store, like_ml100k)  # the committed file still loads and resumes
    assert json.loads(path.read_text())["meta"]["dataset_fingerprint"]["users"] == 943
    path.write_text(json.dumps(legacy))  # legacy again: checked on its sizes
    smaller = Dataset.from_frames("ml-100k", pd.DataFrame({"user_id": users[1:], "item_id": items[1:]}))
    with pytest.raises(UserError, match="another dataset"):
        check_dataset(ResultStore(path), smaller)


def test_failed_jobs_are_counted_and_the_cli_exits_non_zero(tmp_path, monkeypatch, capsys, caplog):
    from gpt2rec.bench import run_bench
    from gpt2rec.cli import main
    from gpt2rec.models import bpr

    def broken(config, ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(bpr, "SPEC", bpr.SPEC.__class__(**{**bpr.SPEC.__dict__, "build": broken}))
    data = Dataset.from_frames("ratings", csv_frame())
    caplog.set_level("INFO")
    paths = run_bench(quick(tmp_path / "a", models=("popularity", "bpr")), dataset=data)
    assert (paths["failed"], paths["jobs"]) == (1, 2)
    assert "1 of 2 jobs failed (see the lines above)" in caplog.text
    assert "done in" not in caplog.text

    csv = tmp_path / "ratings.csv"
    csv_frame().to_csv(csv, index=False)
    argv = ["bench", "--quick", "--dataset", str(csv), "--out", str(tmp_path / "b"), "--protocols", "warm",
            "--models", "popularity", "bpr", "--no-speed", "--no-faithfulness", "--no-plots"]  # fmt: skip
    monkeypatch.setattr("sys.argv", ["gpt2rec", *argv])
    assert main(argv) == 1
    assert "1 of 2 jobs failed" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["foo/bar", "popularity/no-attention", "enhanced-cached/bar"])
def test_model_names_with_a_slash_are_validated(tmp_path, name):
    with pytest.raises(UserError, match=r"unknown bench model.*choose from"):
        from gpt2rec.bench import BenchConfig
        from gpt2rec.utils.config import from_dict

        from_dict(BenchConfig, {"models": [name]})


def test_an_ablation_name_is_accepted():
    assert quick(".", models=("enhanced-cached/no-attention",)).models == ("enhanced-cached/no-attention",)


def test_help_lists_every_protocol_and_what_dataset_accepts(capsys):
    from gpt2rec.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in [*plan.PROTOCOLS, *plan.PROTOCOL_ALIASES]:
        assert name in text
    assert "CSV/Parquet" in text


def test_protocols_the_dataset_cannot_support_are_skipped_or_refused(tmp_path, caplog):
    from gpt2rec.bench import run_bench
    from gpt2rec.bench.protocols import unusable_protocols

    data = Dataset.from_frames("ratings", csv_frame())  # no users table, 40 items (< 99 negatives)
    assert set(unusable_protocols(data)) == {plan.COLD_USER, plan.NCF}
    for protocol in (plan.COLD_USER, plan.NCF):
        with pytest.raises(UserError, match=f"protocol {protocol} cannot run on ratings: .*leave it out"):
            run_bench(quick(tmp_path / protocol, protocols=(protocol,)), dataset=data)
    caplog.set_level("INFO")
    paths = run_bench(quick(tmp_path / "all", protocols=()), dataset=data)
    assert paths["failed"] == 0
    assert "protocol cold-user skipped: the dataset has no users table" in caplog.text
    records = json.loads(paths["json"].read_text())["records"]
    # (cold-item: 4 new items a part, too few to rank: test_bench_resume)
    assert {r["protocol"] for r in records} == set(plan.PROTOCOLS) - {plan.COLD_USER, plan.NCF, plan.COLD_ITEM}
    users = pd.DataFrame({"user_id": np.arange(1, 31), "age": 30})
    assert unusable_protocols(Dataset.from_frames("r", csv_frame(n_items=200), users=users)) == {}


def test_no_language_model_is_looked_up_when_no_selected_model_reads_text(tmp_path):
    """QA: a bench of popularity alone printed 'language model gpt2 skipped' and listed LMs."""
    from gpt2rec.bench.runner import bench_lms

    notes = []
    assert bench_lms(quick(tmp_path, lms=None, quick=False), notes.append) == [] and notes == []
    assert bench_lms(quick(tmp_path, models=("popularity", "l3ae"), lms=(str(tmp_path),))) == [str(tmp_path)]


def test_an_lm_the_bench_cannot_load_is_one_line_naming_its_flag(tmp_path, monkeypatch):
    """QA: an unknown --lms name failed inside every job, each saying to pass the folder with --lm."""
    from gpt2rec.bench.runner import bench_lms

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"'no-such/lm' cannot be loaded .*\(--lms /path/to/lm,"):
        bench_lms(quick(tmp_path, models=("l3ae",), lms=("no-such/lm",)))
    # no model reads text: --lms was taken without a word
    notes = []
    assert bench_lms(quick(tmp_path, models=("popularity",), lms=(str(tmp_path),)), notes.append) == []
    assert notes == [f"--lms {tmp_path} is not used: none of the models asked for reads text with an LM"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--threads", "-1"], "--threads must be >= 1, got -1"),
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["--protocols", "foo"], "--protocols: unknown protocol(s) ['foo']; choose from: warm,"),
        (["--models", "foo"], "--models: unknown bench model(s) ['foo']; choose from: basic,"),
    ],
)
def test_a_bad_bench_flag_is_named_by_its_flag(tmp_path, capsys, flags, message):
    """They read "BenchConfig: threads must be >= 1", the config's words, not the command's."""
    from gpt2rec.cli import main

    assert main(["bench", "--quick", "--out", str(tmp_path / "out"), *flags]) == 2
    assert capsys.readouterr().err.strip().startswith(f"gpt2rec: error: {message}")


def test_a_csv_dataset_takes_its_users_table_and_other_file_options(tmp_path, capsys):
    """QA: the bench had no --users / --items, so cold-user could never run on a CSV dataset."""
    from gpt2rec.cli import main

    csv_frame().to_csv(tmp_path / "ratings.csv", sep=";", index=False)
    ages = pd.DataFrame({"user_id": np.arange(1, 31), "age": np.arange(1, 31) % 5 * 10 + 20})
    ages.to_csv(tmp_path / "people.csv", sep=";", index=False)  # --sep is every file's
    argv = ["bench", "--dataset", str(tmp_path / "ratings.csv"), "--quick", "--protocols", "cold-user",
            "--models", "popularity", "--out", str(tmp_path / "out"), "--no-speed", "--no-faithfulness", "--no-plots"]  # fmt: skip
    assert main([*argv, "--sep", ";", "--users", str(tmp_path / "people.csv")]) == 0
    records = json.loads((tmp_path / "out" / "ratings.csv-quick.json").read_text())["records"]
    assert {r["protocol"] for r in records} == {plan.COLD_USER} and len(records) == 1
    assert "ncf skipped" not in capsys.readouterr().err  # not asked for: no note about it
    # without the users table: refused by name, and the hint names the flag
    assert main([*argv[:-2], "--out", str(tmp_path / "out2"), "--sep", ";"]) == 2
    assert "pass yours with --users" in capsys.readouterr().err
    # the file options describe an own file: with a MovieLens name they would be ignored
    assert main(["bench", "--users", str(tmp_path / "people.csv"), "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--users: describe your own files; pass your interactions file with --dataset FILE" in err
    assert len(err.splitlines()) == 1


def test_the_bench_reads_a_users_table_in_its_own_separator(tmp_path, capsys):
    """The users table's separator apart from the interactions' (--users-sep): read, kept in the results
    file's settings (a resumed run must read the files alike), and refused by `bench scale`."""
    from gpt2rec.cli import main

    csv_frame().to_csv(tmp_path / "ratings.csv", index=False)
    ages = pd.DataFrame({"user_id": np.arange(1, 31), "age": np.arange(1, 31) % 5 * 10 + 20})
    ages.to_csv(tmp_path / "people.txt", sep="|", index=False)  # .txt: ',' by its suffix
    argv = ["bench", "--dataset", str(tmp_path / "ratings.csv"), "--quick", "--protocols", "cold-user",
            "--models", "popularity", "--out", str(tmp_path / "out"), "--no-speed", "--no-faithfulness", "--no-plots",
            "--users", str(tmp_path / "people.txt")]  # fmt: skip
    assert main(argv) == 2 and "(set --users-sep for another)" in capsys.readouterr().err
    assert main([*argv, "--users-sep", "|"]) == 0
    stored = json.loads((tmp_path / "out" / "ratings.csv-quick.json").read_text())
    assert [r["protocol"] for r in stored["records"]] == [plan.COLD_USER]
    assert stored["meta"]["signature"]["data"]["users_sep"] == "|"
    assert main(["bench", "scale", "--out", str(tmp_path / "scale"), "--users-sep", "|"]) == 2
    assert "--users-sep: not used by bench scale" in capsys.readouterr().err


def test_an_epoch_timing_keeps_the_fastest_of_its_repeats():
    from gpt2rec.bench.speed import fastest_epoch

    runs = [{"seconds": 3.0, "how": "one full epoch"}, {"seconds": 1.5, "how": "one full epoch"}, {"seconds": 2.0}]
    out = fastest_epoch(runs)
    assert out["seconds"] == 1.5 and out["epoch_seconds"] == [3.0, 1.5, 2.0]
    assert out["how"] == "fastest of 3 full epochs"
    assert fastest_epoch(runs[:1])["how"] == "one full epoch"


GOOD = {"protocol": "warm", "model": "bpr", "lm": None, "seed": 0, "metrics": {"ndcg@10": 0.3}}


@pytest.mark.parametrize(
    "data, problem",
    [
        ([], "it holds a JSON list, not an object"),
        ({"records": [{k: v for k, v in GOOD.items() if k != "model"}]}, "record 1 has no valid 'model'"),
        ({"records": [GOOD, 5]}, "record 2 is not an object"),
        ({"records": [dict(GOOD, seed="0")]}, "record 1 has no valid 'seed'"),
        ({"records": [dict(GOOD, metrics="oops")]}, "record 1 has no 'metrics' object"),
        ({"records": [], "meta": "x"}, "its 'meta' is not an object"),
        ({"records": [], "meta": {"dataset_fingerprint": "x"}}, "its 'meta' is not as the bench writes it"),
    ],
)
def test_a_results_file_edited_out_of_shape_is_one_line_not_a_traceback(tmp_path, data, problem):
    """Each of these crashed halfway through the bench (AttributeError, KeyError, TypeError), one of
    them only when the report was written, after every job had run."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=f"r.json is damaged \\({problem}\\); delete it to start the bench afresh"):
        ResultStore(path)
    path.write_text(json.dumps({"records": [GOOD], "meta": {"last_run": None}}))
    assert ResultStore(path).records == [GOOD]  # the shape the bench writes still loads


@pytest.mark.parametrize("flags", [["--encoding", "foo"], ["--user-col", "item_id"], ["--implicit-threshold", "nan"]])
def test_a_bad_data_flag_value_is_one_line(tmp_path, capsys, flags):
    """bench built DataConfig directly: its ValueError was a raw traceback with exit 1."""
    from gpt2rec.cli import main

    data = tmp_path / "my.csv"
    data.write_text("user_id,item_id\nu1,i1\nu2,i2\n")
    argv = ["bench", "--quick", "--dataset", str(data), "--models", "popularity", "--out", str(tmp_path / "out")]
    assert main(argv + flags) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gpt2rec: error: DataConfig: ")


def test_a_plan_without_jobs_is_refused_before_anything_is_written(tmp_path, capsys):
    """ease and bpr do not run on cold-item (ID-only models): it printed "done" over an empty report."""
    from gpt2rec.cli import main

    data = tmp_path / "my.csv"
    data.write_text("user_id,item_id\n" + "".join(f"u{u},i{(u * 7 + j) % 40}\n" for u in range(30) for j in range(8)))
    out = tmp_path / "out"
    argv = ["bench", "--dataset", str(data), "--protocols", "cold-item", "--models", "ease", "bpr", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing to run on cold-item: ease runs on warm" in err
    assert not out.exists()


def test_a_model_the_data_cannot_feed_is_left_out_or_refused_when_named(tmp_path, capsys):
    """genre_content on items without genres failed job by job, and took the speed section's epoch
    and latency tables (every model's) with it."""
    from gpt2rec.bench import BenchConfig
    from gpt2rec.bench.runner import without_unusable_models
    from gpt2rec.cli import main

    no_genres = Dataset.from_frames("ratings", csv_frame(seed=0))
    planned = without_unusable_models(BenchConfig(quick=True), no_genres)
    assert "genre_content" not in planned.models and {"popularity", "ease", "bpr"} <= set(planned.models)

    data = tmp_path / "my.csv"
    csv_frame(seed=0).to_csv(data, index=False)
    argv = ["bench", "--quick", "--dataset", str(data), "--models", "genre_content", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model genre_content cannot run on my: the items have no genres" in err


def test_bench_scale_refuses_the_flags_it_would_ignore(tmp_path, capsys):
    """`bench scale --dataset my.csv` timed the synthetic data without a word about my.csv."""
    from gpt2rec.cli import main

    argv = ["bench", "scale", "--out", str(tmp_path / "out")]
    assert main([*argv, "--dataset", "ml-1m", "--sep", ";", "--implicit-threshold", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gpt2rec: error: --dataset, --implicit-threshold, --sep: not used by bench scale")
    assert not (tmp_path / "out").exists()


def test_ncf_without_timestamps_is_skipped_or_refused(tmp_path):
    """Leave-one-out on equal timestamps held out each user's highest item ID, with a warning that
    named `train --split`; the bench has no such flag."""
    from gpt2rec.bench import run_bench
    from gpt2rec.bench.protocols import unusable_protocols

    many = csv_frame(n_users=20, n_items=150, per_user=12).drop(columns="timestamp")
    data = Dataset.from_frames("ratings", many)
    assert unusable_protocols(data)[plan.NCF].endswith("the data has no timestamps (pass the interactions' "
                                                       "time column with --timestamp-col)")  # fmt: skip
    with pytest.raises(UserError, match="protocol ncf cannot run on ratings: it holds out each user's latest"):
        run_bench(quick(tmp_path, protocols=("ncf",)), dataset=data)
    timed = Dataset.from_frames("ratings", csv_frame(n_users=20, n_items=150, per_user=12))
    assert plan.NCF not in unusable_protocols(timed)
