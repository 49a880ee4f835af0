"""IDs of items added while serving: a client's `item_id` read in the catalogue's own type and
checked against the IDs in use, or the next free one."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..errors import UserError

MAX_CLIENT_ID = 2**63 - 2  # so the next free ID (max + 1) still fits the int64 the pipeline stores
_WHOLE = re.compile(r"[+-]?\d+")
_AUTO = re.compile(r"new-(\d+)")  # the text IDs `fresh_item_id` gives


class Conflict(UserError):
    """A write that contradicts what the run holds (e.g. an item ID already in use)."""


def client_item_id(raw, catalogue: list, in_use: Callable[[object], bool]):
    """`raw` as a new item's ID of this catalogue: text stays text where the catalogue's IDs are text
    (5 is "5"), and whole-number text is that integer where they are integers ("500" is 500, as
    every lookup reads it); an ID in use is a `Conflict`."""
    integers = bool(catalogue) and isinstance(catalogue[0], int)
    if integers and isinstance(raw, str) and _WHOLE.fullmatch(raw.strip()):
        raw = int(raw)
    if in_use(raw):
        raise Conflict(f"item_id {raw!r} is already in use; leave item_id out to get a fresh one")
    if catalogue and isinstance(catalogue[0], str):
        return str(raw)
    if integers and not isinstance(raw, int):
        raise UserError(f"item_id must be an integer like the catalogue's IDs (e.g. {catalogue[0]}); got {raw!r}")
    if isinstance(raw, int) and not -(2**63) <= raw <= MAX_CLIENT_ID:
        raise UserError(f"item_id must be at most {MAX_CLIENT_ID}; leave item_id out to get a fresh one")
    return raw


def fresh_item_id(catalogue: list, added: list, in_use: Callable[[object], bool]):
    """The next free ID: the integer after the catalogue's, past those added (one client's huge
    item_id, up to 2^63-2, must not use up the IDs every later add is given); "new-N" for text IDs."""
    ids = catalogue + added
    if ids and all(isinstance(x, int) for x in ids):
        taken, candidate = set(added), max(catalogue, default=0) + 1
        while candidate in taken:
            candidate += 1
        if candidate > 2**63 - 1:  # every ID above the catalogue's is taken (an old database)
            raise UserError(f"no free integer item_id above {max(ids)}; pass an unused item_id")
        return candidate
    # after the last one given, so a client's own IDs in between take no number
    n = 1 + max((int(m.group(1)) for x in added if (m := _AUTO.fullmatch(str(x)))), default=0)
    while in_use(f"new-{n}"):  # a catalogue may hold "new-1"
        n += 1
    return f"new-{n}"
