"""Aggregates of the records (mean and std over seeds) and the targets, met or not.

Nothing here reads test numbers to choose anything: "the best GPT-2 recommender" of a protocol is
the one with the highest mean VALIDATION score; its TEST mean is what the targets compare.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

import numpy as np

from . import plan

GPT2_MODELS = ("basic", "enhanced", "l3ae")  # bench names' prefixes of the GPT-2 (LM-reading) recommenders


def label(model: str, lm: str | None) -> str:
    """How a (model, lm) pair is named in tables and figures: `enhanced-cached [minilm]`."""
    return model if not lm else f"{model} [{lm}]"


@dataclass
class Row:
    protocol: str
    model: str
    lm: str | None
    group: str
    n: int
    mean: dict
    std: dict
    valid: dict  # mean validation metrics
    records: list
    select: dict = field(default_factory=dict)  # mean metrics on validation's selection half ({} if none)

    @property
    def label(self) -> str:
        return label(self.model, self.lm)

    def whole_valid(self, metric: str) -> float:
        """The mean `metric` over all validation users: for a row tuned on one half and scored on the
        other (`plan.tunes_on_half`), the halves' means weighted by their user counts, so it compares
        with the rows that used the whole validation."""
        if not self.select:
            return self.valid.get(metric, float("-inf"))
        n_tune, n_select = self.valid.get("n_users", 0.0), self.select.get("n_users", 0.0)
        parts = ((self.valid.get(metric), n_tune), (self.select.get(metric), n_select))
        if any(v is None for v, _ in parts) or n_tune + n_select <= 0:
            return float("-inf")
        return sum(v * n for v, n in parts) / (n_tune + n_select)

    @property
    def is_gpt2(self) -> bool:
        # an LM-reading model with its text removed (l3ae-text-off, lm None) is not a GPT-2 row
        return self.model.split("-")[0].split("/")[0] in GPT2_MODELS and self.lm is not None


def _stats(dicts: list[dict]) -> tuple[dict, dict]:
    keys = sorted({k for d in dicts for k, v in d.items() if isinstance(v, (int, float)) and v is not None})
    mean, std = {}, {}
    for k in keys:
        vals = np.asarray([d[k] for d in dicts if isinstance(d.get(k), (int, float))], dtype=np.float64)
        mean[k] = float(vals.mean())
        std[k] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return mean, std


def rows(records: list[dict], protocol: str | None = None) -> list[Row]:
    """One row per (protocol, model, lm), in plan order (protocols, then first appearance)."""
    groups: dict[tuple, list] = defaultdict(list)
    for r in records:
        if protocol is None or r["protocol"] == protocol:
            groups[(r["protocol"], r["model"], r["lm"])].append(r)
    order = {p: i for i, p in enumerate(plan.PROTOCOLS)}
    out = []
    for (proto, model, lm), recs in sorted(groups.items(), key=lambda kv: order.get(kv[0][0], 99)):
        mean, std = _stats([r["metrics"] for r in recs])
        for key in ("train_seconds", "seconds_per_epoch", "eval_seconds", "peak_rss_mb", "epochs", "best_epoch"):
            vals = [r.get(key) for r in recs if isinstance(r.get(key), (int, float))]
            if vals:
                mean[key] = float(np.mean(vals))
        valid, _ = _stats([r.get("valid_metrics") or {} for r in recs])
        select = _stats([r["select_metrics"] for r in recs])[0] if all(r.get("select_metrics") for r in recs) else {}
        out.append(Row(proto, model, lm, recs[0].get("group", "main"), len(recs), mean, std, valid, recs, select))
    return out


def find(rows_: list[Row], protocol: str, model: str, lm=...) -> Row | None:
    for r in rows_:
        if r.protocol == protocol and r.model == model and (lm is ... or r.lm == lm):
            return r
    return None


def best_gpt2(rows_: list[Row], protocol: str) -> Row | None:
    """The GPT-2 recommender (main table, any LM) with the highest mean validation metric (over all
    validation users, `Row.whole_valid`)."""
    metric = plan.PROTOCOLS[protocol].metric
    cands = [r for r in rows_ if r.protocol == protocol and r.is_gpt2 and r.group == "main"]
    return max(cands, key=lambda r: r.whole_valid(metric), default=None)


@dataclass
class Target:
    name: str
    value: str
    met: bool | None  # None: not measured
    status: str = ""  # shown instead of met / not measured when the target cannot be judged here
    dataset: str | None = None  # the dataset whose figures define it (judged there only); None: any data


REFERENCE_SIZES = {"ml-100k": (943, 1682, 100_000), "ml-1m": (6040, 3706, 1_000_209)}  # users, items, interactions


def reference_dataset(info: dict) -> str | None:
    """ "ml-100k" / "ml-1m" when `info` (`Dataset.describe()`, or the sizes a results file recorded)
    is that dataset: its name, and its sizes when they are known (a file of one's own that happens to
    be called ml-100k.csv, or ML-100K cut by --implicit-threshold, is not); else None."""
    name = info.get("name")
    sizes = tuple(info.get(k) for k in ("users", "items", "interactions"))
    if name not in REFERENCE_SIZES or (None not in sizes and sizes != REFERENCE_SIZES[name]):
        return None
    return name


def scoped(t: Target, reference: str, dataset_name: str) -> Target:
    """`t`, an absolute figure measured on `reference`: judged there; elsewhere not judged (its value
    kept), and the report leaves it out."""
    if dataset_name == reference:
        return replace(t, dataset=reference)
    return Target(t.name, t.value, None, f"n/a (an {reference.upper()} target)", reference)


def _mean(row: Row | None, metric: str) -> float | None:
    return None if row is None or metric not in row.mean else row.mean[metric]


def _ratio_target(name, num: Row | None, den: Row | None, metric: str, factor: float, strict=False) -> Target:
    a, b = _mean(num, metric), _mean(den, metric)
    if a is None or b is None:
        return Target(name, "not measured", None)
    ratio = a / b if b else float("inf")
    met = ratio > factor if strict else ratio >= factor
    return Target(name, f"{num.label} {a:.4f} vs {den.label} {b:.4f} (x{ratio:.2f})", met)


def targets(data: dict, dataset_name: str) -> list[Target]:
    rs = rows(data.get("records", []))
    out = []
    best = best_gpt2(rs, plan.WARM)
    out.append(
        _ratio_target("warm: best GPT-2 ndcg@10 >= 1.05x BPR-MF", best, find(rs, plan.WARM, "bpr"), "ndcg@10", 1.05)
    )
    out.append(_ratio_target("warm: best GPT-2 ndcg@10 >= EASE", best, find(rs, plan.WARM, "ease"), "ndcg@10", 1.0))
    best = best_gpt2(rs, plan.COLD_ITEM)
    out.append(
        _ratio_target(
            "cold-item: best GPT-2 ndcg@10 >= 1.5x genre-content (mean of draws)",
            best,
            find(rs, plan.COLD_ITEM, "genre_content"),
            "ndcg@10",
            1.5,
        )
    )
    best = best_gpt2(rs, plan.COLD_USER)
    out.append(
        _ratio_target(
            "cold-user: best GPT-2 ndcg@10 above popularity",
            best,
            find(rs, plan.COLD_USER, "popularity"),
            "ndcg@10",
            1.0,
            strict=True,
        )
    )
    for model in ("neumf", "bpr"):
        hr = _mean(find(rs, plan.NCF, model), "hit@10")
        name = f"ncf: {model} HR@10 in the published ML-1M range 0.65-0.72"
        found = Target(name, "not measured", None) if hr is None else Target(name, f"{hr:.4f}", 0.65 <= hr <= 0.72)
        out.append(scoped(found, "ml-1m", dataset_name))
    for t in speed_targets(data.get("speed", {})):
        # an absolute time over the whole catalogue (it grows with the items): ML-100K's goal
        out.append(scoped(t, "ml-100k", dataset_name) if t.name.startswith("speed: recommend p99") else t)
    return out


def usable(section: dict) -> dict:
    """A speed section, or {} when it failed or was skipped."""
    return {} if "error" in section or "skipped" in section else section


def speed_targets(speed: dict) -> list[Target]:
    out = []
    enc = speed.get("encoding", {})
    if enc:
        for lm, e in enc.items():
            r = e.get("ratio_to_limit")  # None when the LM failed to load
            out.append(
                Target(
                    f"speed: encoding ratio_to_limit >= 0.85 ({lm})",
                    "not measured" if r is None else f"{r:.3f}",
                    None if r is None else r >= 0.85,
                )
            )
    else:
        out.append(Target("speed: encoding ratio_to_limit >= 0.85", "not measured", None))
    epochs = usable(speed.get("epoch", {}))
    cached_key = next((k for k in epochs if k.startswith("enhanced-cached")), None)
    cached = epochs.get(cached_key) if cached_key else None
    bpr = epochs.get("bpr")
    if cached and bpr and bpr.get("seconds"):
        ratio = cached["seconds"] / bpr["seconds"]
        out.append(
            Target(
                "cost: a cached epoch of the enhanced model <= 3x a BPR-MF epoch (same run)",
                f"{cached_key} {cached['seconds']:.2f} s vs bpr {bpr['seconds']:.2f} s (x{ratio:.2f})",
                ratio <= 3.0,
            )
        )
    else:
        out.append(
            Target("cost: a cached epoch of the enhanced model <= 3x a BPR-MF epoch (same run)", "not measured", None)
        )
    dyn = usable(speed.get("end2end", {}))
    if dyn.get("end2end") and dyn.get("naive"):
        ratio = dyn["end2end"]["seconds_per_epoch"] / dyn["naive"]["seconds_per_epoch"]
        out.append(Target("speed: end2end epoch <= 1/4 naive dynamic forward", f"x{ratio:.3f} of naive", ratio <= 0.25))
    else:
        out.append(Target("speed: end2end epoch <= 1/4 naive dynamic forward", "not measured", None))
    lat = {k: v for k, v in usable(speed.get("latency", {})).items() if k.startswith(("enhanced", "basic"))}
    if lat:
        worst_key = max(lat, key=lambda k: lat[k]["p99_ms"])
        worst = lat[worst_key]["p99_ms"]
        out.append(
            Target(
                "speed: recommend p99 <= 5 ms (every GPT-2 model)", f"worst {worst_key}: {worst:.2f} ms", worst <= 5.0
            )
        )
    else:
        out.append(Target("speed: recommend p99 <= 5 ms", "not measured", None))
    return out
