"""Property-based tests of the edges (hypothesis): whatever bytes or values a user supplies, a reader
or flag gives a correct result or the project's one-line UserError, never another exception and
never silently different data. Examples are bounded so the suite stays fast."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from conftest import write_ml100k_folder
from gpt2rec.cli import main
from gpt2rec.cli.data_options import unescape_sep
from gpt2rec.coldstart import MAX_AGE, check_profile, read_profile
from gpt2rec.data.dataset import Dataset
from gpt2rec.data.generic import Columns, load_generic
from gpt2rec.data.load import DataConfig
from gpt2rec.data.split_files import read_split, write_split
from gpt2rec.data.splits import SplitConfig, make_split
from gpt2rec.errors import UserError
from gpt2rec.models.text_source import TextInfo
from gpt2rec.utils.config import from_dict
from gpt2rec.utils.device import pick_device

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
INT64 = (-(2**63), 2**63 - 1)
FLOAT32_MAX = float(np.finfo(np.float32).max)


@pytest.fixture(scope="module")
def scratch():
    folder = Path(tempfile.mkdtemp(prefix="gpt2rec-prop-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# ---- interactions, users and items files --------------------------------------------------------


@FAST
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".csv", ".tsv", ".dat", ".parquet"]))
def test_any_bytes_as_interactions_load_or_one_error(scratch, data, suffix):
    path = write(scratch, "inter" + suffix, data)
    try:
        dataset = load_generic(path)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert len(dataset.interactions) >= 1


header_rows = st.lists(
    st.tuples(
        st.one_of(st.integers(-(2**70), 2**70), st.sampled_from(["1e300", "nan", "inf", "12345678901234567890", "x"])),
        st.integers(0, 50),
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["inf", "-inf", "NaN", "1e39"])),
    ),
    min_size=1,
    max_size=12,
)


@FAST
@given(rows=header_rows)
@example(rows=[(0, 0, 3.4e38)])  # below float32's largest (3.4028e38): kept; an earlier bound said 3.4e38 was too big
def test_ids_and_ratings_are_kept_exactly_or_refused(scratch, rows):
    """1e300, inf or an infinite rating is an error among integer IDs; a column with a text ID ('x',
    'nan') or an integer beyond int64 (a 20-digit ID) is text IDs, every one kept as written (never
    wrapped into another); accepted IDs come back exactly."""
    text = "user_id,item_id,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows)
    path = write(scratch, "rows.csv", text.encode())
    try:
        dataset = load_generic(path)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    users = [u for u, _, _ in rows]
    beyond = [u for u in users if isinstance(u, int) and not INT64[0] <= u <= INT64[1]]
    if {"x", "nan", "12345678901234567890"} & set(map(str, users)) or beyond:  # text IDs, each as written
        users = [str(u) for u in users]
    else:
        assert all(isinstance(u, int) and INT64[0] <= u <= INT64[1] for u in users)
    ratings = [float(r) for _, _, r in rows]
    assert all(math.isfinite(r) and abs(r) <= FLOAT32_MAX for r in ratings)  # kept as float32: no inf
    got = sorted(
        zip(dataset.user_ids[dataset.interactions["user"]].tolist(), dataset.item_ids[dataset.interactions["item"]])
    )
    want = sorted((u, i) for u, (_, i, _) in zip(users, rows))
    assume(len(set(want)) == len(want))  # duplicates are refused by the reader; checked elsewhere
    assert got == want


@FAST
@given(data=st.binary(max_size=300), kind=st.sampled_from(["users", "items"]))
def test_any_bytes_as_metadata_table_load_or_one_error(scratch, data, kind):
    inter = write(scratch, "base.csv", b"user_id,item_id\n1,1\n2,2\n")
    table = write(scratch, f"{kind}.csv", data)
    try:
        dataset = load_generic(inter, **{kind: table})
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert {1, 2} <= set(getattr(dataset, f"{kind[:-1]}_ids").tolist())


@pytest.mark.parametrize(
    "data, needle",
    [
        (b"\x1f\x8b\x08\x00rest", "gzip-compressed"),
        (b"PK\x03\x04rest", "zip archive"),
        ("user_id,item_id\n1,2\n".encode("utf-16"), "UTF-16"),
        ("user_id,item_id\n1,2\n".encode("utf-16-le"), "UTF-16"),
    ],
)
def test_non_text_files_get_the_right_fix(scratch, data, needle):
    with pytest.raises(UserError, match=needle) as err:
        load_generic(write(scratch, "odd.csv", data))
    assert "latin-1" not in str(err.value)


def test_utf16_without_a_bom_is_one_line(scratch):
    with pytest.raises(UserError, match="cannot be read as utf-16"):
        load_generic(write(scratch, "plain.csv", b"user_id,item_id\n1,2\n"), columns=Columns(encoding="utf-16"))


@pytest.mark.parametrize(
    "name, data, how",
    [
        ("t.json", b'[{"user_id": 1, "item_id": 2}, {"user_id": 2, "item_id": 1}]', "pandas.read_json(path)"),
        ("t.jsonl", b'{"user_id": 1, "item_id": 2}\n{"user_id": 2, "item_id": 1}\n', "lines=True"),
        ("t.csv", b'{"user_id": 1, "item_id": 2}\n', "lines=True"),  # JSON Lines whatever the suffix
    ],
)
def test_json_tables_are_named_as_json(scratch, name, data, how):
    """JSON was read as CSV: "file has no data rows", or columns such as '{"user_id":"u1"'."""
    with pytest.raises(UserError, match="file is JSON; data tables are read from CSV/TSV or Parquet") as err:
        load_generic(write(scratch, name, data))
    assert how in str(err.value)


def test_xlsx_is_named_as_excel(scratch):
    with pytest.raises(UserError, match="Excel"):
        load_generic(write(scratch, "book.xlsx", b"PK\x03\x04 sheet"), columns=Columns(sep=","))


# ---- split folders -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def split_folder(scratch):
    frame = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3], "item_id": [1, 2, 3, 1, 2, 4, 2, 3, 4, 5]})
    frame["rating"] = 4.0
    frame["timestamp"] = np.arange(10)
    dataset = Dataset.from_frames("toy", frame)
    split = make_split(dataset, SplitConfig(ratios=(0.5, 0.25, 0.25), seed=3))  # no empty part
    folder = write_split(split, dataset, scratch / "split")
    return dataset, split, folder


@settings(max_examples=60, deadline=None)
@given(part=st.sampled_from(["train", "valid", "test"]), cut=st.integers(0, 400), flip=st.integers(0, 400))
def test_a_damaged_split_file_is_refused_never_read_short(split_folder, part, cut, flip):
    dataset, split, folder = split_folder
    copy = Path(tempfile.mkdtemp(prefix="gpt2rec-split-"))
    try:
        shutil.copytree(folder, copy, dirs_exist_ok=True)
        data = bytearray((copy / f"{part}.tsv").read_bytes())
        data = data[: min(cut, len(data))] if cut < len(data) else data
        if data and flip < len(data):
            data[flip] ^= 0x21
        (copy / f"{part}.tsv").write_bytes(bytes(data))
        try:
            again = read_split(dataset, copy)
        except UserError as exc:
            assert "\n" not in str(exc)
            return
        for name in ("train", "valid", "test"):  # accepted: then it is the very same split
            pd.testing.assert_frame_equal(getattr(again, name), getattr(split, name))
    finally:
        shutil.rmtree(copy, ignore_errors=True)


# ---- profile JSON --------------------------------------------------------------------------------

MODEL = SimpleNamespace(  # what check_profile reads of a model that scores new users: its profile metadata
    score_new_user=None,
    profile_info=TextInfo(
        "lm", ["gender", "age_group", "occupation"], ["title"], 8, ["gender", "age", "occupation"], []
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@FAST
@given(text=st.text(max_size=400))
def test_any_profile_text_parses_or_one_error(text):
    try:
        profile = read_profile(text)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(profile, dict)


def test_long_profile_json_is_not_taken_for_a_file_name():
    text = json.dumps({"gender": "F", "age": 31, "occupation": "writer" + " " * 300})
    assert read_profile(text)["age"] == 31


@FAST
@given(age=json_values | st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -40, True, "31", 31.5, 10**400]))
def test_profile_age_is_a_whole_number_of_years_or_one_error(age):
    profile = {"gender": "F", "age": age, "occupation": "writer"}
    try:
        out = check_profile(MODEL, profile)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(out["age"], int) and 0 <= out["age"] <= MAX_AGE
    assert not isinstance(age, bool) and float(age) == out["age"]


def test_a_run_whose_users_wrote_ages_as_text_takes_a_text_age():
    """A users table with ages such as "18-24" failed every LM run ("could not convert string to
    float"); its runs now read them as groups, and a new profile may give one too."""
    from dataclasses import replace

    text_ages = SimpleNamespace(score_new_user=None, profile_info=replace(MODEL.profile_info, text_ages=True))
    profile = {"gender": "F", "age": " 18-24 ", "occupation": "writer"}
    assert check_profile(text_ages, profile)["age"] == "18-24"
    assert check_profile(text_ages, {**profile, "age": 31})["age"] == 31
    with pytest.raises(UserError, match="whole number of years"):
        check_profile(MODEL, profile)  # numeric ages in training: a numeric age


@pytest.mark.parametrize("text", ['{"gender": "F", "age": Infinity, "occupation": "x"}', '{"age": NaN}'])
def test_non_finite_json_constants_are_refused(text):
    with pytest.raises(UserError, match="not a number JSON allows"):
        read_profile(text)


# ---- CLI flags -----------------------------------------------------------------------------------


@FAST
@given(sep=st.text(max_size=6))
@example(sep="NULL")  # found by hypothesis in CI: it became None (detect) without a word
@example(sep="\n\\")  # found by hypothesis in CI: the raw newline split the error in two lines
def test_any_sep_is_a_separator_or_one_error(sep):
    try:
        config = from_dict(DataConfig, {"dataset": "x.csv", "sep": unescape_sep(sep)})
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert config.sep and "\\" not in sep.replace("\\t", "").replace("\\\\", "")


@FAST
@given(name=st.text(max_size=12) | st.sampled_from(["cuda", "cuda:7", "mps", "xpu", "meta", "cpu:0", "banana"]))
def test_any_device_name_is_a_device_or_one_error(name):
    try:
        device = pick_device(name)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert device.type in ("cpu", "cuda", "mps")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    ml = write_ml100k_folder(tmp_path_factory.mktemp("ml"), 12, 16)
    out = tmp_path_factory.mktemp("runs") / "pop"
    assert main(["train", "--model", "popularity", "--dataset", str(ml), "--out", str(out), "--quiet"]) == 0
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(k=st.integers(-(2**70), 2**70), user=st.text(max_size=5) | st.integers(-5, 20).map(str))
def test_recommend_flags_give_rows_or_one_line(tiny_run, capsys, k, user):
    code = main(["recommend", str(tiny_run), "--user", user, "-k", str(k), "--json"])
    out, err = capsys.readouterr()
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("gpt2rec: error: ")
        return
    assert code == 0 and k >= 1
    rows = json.loads(out)
    assert 1 <= len(rows) <= min(k, 16)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(-(2**70), 2**70).map(str), st.sampled_from(["007", " 7", "+7", "1.5", "u1", ""])),
                min_size=1, max_size=6))  # fmt: skip
def test_an_id_column_reads_the_same_from_arrow_and_python_strings(values):
    """The one-cast fast path (Arrow's cast for Arrow-backed strings) gives what the checks give."""
    from gpt2rec.data.tables import id_column

    def read(dtype):
        df = pd.DataFrame({"id": pd.Series(values, dtype=dtype).replace("", None)}, index=range(1, len(values) + 1))
        try:
            return id_column(df, "id", Path("f.csv"), "fix", "ID").tolist()
        except UserError as exc:
            return str(exc)

    assert read("str") == read(object)
