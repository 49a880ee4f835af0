"""The loader for a user's own files, DataConfig and load_dataset (no network)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from gpt2rec.data.generic import Columns, load_generic
from gpt2rec.data.load import DataConfig, load_dataset
from gpt2rec.errors import DataError, UserError
from gpt2rec.utils.config import from_dict


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


INTER = "uid,iid,stars,when\n7,100,5,30\n7,200,2,10\n9,100,4,20\n"


def test_custom_columns_and_tables(tmp_path):
    inter = write(tmp_path / "inter.csv", INTER)
    users = write(tmp_path / "users.tsv", "uid\tage\tcountry\n9\t31\tFR\n7\t25\tDE\n")
    items = write(tmp_path / "items.csv", "iid,title,genres\n200,Heat (1995),Action;Crime\n100,Alien,Horror\n")
    cols = Columns(user="uid", item="iid", rating="stars", timestamp="when", genres_sep=";")
    ds = load_generic(inter, users, items, cols)
    assert ds.name == "inter"
    assert ds.users["user_id"].tolist() == [7, 9] and ds.users["country"].tolist() == ["DE", "FR"]
    assert ds.users["age"].tolist() == [25, 31]
    assert ds.items["item_id"].tolist() == [100, 200]
    assert ds.items["genres"].tolist() == [["Horror"], ["Action", "Crime"]]
    assert ds.items["year"].iloc[1] == 1995 and pd.isna(ds.items["year"].iloc[0])
    # rows: (7,100,5,30) -> user 0, item 0; (9,100,4,20) -> user 1, item 0
    assert ds.interactions.values.tolist() == [[0, 0, 5, 30], [0, 1, 2, 10], [1, 0, 4, 20]]


def test_rating_and_timestamp_are_optional(tmp_path):
    ds = load_generic(write(tmp_path / "x.csv", "user_id,item_id\n1,2\n1,3\n"))
    assert ds.interactions["rating"].tolist() == [1.0, 1.0]
    assert ds.interactions["timestamp"].tolist() == [0, 0]
    assert ds.items["title"].tolist() == ["2", "3"]


def test_parquet_and_datetime_timestamps(tmp_path):
    df = pd.DataFrame({"user_id": [1, 2], "item_id": [5, 5], "timestamp": ["1970-01-01 00:01:00", "1970-01-02"]})
    df.to_parquet(tmp_path / "x.parquet")
    ds = load_generic(tmp_path / "x.parquet")
    assert ds.interactions["timestamp"].tolist() == [60, 86400]


def test_a_threshold_without_a_rating_column_says_so(tmp_path):
    """It said "no rating is >= the implicit threshold 3 (ratings run from 1 to 1)"."""
    path = write(tmp_path / "inter.csv", "user_id,item_id\n1,2\n2,3\n")
    with pytest.raises(DataError, match="every rating is 1 .*without a rating column.*--rating-col"):
        load_dataset(DataConfig(dataset=str(path), implicit_threshold=3))


@pytest.mark.parametrize(
    "stamps, words",
    [
        (
            ["2021-01-01", "2021-01-02", "1609459200"],
            "'1609459200' is a number (Unix seconds), but most of the column holds date-times",
        ),
        (
            ["1609459200", "1609459300", "2021-01-01"],
            "'2021-01-01' is a date-time, but most of the column holds Unix seconds",
        ),
        (["1609459200", "1609459300", "banana"], "'banana' is neither Unix seconds nor a date-time"),
    ],
)
def test_timestamps_written_two_ways_are_named_as_such(tmp_path, stamps, words):
    """A Unix time among dates was called "neither Unix seconds nor a date-time"."""
    rows = "".join(f"{u},{i},{t}\n" for (u, i), t in zip([(1, 2), (1, 3), (2, 3)], stamps))
    with pytest.raises(DataError, match=re.escape(words)):
        load_generic(write(tmp_path / "t.csv", "user_id,item_id,timestamp\n" + rows))


def test_implicit_threshold_via_config(tmp_path):
    path = write(tmp_path / "inter.csv", INTER)
    config = DataConfig(dataset=str(path), user_col="uid", item_col="iid", rating_col="stars", implicit_threshold=4)
    ds = load_dataset(config)
    assert ds.interactions["rating"].tolist() == [5.0, 4.0]
    assert ds.n_items == 2  # the catalogue is kept
    with pytest.raises(DataError, match=r"no rating is >= the implicit threshold 6 \(ratings run from 2 to 5\)"):
        load_dataset(
            DataConfig(dataset=str(path), rating_col="stars", user_col="uid", item_col="iid", implicit_threshold=6)
        )


def test_separator_from_suffix_and_explicit(tmp_path):
    assert load_generic(write(tmp_path / "a.tsv", "user_id\titem_id\n1\t2\n")).n_users == 1
    ds = load_generic(write(tmp_path / "a.txt", "user_id;item_id\n1;2\n"), columns=Columns(sep=";"))
    assert ds.n_items == 1


# --- bad input ---------------------------------------------------------------------------------------


def test_missing_columns_are_named(tmp_path):
    path = write(tmp_path / "x.csv", "user,item\n1,2\n")
    with pytest.raises(
        DataError, match=r"x.csv: missing column\(s\) \['user_id', 'item_id'\]; found \['user', 'item'\]"
    ):
        load_generic(path)


def test_missing_explicit_rating_column(tmp_path):
    path = write(tmp_path / "x.csv", "user_id,item_id\n1,2\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['score'\]"):
        load_generic(path, columns=Columns(rating="score"))


def test_wrong_separator_named(tmp_path):
    path = write(tmp_path / "x.csv", "user_id;item_id\n1;2\n")
    with pytest.raises(DataError, match=r"the header looks semicolon-separated, not comma-separated.*--sep"):
        load_generic(path)


def test_each_table_may_have_its_own_separator(tmp_path):
    """--sep was every file's: users.txt in '|' next to ratings.dat in '::' could not be read at all."""
    inter = write(tmp_path / "ratings.dat", "user_id::item_id\n1::10\n2::20\n")  # '::' from the suffix
    users = write(tmp_path / "users.txt", "user_id|age|city\n1|31|Lyon, FR\n2|25|Graz\n")  # (a comma inside)
    items = write(tmp_path / "items.txt", "item_id;title\n10;Heat (1995)\n20;Alien (1979)\n")
    ds = load_generic(inter, users, items, Columns(users_sep="|", items_sep=";"))
    assert ds.users[["user_id", "age", "city"]].values.tolist() == [[1, 31, "Lyon, FR"], [2, 25, "Graz"]]
    assert ds.items["title"].tolist() == ["Heat (1995)", "Alien (1979)"] and ds.n_items == 2
    # --sep is still every file's where a table has no separator of its own
    inter = write(tmp_path / "ratings.txt", "user_id;item_id\n1;10\n2;20\n")
    ds = load_generic(inter, users, items, Columns(sep=";", users_sep="|"))
    assert ds.users["city"].tolist() == ["Lyon, FR", "Graz"] and ds.items["title"].tolist()[0] == "Heat (1995)"
    config = from_dict(DataConfig, {"dataset": str(inter), "sep": ";", "users_sep": "|"})
    assert config.columns().users_sep == "|" and config.columns().items_sep is None


