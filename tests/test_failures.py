"""The failure classes of issue 11, each driven through the CLI: one line on stderr, exit 2, nothing
half-written, nothing silently wrong. Most run in-process (`main`); the ones that need a real
process (concurrent starts, a file-size limit, a closed pipe) run `python -m gpt2rec`."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from gpt2rec.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")
TRAIN = ["--model", "bpr", "--epochs", "2", "--batch-size", "16", "--dim", "8", "--lr", "0.05", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(ml, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "bpr"
    assert main(["train", "--dataset", str(ml), *TRAIN, "--out", str(out)]) == 0
    return out


def one_line_error(capsys, code, needle: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpt2rec: error: "), err
    assert needle in lines[0], lines[0]
    return lines[0]


def cli(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    return subprocess.run([sys.executable, "-m", "gpt2rec", *args], env=env, capture_output=True, text=True, **kwargs)


def assert_one_line(proc: subprocess.CompletedProcess, needle: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("gpt2rec: error: ") and needle in lines[0], lines[0]


def leftovers(out: Path) -> list[str]:
    """What a refused start left next to --out (the lock file is expected, nothing else)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name != f".{out.name}.lock")


# ---- flags, checked before anything is written ------------------------------------------------


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--metric", "banana@10"], "unknown metric 'banana'"),
        (["--metric", "ndcg"], "must look like name@K"),
        (["--dim", "100000000000"], "dim 100000000000 is outside"),
        (["--dim", "0"], "dim must be >= 1"),
        (["--device", "banana"], "unknown device 'banana'"),
        (["--sep", "\\x"], "unknown escape"),
        (["--genres-sep", ""], "--genres-sep is empty"),  # was a raw traceback (ValueError: empty separator)
        (["--user-col", "item_id"], "user_col and item_col are both 'item_id'"),
        (["--lr", "inf"], "finite number"),
        (["--lr", "nan"], "finite number"),
        (["--set", "dim=abc"], "dim"),
        (["--implicit-threshold", "nan"], "implicit_threshold"),
    ],
)
def test_bad_train_flags_write_nothing(ml, tmp_path, capsys, flags, needle):
    out = tmp_path / "run"
    argv = ["train", "--dataset", str(ml), "--model", "bpr", "--epochs", "1", "--quiet", "--out", str(out), *flags]
    one_line_error(capsys, main(argv), needle)
    assert leftovers(out) == []


def test_nan_split_ratio_is_one_line(ml, tmp_path, capsys):
    out = tmp_path / "split"
    one_line_error(capsys, main(["data", "split", str(ml), "--ratios", "nan", "0.1", "0.1", "--out", str(out)]), "nan")
    assert not out.exists()


def test_cuda_without_a_gpu_is_one_line(run_dir, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    one_line_error(capsys, main(["recommend", str(run_dir), "--user", "1", "--device", "cuda"]), "not available")


def test_non_numeric_dim_in_a_config_file(ml, tmp_path, capsys):
    config = ml.parent / "c.json"
    config.write_text(json.dumps({"model": "bpr", "model_config": {"dim": "wide"}}))
    out = tmp_path / "run"
    one_line_error(
        capsys, main(["train", "--dataset", str(ml), "--config", str(config), "--out", str(out)]), "dim='wide' is not"
    )
    assert leftovers(out) == []


@pytest.mark.parametrize("k", ["0", "-3"])
@pytest.mark.parametrize("mode", [["--user", "1"], ["--user", "1", "--explain"], ["--profile", "{}"],
                                  ["--user", "1", "--items", "new.csv"]])  # fmt: skip
def test_k_is_checked_on_every_recommend_path(run_dir, capsys, k, mode):
    one_line_error(capsys, main(["recommend", str(run_dir), "-k", k, *mode]), "-k must be a positive number")


@pytest.mark.parametrize(("mode", "needle"), [([], "--query TEXT"), (["--items", "new.csv"], "--items needs --user")])
def test_recommend_without_a_user_names_what_is_missing(run_dir, capsys, mode, needle):
    one_line_error(capsys, main(["recommend", str(run_dir), *mode]), needle)


# ---- damaged run folders -----------------------------------------------------------------------


def damaged_copy(run_dir: Path, tmp_path: Path, name: str, data: bytes) -> Path:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / name).write_bytes(data)
    return copy


