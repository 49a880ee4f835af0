"""PNG figures (matplotlib, Agg back end): metric bars with std error bars per protocol, and the
validation ndcg@10 of the main gradient models per epoch (warm, first seed)."""

from __future__ import annotations

from pathlib import Path

from ..errors import require
from ..utils.io import atomic_path
from . import plan
from .summary import label, rows


def _pyplot():
    matplotlib = require("matplotlib", "bench")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def bar_plot(data: dict, protocol: str, path: Path) -> bool:
    metric = plan.PROTOCOLS[protocol].metric
    rs = [r for r in rows(data.get("records", []), protocol) if metric in r.mean]
    if not rs:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(rs) + 2), 4.0))
    colors = ["tab:orange" if r.is_gpt2 else "tab:blue" for r in rs]
    ax.bar(range(len(rs)), [r.mean[metric] for r in rs], yerr=[r.std.get(metric, 0.0) for r in rs],
           color=colors, capsize=3)  # fmt: skip
    ax.set_xticks(range(len(rs)), [r.label for r in rs], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"test {metric} (mean ± std over seeds)")
    ax.set_title(f"{protocol}: {metric}")
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
    plt.close(fig)
    return True


def curve_plot(data: dict, path: Path) -> bool:
    recs = [r for r in data.get("records", []) if r["protocol"] == plan.WARM and r["seed"] == 0
            and len(r.get("valid_curve") or []) > 0 and r.get("group", "main") == "main"]  # fmt: skip
    if not recs:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for r in recs:
        curve = r["valid_curve"]
        ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=label(r["model"], r["lm"]))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation ndcg@10")
    ax.set_title("warm: validation ndcg@10 per epoch (first seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)
    return True


def write_plots(data: dict, out_dir: Path, stem: str) -> list[str]:
    out = []
    for protocol in plan.PROTOCOLS:
        path = Path(out_dir) / f"{stem}-{protocol}.png"
        if bar_plot(data, protocol, path):
            out.append(str(path))
    path = Path(out_dir) / f"{stem}-curves.png"
    if curve_plot(data, path):
        out.append(str(path))
    return out