def test_a_quoted_field_keeps_a_multi_character_separator(tmp_path):
    """'::' inside quotes came back as an invisible control character ("Star\x1fWars")."""
    inter = write(tmp_path / "ratings.dat", "user_id::item_id\n1::10\n2::20\n")
    users = write(tmp_path / "users.dat", 'user_id::job\n1::"free::lancer"\n2::artist\n')
    items = write(tmp_path / "items.dat", 'item_id::title\n10::"Star::Wars (1977)"\n20::Alien (1979)\n')
    ds = load_generic(inter, users, items, Columns())
    assert ds.users["job"].tolist() == ["free::lancer", "artist"]
    assert ds.items["title"].tolist() == ["Star::Wars (1977)", "Alien (1979)"]


def test_a_table_read_with_the_wrong_separator_names_its_own_flag(tmp_path):
    """The hint said --sep, which would have broken the interactions file ('::') to fix the users table."""
    inter = write(tmp_path / "ratings.dat", "user_id::item_id\n1::10\n")
    users = write(tmp_path / "users.txt", "user_id|age\n1|31\n")
    with pytest.raises(DataError) as err:
        load_generic(inter, users=users)
    assert str(err.value) == (
        f"{users}: missing column(s) ['user_id']; found ['user_id|age']; the header looks pipe-separated, not "
        "comma-separated; the users table needs the user column 'user_id' with one row per user; its fields were "
        "split on the comma separator (set --users-sep for another)"
    )
    items = write(tmp_path / "items.txt", "item_id\ttitle\n10\tHeat\n")
    with pytest.raises(DataError, match=r"split on the '::' separator \(set --items-sep for another\)$") as err:
        load_generic(inter, items=items, columns=Columns(sep="::"))
    assert "--sep" not in str(err.value)
    for field in ("users_sep", "items_sep"):  # checked as --sep is
        with pytest.raises(UserError, match=f"{field} '\"' cannot separate fields"):
            from_dict(DataConfig, {"dataset": "x.csv", field: '"'})
        with pytest.raises(UserError, match=f"{field} is empty"):
            from_dict(DataConfig, {"dataset": "x.csv", field: ""})


