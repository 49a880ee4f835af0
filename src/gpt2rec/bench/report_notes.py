"""What the report says about the run itself: its header (command, machine, dataset: only what is
known) and what the data could not support (protocols and models skipped, items without text)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import plan


@dataclass
class Facts:
    """What the report knows besides the results file: the data and the plan of the run writing it."""

    dataset: dict = field(default_factory=dict)  # `Dataset.describe()`, or what the results file recorded
    skipped_protocols: dict[str, str] = field(default_factory=dict)  # protocol -> why the data cannot support it
    skipped_models: dict[str, str] = field(default_factory=dict)  # bench model -> why the data cannot feed it
    items_have_text: bool | None = None  # None: not known


def facts_of(run) -> Facts:
    """The facts of a `BenchRun`: only what the data cannot support is skipped; a protocol or model
    left out because it was not asked for is not (named ones the data cannot support are refused)."""
    from ..text.templates import describes_items
    from .protocols import unusable_models, unusable_protocols

    config, dataset = run.config, run.dataset
    table = plan.entries(config)
    runs_on = {p for e in table for p in (e.quick if config.quick else e.protocols)}
    # the runner's: what the dataset lacks, and splits that leave a part empty (`protocols.split_problem`)
    protocols = {} if config.protocol_names else {**unusable_protocols(dataset), **getattr(run, "skipped", {})}
    # the runner narrows `models` to the plan minus what the data cannot feed: that plan is the default one
    default = plan.entries(replace(config, models=()))
    unusable = unusable_models(dataset)
    planned = not config.models or set(config.models) == {e.name for e in default if e.model not in unusable}
    return Facts(
        dataset.describe(),
        {p: why for p, why in protocols.items() if p in runs_on},
        {e.name: unusable[e.model] for e in default if e.model in unusable} if planned else {},
        describes_items(dataset.items),
    )


def facts_from_json(data: dict) -> Facts:
    """The facts a results file alone gives (its last run's dataset); nothing known about skips."""
    ds = (data.get("meta", {}).get("last_run") or {}).get("dataset") or {}
    return Facts(dict(ds), items_have_text=bool(ds["item_columns"]) if "item_columns" in ds else None)


def not_run_section(data: dict, facts: Facts) -> str:
    """'## Not run on this data': each skipped protocol and model with its reason, and a line when
    the text models had no item text to read. '' when there is nothing to say."""
    lines = [f"- protocol `{p}`: {why}." for p, why in facts.skipped_protocols.items()]
    lines += [f"- model `{m}`: {why}." for m, why in facts.skipped_models.items()]
    last = data.get("meta", {}).get("last_run") or {}
    text_models = any(r.get("lm") for r in data.get("records", [])) or bool(last.get("lms"))
    if facts.items_have_text is False and text_models:
        lines.append(
            "- item text: the items have nothing but their IDs (no items table, or one with IDs only), so the "
            "text models (those with an LM in brackets) read each item's ID as its text; their scores say "
            "nothing about what text adds. Pass `--items` with title / genres / description columns."
        )
    if not lines:
        return ""
    return "## Not run on this data\n\n" + "\n".join(lines) + "\n"


def _num(value, digits: int = 0) -> str:
    return f"{value:.{digits}f}"


def run_times(data: dict) -> str:
    """'2299 s in the last run'; '2629 s in 2 runs (2299 + 330 s, resumed)' when the results were
    completed by resuming; '' when no time is recorded."""
    meta = data.get("meta", {})
    runs = [r["seconds"] for r in meta.get("runs", []) if r.get("seconds") is not None]
    if len(runs) <= 1:
        seconds = (meta.get("last_run") or {}).get("seconds")
        return "" if seconds is None else f"{_num(seconds)} s in the last run"
    return f"{_num(sum(runs))} s in {len(runs)} runs ({' + '.join(_num(x) for x in runs)} s, resumed)"


def lm_counts(data: dict) -> str:
    """'minilm (210 records), gemma3-270m (40 records)': each LM the records used, most used first."""
    counts: dict[str, int] = {}
    for r in data.get("records", []):
        if r.get("lm"):
            counts[r["lm"]] = counts.get(r["lm"], 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{lm} ({n} record{'s' if n != 1 else ''})" for lm, n in ranked)


def machine_text(machine: dict) -> str:
    """'Linux-..., 2 CPUs (1 torch threads), device cpu, torch 2.3, Python 3.11': the parts recorded."""
    cpus = f"{machine['cpu_count']} CPUs" if machine.get("cpu_count") is not None else ""
    if cpus and machine.get("torch_threads") is not None:
        cpus += f" ({machine['torch_threads']} torch threads)"
    device = f"device {machine['device']}" if machine.get("device") else ""
    if device and machine.get("gpu"):
        device += f" {machine['gpu']}"
    parts = [machine.get("platform"), cpus, device,
             machine.get("torch") and f"torch {machine['torch']}", machine.get("python") and f"Python {machine['python']}"]  # fmt: skip
    return ", ".join(p for p in parts if p)


def header(data: dict, stem: str, facts: Facts) -> list[str]:
    """Title, how the results were produced and on what, the dataset: each field only when recorded
    (`gpt2rec bench tune` writes no run record: its report names the dataset alone)."""
    meta = data.get("meta", {}).get("last_run") or {}
    ds = facts.dataset
    out = [f"# Benchmark: {ds.get('name') or stem}", ""]
    if meta:
        when = ", ".join(x for x in (meta.get("started") and f"started {meta['started']}", run_times(data)) if x)
        machine = machine_text(meta.get("machine") or {})
        out.append(f"Produced by `{meta.get('command', 'gpt2rec bench')}`" + (f" ({when})" if when else "")
                   + (f" on {machine}" if machine else "") + ".")  # fmt: skip
    else:
        out.append("No benchmark run is recorded in this results file yet"
                   + (": only the searches of `gpt2rec bench tune` below." if data.get("tuning") else "."))  # fmt: skip
    if meta.get("load_average_start") is not None:
        out.append(f"\nMachine load average (1/5/15 min) at the start {meta['load_average_start']}, at the end "
                   f"{meta.get('load_average_end', '—')}: timings are only comparable on an otherwise idle machine.")  # fmt: skip
    if meta.get("quick"):
        out.append("\n**Quick mode**: one seed, few epochs, a subset of models — a smoke run, not the benchmark.")
    sizes = ", ".join(f"{ds[k]} {k}" for k in ("users", "items", "interactions") if ds.get(k) is not None)
    lms = lm_counts(data)
    if lms or "lms" in meta:  # the records' LMs: a resumed slice's --lms says what it ran, not what is here
        lms = f"Language models in the records: {lms or 'none'}"
        if meta.get("lms") is not None:
            lms += f" (the last run's: {', '.join(meta['lms']) or 'none'})"
        lms += "."
    line = " ".join(x for x in ((f"Dataset: {sizes}." if sizes else ""), lms) if x)
    if line:
        out.append("\n" + line)
    return out
