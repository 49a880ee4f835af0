"""The bench harness on synthetic MovieLens-format data: `--quick`'s machinery end to end (JSON records,
Markdown report, PNG figures, resume), the genre-content baseline with known answers, and the
report's target logic. Benchmarks are not tests: no timing is asserted here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpt2rec.bench import plan
from gpt2rec.bench.store import RECORD_KEYS, ResultStore
from gpt2rec.data.movielens import ML100K_GENRES
from gpt2rec.errors import UserError

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance"]


def write_tiny_movielens(folder, n_users=60, n_items=150, per_user=14, seed=0):
    """An ml-100k-format folder (u.data, u.user, u.item) where each user likes one genre."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    item_genre = np.arange(n_items) % len(GENRES)
    rows = []
    for u in range(n_users):
        fav = u % len(GENRES)
        pool = np.flatnonzero(item_genre == fav)
        liked = rng.choice(pool, size=min(per_user - 3, len(pool)), replace=False)
        other = rng.choice(np.flatnonzero(item_genre != fav), size=3, replace=False)
        for t, i in enumerate(np.concatenate([liked, other])):
            rows.append(f"{u + 1}\t{i + 1}\t{int(rng.integers(3, 6))}\t{880000000 + 1000 * u + t}")
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    occupations = ["engineer", "student", "writer", "artist"]
    users = [f"{u + 1}|{20 + u % 40}|{'MF'[u % 2]}|{occupations[u % 4]}|{10000 + u}" for u in range(n_users)]
    (folder / "u.user").write_text("\n".join(users) + "\n")
    items = []
    for i in range(n_items):
        flags = ["1" if g == GENRES[item_genre[i]] else "0" for g in ML100K_GENRES]
        items.append(f"{i + 1}|Movie {i + 1} ({1950 + i % 50})|01-Jan-{1950 + i % 50}||http://x|" + "|".join(flags))
    (folder / "u.item").write_text("\n".join(items) + "\n", encoding="latin-1")
    return folder


# ---------------------------------------------------------------- plan, store, targets


def test_first_lm_only_names_the_protocols_where_the_other_lms_do_not_run():
    from gpt2rec.bench.runner import first_lm_only

    config = plan.BenchConfig(protocols=("warm", "cold-item", "sparse-20"), models=("l3ae", "ease"))
    jobs = plan.plan_jobs(config, ["minilm", "gemma3-270m"])
    assert {j.lm for j in jobs if j.protocol == "warm" and j.model == "l3ae"} == {"minilm", "gemma3-270m"}
    assert {j.lm for j in jobs if j.protocol == "cold-item"} == {"minilm"}
    (line,) = first_lm_only(jobs, ["minilm", "gemma3-270m"])
    assert line.startswith("l3ae runs with minilm only on cold-item, sparse-20 ")
    assert line.endswith("run again with --lms gemma3-270m")
    assert first_lm_only(jobs, ["minilm"]) == []  # one LM asked for: nothing left out


