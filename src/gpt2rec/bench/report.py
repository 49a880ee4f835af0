"""The Markdown report `<stem>.md` (and the figures, through `plots`), rebuilt from the JSON alone."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..utils.io import write_text
from . import headline, plan, tuning
from .report_notes import Facts, facts_from_json, facts_of, header, not_run_section, run_times
from .summary import REFERENCE_SIZES, Row, label, reference_dataset, rows, targets, usable

__all__ = ["render", "run_times", "targets_section", "write_all"]

QUALITY_METRICS = {
    "full": ("ndcg@10", "recall@10", "hit@10", "mrr@10", "ndcg@20", "coverage@10"),
    "candidates": ("ndcg@10", "recall@10", "hit@10", "mrr@10", "ndcg@20", "coverage@10"),
    "sampled": ("hit@10", "ndcg@10"),
    "tail": ("ndcg@10", "recall@10", "hit@10", "mrr@10", "ndcg@20", "coverage@10"),
    "mixed": ("ndcg@10", "recall@10", "new_recall@10", "hit@10", "ndcg@20", "coverage@10"),
}


def fmt(mean: float | None, std: float | None = None, n: int = 1, digits: int = 4) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" if n < 2 or std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _num(value, digits: int = 2, unit: str = "") -> str:
    return "—" if value is None else f"{value:.{digits}f}{unit}"


def table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def quality_section(rs: list[Row], protocol: str, group: str = "main") -> str:
    spec = plan.PROTOCOLS[protocol]
    metrics = QUALITY_METRICS[spec.evaluation]
    body = []
    for r in rs:
        if r.protocol != protocol or r.group != group:
            continue
        epochs = (
            "closed form" if not r.mean.get("epochs") else f"{r.mean['epochs']:.0f} ({r.mean.get('best_epoch', 0):.0f})"
        )
        valid = fmt(r.valid.get(spec.metric)) + (f" / {fmt(r.select.get(spec.metric))}" if r.select else "")
        body.append([r.label, str(r.n)] + [fmt(r.mean.get(m), r.std.get(m), r.n) for m in metrics]
                    + [valid, epochs])  # fmt: skip
    if not body:
        return ""
    head = ["model", "seeds"] + [f"test {m}" for m in metrics] + [f"valid {spec.metric}", "epochs (best)"]
    halves = any(r.select for r in rs if r.protocol == protocol and r.group == group)
    note = (" The headline candidates' validation reads tuned-on half / selection half"
            " (`plan.tunes_on_half`).") if halves else ""  # fmt: skip
    return f"### {protocol}\n\n{spec.description}.{note}\n\n" + table(head, body) + "\n"


def ablation_section(data: dict, rs: list[Row]) -> str:
    info = data.get("selections", {}).get("ablation_base") or {}
    base, base_lm = info.get("model"), info.get("lm")
    abl = [r for r in rs if r.group == "ablation"]
    if not base or not abl:
        return "Not run (no enhanced variant finished on warm).\n"
    scores = ", ".join(f"{k} {v:.4f}" for k, v in info.get("valid_ndcg@10", {}).items())
    lines = [f"Base: **{base} [{base_lm}]**, the enhanced variant with the highest mean validation ndcg@10 on "
             f"warm ({scores}).\n"]  # fmt: skip
    body = []
    for protocol in plan.ABLATION_PROTOCOLS:
        full = next((r for r in rs if r.protocol == protocol and r.model == base and r.lm == base_lm), None)
        ref = full.mean.get("ndcg@10") if full else None
        if full:
            body.append([protocol, full.label + " (full)", str(full.n), fmt(ref, full.std.get("ndcg@10"), full.n), "—"])
        for r in abl:
            if r.protocol != protocol:
                continue
            v = r.mean.get("ndcg@10")
            delta = "—" if ref is None or v is None else f"{v - ref:+.4f}"
            body.append([protocol, r.label, str(r.n), fmt(v, r.std.get("ndcg@10"), r.n), delta])
    missing = plan.missing_ablations(plan.entry_named(base))
    if missing:
        lines.append(f"Not run: {', '.join(missing)} (the model's config has no field for them: "
                     f"{', '.join(str(o) for s, o, _ in plan.ABLATIONS if s in missing)}).\n")  # fmt: skip
    return "\n".join(lines) + "\n" + table(["protocol", "variant", "seeds", "test ndcg@10", "Δ vs full"], body) + "\n"


def speed_section(data: dict, rs: list[Row]) -> str:
    speed = data.get("speed", {})
    parts = []
    m = speed.get("measured")
    if m:
        parts.append(f"Measured by `{m.get('command')}` (started {m.get('started')}); load average (1/5/15 min) at "
                     f"its start {m.get('load_average_start')}, before the epoch timings "
                     f"{m.get('load_average_before_training') or '—'}, at the end {m.get('load_average_end')}"
                     + (f". {m['note']}" if m.get("note") else "") + ".")  # fmt: skip
    enc = speed.get("encoding", {})
    if enc:
        body = [[lm, e["texts"], e["unique"], e["batch_size"], _num(e["texts_per_s"], 1), _num(e["limit_texts_per_s"], 1),
                 _num(e["ratio_to_limit"], 3), _num(e.get("load_seconds"), 1)] if "error" not in e
                else [lm, "failed: " + e["error"][:120]] + [""] * 6 for lm, e in enc.items()]  # fmt: skip
        parts.append("### Encoding\n\nAll user and item sentences through `TextEncoder.encode` (tokenize, dedupe, "
                     "length-sorted batches, pool) vs the bare-forward limit: the backbone's forward alone over the "
                     "same pre-tokenized, pre-padded batches, timed in the same run.\n\n"
                     + table(["lm", "texts", "unique", "batch", "texts/s", "bare forward texts/s", "ratio_to_limit",
                              "load s"], body))  # fmt: skip
    for key, value in speed.items():
        if isinstance(value, dict) and ("error" in value or "skipped" in value):
            parts.append(
                f"### {key}\n\n" + ("failed: " + value["error"] if "error" in value else "not run: " + value["skipped"])
            )
    ep = usable(speed.get("epoch", {}))
    if ep:
        body = [[k, _num(v.get("seconds"), 3), _num(v.get("ratio_to_bpr"), 2), v.get("how", "")] for k, v in ep.items()]
        parts.append(
            "### Seconds per training epoch (warm split, first seed)\n\n"
            + table(["model", "s/epoch", "ratio to BPR-MF", "how measured"], body)
        )
    dyn = usable(speed.get("end2end", {}))
    if dyn.get("cached"):
        body = []
        for mode in ("cached", "end2end", "naive"):
            if mode in dyn:
                v = dyn[mode]
                body.append([mode, _num(v.get("seconds_per_batch"), 3), _num(v.get("seconds_per_epoch"), 1),
                             _num(v.get("ratio_to_cached"), 2), _num(v.get("ratio_to_naive"), 3)])  # fmt: skip
        parts.append(
            f"### End-to-end vs cached vs naive dynamic forward\n\n{dyn.get('note', '')}\n\n"
            + table(["mode", "s/batch", "s/epoch (est.)", "ratio to cached", "ratio to naive"], body)
        )
    lat = usable(speed.get("latency", {}))
    if lat:
        body = [[k, _num(v["p50_ms"], 2), _num(v["p99_ms"], 2), v["n"]] for k, v in lat.items()]
        parts.append(
            "### Recommend latency\n\nTop-10 over all items for one user, in process "
            "(`gpt2rec.pipeline.recommend_items`, training items excluded), after warm-up.\n\n"
            + table(["model", "p50 ms", "p99 ms", "calls"], body)
        )
    body = [[r.protocol, r.label, _num(r.mean.get("eval_seconds"), 2), _num(r.mean.get("train_seconds"), 1),
             _num(r.mean.get("peak_rss_mb"), 0)] for r in rs]  # fmt: skip
    if body:
        parts.append(
            "### Evaluation time and memory (means over seeds)\n\nFull test evaluation seconds; training "
            "seconds include each epoch's validation pass; peak RSS of the bench process during the job "
            "(sampled every 20 ms, includes what the process already held).\n\n"
            + table(["protocol", "model", "test eval s", "train s", "peak RSS MB"], body)
        )
    return "\n\n".join(parts) + "\n" if parts else "Not run.\n"


def faithfulness_section(data: dict) -> str:
    f = data.get("faithfulness", {})
    if not f:
        return "Not run.\n"
    if f.get("skipped"):
        return f"Not run: {f['skipped']}\n"
    body, unmeasured = [], []
    for model, sides in f.get("models", {}).items():
        for side, v in sides.items():
            d = v["difference"]
            masked = {
                "item": "item fields",
                "user": "user fields",
                "liked items": "liked items: the 2 named vs 2 others",
                "shared genre": "liked items with the named genre vs as many without",
            }.get(side, side)
            if not v["pairs"] or not math.isfinite(d["mean"]):  # no pair had the field (e.g. no item has a genre)
                unmeasured.append(f"{model}, {masked}")
                continue
            share = ", ".join(f"{k} {x:.0%}" for k, x in v.get("top_field_share", {}).items())
            low, high = d["ci95"]
            ci = f"[{low:+.4f}, {high:+.4f}]" if math.isfinite(low) else "[n/a: 1 pair]"
            body.append([model, masked, v["pairs"], share or "—", _num(v["top_drop"]["mean"], 4),
                         _num(v["random_drop"]["mean"], 4), f"{d['mean']:+.4f} {ci}",
                         ("yes" if low > 0 else "no") if math.isfinite(low) else "—"])  # fmt: skip
    head = ["model", "masked", "pairs", "top field (share)", "mean drop (top / named)", "mean drop (random other)",
            "difference [95% CI]", "top > random"]  # fmt: skip
    out = f"{f.get('method', '')}\n\n" + (table(head, body) + "\n" if body else "")
    if unmeasured:
        out += f"\nNot measured (no such field in the data: no pair to test): {'; '.join(unmeasured)}.\n"
    return out


def plan_table(data: dict | None = None) -> str:
    """The model table as run: protocols, LMs, overrides, training settings, validation grid; the
    models with a record (or a failure) in `data` when it has any, else the whole plan."""
    from ..models.registry import get_spec

    data = data or {}
    ran = {r["model"].split("/")[0] for r in data.get("records", [])}
    ran |= {k.split("|")[1].split("/")[0] for k in data.get("failures", {})}
    body = []
    for e in [e for e in plan.ENTRIES if e.name in ran] or plan.ENTRIES:
        train = plan.train_settings(e)
        grid = "; ".join(json.dumps(c, sort_keys=True) for c in e.grid) or "—"
        for protocol, extra in e.extra_grid.items():
            grid += f"; on {protocol} also: " + "; ".join(json.dumps(c, sort_keys=True) for c in extra)
        over = {**e.overrides, **{f"with {lm}": v for lm, v in e.lm_overrides.items()}}
        body.append([e.name, e.model, " ".join(e.protocols), e.lm or "—", json.dumps(over) if over else "—",
                     "closed form" if get_spec(e.model).fit else json.dumps(train), grid])  # fmt: skip
    return table(["model", "registry", "protocols", "lm", "overrides", "training", "grid (validation)"], body)


def time_section(data: dict) -> str:
    """Wall seconds of the jobs (selection, training, evaluation) summed per protocol and model."""
    total: dict[tuple, float] = {}
    for r in data.get("records", []):
        key = (r["protocol"], label(r["model"], r["lm"]))
        total[key] = total.get(key, 0.0) + float(r.get("job_seconds") or 0.0)
    if not total:
        return "Nothing run yet.\n"
    body = [[p, m, f"{s:.0f}"] for (p, m), s in sorted(total.items(), key=lambda kv: -kv[1])]
    body.append(["all", "all", f"{sum(total.values()):.0f}"])
    return table(["protocol", "model", "job seconds (all seeds)"], body) + "\n"


def paired_section(data: dict) -> str:
    header, body = headline.paired_rows(data)
    if not body:
        return "Not run (no headline-model records).\n"
    return (
        f"Test ndcg@10 of the headline candidates ({', '.join(f'`{m}`' for m in headline.HEADLINES)}) minus the "
        "other model's (EASE, and the candidate's own text-off ablation), seed by seed (the "
        "same split draw), with the 95% t interval of the mean difference.\n\n" + table(header, body) + "\n"
    )


def claims_section(data: dict) -> str:
    header, body = headline.claims_rows(data)
    if not body:
        return "Not measured (no paired records).\n"
    overall = table(["claim", "verdict", "per protocol"], headline.claim_verdicts(data))
    return (
        "Each claim of the design as a paired difference over seeds (test, the protocol's metric): "
        "confirmed when the 95% interval lies above 0, refuted when below.\n\n" + table(header, body) + "\n\n"
        "Verdicts over the protocols (confirmed: on every protocol measured; confirmed only on ...: where it "
        "applies):\n\n" + overall + "\n"
    )


def tuning_section(data: dict) -> str:
    """Each baseline's coordinate search (`gpt2rec bench tune`): every point tried, best first."""
    parts = []
    for key, t in data.get("tuning", {}).items():
        protocol, model = key.split("|", 1)
        axes = t.get("axes") or {k: list(v) for k, v in tuning.TUNING.get(model, ("", {}, {}))[2].items()}
        tried = sorted(t.get("tried", []), key=lambda x: -x["valid"])
        body = [[str(x["candidate"]), f"{x['valid']:.4f}", "chosen" if x["candidate"] == t.get("chosen") else ""]
                for x in tried]  # fmt: skip
        parts.append(f"### {model} on {protocol} (seed {t.get('seed', 0)} validation {t.get('metric', 'ndcg@10')})\n\n"
                     f"Axes: {', '.join(f'{k} {v}' for k, v in axes.items())}; start {t.get('start')}; "
                     f"{len(tried)} points trained" + ("" if t.get("chosen") else " (unfinished)") + ". "
                     + (t.get("note") or "") + "\n\n"
                     + table(["candidate", f"valid {t.get('metric', 'ndcg@10')}", ""], body) + "\n")  # fmt: skip
    return "\n".join(parts)


