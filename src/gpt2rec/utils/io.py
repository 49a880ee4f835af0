"""Atomic writes: a temp file in the same folder, then os.replace, so readers never see half a file.
`file_lock` serialises writers of one shared file across processes."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; finished files get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:  # a failed write() names no file: name the one we were writing
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    except Exception as exc:  # safetensors reports a failed write as its own error type
        code = re.search(r"(?:Os \{ code: |os error )(\d+)", str(exc))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive inter-process lock on the file `path` (created if missing), held for the block."""
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path)):
        yield


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def flat_tensors(prefix: str, tensors: dict) -> dict:
    """Detached contiguous CPU tensors named `prefix.name` (plain `name` when prefix is empty).

    Tensors sharing storage (tied weights) are cloned: safetensors refuses shared memory.
    """
    out, seen = {}, set()
    for name, t in tensors.items():
        t = t.detach().to("cpu")
        ptr = (t.untyped_storage().data_ptr(), t.storage_offset()) if t.numel() else None
        if ptr is not None and ptr in seen:
            t = t.clone()
        seen.add(ptr)
        out[f"{prefix}.{name}" if prefix else name] = t.contiguous()
    return out


def save_tensors_meta(path: str | Path, tensors: dict, metadata: dict | None = None) -> None:
    """Atomically save safetensors with JSON-encoded metadata values."""
    from safetensors.torch import save_file

    meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def save_tensors(path: str | os.PathLike, tensors: dict) -> None:
    """Save a dict of tensors as safetensors, atomically (contiguous CPU copies)."""
    save_tensors_meta(path, flat_tensors("", tensors))
