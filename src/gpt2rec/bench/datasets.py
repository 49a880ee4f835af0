"""Which datasets a bench run covers: the one asked for, or ML-100K and (full runs) the cached
secondary ones with their own protocols and models."""

from __future__ import annotations

from .plan import NCF, BenchConfig

# ML-1M, when in the local cache: the NCF protocol with the ID baselines (the published HR@10
# range of NeuMF/BPR is for ML-1M), within the time budget.
SECONDARY = {
    "ml-1m": {"protocols": (NCF,), "models": ("popularity", "itemknn", "ease", "bpr", "neumf"),
              "speed": False, "faithfulness": False},
}  # fmt: skip


def datasets_to_run(base: BenchConfig, dataset: str | None = None) -> list[BenchConfig]:
    """`dataset` alone when given; else ML-100K, then (full runs only) ML-1M when it is cached."""
    from dataclasses import replace

    from ..data.fetch import is_fetched

    if dataset:
        return [replace(base, dataset=dataset)]
    out = [replace(base, dataset="ml-100k")]
    if not base.quick:
        for name, settings in SECONDARY.items():
            if is_fetched(name):
                values = dict(settings)
                if base.protocols:
                    values["protocols"] = base.protocols
                if base.models:
                    values["models"] = base.models
                out.append(replace(base, dataset=name, **values))
    return out
