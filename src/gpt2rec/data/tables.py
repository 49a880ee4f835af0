"""Reading delimited files into raw frames, with one-line errors that name the file, line and fix.

Shared by the MovieLens parsers and the generic loader. Every frame returned by `read_delimited`
is indexed by the 1-based line number of its row in the file, so later checks
(`int_column`, `check_unique`, ...) can name the offending line.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .files import check_file, check_text_file, decode_error, locate_decode_error, refuse_json

log = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")


def at(path, line) -> str:
    """Where in a file a message points: "line N" of a text file, "row N" of a Parquet file (no lines)."""
    return f"row {line}" if Path(path).suffix.lower() in PARQUET_SUFFIXES else f"line {line}"


_SEP_NAMES = {"\t": "tab", ",": "comma", "|": "pipe", ";": "semicolon", "::": "'::'", " ": "space"}
_CANDIDATES = ("::", "\t", ",", "|", ";")
_PLACEHOLDER = "\x1f"  # a multi-character separator is rewritten to this before parsing


def sep_name(sep: str) -> str:
    return _SEP_NAMES.get(sep, repr(sep))


def read_delimited(
    path: str | Path,
    sep: str,
    *,
    names: list[str] | None = None,
    header: bool = False,
    encoding: str = "utf-8",
    quoting: bool = True,
    as_text: bool | Sequence[str] = False,
    fix: str,
) -> pd.DataFrame:
    """Parse a delimited text file; the index is each row's line number.

    names: the expected columns of a header-less file (the column count is checked);
    header: the first line names the columns (checked later with `require_columns`);
    quoting: honour CSV double quotes (off for MovieLens `::`/`|` files, whose titles hold quotes);
    as_text: read every value as a string (metadata), or those of the named columns (IDs, whose
    leading zeros a number would lose), else let pandas infer numbers.
    """
    path = check_file(path, fix)
    check_text_file(path, encoding, fix)
    refuse_json(path)
    source: object = path
    psep, restore = sep, False
    if len(sep) > 1:  # pandas' C parser wants one character: rewrite, e.g. "::" -> "\x1f"
        raw = path.read_bytes()
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise decode_error(path, encoding, line, exc.start, raw[exc.start : exc.end], fix) from None
        except UnicodeError as exc:
            raise DataError(f"{path}: cannot be read as {encoding} ({exc}); check --encoding; {fix}") from None
        source, psep = io.StringIO(text.replace(sep, _PLACEHOLDER)), _PLACEHOLDER
        restore = quoting and '"' in text  # a quoted field may hold the separator: put it back after parsing
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
        kwargs["dtype"] = str if as_text is True else {c: str for c in as_text}
    if source is path:
        kwargs["encoding"] = encoding
    try:
        df = pd.read_csv(source, **kwargs)
    except UnicodeDecodeError:
        raise locate_decode_error(path, encoding, fix) from None
    except UnicodeError as exc:  # e.g. "UTF-16 stream does not start with BOM"
        raise DataError(f"{path}: cannot be read as {encoding} ({exc}); check --encoding; {fix}") from None
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
    if restore:
        df = _restore_separator(df, sep)
    if header:
        _refuse_repeated_names(path, df, sep, fix)
    df.index = np.arange(len(df)) + (2 if header else 1)
    df = df.dropna(how="all")
    if df.empty:
        raise DataError(f"{path}: file has no data rows; {fix}")
    if names is not None:
        if df.shape[1] != len(names):
            raise column_count_error(path, sep, df.shape[1], names, fix)
        df.columns = names
    return df


def _restore_separator(df: pd.DataFrame, sep: str) -> pd.DataFrame:
    """`df` with the multi-character separator put back where a quoted field held it (parsing saw
    `_PLACEHOLDER` there: "Star::Wars" would read as "Star\x1fWars")."""
    back = lambda v: v.replace(_PLACEHOLDER, sep) if isinstance(v, str) else v  # noqa: E731
    df = df.rename(columns=back)
    for col in df.columns:
        if pd.api.types.is_object_dtype(df[col]) or pd.api.types.is_string_dtype(df[col]):
            df[col] = df[col].map(back)
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
    hint = header_sep_hint(found, sep)
    raise DataError(f"{path}: missing column(s) {missing}; found {found}{hint}; {fix}")


def header_sep_hint(columns: list[str], sep: str) -> str:
    """ "; the header looks X-separated, not Y-separated" when a header read as one column holds
    another common separator; "" otherwise."""
    if len(columns) == 1:
        for cand in _CANDIDATES:
            if cand != sep and cand in columns[0]:
                return f"; the header looks {sep_name(cand)}-separated, not {sep_name(sep)}-separated"
    return ""


# integers a float64 holds exactly: a larger float-valued ID may already have lost digits
_EXACT_FLOAT = 2**53
_INT64 = np.iinfo(np.int64)


def id_column(df: pd.DataFrame, col: str, path: Path, fix: str, what: str, text: bool | None = None) -> np.ndarray:
    """An ID column: int64 when every value is an integer (`int_column`), else text IDs ('u1',
    'B000123'), the whole column as stripped strings. `text` forces a kind (a users/items table
    follows its interactions: integer 7 and text "7" are different IDs). A missing ID names its line."""
    s = df[col]
    _refuse_non_ids(s, path, fix, what)
    numeric = pd.api.types.is_numeric_dtype(s.dtype)
    written = None if numeric else s.astype(str).str.strip()
    if text is None and not numeric:  # the common case first: plain integers, in one cast
        plain = _plain_integers(s)
        if plain is not None and not _leading_zero(written).any():
            return plain
    if text is None:
        text = not numeric and bool((_not_numbers(s, written) | _leading_zero(written) | _beyond_int64(written)).any())
    if not text:
        return int_column(df, col, path, fix, what)
    # a numeric column read as text IDs (its interactions' are): its integers, written out
    values = pd.Series(int_column(df, col, path, fix, what), index=df.index).astype(str) if numeric else written
    missing = s.isna() | (values == "")
    if missing.any():
        line = missing.idxmax()
        raise DataError(f"{path}: {at(path, line)}: {what} is missing; fill it in or drop that row; {fix}")
    return values.to_numpy(dtype=object)


_NOT_IDS = (list, tuple, dict, set, np.ndarray, bool, np.bool_, pd.Timestamp, pd.Timedelta)


def _refuse_non_ids(s: pd.Series, path: Path, fix: str, what: str) -> None:
    """Parquet keeps types CSV cannot: true/false, date-times and lists are not IDs (they became
    1 / 0, nanosecond counts and '[0]'), so such a column is most likely the wrong one."""
    # one type per column (Parquet's lists come as arrays, all alike); a missing first ID is named later
    value = s.iloc[0] if len(s) else None
    if not isinstance(value, _NOT_IDS):
        return
    kind = ("true/false values" if isinstance(value, (bool, np.bool_)) else
            "date-times" if isinstance(value, (pd.Timestamp, pd.Timedelta)) else "lists")  # fmt: skip
    shown = value.tolist() if isinstance(value, np.ndarray) else value
    raise DataError(f"{path}: {what} holds {kind} (e.g. {shown}), not IDs; IDs are whole numbers or text: "
                    f"point at the ID column, or write the IDs as text; {fix}")  # fmt: skip


def _plain_integers(s: pd.Series) -> np.ndarray | None:
    """Strings that all read as integers, as int64 in one cast (Arrow's for Arrow-backed strings:
    10x pandas' on 1M rows); None when any does not (text, missing, 1.5, 20 digits, spaces)."""
    try:
        if isinstance(s.array, pd.arrays.ArrowStringArray):
            values = s.array.astype("int64[pyarrow]")
            return None if values.isna().any() else values.to_numpy(np.int64)
        return s.astype("int64").to_numpy(np.int64)
    except (ValueError, OverflowError, TypeError):  # pyarrow.ArrowInvalid is a ValueError
        return None


def _leading_zero(written: pd.Series) -> pd.Series:
    """Values written with a leading zero ('007'): codes (SKUs, zip codes), not numbers, so '007'
    and '7' stay two IDs."""
    return written.str.match(r"^[-+]?0\d")


def _beyond_int64(written: pd.Series) -> pd.Series:
    """Whole numbers written with more digits than int64 holds (64-bit unsigned IDs, 20-digit codes):
    kept as text IDs rather than refused (or, worse, wrapped into another ID)."""
    out = written.str.fullmatch(r"-?\d{19,}").fillna(False).astype(bool)
    if out.any():  # the few long ones, by Python ints
        out[out] = written[out].map(lambda v: not _INT64.min <= int(v) <= _INT64.max).astype(bool)
    return out


def _not_numbers(s: pd.Series, written: pd.Series) -> pd.Series:
    """Values given (not missing, not blank) that do not read as a number."""
    return pd.to_numeric(s, errors="coerce").isna() & s.notna() & (written != "")


def int_column(df: pd.DataFrame, col: str, path: Path, fix: str, what: str | None = None) -> np.ndarray:
    """Column `col` as int64; a missing, non-integer or out-of-range value names its line and value.

    Values beyond the int64 range (a 20-digit ID, `1e300`) or float values too large to be exact
    are errors, never wrapped or rounded into another (possibly existing) ID.
    """
    s = df[col]
    if pd.api.types.is_integer_dtype(s.dtype) and not s.isna().any():
        if s.dtype == np.uint64 and len(s) and int(s.max()) > _INT64.max:
            return _raise_range(df, s, s > _INT64.max, col, path, fix, what)
        return s.to_numpy(np.int64)
    num = pd.to_numeric(s, errors="coerce")
    if num.dtype == object:  # huge integers (beyond uint64) stay Python ints
        big = num.map(lambda v: isinstance(v, int) and not _INT64.min <= v <= _INT64.max).astype(bool)
        if big.any():
            return _raise_range(df, s, big, col, path, fix, what)
        num = pd.to_numeric(num, errors="coerce")
    if num.dtype == np.uint64:
        if int(num.max()) > _INT64.max:
            return _raise_range(df, s, num > _INT64.max, col, path, fix, what)
        return num.to_numpy().astype(np.int64)
    values = num.to_numpy(np.float64, na_value=np.nan) if num.dtype.kind == "f" else num.to_numpy()
    if values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = np.isnan(values) | (np.mod(values, 1) != 0)
            bad |= np.isinf(values)
        if bad.any():
            raise _value_error(df, s, pd.Series(bad, index=df.index), col, path, "an integer", fix, what)
        big = np.abs(values) >= _EXACT_FLOAT
        if big.any():
            return _raise_range(df, s, pd.Series(big, index=df.index), col, path, fix, what)
        return values.astype(np.int64)
    bad = num.isna()
    if bad.any():
        raise _value_error(df, s, bad, col, path, "an integer", fix, what)
    return num.to_numpy().astype(np.int64)


def _raise_range(df, s, big, col, path, fix, what):
    line = big.idxmax() if hasattr(big, "idxmax") else df.index[int(np.argmax(big))]
    label = what or col
    hint = " (map longer IDs to smaller numbers)" if "ID" in label else ""
    raise DataError(
        f"{path}: {at(path, line)}: {label} {_shown(s.loc[line])} is beyond the 64-bit integer range (or too large to be exact); "
        f"use integers between {_INT64.min} and {_INT64.max}{hint}; {fix}"
    )


def float_column(df: pd.DataFrame, col: str, path: Path, fix: str, what: str | None = None) -> np.ndarray:
    """Column `col` as float64; a missing, non-numeric, NaN or infinite value (or one beyond the
    float32 range the model keeps ratings in) names its line and value."""
    s = df[col]
    num = pd.to_numeric(s, errors="coerce")
    bad = num.isna()
    if bad.any():
        raise _value_error(df, s, bad, col, path, "a number", fix, what)
    values = num.to_numpy().astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~np.isfinite(values.astype(np.float32))
    if bad.any():
        raise _value_error(df, s, pd.Series(bad, index=df.index), col, path, "a finite number", fix, what)
    return values


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
    raise DataError(f"{path}: {at(path, line)} repeats {at(path, first)} ({desc}); remove the duplicate; {fix}")


def keep_latest(df: pd.DataFrame, path: Path, by_time: bool = True) -> pd.DataFrame:
    """One row per (user_id, item_id): the latest by timestamp (ties and `by_time=False`: the last in
    the file), with one warning counting the dropped repeats. A repeated pair would otherwise land in
    both train and test, where full ranking masks it as seen and it can never be hit."""
    order = np.argsort(df["timestamp"].to_numpy(), kind="stable") if by_time else np.arange(len(df))
    dup = df.iloc[order].duplicated(subset=["user_id", "item_id"], keep="last").to_numpy()
    if not dup.any():
        return df
    keep = np.ones(len(df), dtype=bool)
    keep[order[dup]] = False
    first = int(order[dup][0])
    which = "the latest by timestamp" if by_time else "the last in the file"
    log.warning(
        "%s: dropped %d repeated (user, item) rows (e.g. user_id %s, item_id %s), keeping %s of each pair; "
        "deduplicate the file to silence this",
        path,
        int(dup.sum()),
        df["user_id"].iloc[first],
        df["item_id"].iloc[first],
        which,
    )
    return df[keep]


def _value_error(df, s, bad, col, path, kind, fix, what) -> DataError:
    line = bad.idxmax()
    value = s.loc[line]
    label = what or col
    if pd.isna(value):
        return DataError(f"{path}: {at(path, line)} has no {label} value (an empty cell, or too few fields); fix "
                         f"it; {fix}")  # fmt: skip
    return DataError(f"{path}: {at(path, line)}: {label} {_shown(value)} is not {kind}; fix it; {fix}")


def _shown(value) -> str:
    return repr(value) if isinstance(value, str) else repr(value.item() if isinstance(value, np.generic) else value)


def _refuse_repeated_names(path: Path, df: pd.DataFrame, sep: str, fix: str) -> None:
    """pandas renames a header's second 'user_id' to 'user_id.1', and the first one was used alone."""
    names = [str(c) for c in df.columns]
    line = _first_line(path).removeprefix("\xef\xbb\xbf")  # a UTF-8 byte-order mark, read as latin-1
    written = [w.strip().strip('"').strip() for w in line.split(sep)]
    for name in names:
        base, dot, number = name.rpartition(".")
        if dot and number.isdigit() and base in names and written.count(base) > 1:
            raise DataError(f"{path}: the header names column '{base}' more than once; rename or remove one; {fix}")


def _first_line(path: Path) -> str:
    with open(path, "rb") as fh:
        return fh.readline(4096).decode("latin-1").rstrip("\r\n")