def test_text_ids_are_ids(tmp_path):
    """Text IDs ('u1', ASIN-like 'B01' next to '7') are read as text, the whole column; the items
    table follows the interactions' kind, so its '7' is the interactions' '7'."""
    inter = write(tmp_path / "x.csv", "user_id,item_id\nu1,B01\nu1,7\nalice,7\n")
    items = write(tmp_path / "items.csv", "item_id,title\n7,Seven (1995)\nB01,Alpha (1990)\n")
    ds = load_generic(inter, items=items)
    assert ds.user_ids.tolist() == ["alice", "u1"] and ds.item_ids.tolist() == ["7", "B01"]
    assert ds.items["title"].tolist() == ["Seven (1995)", "Alpha (1990)"]
    pairs = {(ds.user_ids[u], ds.item_ids[i]) for u, i in ds.interactions[["user", "item"]].to_numpy()}
    assert pairs == {("u1", "B01"), ("u1", "7"), ("alice", "7")}


def test_integer_ids_stay_integers_and_a_text_id_in_their_table_is_named(tmp_path):
    inter = write(tmp_path / "x.csv", "user_id,item_id\n1,2\n1,3\n")
    assert load_generic(inter).user_ids.tolist() == [1]
    items = write(tmp_path / "items.csv", "item_id,title\n2,Two\nB3,Three\n")
    with pytest.raises(DataError, match=r"items.csv: line 3: item ID \(item_id\) 'B3' is not an integer"):
        load_generic(inter, items=items)


def test_a_missing_text_id_names_its_line(tmp_path):
    path = write(tmp_path / "x.csv", "user_id,item_id\nu1,a\n ,b\n")
    with pytest.raises(DataError, match=r"x.csv: line 3: user ID \(user_id\) is missing"):
        load_generic(path)


def test_describe_lists_only_item_columns_from_the_data(tmp_path):
    """QA: with no items table, `data info` listed the title and genres gpt2rec filled in."""
    ds = load_generic(write(tmp_path / "x.csv", "user_id,item_id\n1,2\n1,3\n"))
    assert ds.describe()["item_columns"] == [] and "title" in ds.items.columns
    items = write(tmp_path / "items.csv", "item_id,title\n2,Heat (1995)\n3,Alien\n")
    assert load_generic(tmp_path / "x.csv", items=items).describe()["item_columns"] == ["title", "year"]


def test_duplicate_rows(tmp_path):
    path = write(tmp_path / "x.csv", "user_id,item_id,timestamp\n1,2,5\n1,3,5\n1,2,5\n")
    with pytest.raises(DataError, match=r"x.csv: line 4 repeats line 2 \(user_id 1, item_id 2, timestamp 5\)"):
        load_generic(path)