def test_plan_quick_has_one_seed_and_the_quick_subset():
    config = plan.BenchConfig(quick=True)
    jobs = plan.plan_jobs(config, ["minilm"])
    assert {j.seed for j in jobs} == {0}
    names = {j.model for j in jobs}
    assert "itemknn" not in names and {"popularity", "bpr", "enhanced-cached"} <= names
    assert {j.protocol for j in jobs if j.model == "basic"} == {"warm"}
    full = plan.plan_jobs(plan.BenchConfig(), ["gemma3-270m", "minilm"])
    seeds = {p: {j.seed for j in full if j.protocol == p} for p in plan.PROTOCOLS}
    three = {0, 1, 2}
    assert seeds == {"warm": three, "ncf": three, "cold-item": set(range(5)), "cold-user": set(range(5)),
                     "sparse-20": three, "sparse-50": three, "warm-tail": three, "mixed": set(range(5))}  # fmt: skip
    # the live catalogue: the models that can place a new item beside known ones, and EASE, which cannot
    assert {j.model for j in full if j.protocol == "mixed"} == {"popularity", "ease", "genre_content", "l3ae",
                                                                 "enhanced-cached"}  # fmt: skip
    # the headline model and its text-off ablation: same protocols where text-off applies, no LM for text-off
    assert {j.protocol for j in full if j.model == "l3ae-text-off"} == {"warm", "ncf", "sparse-20", "sparse-50",
                                                                        "warm-tail"}  # fmt: skip
    assert {j.lm for j in full if j.model == "l3ae-text-off"} == {None}
    assert {j.lm for j in full if j.model == "l3ae" and j.protocol == "warm"} == {"gemma3-270m", "minilm"}
    # ID-only baselines never run where one side is unseen in training
    assert not [j for j in full if j.model in ("bpr", "ease", "neumf") and j.protocol.startswith("cold")]
    # "all" entries compare every LM on warm and use the main (first) LM elsewhere;
    # dynamic strategies use the cheapest LM
    assert {j.lm for j in full if j.model == "enhanced-cached" and j.protocol == "warm"} == {"gemma3-270m", "minilm"}
    assert {j.lm for j in full if j.model == "enhanced-cached" and j.protocol != "warm"} == {"gemma3-270m"}
    assert {(j.lm, j.seed) for j in full if j.model == "basic"} == {("gemma3-270m", s) for s in range(3)}  # "main" LM
    assert {j.lm for j in full if j.model == "enhanced-end2end"} == {"minilm"}
    assert {j.protocol for j in full if j.model == "basic"} == {"warm", "ncf"}
    # every configuration at the protocol's seeds, the dynamic strategies included; end2end wherever
    # the design's claims are checked (warm, the sparse levels, cold-item), hybrid on warm
    assert {j.seed for j in full if j.model == "enhanced-hybrid"} == {0, 1, 2}
    end2end = {p: {j.seed for j in full if j.model == "enhanced-end2end" and j.protocol == p} for p in plan.PROTOCOLS}
    assert end2end == {**{p: set() for p in plan.PROTOCOLS}, "warm": three, "sparse-20": three, "sparse-50": three,
                       "cold-item": set(range(5))}  # fmt: skip
    # the claims' ablations (attention, contrastive) on the same protocols; ids-only where items have IDs
    best = plan.ablation_base(plan.entry_named("enhanced-cached"), "minilm")
    abl = plan.plan_jobs(plan.BenchConfig(), ["minilm"], best)
    where = {m: {j.protocol for j in abl if j.model == m} for m in {j.model for j in abl}}
    assert where["enhanced-cached/no-attention"] == where["enhanced-cached/no-contrastive"] == set(plan.CLAIM_PROTOCOLS)
    assert where["enhanced-cached/ids-only"] == {"warm", "sparse-20", "sparse-50"}
    assert where["enhanced-cached/text-only"] == {"warm"}


def test_report_sums_the_parts_of_a_resumed_run():
    from gpt2rec.bench.report import run_times

    assert run_times({"meta": {"last_run": {"seconds": 2299.0}}}) == "2299 s in the last run"
    data = {"meta": {"last_run": {"seconds": 330.0}, "runs": [{"seconds": 2299.0}, {"seconds": 330.0}]}}
    assert run_times(data) == "2629 s in 2 runs (2299 + 330 s, resumed)"


