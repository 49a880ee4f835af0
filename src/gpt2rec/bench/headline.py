"""The headline model against EASE and against its own text-off ablation: paired per-seed
differences with 95% intervals, and the targets of the warm / sparse / tail goals.

Seeds are paired: seed s of every model sees the same split (the same draw), so the difference
d_s = metric(headline, s) - metric(other, s) removes the split's noise. The interval is the t
interval of the mean of the d_s (n - 1 degrees of freedom); with 3 seeds it is wide, and says so.
The headline of a protocol is the row (model of HEADLINES, LM) with the highest mean score on the
half of validation its candidates were not tuned on (`plan.tunes_on_half`), never chosen by test.
"""

from __future__ import annotations

import numpy as np

from . import plan
from .summary import Row, Target, find, rows, scoped

HEADLINES = plan.HEADLINE_CANDIDATES
LM_MODEL = "l3ae"  # the candidate the bench runs with every LM (goal 6: decoder vs MiniLM)
METRIC = "ndcg@10"
COLD_ITEM_FLOOR = 0.2348  # the committed enhanced-cached [minilm] cold-item ndcg@10: no regression below it
# (protocol, factor vs EASE, stretch factor or None)
EASE_TARGETS = ((plan.WARM, 1.0, 1.03), (plan.SPARSE_20, 1.15, None), (plan.SPARSE_50, 1.05, None),
                (plan.WARM_TAIL, 1.0, 1.1))  # fmt: skip