def test_repeated_pairs_keep_the_latest_with_one_warning(tmp_path, caplog):
    # the same (user, item) at another time used to stay twice and land in both train and test
    path = write(tmp_path / "x.csv", "user_id,item_id,rating,timestamp\n1,2,1,50\n1,3,4,5\n1,2,3,9\n2,2,5,1\n")
    with caplog.at_level("WARNING", logger="gpt2rec"):
        ds = load_generic(path)
    assert ds.interactions[["rating", "timestamp"]].values.tolist() == [[1, 50], [4, 5], [5, 1]]
    assert caplog.text.count("dropped 1 repeated (user, item) rows (e.g. user_id 1, item_id 2)") == 1
    assert "the latest by timestamp" in caplog.text
    caplog.clear()
    path = write(tmp_path / "y.csv", "user_id,item_id,rating\n1,2,1\n1,3,4\n1,2,3\n")  # no time: keep the last
    with caplog.at_level("WARNING", logger="gpt2rec"):
        assert load_generic(path).interactions["rating"].tolist() == [4, 3]
    assert "dropped 1 repeated" in caplog.text and "the last in the file" in caplog.text


def test_bad_unix_timestamp_names_its_own_line(tmp_path):
    rows = "".join(f"1,{i},88000{i}\n" for i in range(6))
    path = write(tmp_path / "x.csv", f"user_id,item_id,timestamp\n{rows}1,9,2021-13-45\n")
    with pytest.raises(DataError, match=r"line 8: timestamp \(timestamp\) '2021-13-45' is neither"):
        load_generic(path)  # used to blame line 2's valid 880000
    path = write(tmp_path / "y.csv", f"user_id,item_id,timestamp\n{rows}1,9,\n")
    with pytest.raises(DataError, match=r"line 8: timestamp \(timestamp\) is missing; fill it in"):
        load_generic(path)  # used to say "np.float64(nan) is neither ..."


def test_undecodable_then_encoding_option(tmp_path):
    inter = write(tmp_path / "x.csv", "user_id,item_id\n1,2\n")
    items = write(tmp_path / "items.csv", "item_id,title\n2,Amélie (2001)\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"items.csv: byte offset 18 \(line 2\) holds b'\\xe9'.*try latin-1"):
        load_generic(inter, items=items)
    ds = load_generic(inter, items=items, columns=Columns(encoding="latin-1"))
    assert ds.items["title"].tolist() == ["Amélie (2001)"]


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match=r"nope.csv: file not found; check the path"):
        load_generic(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"e.csv: file is empty"):
        load_generic(write(tmp_path / "e.csv", ""))
    with pytest.raises(DataError, match=r"h.csv: file has no data rows"):
        load_generic(write(tmp_path / "h.csv", "user_id,item_id\n"))


def test_duplicate_user_in_users_table(tmp_path):
    inter = write(tmp_path / "x.csv", "user_id,item_id\n1,2\n")
    users = write(tmp_path / "u.csv", "user_id,age\n1,20\n1,30\n")
    with pytest.raises(DataError, match=r"u.csv: line 3 repeats line 2 \(user_id 1\)"):
        load_generic(inter, users=users)


def test_bad_datetime(tmp_path):
    path = write(tmp_path / "x.csv", "user_id,item_id,timestamp\n1,2,2020-01-01\n1,3,soon\n")
    with pytest.raises(DataError, match=r"line 3: timestamp \(timestamp\) 'soon' is neither"):
        load_generic(path)


def test_data_config_validation_and_unknown_names(tmp_path):
    with pytest.raises(UserError, match="implicit_threshold='high' is not a number"):
        from_dict(DataConfig, {"implicit_threshold": "high"})
    with pytest.raises(UserError, match="unknown encoding 'utf-9'"):
        from_dict(DataConfig, {"encoding": "utf-9"})
    with pytest.raises(ValueError, match="implicit_threshold='high' is not a number"):  # library: ValueError
        DataConfig(implicit_threshold="high")
    with pytest.raises(
        UserError, match=r"unknown dataset 'ml-7m'; valid names: ml-100k, ml-1m, ml-latest-small, ml-25m"
    ):
        load_dataset("ml-7m")
    with pytest.raises(UserError, match=r"missing.csv: file not found"):
        load_dataset(str(tmp_path / "missing.csv"))
    with pytest.raises(UserError, match="folder holds no MovieLens files"):
        load_dataset(str(tmp_path))


