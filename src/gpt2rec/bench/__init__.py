"""The benchmark harness behind `gpt2rec bench` / `make bench`.

Modules by role:
- `plan`: what to run (`BenchConfig`, the protocols, the model table, the job list).
- `protocols`: a protocol's split and its evaluation on valid / test.
- `runner`: runs the jobs (hyperparameter choice on validation, training, test), resumable.
- `store`: the results JSON, rewritten atomically after every record.
- `resume`: what makes a results file safe to resume (`--out`, the dataset's fingerprint, the settings).
- `tuning`: `gpt2rec bench tune`, a baseline's coordinate search on validation.
- `speed`: throughput, epoch-time, latency and memory measurements.
- `faithfulness`: the deletion test of the enhanced model's explanations.
- `report` / `plots`: the Markdown report (with the targets, met or not) and the PNG figures.

Benchmarks are not tests: nothing here asserts a timing.
"""

from .plan import BenchConfig

__all__ = ["BenchConfig", "run_bench"]


def run_bench(config: BenchConfig, dataset=None, argv: list[str] | None = None):
    """Run (or resume) the benchmark; see `gpt2rec.bench.runner.run_bench`."""
    from .runner import run_bench as _run

    return _run(config, dataset=dataset, argv=argv)
