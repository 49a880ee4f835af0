"""The one place that turns an `OSError` into one line naming the path and the fix.

The CLI calls `describe(exc)` for any `OSError` that reaches it (a library call that cannot read
or write a file raises the plain `OSError`; the line is written here, not at every `open`).
"""

from __future__ import annotations

import errno
from pathlib import Path

# errno -> (what went wrong, how to fix it); {path} is the file or folder named by the error
_FIXES = {
    errno.EACCES: (
        "permission denied",
        "choose a path you can write (e.g. under your home folder) or fix its permissions",
    ),
    errno.EPERM: ("operation not permitted", "choose a path you can write or fix its permissions"),
    errno.EROFS: ("read-only file system", "choose a folder on a writable disk"),
    errno.ENOTDIR: ("a part of this path is a regular file, not a folder", "choose another path"),
    errno.EISDIR: ("is a folder, not a file", "give the path of a file"),
    errno.ENOSPC: ("no space left on the device", "free some disk space or choose a folder on another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose a folder on another disk"),
    errno.EFBIG: ("file too large for this system's file-size limit", "raise the limit (ulimit -f) or free space"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.EEXIST: ("already exists", "choose another path or remove it"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or close other programs"),
    errno.ENOMEM: ("out of memory", "use a smaller model, batch or dataset"),
}


def describe(exc: OSError, home: Path | None = None) -> str:
    """One line: 'PATH: what went wrong; fix' (no traceback, no errno number). `home`: the gpt2rec
    cache folder; a path inside it gets the hint to point GPT2REC_HOME elsewhere."""
    what, fix = _FIXES.get(exc.errno, (exc.strerror or str(exc) or type(exc).__name__, "check the path and try again"))
    path = exc.filename
    where = str(path) if path is not None else "a file gpt2rec was writing or reading"
    if exc.filename2 is not None:
        where = f"{path} -> {exc.filename2}"
    if home is not None and path is not None and _inside(Path(str(path)), home):
        fix = f"{fix}, or set GPT2REC_HOME to a writable folder (the cache is {home})"
    return f"{where}: {what}; {fix}"


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError, ValueError):
        return str(path).startswith(str(folder))
