"""More flags and config files that must fail as one line before any work (QA of the stop that added
--tune for gradient models, text IDs and --nproc checks); see test_failures.py for the pattern."""

from __future__ import annotations

import json

import pytest

from gpt2rec.cli import main
from test_failures import TRAIN, cli, leftovers, one_line_error


@pytest.mark.parametrize(
    "flags, needle",
    [
        (
            [*TRAIN, "--cold-fraction", "0.3"],
            "--cold-fraction sets the share held out by a cold-item / cold-user / mixed",
        ),
        (["--model", "ease", "--tune", "--tune-epochs", "3"], "ease is fitted in closed form"),
        ([*TRAIN, "--ratios", "0.8", "0.1", "0.1", "0.0"], "unrecognized arguments: 0.0; see: gpt2rec train --help"),
        ([*TRAIN, "--tune", "--nproc", "2"], "--tune runs its short trainings in one process"),
    ],
)
def test_flags_that_would_be_ignored_or_fail_late_are_one_line(ml, tmp_path, capsys, monkeypatch, flags, needle):  # noqa: F811
    monkeypatch.setattr("gpt2rec.distributed.launch", lambda *a, **k: pytest.fail("torchrun started"))
    out = tmp_path / "run"
    one_line_error(capsys, main(["train", "--dataset", str(ml), "--out", str(out), *flags]), needle)
    assert not out.exists()


@pytest.mark.parametrize(
    "section, value, needle",
    [
        ("model_config", [1], '"model_config" must be a JSON object'),
        ("data", "/path", '"data" must be a JSON object'),
        ("train", "x", '"train" must be a JSON object'),
        ("split", [1], '"split" must be a JSON object'),
        ("split_dir", 5, '"split_dir" must be a string, not int'),
        ("model", 5, '"model" must be a string, not int'),
    ],
)
def test_config_sections_of_the_wrong_kind_are_one_line(tmp_path, capsys, section, value, needle):
    """Were a TypeError / ValueError traceback from dict(...) on the section."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": "bpr", section: value}))
    one_line_error(capsys, main(["train", "--config", str(config), "--out", str(tmp_path / "run")]), needle)


def test_a_worker_error_under_nproc_is_its_line_without_torchrun_s_traceback(tmp_path):
    """torchrun's ChildFailedError traceback (exit 1) after the workers' lines: now exit 2, and rank
    0's line alone."""
    proc = cli("train", "--model", "bpr", "--dataset", str(tmp_path / "none.csv"), "--epochs", "1", "--nproc", "2",
               "--out", str(tmp_path / "run"), timeout=300)  # fmt: skip
    errors = [line for line in proc.stderr.splitlines() if line.startswith("gpt2rec: error: ")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and "none.csv: file not found" in errors[0]
    assert leftovers(tmp_path / "run") == []


def test_a_mixed_split_says_how_it_ranks(ml, tmp_path, capsys):  # noqa: F811
    """It said 'cold-item split: each part is ranked among its own new items' (it ranks both)."""
    argv = ["train", "--dataset", str(ml), "--model", "ease", "--split", "mixed", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "mixed split: each part ranks the known items and its own new items together" in err
    assert "cold-item split" not in err and "mixed split: ease scores an item from its interactions alone" in err


def test_an_interrupt_while_libraries_load_is_held_until_they_are_loaded():
    """Ctrl-C inside a C++ extension's import could abort the process ("terminate called after
    throwing ... KeyboardInterrupt"); held back, it arrives after the block as a KeyboardInterrupt."""
    import signal
    import threading
    import time

    from gpt2rec.cli import interrupts_held

    if not hasattr(signal, "pthread_kill"):
        pytest.skip("no POSIX signal masks on this platform")
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(0.05)  # an unheld interrupt would be raised here
            reached_the_end = True
    assert reached_the_end