def test_tables_that_miss_ids_are_named(tmp_path, caplog):
    inter = write(tmp_path / "inter.csv", "user_id,item_id\n1,10\n1,20\n2,30\n")
    part = write(tmp_path / "items.csv", "item_id,title\n10,Alien\n")
    with caplog.at_level("WARNING", logger="gpt2rec"):
        ds = load_generic(inter, items=part)
    assert ds.items["title"].tolist()[0] == "Alien"
    assert "2 of the 3 items in the interactions have no row (IDs like 20, 30)" in caplog.text
    wrong = write(tmp_path / "users.csv", "user_id,age\n7,30\n8,40\n")
    with pytest.raises(
        DataError, match=r"none of its user IDs \(like 7, 8\) occur in the interactions \(IDs like 1, 2\)"
    ):
        load_generic(inter, users=wrong)
    caplog.clear()
    with caplog.at_level("WARNING", logger="gpt2rec"):
        load_generic(inter, users=write(tmp_path / "all.csv", "user_id,age\n1,30\n2,40\n3,50\n"))
    assert caplog.text == ""  # a table with extra rows (new users) and none missing is silent


def test_leading_zeros_keep_ids_apart_in_csv_and_parquet(tmp_path):
    """'007' and '7' are two IDs (codes like SKUs or zip codes), in a CSV (read as numbers, both were
    7 and merged) and in a Parquet string column."""
    inter = write(tmp_path / "x.csv", "user_id,item_id\n1,007\n1,7\n2,007\n")
    assert load_generic(inter).item_ids.tolist() == ["007", "7"]
    frame = pd.DataFrame({"user_id": ["1", "1", "2"], "item_id": ["007", "7", "007"]})
    frame.to_parquet(tmp_path / "x.parquet")
    items = pd.DataFrame({"item_id": ["7", "007"], "title": ["Seven", "Bond"]})
    items.to_parquet(tmp_path / "items.parquet")
    ds = load_generic(tmp_path / "x.parquet", items=tmp_path / "items.parquet")
    assert ds.item_ids.tolist() == ["007", "7"] and ds.items["title"].tolist() == ["Bond", "Seven"]
    assert load_generic(write(tmp_path / "plain.csv", "user_id,item_id\n1,7\n1,0\n")).item_ids.tolist() == [0, 7]


def test_an_item_without_a_row_is_described_and_shown_by_its_id(tmp_path):
    """It left NaN genres that describe() choked on (TypeError), and a 'nan' title."""
    from gpt2rec.data.dataset import display_titles

    inter = write(tmp_path / "x.csv", "user_id,item_id\n1,1\n1,2\n")
    items = write(tmp_path / "items.csv", "item_id,title,genres\n1,One (1990),Drama\n")
    ds = load_generic(inter, items=items)
    assert ds.describe()["items"] == 2
    assert display_titles(ds.items) == ["One (1990)", "2"]


def test_a_header_naming_a_column_twice_is_refused(tmp_path):
    """pandas renamed the second user_id to 'user_id.1' and the first was used alone, silently."""
    with pytest.raises(DataError, match="the header names column 'user_id' more than once"):
        load_generic(write(tmp_path / "t.csv", "\ufeffuser_id,item_id,user_id\n1,2,3\n2,3,4\n"))
    ds = load_generic(write(tmp_path / "ok.csv", "x,x.1,user_id,item_id\n1,2,3,4\n"))  # a real 'x.1' is fine
    assert ds.n_users == 1


@pytest.mark.parametrize(
    "frame, where",
    [
        ({"user_id": [1, 2, 3], "item_id": [1, None, 2]}, r"row 2 has no item ID \(item_id\) value"),
        ({"user_id": [1, 2, 1], "item_id": [1, 2, 1], "timestamp": [7, 8, 7]}, "row 3 repeats row 1"),
        ({"user_id": [1, 2], "item_id": [1, 2], "timestamp": ["5", "soon"]}, "row 2: timestamp"),
    ],
)
def test_a_parquet_file_is_pointed_into_by_row_not_line(tmp_path, frame, where):
    """A Parquet file has no lines: its errors name the data row (1-based), as CSV errors name the line."""
    pd.DataFrame(frame).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(UserError, match=f"x.parquet: {where}") as err:
        load_generic(tmp_path / "x.parquet")
    assert "line" not in str(err.value)