@pytest.mark.parametrize(
    "name, how, needle",
    [
        ("model.safetensors", "truncate", "model.safetensors is not a safetensors file"),
        ("model.safetensors", "foreign", "model.safetensors is not a safetensors file"),
        ("model.safetensors", "empty", "model.safetensors is not a safetensors file"),
        ("item_ids.json", "truncate", "item_ids.json is not valid JSON"),
        ("user_ids.json", "foreign", "user_ids.json is not valid JSON"),
        ("config.json", "truncate", "config.json is not valid JSON"),
        ("metrics.json", "truncate", "metrics.json is not valid JSON"),
    ],
)
def test_damaged_run_folder_is_one_line(run_dir, tmp_path, capsys, name, how, needle):
    data = (run_dir / name).read_bytes()
    data = {"truncate": data[: len(data) // 2], "foreign": b"PK\x03\x04 not this file", "empty": b""}[how]
    copy = damaged_copy(run_dir, tmp_path, name, data)
    command = ["evaluate", str(copy)] if name == "metrics.json" else ["recommend", str(copy), "--user", "1"]
    if name == "metrics.json":  # evaluate does not read metrics.json: read it through the library
        from gpt2rec.errors import DataError
        from gpt2rec.train.checkpoint import read_metrics

        with pytest.raises(DataError, match=f"run folder {copy} is damaged: {needle}"):
            read_metrics(copy)
        return
    line = one_line_error(capsys, main(command), needle)
    assert f"run folder {copy} is damaged" in line and "retrain or restore it" in line


def test_damaged_last_checkpoint_is_one_line_on_resume(ml, run_dir, tmp_path, capsys):
    data = (run_dir / "last.safetensors").read_bytes()
    copy = damaged_copy(run_dir, tmp_path, "last.safetensors", data[:100])
    argv = ["train", "--dataset", str(ml), *TRAIN, "--epochs", "3", "--out", str(copy)]
    one_line_error(capsys, main(argv), "last.safetensors is not a safetensors file")


def test_unfinished_run_says_resume(run_dir, tmp_path, capsys):
    copy = damaged_copy(run_dir, tmp_path, "metrics.json", b"{}")
    (copy / "model.safetensors").unlink()
    one_line_error(capsys, main(["recommend", str(copy), "--user", "1"]), "run the same gpt2rec train command again")


# ---- split folders -----------------------------------------------------------------------------


@pytest.mark.parametrize("cut", ["line", "mid-line"])
def test_truncated_split_is_refused(ml, run_dir, tmp_path, capsys, cut):
    split = damaged_copy(run_dir, tmp_path, "config.json", (run_dir / "config.json").read_bytes()) / "split"
    test = split / "test.tsv"
    lines = test.read_bytes().splitlines(keepends=True)
    test.write_bytes(b"".join(lines[:-1]) if cut == "line" else b"".join(lines)[:-3])
    out = tmp_path / "again"
    argv = ["train", "--dataset", str(ml), *TRAIN, "--split-dir", str(split), "--out", str(out)]
    one_line_error(capsys, main(argv), "truncated or edited")
    assert leftovers(out) == ["copy"]


# ---- OS errors ---------------------------------------------------------------------------------


@contextmanager
def tmpfs(path: Path, options: str):
    """A small tmpfs mounted at `path` (root only; skipped where mounting is not allowed)."""
    path.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]).returncode:
        pytest.skip("mounting a tmpfs needs root and mount permission")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_read_only_file_system_is_one_line(ml, tmp_path, capsys):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        argv = ["train", "--dataset", str(ml), *TRAIN, "--out", str(ro / "run")]
        one_line_error(capsys, main(argv), "read-only file system")


