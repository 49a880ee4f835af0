"""Writing a run folder safely, and reading its files defensively.

- `lock(out)`: one writer per run folder. The lock file sits beside the folder (`.NAME.lock`),
  because a new run's folder does not exist yet; a second process gets a UserError at once.
- `staging(out)`: a NEW run is written into the sibling `.NAME.partial` and renamed to `out` by
  `publish` once it can be resumed (its first checkpoint exists), so a failed, killed or refused
  start never leaves a half-written `out`. An existing `out` (a resume) is written in place.
- `read_json_file` / `read_safetensors`: a truncated, foreign or non-safetensors file becomes
  "run folder X is damaged: NAME is ...; retrain or restore it" instead of a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DataError, UserError


def lock_path(out: Path) -> Path:
    out = Path(out).resolve()  # "--out ." names the folder, not "" (the lock would land inside it)
    return out.parent / f".{out.name}.lock"


def staging_path(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


@contextmanager
def lock(out: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of run folder `out` for the block (refuse at once if it is held)."""
    from filelock import FileLock, Timeout

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is a file, not a run folder; choose another --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # some part of the path is a regular file
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(out.parent)) from None
    path = lock_path(out)
    try:
        with FileLock(str(path), timeout=0):
            yield
    except Timeout:
        raise UserError(
            f"another gpt2rec process is writing run folder {out} (lock {path}); "
            "wait for it to finish, or train into another --out"
        ) from None


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """The folder to write a run into: `out` itself when it exists, else a fresh staging folder that
    is removed again if the block fails before `publish` moved it into place. Call under `lock`."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()  # an empty folder made beforehand: stage the run like a new one
    if out.is_dir():
        yield out
        return
    tmp = staging_path(out)
    if tmp.exists():  # left by a killed start: nothing in it was ever a run
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def publish(work: Path, out: Path) -> Path:
    """Move a staged run into place (atomic rename); `out` is written in place from then on."""
    if work != out:
        os.rename(work, out)
    return out


# ---- reading ---------------------------------------------------------------------------------


def damaged(path: Path, what: str) -> DataError:
    return DataError(f"run folder {path.parent} is damaged: {path.name} {what}; retrain or restore it")


def read_json_file(path: str | Path, kind: type | tuple = (dict, list)):
    """JSON of the expected top-level `kind`, or a DataError saying the run folder is damaged."""
    path = Path(path)
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise damaged(path, "is not valid JSON (truncated or overwritten?)") from None
    if not isinstance(value, kind):
        raise damaged(path, f"holds a JSON {type(value).__name__}, not the expected structure")
    return value


def read_safetensors(path: str | Path, device: str = "cpu") -> tuple[dict, dict]:
    """(tensors, metadata) of a safetensors file; a damaged or foreign file is a DataError."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except OSError:
        raise
    except Exception as exc:  # safetensors raises its own SafetensorError (and others) for bad bytes
        raise damaged(path, f"is not a safetensors file ({_first_line(exc)})") from None
    return tensors, meta


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__
