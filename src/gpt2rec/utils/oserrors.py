"""The one place that turns an `OSError` into one line naming the path and the fix.

The CLI calls `describe(exc)` for any `OSError` that reaches it (a library call that cannot read
or write a file raises the plain `OSError`; the line is written here, not at every `open`).
"""

from __future__ import annotations

import errno

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


def describe(exc: OSError) -> str:
    """One line: 'PATH: what went wrong; fix' (no traceback, no errno number)."""
    code = exc.errno
    path = exc.filename if exc.filename is not None else None
    what, fix = _FIXES.get(code, (exc.strerror or str(exc) or type(exc).__name__, "check the path and try again"))
    where = f"{path}" if path is not None else "a file gpt2rec was writing or reading"
    if exc.filename2 is not None:
        where = f"{path} -> {exc.filename2}"
    return f"{where}: {what}; {fix}"