def test_store_resumes_and_rewrites_atomically(tmp_path):
    path = tmp_path / "r.json"
    store = ResultStore(path)
    rec = {k: None for k in RECORD_KEYS} | {"protocol": "warm", "model": "bpr", "lm": None, "seed": 0, "metrics": {}}
    store.add(rec)
    store.add(dict(rec, metrics={"ndcg@10": 0.5}))  # same key: replaced, not duplicated
    again = ResultStore(path)
    assert again.has(("warm", "bpr", None, 0)) and not again.has(("warm", "bpr", None, 1))
    assert len(again.records) == 1 and again.records[0]["metrics"] == {"ndcg@10": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp files left behind


def _rec(protocol, model, ndcg, lm=None, seed=0, valid=None, group="main", hit=None):
    metrics = {"ndcg@10": ndcg} if hit is None else {"hit@10": hit, "ndcg@10": ndcg}
    return {
        "protocol": protocol,
        "model": model,
        "lm": lm,
        "seed": seed,
        "metrics": metrics,
        "group": group,
        "valid_metrics": {"ndcg@10": ndcg if valid is None else valid},
    }


def test_targets_pick_the_best_gpt2_model_by_validation_not_test():
    from gpt2rec.bench.summary import targets

    records = [
        _rec("warm", "bpr", 0.20), _rec("warm", "ease", 0.22),
        _rec("warm", "enhanced-cached", 0.30, "m", valid=0.10),  # best on test, worst on validation
        _rec("warm", "basic", 0.215, "m", valid=0.25),
        _rec("cold-item", "genre_content", 0.10), _rec("cold-item", "basic", 0.16, "m"),
        _rec("cold-user", "popularity", 0.10), _rec("cold-user", "basic", 0.10, "m"),
    ]  # fmt: skip
    by_name = {t.name: t for t in targets({"records": records}, "ml-100k")}
    bpr = by_name["warm: best GPT-2 ndcg@10 >= 1.05x BPR-MF"]
    assert bpr.met is True and "basic [m]" in bpr.value  # 0.215 >= 1.05 * 0.20 = 0.21
    assert by_name["warm: best GPT-2 ndcg@10 >= EASE"].met is False  # 0.215 < 0.22
    assert by_name["cold-item: best GPT-2 ndcg@10 >= 1.5x genre-content (mean of draws)"].met is True
    assert by_name["cold-user: best GPT-2 ndcg@10 above popularity"].met is False  # equal is not above
    assert by_name["ncf: neumf HR@10 in the published ML-1M range 0.65-0.72"].met is None


# ---------------------------------------------------------------- the quick run end to end


def test_quick_bench_writes_json_md_png_and_resumes(tmp_path, monkeypatch, tiny_lm):
    from gpt2rec.bench import BenchConfig, run_bench

    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(plan.TRAIN, "batch_size", 256)  # keeps the naive-forward timing small
    data = write_tiny_movielens(tmp_path / "tiny-ml")
    out = tmp_path / "results"
    config = BenchConfig(
        dataset=str(data), quick=True, out_dir=str(out), lms=(tiny_lm,), epochs=2, device="cpu", threads=1
    )
    paths = run_bench(config, argv=["--quick"])

    result = json.loads(paths["json"].read_text())
    records = result["records"]
    keys = {(r["protocol"], r["model"], r["lm"], r["seed"]) for r in records}
    assert len(keys) == len(records)
    for r in records:
        assert set(RECORD_KEYS) <= set(r)
        assert r["seed"] == 0 and r["peak_rss_mb"] > 0 and r["eval_seconds"] >= 0
        assert (r["lm"] is None) == (r["encode_texts_per_s"] is None)
    expected = {(j.protocol, j.model, j.lm, j.seed) for j in plan.plan_jobs(config, [tiny_lm])}
    assert expected <= keys
    ablations = [r for r in records if r["group"] == "ablation"]
    assert [(r["protocol"], r["model"], r["lm"]) for r in ablations] == [
        ("warm", "enhanced-cached/no-attention", tiny_lm)
    ]
    # ncf / cold-item stop on their own validation metric, and keep its best epoch
    for r in records:
        if r["protocol"] in ("ncf", "cold-item") and r["epochs"]:
            assert len(r["valid_curve"]) == r["epochs"]
            assert r["best_epoch"] == int(np.argmax(r["valid_curve"])) + 1
            metric = plan.PROTOCOLS[r["protocol"]].metric
            assert r["valid_metrics"][metric] == pytest.approx(max(r["valid_curve"]))
    # the headline candidate is tuned on one half of warm's validation users and scored on the other
    by_model = {r["model"]: r for r in records if r["protocol"] == "warm"}
    head, ease = by_model["l3ae"], by_model["ease"]
    assert ease["select_metrics"] is None and head["select_metrics"]["ndcg@10"] >= 0
    halves = head["valid_metrics"]["n_users"], head["select_metrics"]["n_users"]
    assert sum(halves) == ease["valid_metrics"]["n_users"] and abs(halves[0] - halves[1]) <= 1
    ncf = [r for r in records if r["protocol"] == "ncf"]
    assert ncf and all(set(r["metrics"]) >= {"hit@10", "ndcg@10"} for r in ncf)
    # the synthetic users each like one genre: the genre profile beats popularity on warm
    warm = {r["model"]: r["metrics"]["ndcg@10"] for r in records if r["protocol"] == "warm"}
    assert warm["genre_content"] > warm["popularity"]
    assert not result.get("failures")
    assert {"encoding", "epoch", "end2end", "latency"} <= set(result["speed"])
    assert result["speed"]["encoding"][tiny_lm]["ratio_to_limit"] > 0
    assert result["speed"]["epoch"]["bpr"]["ratio_to_bpr"] == pytest.approx(1.0)
    faith = result["faithfulness"]["models"]
    assert set(faith) == {f"enhanced-cached [{tiny_lm}]", f"l3ae [{tiny_lm}]"}
    # the headline's explanation names liked items: its deletion test masks those, not fields
    assert (
        set(faith[f"l3ae [{tiny_lm}]"]) == {"liked items", "shared genre"}
        and faith[f"l3ae [{tiny_lm}]"]["liked items"]["pairs"] > 0
    )

    md = paths["md"].read_text()
    for heading in (
        "## Targets",
        "## Quality",
        "### warm",
        "### ncf",
        "### cold-item",
        "### cold-user",
        "## Ablations",
        "## Speed",
        "## Faithfulness",
        "gpt2rec bench --quick",
        "Quick mode",
        "tuned-on half / selection half",
    ):
        assert heading in md, heading
    figures = sorted(p.name for p in out.glob("*.png"))
    assert figures == sorted(f"tiny-ml-quick-{p}.png" for p in list(plan.PROTOCOLS) + ["curves"])
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # resume: a second run redoes nothing and leaves the records as they were
    before = paths["json"].read_text()
    again = run_bench(config, argv=["--quick"])
    after = json.loads(again["json"].read_text())
    assert [r["finished"] for r in after["records"]] == [r["finished"] for r in json.loads(before)["records"]]
    # other settings never mix into the same file
    with pytest.raises(UserError, match="other settings"):
        run_bench(BenchConfig(dataset=str(data), quick=True, out_dir=str(out), lms=(tiny_lm,), epochs=3, device="cpu"))


def test_a_failing_model_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    from gpt2rec.bench import BenchConfig, run_bench
    from gpt2rec.models import bpr

    def broken(config, ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(bpr, "SPEC", bpr.SPEC.__class__(**{**bpr.SPEC.__dict__, "build": broken}))
    data = write_tiny_movielens(tmp_path / "tiny-ml")
    config = BenchConfig(
        dataset=str(data),
        quick=True,
        out_dir=str(tmp_path / "out"),
        protocols=("warm",),
        models=("popularity", "bpr"),
        lms=("unused",),
        speed=False,
        faithfulness=False,
        plots=False,
    )
    paths = run_bench(config)
    result = json.loads(paths["json"].read_text())
    assert [r["model"] for r in result["records"]] == ["popularity"]
    assert "RuntimeError: boom" in result["failures"]["warm|bpr|None|0"]["error"]
    assert "## Failures" in paths["md"].read_text()


def test_full_plan_runs_grids_dynamic_strategies_and_ablations(tmp_path, monkeypatch, tiny_lm):
    from gpt2rec.bench import BenchConfig, run_bench

    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(plan.TRAIN, "batch_size", 256)
    data = write_tiny_movielens(tmp_path / "tiny-ml")
    config = BenchConfig(
        dataset=str(data),
        out_dir=str(tmp_path / "out"),
        lms=(tiny_lm,),
        seeds=1,
        epochs=1,
        device="cpu",
        threads=1,
        speed=False,
        faithfulness=False,
        plots=False,
    )
    paths = run_bench(config)
    result = json.loads(paths["json"].read_text())
    assert not result.get("failures")
    models = {(r["protocol"], r["model"]) for r in result["records"]}
    assert {("warm", "enhanced-end2end"), ("warm", "enhanced-hybrid"), ("warm", "neumf"), ("ncf", "itemknn")} <= models
    # grids were tried on validation and the winner is the best validation score among the tried
    sel = result["selections"]["warm|ease|None"]
    assert (
        len(sel["tried"]) == len(plan.entry_named("ease").grid)
        and sel["chosen"] == max(sel["tried"], key=lambda t: t["valid"])["candidate"]
    )
    # a protocol's extra candidates are tried there only (l3ae: the sentence mean and the dropout
    # emphasis on warm, the emphasis on warm-tail, larger reg / text_weight on cold-item, the base grid
    # on the others)
    l3ae = plan.entry_named("l3ae")
    tried = {k.split("|")[0]: len(v["tried"]) for k, v in result["selections"].items() if k.split("|")[1:2] == ["l3ae"]}
    extra = {p: len(l3ae.grid) + len(l3ae.extra_grid.get(p, ())) for p in tried}
    assert tried == extra and extra["warm"] > 2 * len(l3ae.grid) and extra["ncf"] == len(l3ae.grid)
    # the ablations are pinned to the base's LM and named after it
    base = result["selections"]["ablation_base"]
    ablations = {r["model"] for r in result["records"] if r["group"] == "ablation"}
    assert ablations == {f"{base['model']}/{a}" for a in ("no-attention", "no-contrastive", "text-only", "ids-only")}
    assert {r["lm"] for r in result["records"] if r["group"] == "ablation"} == {base["lm"]}


def test_stacked_entry_starts_from_its_base_choice_and_tunes_the_base_first(monkeypatch):
    """An entry `stacked_on` another tries its grid on top of the base's chosen settings; when the
    base has no choice on the protocol yet, the base is tuned first (its selection is stored)."""
    from types import SimpleNamespace

    from gpt2rec.bench import training
    from gpt2rec.bench.plan import Job, ModelEntry

    base = ModelEntry("b", "ease", ("warm",), grid=({"model": {"reg": 1.0}}, {"model": {"reg": 2.0}}))
    top = ModelEntry("t", "ease", ("warm",), grid=({"model": {"max_memory_gb": 1.0}},), stacked_on="b")
    sections: dict = {"selections": {}}
    store = SimpleNamespace(section=sections.__getitem__, put=lambda s, k, v: sections[s].__setitem__(k, v))
    splits_asked = []
    run = SimpleNamespace(config=SimpleNamespace(quick=False), store=store,
                          tuning_split=lambda name, protocol, seed: splits_asked.append((name, protocol, seed)))  # fmt: skip
    tried = []

    def fake_train(run_, entry, candidate, job, split):
        tried.append((entry.name, candidate))
        valid = {"ndcg@10": candidate["model"].get("reg", 0.0)}  # reg 2 wins on "validation"
        return training.Trained(None, entry, candidate, {}, valid)

    monkeypatch.setattr(training, "train_one", fake_train)
    monkeypatch.setattr(training.plan, "entry_named", lambda name, best=None: {"b": base, "t": top}[name])
    out = training.choose(run, top, Job("warm", "t", None, 0), None)
    assert sections["selections"]["warm|b|None"]["chosen"] == {"model": {"reg": 2.0}}
    assert tried == [("b", {"model": {"reg": 1.0}}), ("b", {"model": {"reg": 2.0}}),
                     ("t", {"model": {"reg": 2.0, "max_memory_gb": 1.0}})]  # fmt: skip
    assert out.candidate == {"model": {"reg": 2.0, "max_memory_gb": 1.0}}
    assert splits_asked == [("b", "warm", 0)]  # the base is tuned on its own split (its validation half, if any)
