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
    assert {r["protocol"] for r in records} == {plan.COLD_ITEM, plan.MIXED}
    section = paths["md"].read_text().split("## Not run on this data", 1)[1].split("\n## ", 1)[0]
    assert "- protocol `warm`: its first split (seed 0) leaves valid and test empty" in section  # the report says so

    csv = tmp_path / "few.csv"  # the CLI: one line, exit 2; a cold-item draw too small for 3 items
    csv_frame(n_users=3, n_items=3, per_user=2).to_csv(csv, index=False)
    argv = ["bench", "--quick", "--dataset", str(csv), "--models", "popularity", "--out", str(tmp_path / "c")]
    assert main([*argv, "--protocols", "cold-item"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "protocol cold-item cannot run on few: it holds out 20% of the 3" in err
    assert "give it more items, or leave it out of --protocols" in err and "--cold-fraction" not in err


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