def targets_section(data: dict, dataset: dict | str) -> str:
    """The targets, met or not. One set on ML-100K's (ML-1M's) own figures, an absolute threshold, is
    shown and judged only on that dataset (`summary.reference_dataset`); elsewhere one line says so."""
    info = dataset if isinstance(dataset, dict) else {"name": dataset}
    reference = reference_dataset(info) or ""
    mark = {True: "met", False: "NOT met", None: "not measured"}
    every = targets(data, reference) + headline.targets(data, reference)
    shown = [t for t in every if t.dataset in (None, reference)]
    body = [[t.name, t.value, t.status or mark[t.met]] for t in shown]
    out = table(["target", "value", "status"], body) + "\n"
    others = {t.dataset for t in every if t.dataset not in (None, reference)}
    elsewhere = [name.upper() for name in REFERENCE_SIZES if name in others]
    if elsewhere:
        out += (f"\nThe targets set on the figures of {' and '.join(elsewhere)} (absolute thresholds) are judged "
                f"on {'that dataset' if len(elsewhere) == 1 else 'those datasets'} only, not on "
                f"{info.get('name') or 'this dataset'}.\n")  # fmt: skip
    return out


def job_name(key: str) -> str:
    """A `selections` / `failures` key as the tables name it: 'warm|l3ae|minilm' -> 'warm / l3ae
    [minilm]', 'warm|bpr|None|0' -> 'warm / bpr / seed 0'."""
    parts = key.split("|")
    protocol, model, lm = (parts + ["", "", ""])[:3]
    seed = parts[3:4]
    return f"{protocol} / {label(model, None if lm in ('None', '') else lm)}" + (f" / seed {seed[0]}" if seed else "")