@pytest.mark.parametrize(
    "column, values, message",
    [
        ("user_id", [True, False, True], r"user ID \(user_id\) holds true/false values \(e.g. True\)"),
        (
            "item_id",
            pd.to_datetime([1, 2, 3], unit="D"),
            r"item ID \(item_id\) holds date-times \(e.g. 1970-01-02 00:00:00\)",
        ),
        ("user_id", [[1], [2], [1]], r"user ID \(user_id\) holds lists \(e.g. \[1\]\)"),
    ],
)
def test_a_parquet_column_of_other_types_is_not_read_as_ids(tmp_path, column, values, message):
    """Parquet keeps types CSV cannot: true/false users became 2 users (1 and 0, duplicates dropped),
    date-time items became nanosecond counts, list users became IDs like '[0]' no --user could name."""
    frame = pd.DataFrame({"user_id": [1, 2, 3], "item_id": [4, 5, 6]}).assign(**{column: values})
    frame.to_parquet(tmp_path / "x.parquet")
    with pytest.raises(DataError, match=message + ", not IDs; IDs are whole numbers or text"):
        load_generic(tmp_path / "x.parquet")
    items = pd.DataFrame({"item_id": [True, False], "title": ["a", "b"]})
    items.to_parquet(tmp_path / "items.parquet")
    with pytest.raises(DataError, match="holds true/false values"):  # a users or items table too
        load_generic(write(tmp_path / "ok.csv", "user_id,item_id\n1,2\n"), items=tmp_path / "items.parquet")


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            "1,2,abc,5",
            "rating (rating) 'abc' is not a number; fix it; ratings are read from column 'rating' "
            r"\(set --rating-col for another\)$",
        ),  # fmt: skip
        (
            "1,2,4,soon",
            "timestamp (timestamp) 'soon' is neither Unix seconds nor a date-time; fix it; timestamps "
            r"are read from column 'timestamp' \(set --timestamp-col for another\)$",
        ),  # fmt: skip
        ("1,2,4,5.5", r"5.5 is not an integer; fix it; timestamps are read from column 'timestamp'"),
    ],
)
def test_a_bad_rating_or_timestamp_names_its_own_column_flag(tmp_path, rows, message):
    """They ended with "(set --user-col/--item-col/--sep to match your file)", which fixes neither."""
    inter = write(tmp_path / "x.csv", f"user_id,item_id,rating,timestamp\n{rows}\n2,3,4,6\n")
    with pytest.raises(
        DataError, match=message.replace("(rating)", r"\(rating\)").replace("(timestamp)", r"\(timestamp\)")
    ) as err:
        load_generic(inter)
    assert "--user-col" not in str(err.value)


def test_ages_that_cannot_be_years_of_age_are_refused(tmp_path):
    """Birth years were read as ages: every user's profile said "Age group is 56+", and a new user's
    profile with a birth year was refused as "between 0 and 120"."""
    inter = write(tmp_path / "x.csv", "user_id,item_id\n1,2\n2,3\n")
    users = write(tmp_path / "users.csv", "user_id,age\n1,31\n2,1975\n")
    with pytest.raises(DataError, match=r"users.csv: line 3: age 1975 is not an age in years \(0-120\); if the "
                                        r"column holds birth years, write ages instead, or rename it"):  # fmt: skip
        load_generic(inter, users=users)
    renamed = write(tmp_path / "born.csv", "user_id,birth_year\n1,1993\n2,1975\n")
    assert load_generic(inter, users=renamed).users["birth_year"].tolist() == ["1993", "1975"]
    text = write(tmp_path / "bands.csv", "user_id,age\n1,18-24\n2,unknown\n")  # text ages are groups, as written
    assert load_generic(inter, users=text).users["age"].tolist() == ["18-24", "unknown"]
