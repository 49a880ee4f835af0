"""Progress bars: tqdm, unless a block asked for none (`gpt2rec train --quiet`).

The library's long loops (encoding, tuning, training) show a bar when their caller asks; inside
`silenced()` none shows, also those a caller deep inside asks for (a cold text cache's encoding
under a quiet training run)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

_SILENT = False


@contextmanager
def silenced(on: bool = True) -> Iterator[None]:
    """No bar inside the block when `on` (the previous setting afterwards)."""
    global _SILENT
    before, _SILENT = _SILENT, _SILENT or on
    try:
        yield
    finally:
        _SILENT = before


def progress_bar(iterable=None, *, show: bool | None = True, **kwargs):
    """tqdm over `iterable`; `show=None`: only on a terminal (tqdm's disable=None)."""
    disable = True if _SILENT or show is False else (None if show is None else False)
    return tqdm(iterable, disable=disable, **kwargs)