def render(data: dict, stem: str, figures: list[str], facts: Facts | None = None) -> str:
    """The report of results `data`; `facts` (`report_notes.facts_of(run)`) adds what the data could
    not support; without them the report is rebuilt from `data` alone."""
    facts = facts or facts_from_json(data)
    rs = rows(data.get("records", []))
    out = header(data, stem, facts)
    skipped = not_run_section(data, facts)
    if skipped:
        out += ["", skipped.rstrip("\n")]
    out += ["", "## Targets", "", targets_section(data, {"name": stem, **facts.dataset})]
    out += ["## How it was run", "", plan.__doc__.split("\n\n", 1)[1].strip(), "", plan_table(data), ""]
    notes = data.get("notes", {})
    if notes:  # what a reader must know about records made under other settings (written by hand, dated)
        out += ["Notes:", ""] + [f"- {k}: {v}" for k, v in notes.items()] + [""]
    sel = {k: v for k, v in data.get("selections", {}).items() if k != "ablation_base"}
    if sel:
        body = [[job_name(k), v["chosen"], ", ".join(f"{t['candidate']}: {t['valid']:.4f}" for t in v["tried"])]
                for k, v in sel.items()]  # fmt: skip
        out += [
            "Choices made on validation (first seed):",
            "",
            table(["protocol / model", "chosen", "tried"], body),
            "",
        ]
    tuned = tuning_section(data)
    if tuned:
        doc = tuning.__doc__.split("\n\n", 1)[1].strip()
        out += ["## Baselines tuned on validation", "", " ".join(doc.split()), "", tuned]
    out += ["## Quality (test, mean ± std over seeds)", ""]
    out += [s for s in (quality_section(rs, p) for p in plan.PROTOCOLS) if s]
    out += ["## Headline model: paired differences", "", paired_section(data)]
    out += ["## The design's claims, checked", "", claims_section(data)]
    out += ["## Ablations", "", ablation_section(data, rs)]
    out += ["## Speed", "", speed_section(data, rs)]
    out += ["## Faithfulness of explanations", "", faithfulness_section(data)]
    out += ["## Time spent", "", time_section(data)]
    failures = data.get("failures", {})
    if failures:
        body = [[job_name(k), v["error"].splitlines()[0][:160]] for k, v in failures.items()]
        out += ["## Failures (retried by the next run)", "", table(["job", "error"], body), ""]
    if figures:
        out += ["## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in figures] + [""]
    return "\n".join(out)


def write_all(run) -> dict:
    """Write `<stem>.md` (and the PNGs unless disabled) next to the JSON; return their paths."""
    stem = run.config.stem
    figures: list[str] = []
    if run.config.plots:
        from .plots import write_plots

        figures = write_plots(run.store.data, run.out_dir, stem)
    md = run.out_dir / f"{stem}.md"
    write_text(md, render(run.store.data, stem, figures, facts_of(run)))
    return {"json": run.store.path, "md": md, "figures": [Path(f) for f in figures]}
