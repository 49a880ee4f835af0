"""Reading delimited files into raw frames, with one-line errors that name the file, line and fix.

Shared by the MovieLens parsers and the generic loader. Every frame returned by `read_delimited`
is indexed by the 1-based line number of its row in the file, so later checks
(`int_column`, `check_unique`, ...) can name the offending line.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

_SEP_NAMES = {"\t": "tab", ",": "comma", "|": "pipe", ";": "semicolon", "::": "'::'", " ": "space"}
_CANDIDATES = ("::", "\t", ",", "|", ";")
_PLACEHOLDER = "\x1f"  # a multi-character separator is rewritten to this before parsing


def sep_name(sep: str) -> str:
    return _SEP_NAMES.get(sep, repr(sep))


def check_file(path: str | Path, fix: str) -> Path:
    """The path of an existing, non-empty file, or a DataError naming the problem and `fix`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found; {fix}")
    if not path.is_file():
        raise DataError(f"{path}: is a directory, not a file; {fix}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes); {fix}")
    return path


def read_delimited(
    path: str | Path,
    sep: str,
    *,
    names: list[str] | None = None,
    header: bool = False,
    encoding: str = "utf-8",
    quoting: bool = True,
    as_text: bool = False,
    fix: str,
) -> pd.DataFrame:
    """Parse a delimited text file; the index is each row's line number.

    names: the expected columns of a header-less file (the column count is checked);
    header: the first line names the columns (checked later with `require_columns`);
    quoting: honour CSV double quotes (off for MovieLens `::`/`|` files, whose titles hold quotes);
    as_text: read every value as a string (metadata), else let pandas infer numbers.
    """
    path = check_file(path, fix)
    source: object = path
    psep = sep
    if len(sep) > 1:  # pandas' C parser wants one character: rewrite, e.g. "::" -> "\x1f"
        raw = path.read_bytes()
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise _decode_error(path, encoding, line, exc.start, raw[exc.start : exc.end], fix) from None
        source, psep = io.StringIO(text.replace(sep, _PLACEHOLDER)), _PLACEHOLDER
    kwargs = dict(
        sep=psep,
        header=0 if header else None,
        skip_blank_lines=False,
        keep_default_na=False,
        na_values=[""],
        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
        engine="c",
    )
    if as_text:
        kwargs["dtype"] = str
    if source is path:
        kwargs["encoding"] = encoding
    try:
        df = pd.read_csv(source, **kwargs)
    except UnicodeDecodeError:
        raise locate_decode_error(path, encoding, fix) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file has no data (only blank lines); {fix}") from None
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m:
            want, line, saw = m.groups()
            raise DataError(
                f"{path}: line {line} has {saw} fields, expected {want} (separator {sep_name(sep)}); "
                f"fix that line; {fix}"
            ) from None
        raise DataError(f"{path}: cannot parse ({str(exc).strip()}); {fix}") from None
    df.index = np.arange(len(df)) + (2 if header else 1)
    df = df.dropna(how="all")
    if df.empty:
        raise DataError(f"{path}: file has no data rows; {fix}")
    if names is not None:
        if df.shape[1] != len(names):
            raise column_count_error(path, sep, df.shape[1], names, fix)
        df.columns = names
    return df


def column_count_error(path: Path, sep: str, found: int, names: list[str], fix: str) -> DataError:
    """Explain a wrong column count, guessing the real separator from the first line."""
    first = _first_line(path)
    hint = ""
    if found == 1:
        for cand in _CANDIDATES:
            if cand != sep and cand in first:
                hint = f"; the first line looks {sep_name(cand)}-separated: {first[:60]!r}"
                break
    return DataError(
        f"{path}: found {found} column(s) per line with the {sep_name(sep)} separator, expected "
        f"{len(names)} ({' '.join(names)}){hint}; {fix}"
    )


