"""The bench report on one's own data (QA of `gpt2rec bench --dataset my.csv`): what the data could
not support is said, fields it lacks read no 'nan', ML-100K / ML-1M targets are judged there only,
`bench tune`'s report has no '?' header, and a model has one name in every table."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from gpt2rec.bench import BenchConfig, headline, plan
from gpt2rec.bench.report import render, targets_section, write_all
from gpt2rec.bench.report_notes import Facts, facts_of
from gpt2rec.bench.store import ResultStore
from gpt2rec.bench.summary import reference_dataset, rows, speed_targets
from gpt2rec.data.dataset import Dataset


def ratings(n_users=30, n_items=40, per_user=8) -> pd.DataFrame:
    """Interactions only, as a CSV gives them: no users table, items known by their IDs."""
    rng = np.random.default_rng(0)
    rows = [(u + 1, int(i) + 1, 4.0, 1000 * u + t)
            for u in range(n_users) for t, i in enumerate(rng.choice(n_items, per_user, replace=False))]  # fmt: skip
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def rec(protocol, model, ndcg, seed=0, lm=None, **metrics):
    return {"protocol": protocol, "model": model, "lm": lm, "seed": seed, "metrics": {"ndcg@10": ndcg, **metrics},
            "group": "main", "valid_metrics": {"ndcg@10": ndcg}}  # fmt: skip


def quick(out, **kw) -> BenchConfig:
    values = dict(dataset="my.csv", quick=True, out_dir=str(out), protocols=(), models=("popularity",), lms=("x",),
                  speed=False, faithfulness=False, plots=False)  # fmt: skip
    return BenchConfig(**{**values, **kw})


def test_the_report_says_which_protocols_the_data_could_not_support(tmp_path):
    from gpt2rec.bench import run_bench

    data = Dataset.from_frames("my", ratings())  # no users table; 40 items (< 99 negatives)
    md = run_bench(quick(tmp_path / "all"), dataset=data)["md"].read_text()
    section = md.split("## Not run on this data", 1)[1].split("\n## ", 1)[0]
    assert "- protocol `cold-user`: the dataset has no users table" in section
    assert "- protocol `ncf`: it ranks each held-out item among 99 unseen items" in section
    # asked for warm alone: the others were not asked for, so none was skipped
    md = run_bench(quick(tmp_path / "warm", protocols=("warm",)), dataset=data)["md"].read_text()
    assert "## Not run on this data" not in md


def test_models_the_data_cannot_feed_are_named_only_when_the_plan_had_them():
    from gpt2rec.bench.runner import without_unusable_models

    data = Dataset.from_frames("my", ratings())
    planned = without_unusable_models(BenchConfig(quick=True), data)  # the config the report's run holds
    facts = facts_of(SimpleNamespace(config=planned, dataset=data))
    assert facts.skipped_models == {"genre_content": "the items have no genres (pass --items with a genres column)"}
    assert set(facts.skipped_protocols) == {plan.COLD_USER, plan.NCF}
    named = facts_of(SimpleNamespace(config=BenchConfig(quick=True, models=("popularity",)), dataset=data))
    assert named.skipped_models == {}
    md = render({"records": [rec("warm", "popularity", 0.1)]}, "my.csv", [], facts)
    assert "- model `genre_content`: the items have no genres (pass --items with a genres column)." in md


def test_items_without_text_are_said_when_a_text_model_read_them():
    bare = Dataset.from_frames("my", ratings())
    titled = Dataset.from_frames("my", ratings(), items=pd.DataFrame({"item_id": range(1, 41), "title": "A film"}))
    config = quick(".", models=("popularity", "l3ae"))
    assert facts_of(SimpleNamespace(config=config, dataset=bare)).items_have_text is False
    assert facts_of(SimpleNamespace(config=config, dataset=titled)).items_have_text is True
    data = {"records": [rec("warm", "l3ae", 0.2, lm="minilm")]}
    line = "- item text: the items have nothing but their IDs"
    # read from the results file alone: its last run recorded the item columns
    meta = {"meta": {"last_run": {"dataset": {"name": "my", "item_columns": []}, "lms": ["minilm"]}}}
    assert line in render({**data, **meta}, "my.csv", [])
    assert line in render(data, "my.csv", [], Facts({"name": "my"}, items_have_text=False))
    assert line not in render(data, "my.csv", [], Facts({"name": "my"}, items_have_text=True))


def test_faithfulness_of_a_field_the_data_lacks_reads_not_measured_not_nan():
    from gpt2rec.bench.faithfulness import _summary
    from gpt2rec.bench.report import faithfulness_section

    liked = _summary(np.array([0.3, 0.2, 0.4]), np.array([0.1, 0.1, 0.2]))
    none = _summary(np.array([]), np.array([]))  # what the shared-genre test gave on items without genres
    text = faithfulness_section({"faithfulness": {"method": "m", "models": {
        "l3ae [minilm]": {"liked items": liked, "shared genre": none}}}})  # fmt: skip
    assert "nan" not in text.lower()
    assert "| l3ae [minilm] | liked items: the 2 named vs 2 others | 3 |" in text
    assert ("Not measured (no such field in the data: no pair to test): l3ae [minilm], liked items with the "
            "named genre vs as many without.") in text  # fmt: skip
    # and the test is no longer run without genres
    from gpt2rec.bench.faithfulness import genres_to_test

    assert genres_to_test(Dataset.from_frames("my", ratings())) is None
    items = pd.DataFrame({"item_id": range(1, 41), "genres": [["Drama"]] * 40})
    assert genres_to_test(Dataset.from_frames("my", ratings(), items=items))[0] == ["Drama"]


def _judged_data() -> dict:
    recs = [rec("ncf", "bpr", 0.4, s, **{"hit@10": 0.70}) for s in range(2)]
    recs += [rec("cold-item", "l3ae", 0.5, s, "minilm") for s in range(2)]
    speed = {"latency": {"basic [minilm]": {"p50_ms": 0.5, "p99_ms": 1.0, "n": 10}},
             "epoch": {"l3ae [minilm]": {"seconds": 1.0, "how": "closed-form fit"}}}  # fmt: skip
    return {"records": recs, "speed": speed}


def test_ml_targets_are_judged_on_their_own_dataset_only():
    data = _judged_data()
    ml1m, floor, p99 = "ncf: bpr HR@10 in the published ML-1M range", "0.2348 (no regression)", "recommend p99"
    mine = targets_section(data, {"name": "my", "users": 30, "items": 40, "interactions": 240})
    for name in (ml1m, floor, p99, "fit <= 10 s on ML-100K"):
        assert name not in mine
    assert "The targets set on the figures of ML-100K and ML-1M (absolute thresholds) are judged on those " \
        "datasets only, not on my." in mine  # fmt: skip
    ml100k = targets_section(data, {"name": "ml-100k", "users": 943, "items": 1682, "interactions": 100_000})
    assert f"{floor} | l3ae [minilm] 0.5000 | met |" in ml100k and "worst basic [minilm]: 1.00 ms | met |" in ml100k
    assert ml1m not in ml100k and "judged on that dataset only, not on ml-100k." in ml100k
    assert f"{ml1m} 0.65-0.72 | 0.7000 | met |" in targets_section(data, "ml-1m")
    # a file of one's own called ml-100k.csv (or ML-100K cut by a threshold) is not ML-100K
    assert reference_dataset({"name": "ml-100k", "users": 30, "items": 40, "interactions": 240}) is None
    assert reference_dataset({"name": "ml-100k"}) == "ml-100k"


def test_a_tuning_only_report_has_no_unknown_header_fields(tmp_path):
    """`gpt2rec bench tune` writes no `last_run`: its header was all '?'."""
    store = ResultStore(tmp_path / "my.csv.json")
    store.put("tuning", "warm|bpr", {"tried": [{"candidate": {"model": {"dim": 8}}, "valid": 0.2}], "seed": 0})
    data = Dataset.from_frames("my", ratings())
    config = BenchConfig(dataset="my.csv", out_dir=str(tmp_path), models=("bpr",), plots=False)
    md = write_all(SimpleNamespace(config=config, dataset=data, store=store, out_dir=tmp_path))["md"].read_text()
    head = md.split("## ", 1)[0]
    assert "?" not in head and "None" not in head
    assert head.startswith("# Benchmark: my\n")
    assert f"Dataset: 30 users, {data.n_items} items, 240 interactions." in head
    assert "only the searches of `gpt2rec bench tune` below" in head
    # a run record with part of the machine: the parts known, nothing else
    meta = {"last_run": {"command": "gpt2rec bench", "machine": {"cpu_count": 2}}}
    head = render({"records": [], "meta": meta}, "my.csv", []).split("## ", 1)[0]
    assert "Produced by `gpt2rec bench` on 2 CPUs." in head and "?" not in head


def test_one_name_per_model_in_every_table():
    data = {
        "records": [rec("warm", "popularity", 0.1)],
        "selections": {"warm|bpr|None": {"chosen": {}, "tried": []}, "warm|l3ae|minilm": {"chosen": {}, "tried": []}},
        "failures": {"warm|l3ae|minilm|0": {"error": "boom"}},
    }
    md = render(data, "my.csv", [])
    assert "| warm / bpr | {} |" in md and "| warm / l3ae [minilm] | {} |" in md and "None" not in md
    assert "| warm / l3ae [minilm] / seed 0 | boom |" in md
    # the plan table lists the models this file has, not the whole plan
    assert "| popularity | popularity |" in md and "| genre_content |" not in md
    # a claim measured with two LMs on one protocol names each row's model
    recs = [rec("warm", "l3ae", 0.30 + 0.01 * s, s, lm) for s in range(3) for lm in ("minilm", "gemma3-270m")]
    recs += [rec("warm", "l3ae-text-off", 0.20 + 0.01 * s, s) for s in range(3)]
    (verdict,) = [v for v in headline.claim_verdicts({"records": recs}) if v[0].endswith("(l3ae)")]
    assert verdict[2] == "warm (l3ae [minilm]): confirmed; warm (l3ae [gemma3-270m]): confirmed"
    # a target's value names both sides, with their LM
    assert headline.lm_targets(rows(recs))[0].value == "l3ae [gemma3-270m] 0.3100 vs l3ae [minilm] 0.3100 (x1.000)"
    epochs = {"enhanced-cached [minilm]": {"seconds": 0.9}, "bpr": {"seconds": 0.3}}
    cost = [t for t in speed_targets({"epoch": epochs}) if t.name.startswith("cost:")]
    assert cost[0].value == "enhanced-cached [minilm] 0.90 s vs bpr 0.30 s (x3.00)"


def test_the_header_names_the_lms_of_the_records_not_only_the_last_slice():
    """After a resumed slice with --lms gemma3-270m, the header said "Language models: gemma3-270m (main
    LM: gemma3-270m)" over a file whose records were mostly minilm's."""
    records = [rec("warm", "l3ae", 0.3, s, lm="minilm") for s in range(3)] + [
        rec("warm", "l3ae", 0.3, lm="gemma3-270m")
    ]
    data = {"records": records, "meta": {"last_run": {"lms": ["gemma3-270m"], "command": "gpt2rec bench"}}}
    md = render(data, "ml-100k", [])
    assert ("Language models in the records: minilm (3 records), gemma3-270m (1 record) (the last run's: "
            "gemma3-270m).") in md  # fmt: skip
