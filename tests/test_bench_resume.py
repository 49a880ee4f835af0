"""`gpt2rec bench` on a user's own data: splits too small for it, resuming (fingerprint of the tables,
settings), --out naming a file, an interrupted run's report (QA findings)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gpt2rec.bench import plan, run_bench
from gpt2rec.data.dataset import Dataset
from gpt2rec.errors import UserError
from test_bench_checks import csv_frame, quick


def test_a_protocol_whose_split_is_empty_is_refused_when_named_and_skipped_otherwise(tmp_path, caplog, capsys):
    """3 interactions per user: warm's 8:1:1 split holds none out, and every job failed alike (exit 1),
    its hint naming `train --split loo`, a flag the bench does not have."""
    from gpt2rec.cli import main

    data = Dataset.from_frames("ratings", csv_frame(per_user=3))
    with pytest.raises(UserError) as refused:
        run_bench(quick(tmp_path / "a", protocols=("warm",)), dataset=data)
    message = str(refused.value)
    assert message.startswith("protocol warm cannot run on ratings: its first split (seed 0) leaves valid and test")
    assert message.endswith("give it more interactions per user, or leave it out of --protocols")
    assert "--split" not in message and "--ratios" not in message and "train" not in message
    assert not (tmp_path / "a").exists()  # refused before anything is written

    caplog.set_level("INFO")  # not named: skipped with a note, the others run
    paths = run_bench(quick(tmp_path / "b", protocols=()), dataset=data)
    assert paths["failed"] == 0
    assert "protocol warm skipped: its first split (seed 0) leaves valid and test empty" in caplog.text
    records = json.loads(paths["json"].read_text())["records"]
    assert {r["protocol"] for r in records} == {plan.MIXED}  # (cold-item: 7 new items, too few to rank)
    section = paths["md"].read_text().split("## Not run on this data", 1)[1].split("\n## ", 1)[0]
    assert "- protocol `warm`: its first split (seed 0) leaves valid and test empty" in section  # the report says so

    csv = tmp_path / "few.csv"  # the CLI: one line, exit 2; a cold-item draw too small for 3 items
    csv_frame(n_users=3, n_items=3, per_user=2).to_csv(csv, index=False)
    argv = ["bench", "--quick", "--dataset", str(csv), "--models", "popularity", "--out", str(tmp_path / "c")]
    assert main([*argv, "--protocols", "cold-item"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "protocol cold-item cannot run on few: it holds out 20% of the 3" in err
    assert "give it more items, or leave it out of --protocols" in err and "--cold-fraction" not in err


def _every_item_seen(n_items: int, n_users: int = 30) -> pd.DataFrame:
    """Each item with two users: a cold-item split holds out round(20% of n_items), half of them
    (rounded down) in valid, the rest in test, each with interactions in its part."""
    rows = [(u, i + 1, 4.0, 1000 * u + i) for i in range(n_items) for u in (i % n_users + 1, (i + 7) % n_users + 1)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def test_a_cold_item_part_with_too_few_new_items_to_rank_is_skipped_or_refused(tmp_path, caplog, capsys):
    """On a small catalogue cold-item ranked 10 or fewer new items a part: every one in the top 10, so
    recall@10 was 1 for every user whatever the model, and the report showed those figures without a word."""
    from gpt2rec.bench.protocols import split_problem
    from gpt2rec.cli import main

    few = Dataset.from_frames("few", _every_item_seen(105))  # 21 held out: 10 in valid, 11 in test
    why = split_problem(few, plan.COLD_ITEM)
    assert why == ("its first split (seed 0) has only 10 new items to rank in valid, so every one is in the top 10 "
                   "and recall@10 is 1 for every user, whatever the model; give it more items")  # fmt: skip
    assert split_problem(Dataset.from_frames("enough", _every_item_seen(110)), plan.COLD_ITEM) is None  # 11 and 11
    assert split_problem(few, plan.MIXED) is None  # mixed ranks every known item too (~104 here)

    with pytest.raises(UserError) as refused:  # named: refused before anything is written
        run_bench(quick(tmp_path / "a", protocols=("cold-item",)), dataset=few)
    assert str(refused.value) == f"protocol cold-item cannot run on few: {why}, or leave it out of --protocols"
    assert not (tmp_path / "a").exists()

    caplog.set_level("INFO")  # not named: skipped, said in the log and in the report's notes
    paths = run_bench(quick(tmp_path / "b", protocols=()), dataset=few)
    assert f"protocol cold-item skipped: {why}" in caplog.text
    assert plan.COLD_ITEM not in {r["protocol"] for r in json.loads(paths["json"].read_text())["records"]}
    section = paths["md"].read_text().split("## Not run on this data", 1)[1].split("\n## ", 1)[0]
    assert f"- protocol `cold-item`: {why}." in section

    small = tmp_path / "small.csv"  # the CLI: one line naming only flags bench has
    csv_frame().to_csv(small, index=False)  # 40 items: 4 new items a part
    argv = ["bench", "--quick", "--dataset", str(small), "--models", "popularity", "--out", str(tmp_path / "c")]
    assert main([*argv, "--protocols", "cold-item"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot run on small: its first split (seed 0) has only 4 new" in err
    assert err.endswith("give it more items, or leave it out of --protocols") and "--cold-fraction" not in err

    enough = Dataset.from_frames("enough", _every_item_seen(110))  # 11 new items a part: it runs
    paths = run_bench(quick(tmp_path / "d", protocols=("cold-item",)), dataset=enough)
    result = json.loads(paths["json"].read_text())
    assert [r["protocol"] for r in result["records"]] == [plan.COLD_ITEM] and not result.get("failures")


def _items(titles: str) -> pd.DataFrame:
    return pd.DataFrame({"item_id": range(1, 41), "title": [f"{titles} {i}" for i in range(1, 41)]})


def test_the_items_table_is_part_of_the_dataset_fingerprint(tmp_path):
    """The fingerprint held the interactions only: other titles or genres resumed into the same records."""
    from gpt2rec.bench.resume import check_dataset, dataset_fingerprint
    from gpt2rec.bench.store import ResultStore

    first = Dataset.from_frames("ratings", csv_frame(), items=_items("film"))
    run_bench(quick(tmp_path), dataset=first)
    run_bench(quick(tmp_path), dataset=Dataset.from_frames("ratings", csv_frame(), items=_items("film")))
    retitled = Dataset.from_frames("ratings", csv_frame(), items=_items("book"))
    with pytest.raises(UserError, match=r"holds results of another dataset \(items_sha256 .*--out DIR"):
        run_bench(quick(tmp_path), dataset=retitled)
    path = tmp_path / "ratings.csv-quick.json"  # a file fingerprinted before the tables were: still resumes
    data = json.loads(path.read_text())
    data["meta"]["dataset_fingerprint"] = {
        k: v for k, v in data["meta"]["dataset_fingerprint"].items() if k not in ("items_sha256", "users_sha256")
    }
    path.write_text(json.dumps(data))
    check_dataset(ResultStore(path), retitled)
    assert json.loads(path.read_text())["meta"]["dataset_fingerprint"] == dataset_fingerprint(retitled)


def test_settings_compare_paths_resolved_and_name_only_what_differs(tmp_path, monkeypatch):
    """The same users file typed relative, then absolute, was refused, and the message printed two dicts."""
    users = pd.DataFrame({"user_id": range(1, 31), "age": 30})
    users.to_csv(tmp_path / "people.csv", index=False)
    data = Dataset.from_frames("ratings", csv_frame(), users=users)
    monkeypatch.chdir(tmp_path)
    run_bench(quick(tmp_path / "out", data={"users": "people.csv"}), dataset=data)
    run_bench(quick(tmp_path / "out", data={"users": str(tmp_path / "people.csv")}), dataset=data)  # resumes
    with pytest.raises(UserError) as refused:
        run_bench(quick(tmp_path / "out", data={"users": "people.csv"}, epochs=3), dataset=data)
    message = str(refused.value)
    assert "(--epochs: not set there, 3 here)" in message and "{" not in message and "--users" not in message


@pytest.mark.parametrize("what", [[], ["tune"]])
def test_an_out_that_is_a_file_is_one_line(tmp_path, capsys, what):
    from gpt2rec.cli import main

    (tmp_path / "results").write_text("not a folder")
    csv = tmp_path / "ratings.csv"
    csv_frame().to_csv(csv, index=False)
    argv = ["bench", *what, "--quick", "--dataset", str(csv), "--models", "popularity" if not what else "bpr"]
    assert main([*argv, "--out", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"gpt2rec: error: --out {tmp_path / 'results'} is a file; pass a folder"
    with pytest.raises(UserError, match="is a file; pass a folder"):
        run_bench(quick(tmp_path / "results"), dataset=Dataset.from_frames("ratings", csv_frame()))


def test_an_interrupted_run_leaves_a_report_of_what_is_done(tmp_path, monkeypatch):
    """Ctrl-C before the first report left the JSON only: no readable report."""
    from gpt2rec.bench import runner

    real = runner.run_job

    def interrupted(run, job, entry):
        if job.model == "bpr":
            raise KeyboardInterrupt
        return real(run, job, entry)

    monkeypatch.setattr(runner, "run_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_bench(quick(tmp_path, models=("popularity", "bpr")), dataset=Dataset.from_frames("ratings", csv_frame()))
    report = (tmp_path / "ratings.csv-quick.md").read_text()
    assert "popularity" in report
    assert [r["model"] for r in json.loads((tmp_path / "ratings.csv-quick.json").read_text())["records"]] == [
        "popularity"
    ]