def test_disk_full_on_a_tiny_tmpfs_leaves_no_run(ml, tmp_path, capsys):
    with tmpfs(tmp_path / "small", "size=16k") as small:
        out = small / "run"
        argv = ["train", "--dataset", str(ml), *TRAIN, "--out", str(out)]
        one_line_error(capsys, main(argv), "no space left on the device")
        assert leftovers(out) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_out_is_one_line(ml, tmp_path, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        argv = ["train", "--dataset", str(ml), *TRAIN, "--out", str(parent / "run")]
        one_line_error(capsys, main(argv), "permission denied")
    finally:
        parent.chmod(0o755)


def test_out_under_a_regular_file_is_one_line(ml, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = ["train", "--dataset", str(ml), *TRAIN, "--out", str(blocker / "run")]
    one_line_error(capsys, main(argv), "is a regular file, not a folder")


def test_unwritable_gpt2rec_home_is_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("GPT2REC_HOME", str(blocker / "home"))
    line = one_line_error(capsys, main(["data", "fetch", "ml-100k"]), "GPT2REC_HOME")
    assert str(blocker) in line


def test_name_too_long_is_one_line(ml, tmp_path, capsys):
    argv = ["train", "--dataset", str(ml), *TRAIN, "--out", str(tmp_path / ("x" * 300))]
    one_line_error(capsys, main(argv), "name too long")


def test_disk_full_while_training_leaves_no_run(ml, tmp_path):
    """A file-size limit (RLIMIT_FSIZE; SIGXFSZ ignored so writes fail with EFBIG) stands in for a
    full disk: the first checkpoint cannot be written, the start fails with one line, no run folder."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = tmp_path / "run"
    proc = cli("train", "--dataset", str(ml), *TRAIN, "--out", str(out), preexec_fn=limit, timeout=300)
    assert_one_line(proc, "file-size limit")
    assert leftovers(out) == []


def test_concurrent_starts_into_one_out(ml, tmp_path):
    """Two trainings started together into one --out: one wins, the other gets one line and the
    folder holds the winner's config, model and metrics only."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gpt2rec",
                "train",
                "--dataset",
                str(ml),
                *TRAIN,
                "--epochs",
                "30",
                "--patience",
                "0",
                "--seed",
                str(seed),
                "--out",
                str(out),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for seed in (1, 2)
    ]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "another gpt2rec process is writing run folder" in loser and len(loser.strip().splitlines()) == 1
    winner = 1 + [code for code, _ in results].index(0)
    config = json.loads((out / "config.json").read_text())
    state = json.loads((out / "train_state.json").read_text())
    assert config["train"]["seed"] == winner and state["config"]["seed"] == winner
    assert (out / "model.safetensors").is_file() and (out / "metrics.json").is_file()


def test_broken_pipe_is_quiet(run_dir):
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpt2rec", "recommend", str(run_dir), "--user", "1", "-k", "10"],
        env={**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    proc.stdout.close()  # the reader is gone before the first line, like `| head -0`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141 and err == "", err


def test_interrupt_during_start_up_is_one_line(ml, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpt2rec", "train", "--dataset", str(ml), *TRAIN, "--out", str(out)],
        env={**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.3)  # still importing
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    code = proc.wait(timeout=300)
    if code == 0:
        pytest.skip("training finished before the interrupt arrived")
    # 130, or ended by the signal itself (-2; a shell shows 130 either way), depending on where it lands
    assert code in (130, -signal.SIGINT) and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert leftovers(out) == []


@pytest.mark.parametrize("batch", ["16", "4096"])  # NaN in the first epoch / only after the first one
def test_diverging_learning_rate_is_one_line_and_saves_nothing(ml, tmp_path, capsys, batch):
    out = tmp_path / "run"
    argv = ["train", "--dataset", str(ml), *TRAIN, "--epochs", "5", "--batch-size", batch, "--lr", "1e30"]
    argv += ["--out", str(out)]
    one_line_error(capsys, main(argv), "lower --lr")
    assert leftovers(out) == []


def test_an_empty_out_folder_made_beforehand_gets_a_whole_run(ml, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    assert main(["train", "--dataset", str(ml), *TRAIN, "--out", str(out)]) == 0
    for name in ("config.json", "user_ids.json", "item_ids.json", "split/split.json", "model.safetensors"):
        assert (out / name).is_file(), name
    assert leftovers(out) == ["run"]


def test_a_staged_start_trains_exactly_like_one_uninterrupted_fit(ml, tmp_path):
    """The new-run path (epoch 1 in `.NAME.partial`, renamed, then resumed) changes nothing."""
    import torch

    from gpt2rec.data.load import load_dataset
    from gpt2rec.data.splits import make_split
    from gpt2rec.models.base import ModelContext
    from gpt2rec.models.registry import get_spec
    from gpt2rec.pipeline import RunConfig, train_run
    from gpt2rec.train.checkpoint import load_model
    from gpt2rec.train.loop import fit

    train = {"epochs": 4, "batch_size": 16, "lr": 0.05, "seed": 1, "patience": 0}
    config = RunConfig.create(model="bpr", model_config={"dim": 8}, data={"dataset": str(ml)}, train=train)
    train_run(config, tmp_path / "run", verbose=False)
    dataset = load_dataset(config.data)
    split = make_split(dataset, config.split)
    torch.manual_seed(config.train.seed)
    ctx = ModelContext(dataset.n_users, dataset.n_items, dataset, split.train, torch.device("cpu"))
    reference = get_spec("bpr").build(config.model_config_obj(), ctx)
    fit(reference, ctx, split, config.train, None, progress=False)
    saved = load_model(tmp_path / "run", dataset).state_dict()
    for name, value in reference.state_dict().items():
        assert torch.equal(saved[name], value), name


def test_nan_weights_in_a_run_folder_are_one_line(run_dir, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(run_dir / "model.safetensors"))
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}
    copy = damaged_copy(run_dir, tmp_path, "metrics.json", (run_dir / "metrics.json").read_bytes())
    save_file(state, str(copy / "model.safetensors"))
    one_line_error(capsys, main(["recommend", str(copy), "--user", "1"]), "model.safetensors holds NaN/inf weights")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["trian"], "invalid choice: 'trian'"),
        (["train", "--epochs", "x", "--out", "y"], "invalid int value: 'x'; see: gpt2rec train --help"),
        (["recommend", "run", "--user"], "expected one argument"),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, needle):
    one_line_error(capsys, main(argv), needle)
