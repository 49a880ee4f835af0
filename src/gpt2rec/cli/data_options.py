"""The command-line options that describe a user's own data files (`DataConfig`), shared by every
command that reads a dataset: data info / split, train, encode, bench."""

from __future__ import annotations

import argparse

# DataConfig fields (and flag destinations) that describe the user's own files
FILE_OPTIONS = (
    "users", "items", "user_col", "item_col", "rating_col", "timestamp_col", "sep", "users_sep", "items_sep",
    "genres_sep", "encoding",
)  # fmt: skip
# the separator options, typed on a shell (`\\t` for tab): unescaped before they reach DataConfig
SEP_OPTIONS = ("sep", "users_sep", "items_sep", "genres_sep")


def add_data_options(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    """Options of `DataConfig` for the user's own files (and the implicit threshold). With
    defaults=False every option defaults to None (unset), so a config file can fill it instead."""
    from ..data.load import DataConfig

    d = vars(DataConfig()) if defaults else {}
    p.add_argument("--implicit-threshold", type=float, default=None, help="keep ratings >= this")
    p.add_argument("--users", default=None, help="your users table (CSV/TSV/Parquet)")
    p.add_argument("--items", default=None, help="your items table (CSV/TSV/Parquet)")
    shown = "" if defaults else " (default: {})"  # with defaults the help formatter shows them
    p.add_argument("--user-col", default=d.get("user_col"), help="user ID column" + shown.format("user_id"))
    p.add_argument("--item-col", default=d.get("item_col"), help="item ID column" + shown.format("item_id"))
    p.add_argument("--rating-col", default=None, help="rating column (default: 'rating' if present)")
    p.add_argument("--timestamp-col", default=None, help="timestamp column (default: 'timestamp' if present)")
    p.add_argument("--sep", default=None, help="field separator of every file (default: from each one's suffix; "
                   ".csv ',' .tsv tab .dat '::')")  # fmt: skip
    p.add_argument("--users-sep", default=None, help="the users table's separator (default: --sep, else its suffix)")
    p.add_argument("--items-sep", default=None, help="the items table's separator (default: --sep, else its suffix)")
    p.add_argument("--genres-sep", default=d.get("genres_sep"), help="separator inside the genres column ('\\t': tab)")
    p.add_argument("--encoding", default=d.get("encoding"), help="text encoding of your files")


_ESCAPES = {"\\t": "\t", "\\\\": "\\"}


def unescape_sep(sep: str | None, flag: str = "--sep") -> str | None:
    """A separator as typed on a shell: `\\t` (backslash t) means tab; any other backslash is an error."""
    if sep is None:
        return None
    from ..errors import UserError

    if sep == "":
        raise UserError(f"{flag} is empty; give a separator such as ',' or '\\t' (tab), or leave it out")
    out, i = [], 0
    while i < len(sep):
        pair = sep[i : i + 2]
        if sep[i] == "\\":
            if pair not in _ESCAPES:
                raise UserError(
                    f"{flag} '{_printable(sep)}': unknown escape '{_printable(pair)}'; only \\t (tab) and \\\\ are "
                    f"understood, e.g. {flag} '\\t'"
                )
            out.append(_ESCAPES[pair])
            i += 2
        else:
            out.append(sep[i])
            i += 1
    if "".join(out).lower() in ("none", "null"):  # the config converter reads these words as "not set"
        raise UserError(
            f"{flag} '{_printable(sep)}' reads as 'not set'; leave {flag} out for the default, or give it, e.g. ','"
        )
    return "".join(out)


def _printable(text: str) -> str:
    """`text` with its control characters written as escapes (a raw newline would split the one line)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def given_file_options(args) -> dict:
    """The FILE_OPTIONS set on the command line (unset ones left out), the separators unescaped."""
    given = {name: getattr(args, name) for name in FILE_OPTIONS if getattr(args, name) is not None}
    for name in SEP_OPTIONS:
        if name in given:
            given[name] = unescape_sep(given[name], _flag(name))
    return given


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def data_config(args) -> DataConfig:  # noqa: F821
    from ..data.load import DataConfig
    from ..utils.config import from_dict

    seps = {name: unescape_sep(getattr(args, name), _flag(name)) for name in SEP_OPTIONS}
    return from_dict(DataConfig, dict(
        dataset=args.dataset, implicit_threshold=args.implicit_threshold, users=args.users, items=args.items,
        user_col=args.user_col, item_col=args.item_col, rating_col=args.rating_col,
        timestamp_col=args.timestamp_col, encoding=args.encoding, **seps,
    ))  # fmt: skip