def paired(a: Row | None, b: Row | None, metric: str = METRIC) -> dict | None:
    """Per-seed differences a - b on the seeds both have: mean, 95% t interval, every seed's sign."""
    if a is None or b is None:
        return None
    va = {r["seed"]: r["metrics"].get(metric) for r in a.records}
    vb = {r["seed"]: r["metrics"].get(metric) for r in b.records}
    seeds = sorted(s for s in va if s in vb and va[s] is not None and vb[s] is not None)
    if not seeds:
        return None
    d = np.asarray([va[s] - vb[s] for s in seeds], dtype=np.float64)
    half = float("nan")
    if len(d) > 1:
        from scipy.stats import t

        half = float(t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return {"seeds": seeds, "diffs": d.tolist(), "mean": float(d.mean()), "low": float(d.mean() - half),
            "high": float(d.mean() + half), "ratio": float(np.mean([va[s] for s in seeds]) /
                                                           max(np.mean([vb[s] for s in seeds]), 1e-12))}  # fmt: skip


def headline_row(rs: list[Row], protocol: str) -> Row | None:
    """The headline's row on `protocol`: of the HEADLINES models and their LMs, the highest mean
    score on the selection half of validation (on the whole of it when a candidate's records predate
    the halves: the scores compared are then all of one kind)."""
    metric = plan.PROTOCOLS[protocol].metric
    cands = [r for r in rs if r.protocol == protocol and r.model in HEADLINES and r.group == "main"]
    part = "select" if cands and all(r.select for r in cands) else "valid"
    return max(cands, key=lambda r: getattr(r, part).get(metric, float("-inf")), default=None)


def _fmt_ci(p: dict) -> str:
    # one seed has no spread, so no interval (the t interval would be NaN)
    return "n/a (1 seed)" if len(p["seeds"]) < 2 else f"[{p['low']:+.4f}, {p['high']:+.4f}]"


def _fmt_pair(p: dict) -> str:
    return f"{p['mean']:+.4f} {_fmt_ci(p)} (x{p['ratio']:.3f}, {len(p['seeds'])} seeds)"


ML100K = "ml-100k"  # the dataset the absolute thresholds (COLD_ITEM_FLOOR, FIT_SECONDS) were measured on


def ml100k_only(t: Target, dataset_name: str) -> Target:
    """`t` judged on ML-100K only (an absolute ML-100K figure); elsewhere its value kept, not judged."""
    return scoped(t, ML100K, dataset_name)


def targets(data: dict, dataset_name: str) -> list[Target]:
    rs = rows(data.get("records", []))
    out = []
    for protocol, factor, stretch in EASE_TARGETS:
        head, ease = headline_row(rs, protocol), find(rs, protocol, "ease")
        p = paired(head, ease)
        names = [(f"{protocol}: headline ndcg@10 >= {factor:g}x EASE" + (" (every seed)" if factor == 1 else ""),
                  factor)] + ([(f"{protocol}: stretch >= {stretch:g}x EASE", stretch)] if stretch else [])  # fmt: skip
        for name, f in names:
            if p is None:
                out.append(Target(name, "not measured", None))
                continue
            every = all(x >= 0 for x in p["diffs"]) if f == 1 else True
            out.append(Target(name, f"{head.label} vs ease: {_fmt_pair(p)}", p["ratio"] >= f and every))
    head = headline_row(rs, plan.WARM)
    off = HEADLINES[head.model] if head is not None else None
    p = paired(head, find(rs, plan.WARM, off)) if off else None
    name = "warm: headline above its text-off ablation (95% CI of the paired difference > 0)"
    if p is None:
        out.append(Target(name, "not measured", None))
    elif len(p["seeds"]) < 2:
        out.append(Target(name, f"{head.label} vs {off}: {_fmt_pair(p)}", None, "needs >= 2 seeds"))
    else:
        out.append(Target(name, f"{head.label} vs {off}: {_fmt_pair(p)}", p["low"] > 0))
    cold = [r for r in rs if r.protocol == plan.COLD_ITEM and r.is_gpt2 and r.group == "main"]
    best = max(cold, key=lambda r: r.valid.get(METRIC, float("-inf")), default=None)
    name = f"cold-item: best GPT-2 ndcg@10 >= {COLD_ITEM_FLOOR} (no regression)"
    out.append(ml100k_only(Target(name, "not measured", None) if best is None else
                           Target(name, f"{best.label} {best.mean[METRIC]:.4f}",
                                  round(best.mean[METRIC], 4) >= COLD_ITEM_FLOOR), dataset_name))  # fmt: skip
    out.extend(lm_targets(rs))
    out.extend(ml100k_only(t, dataset_name) for t in cost_targets(rs, data.get("speed", {})))
    out.extend(epoch_targets(rs, data.get("speed", {})))
    return out


def trains_in_epochs(name: str) -> bool:
    """Whether the bench entry `name` trains by epochs (no closed-form `fit` in its registry spec)."""
    from ..models.registry import get_spec

    entries = {e.name: e for e in plan.ENTRIES}
    return name in entries and get_spec(entries[name].model).fit is None


FIT_SECONDS = 10.0  # goal 5 for a closed-form headline: "a fit in seconds on ML-100K", read as under ten


def cost_targets(rs: list[Row], speed: dict) -> list[Target]:
    """Goal 5 for a closed-form headline: its fit time on warm (first seed) from the speed section,
    measured in the same run as BPR-MF's epoch (the report's load average applies). None when the
    warm headline trains in epochs (`epoch_targets` covers it)."""
    from .summary import usable

    head = headline_row(rs, plan.WARM)
    if head is not None and trains_in_epochs(head.model):
        return []
    epochs = usable(speed.get("epoch", {}))
    name = f"cost: headline closed-form fit <= {FIT_SECONDS:g} s on ML-100K (warm, speed section)"
    # the headline's own LM when the speed section timed it, else the headline model with another
    # LM (the fit is the same algebra; the LM's vectors come from the embedding cache)
    model = head.model if head is not None else LM_MODEL
    timed = [k for k in epochs if k == model or k.startswith(f"{model} [")]
    label = head.label if head is not None and head.label in epochs else (timed[0] if timed else None)
    fit = epochs.get(label) if label is not None else None
    if fit is None or fit.get("how") != "closed-form fit":
        return [Target(name, "not measured", None)]
    bpr = epochs.get("bpr", {}).get("seconds")
    extra = f" (x{fit['seconds'] / bpr:.0f} of one BPR-MF epoch, {bpr:.2f} s)" if bpr else ""
    return [Target(name, f"{label} fit {fit['seconds']:.2f} s{extra}", fit["seconds"] <= FIT_SECONDS)]


EPOCH_FACTOR = 3.0  # goal 5 for a headline trained in epochs: one epoch <= 3x a BPR-MF epoch


def epoch_targets(rs: list[Row], speed: dict) -> list[Target]:
    """Goal 5 for each headline model trained in epochs (e.g. l3ae_mf on sparse data): its epoch on
    warm (first seed) against BPR-MF's, both from the speed section of one run."""
    from .summary import usable

    heads: dict[str, list[str]] = {}
    for protocol, _, _ in EASE_TARGETS:
        head = headline_row(rs, protocol)
        if head is not None and trains_in_epochs(head.model):
            heads.setdefault(head.model, []).append(protocol)
    epochs = usable(speed.get("epoch", {}))
    bpr = epochs.get("bpr", {}).get("seconds")
    out = []
    for model, protocols in heads.items():
        name = (
            f"cost: {model} (headline on {', '.join(protocols)}) epoch <= {EPOCH_FACTOR:g}x a BPR-MF epoch (same run)"
        )
        timed = [k for k in epochs if k == model or k.startswith(f"{model} [")]
        if not timed or not bpr:
            out.append(Target(name, "not measured", None))
            continue
        seconds = epochs[timed[0]]["seconds"]
        value = f"{timed[0]} {seconds:.2f} s vs bpr {bpr:.2f} s (x{seconds / bpr:.2f})"
        out.append(Target(name, value, seconds / bpr <= EPOCH_FACTOR))
    return out


def lm_targets(rs: list[Row]) -> list[Target]:
    """Goal 6: the headline model with the decoder (gemma3-270m) within 3% of it with MiniLM."""
    out = []
    for protocol in (plan.WARM, plan.COLD_ITEM):
        dec, enc = find(rs, protocol, LM_MODEL, "gemma3-270m"), find(rs, protocol, LM_MODEL, "minilm")
        name = f"{protocol}: headline [gemma3-270m] ndcg@10 >= 0.97x [minilm]"
        if dec is None or enc is None:
            out.append(Target(name, "not measured", None))
            continue
        ratio = dec.mean[METRIC] / enc.mean[METRIC]
        value = f"{dec.label} {dec.mean[METRIC]:.4f} vs {enc.label} {enc.mean[METRIC]:.4f} (x{ratio:.3f})"
        out.append(Target(name, value, ratio >= 0.97))
    return out


def paired_rows(data: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows: headline vs EASE and vs its text-off ablation, per protocol, paired over seeds."""
    rs = rows(data.get("records", []))
    body = []
    for protocol in plan.PROTOCOLS:
        for head in [r for r in rs if r.protocol == protocol and r.model in HEADLINES]:
            for other in ("ease", HEADLINES[head.model]):
                p = paired(head, find(rs, protocol, other))
                if p is not None:
                    diffs = ", ".join(f"{x:+.4f}" for x in p["diffs"])
                    body.append([protocol, head.label, other, f"{p['mean']:+.4f}", _fmt_ci(p),
                                 f"x{p['ratio']:.3f}", diffs])  # fmt: skip
    return ["protocol", "headline", "vs", "mean Δ ndcg@10", "95% CI", "ratio", "per seed"], body


# The design's own claims: (claim, the model that should win, the one it should beat), each with the
# base LM of the ablations. Checked wherever both rows exist, as paired differences over seeds.
CLAIMS = (
    ("dynamic end-to-end extraction beats the cached mode", "enhanced-end2end", "enhanced-cached"),
    ("cross-attention beats concatenation", "enhanced-cached", "enhanced-cached/no-attention"),
    ("the contrastive term improves generalisation", "enhanced-cached", "enhanced-cached/no-contrastive"),
    ("the LM's text adds to the IDs (enhanced)", "enhanced-cached", "enhanced-cached/ids-only"),
    *((f"the LM's text adds to the IDs ({m})", m, off) for m, off in HEADLINES.items()),
)


def verdict(p: dict) -> str:
    return "confirmed" if p["low"] > 0 else "refuted" if p["high"] < 0 else "not shown (CI spans 0)"


def claim_verdicts(data: dict) -> list[list[str]]:
    """[claim, overall verdict, where]: confirmed (the 95% CI above 0 on every protocol measured),
    refuted (below 0 somewhere, above 0 nowhere), confirmed only where it applies (above 0 on some
    protocols), or not shown (no interval clear of 0)."""
    _, body = claims_rows(data)
    out = []
    for claim, *_ in CLAIMS:
        mine = [(r[1], r[-1]) for r in body if r[0] == claim]
        if not mine:
            continue
        yes = [p for p, v in mine if v == "confirmed"]
        no = [p for p, v in mine if v == "refuted"]
        # a protocol measured with several LMs names each row's model: "warm (l3ae [minilm]): confirmed; ..."
        twice = {p for p, _ in mine if [q for q, _ in mine].count(p) > 1}
        winners = [r[2].split(" vs ")[0] for r in body if r[0] == claim]
        where = "; ".join(f"{p} ({a}): {v}" if p in twice else f"{p}: {v}" for (p, v), a in zip(mine, winners))
        if yes and len(yes) == len(mine):
            overall = "confirmed"
        elif yes:
            overall = f"confirmed only on {', '.join(dict.fromkeys(yes))}" + (
                f"; refuted on {', '.join(no)}" if no else ""
            )
        elif no:
            overall = "refuted"
        else:
            overall = "not shown"
        out.append([claim, overall, where])
    return out


def claims_rows(data: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows: each claim per protocol, verdict from the 95% CI of the paired difference."""
    rs = rows(data.get("records", []))
    body = []
    for claim, a, b in CLAIMS:
        for protocol in plan.PROTOCOLS:
            for row_a in [r for r in rs if r.protocol == protocol and r.model == a]:
                row_b = find(rs, protocol, b, row_a.lm) or find(rs, protocol, b, None)
                p = paired(row_a, row_b, plan.PROTOCOLS[protocol].metric)
                if p is None or len(p["seeds"]) < 2:
                    continue
                body.append([claim, protocol, f"{row_a.label} vs {row_b.label}", f"{p['mean']:+.4f}",
                             f"[{p['low']:+.4f}, {p['high']:+.4f}]", len(p["seeds"]), verdict(p)])  # fmt: skip
    return ["claim", "protocol", "compared", "mean Δ", "95% CI", "seeds", "verdict"], body
