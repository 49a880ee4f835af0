"""Whether a path is a readable text table: it exists and is a non-empty file, not compressed, a
spreadsheet, Parquet, UTF-16 or JSON read as delimited text, and it decodes; each problem one
DataError naming the file and the fix (the readers of `tables` call these first)."""

from __future__ import annotations

import codecs
from pathlib import Path

from ..errors import DataError


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


# leading bytes of files that are not delimited text -> what the file is and how to fix it
_MAGIC = (
    (b"\x1f\x8b", "is gzip-compressed", "decompress it first (gunzip FILE) and pass the text file"),
    (b"BZh", "is bzip2-compressed", "decompress it first (bunzip2 FILE) and pass the text file"),
    (b"\xfd7zXZ\x00", "is xz-compressed", "decompress it first (unxz FILE) and pass the text file"),
    (b"\x28\xb5\x2f\xfd", "is zstd-compressed", "decompress it first (unzstd FILE) and pass the text file"),
    (
        b"PK\x03\x04",
        "is a zip archive (an Excel .xlsx workbook is one)",
        "extract it, or save the sheet as CSV (UTF-8)",
    ),
    (b"\xd0\xcf\x11\xe0", "is an Excel (.xls) workbook", "save the sheet as CSV (UTF-8) and pass that file"),
    (b"PAR1", "is a Parquet file", "give it a .parquet suffix so it is read as Parquet"),
)
_UTF16 = ("utf-16", "utf-16-le", "utf-16-be", "utf16", "utf_16", "utf_16_le", "utf_16_be")


def check_text_file(path: Path, encoding: str, fix: str, encoding_flag: bool = True) -> None:
    """Refuse compressed, spreadsheet, Parquet and UTF-16 files read as text, naming the real fix
    (a wrong guess like "try latin-1" for a gzip file helps nobody). `encoding_flag`: whether the
    command has --encoding to suggest (recommend --items reads UTF-8 only)."""
    resave = "re-save it as UTF-8" + (", or pass --encoding utf-16" if encoding_flag else "")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    for magic, what, how in _MAGIC:
        if head.startswith(magic):
            if magic == b"PK\x03\x04" and path.suffix.lower() in (".xlsx", ".xlsm"):
                what, how = "is an Excel (.xlsx) workbook", "save the sheet as CSV (UTF-8) and pass that file"
            raise DataError(f"{path}: file {what}, not delimited text; {how}")
    utf16 = encoding.lower().replace("_", "-") in _UTF16
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) and not utf16:
        raise DataError(f"{path}: file is UTF-16 encoded (it starts with a UTF-16 byte-order mark); {resave}")
    if b"\x00" in head and not utf16:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        kind = "UTF-16 text" if max(even, odd) > len(head) // 4 else "binary data"
        raise DataError(
            f"{path}: file holds NUL bytes ({kind}), not {encoding} text; "
            + (resave if kind == "UTF-16 text" else f"give a CSV/TSV file; {fix}")
        )


def refuse_json(path: Path) -> None:
    """A JSON file read as CSV was "no data rows" (a single line) or columns such as '{"user_id":"u1"'."""
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if path.suffix.lower() in (".json", ".jsonl", ".ndjson") or head.startswith((b"{", b"[{", b"[ {", b"[\n")):
        raise DataError(
            f"{path}: file is JSON; data tables are read from CSV/TSV or Parquet: convert it, e.g. "
            f"pandas.read_json(path{', lines=True' if path.suffix.lower() != '.json' else ''}).to_csv('table.csv', index=False)"
        )


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
                return decode_error(path, encoding, line, start, data[exc.start : exc.end], fix)
            offset += len(chunk)
            lines += chunk.count(b"\n")
    return DataError(f"{path}: cannot be decoded as {encoding}; {fix}")


def decode_error(path: Path, encoding: str, line: int, offset: int, bad: bytes, fix: str) -> DataError:
    other = "latin-1" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else "utf-8"
    return DataError(
        f"{path}: byte offset {offset} (line {line}) holds {bad!r}, which is not valid {encoding}; "
        f"the file is in another encoding (try {other}); {fix}"
    )