def require_columns(df: pd.DataFrame, path: Path, columns: list[str], sep: str, fix: str) -> None:
    """A header-bearing frame must hold `columns`; explain a wrong separator when it has one column."""
    missing = [c for c in columns if c not in df.columns]
    if not missing:
        return
    found = [str(c) for c in df.columns]
    hint = ""
    if len(found) == 1:
        for cand in _CANDIDATES:
            if cand != sep and cand in found[0]:
                hint = f"; the header looks {sep_name(cand)}-separated, not {sep_name(sep)}-separated"
                break
    raise DataError(f"{path}: missing column(s) {missing}; found {found}{hint}; {fix}")


def int_column(df: pd.DataFrame, col: str, path: Path, fix: str, what: str | None = None) -> np.ndarray:
    """Column `col` as int64; a missing or non-integer value names its line and value."""
    s = df[col]
    if pd.api.types.is_integer_dtype(s.dtype) and not s.isna().any():
        return s.to_numpy(np.int64)
    num = pd.to_numeric(s, errors="coerce")
    bad = num.isna() | (num % 1 != 0)
    if bad.any():
        raise _value_error(df, s, bad, col, path, "an integer", fix, what)
    return num.to_numpy().astype(np.int64)


def float_column(df: pd.DataFrame, col: str, path: Path, fix: str, what: str | None = None) -> np.ndarray:
    s = df[col]
    num = pd.to_numeric(s, errors="coerce")
    bad = num.isna()
    if bad.any():
        raise _value_error(df, s, bad, col, path, "a number", fix, what)
    return num.to_numpy().astype(np.float64)


def check_unique(df: pd.DataFrame, cols: list[str], path: Path, fix: str) -> None:
    """No two rows may share the values of `cols`: name the repeating line and the first one."""
    dup = df.duplicated(subset=cols, keep="first")
    if not dup.any():
        return
    line = dup.idxmax()
    row = df.loc[line, cols]
    same = (df[cols] == row).all(axis=1)
    first = same.idxmax()
    desc = ", ".join(f"{c} {row[c]}" for c in cols)
    raise DataError(f"{path}: line {line} repeats line {first} ({desc}); remove the duplicate line; {fix}")


def locate_decode_error(path: Path, encoding: str, fix: str) -> DataError:
    """Find the first undecodable byte of `path` (streaming) and describe it."""
    dec = codecs.getincrementaldecoder(encoding)()
    offset, lines = 0, 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            pending = dec.getstate()[0]
            try:
                dec.decode(chunk)
            except UnicodeDecodeError as exc:
                data = pending + chunk
                start = offset - len(pending) + exc.start
                line = lines + data[: exc.start].count(b"\n") + 1
                return _decode_error(path, encoding, line, start, data[exc.start : exc.end], fix)
            offset += len(chunk)
            lines += chunk.count(b"\n")
    return DataError(f"{path}: cannot be decoded as {encoding}; {fix}")


def _decode_error(path: Path, encoding: str, line: int, offset: int, bad: bytes, fix: str) -> DataError:
    other = "latin-1" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else "utf-8"
    return DataError(
        f"{path}: byte offset {offset} (line {line}) holds {bad!r}, which is not valid {encoding}; "
        f"the file is in another encoding (try {other}); {fix}"
    )


def _value_error(df, s, bad, col, path, kind, fix, what) -> DataError:
    line = bad.idxmax()
    value = s.loc[line]
    label = what or col
    if pd.isna(value):
        return DataError(f"{path}: line {line} has no {label} value (too few fields?); fix that line; {fix}")
    shown = repr(value) if isinstance(value, str) else f"{getattr(value, 'item', lambda: value)()!r}"
    return DataError(f"{path}: line {line}: {label} {shown} is not {kind}; fix that line; {fix}")


def _first_line(path: Path) -> str:
    with open(path, "rb") as fh:
        return fh.readline(4096).decode("latin-1").rstrip("\r\n")
