"""Text IDs ('u1', 'm7') end to end: load, train, recommend, evaluate (split files read back) and
serve, with the same obvious answer as the integer-ID fixture (comedy fans get comedies)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from gpt2rec.cli import main  # noqa: E402
from serve_fixtures import COMEDY, served_copy, write_data  # noqa: E402


def text_id_files(folder: Path) -> dict:
    """The serve fixture's files with every ID written as text: user 1 -> u1, item 7 -> m7."""
    files = write_data(folder)
    for key, prefixes in (("dataset", ("u", "m")), ("users", ("u",)), ("items", ("m",))):
        path = Path(files[key])
        header, *rows = path.read_text().splitlines()
        out = [",".join(p + c for p, c in zip(prefixes, row.split(",")[: len(prefixes)])) + "," +
               ",".join(row.split(",")[len(prefixes):]) for row in rows]  # fmt: skip
        path.write_text("\n".join([header, *out]) + "\n")
    return files


def train_text_id_run(folder: Path, lm: str) -> Path:
    from gpt2rec.pipeline import RunConfig, train_run

    config = RunConfig.create(
        model="l3ae",
        model_config={"lm": lm, "text_cache": False, "reg": 1.0, "text_weight": 1.0},
        data=text_id_files(folder),
        split={"kind": "loo"},
    )
    train_run(config, folder / "run", verbose=False)
    return folder / "run"


def test_text_ids_train_recommend_evaluate_and_serve(tiny_lm, tmp_path, capsys):
    run = train_text_id_run(tmp_path, tiny_lm)
    comedies = {f"m{i}" for i in COMEDY}

    # u1 has 5 of the 6 comedies (3 trained on, 2 held out): the sixth is the obvious answer
    assert main(["recommend", str(run), "--user", "u1", "-k", "1"]) == 0
    shown = re.findall(r"^\s*\d+\.\s+(\S+)", capsys.readouterr().out, flags=re.M)
    assert len(shown) == 1 and set(shown) <= comedies
    assert main(["evaluate", str(run)]) == 0  # the split's text IDs are read back from its files

    client = served_copy(run, tmp_path / "served")
    rows = client.get("/v1/users/u1/recommendations", params={"k": 1}).json()["items"]
    assert {r["item_id"] for r in rows} <= comedies
    assert client.post("/v1/items", json={"title": "Funny Film 13 (1999)", "item_id": 13}).json()["item_id"] == "13"
    # the first automatic ID, though a client's came first (it was "new-2": a number per item added)
    assert client.post("/v1/items", json={"title": "Funny Film 14 (1999)"}).json()["item_id"] == "new-1"
    conflict = client.post("/v1/items", json={"title": "Again", "item_id": "m1"})
    assert conflict.status_code == 409
    # a text ID with a slash is reachable (was "no route GET /v1/items/a/b/similar")
    assert client.post("/v1/items", json={"item_id": "a/b", "title": "Funny Film 15 (1999)"}).status_code == 201
    assert client.get("/v1/items/a%2Fb/similar", params={"k": 2}).json()["item_id"] == "a/b"


def train_own_columns_run(folder: Path, lm: str) -> Path:
    """An l3ae run (FOLDER/run) over the serve fixture's data, its items described by name and
    category alone (no title, no genres)."""
    from gpt2rec.pipeline import RunConfig, train_run

    files = write_data(folder)
    rows = [f"{i},Funny Film {i},Comedy" for i in COMEDY] + [f"{i},Scary Film {i},Horror" for i in range(7, 13)]
    Path(files["items"]).write_text("item_id,name,category\n" + "\n".join(rows) + "\n")
    config = RunConfig.create(
        model="l3ae", model_config={"lm": lm, "text_cache": False, "reg": 1.0, "text_weight": 1.0},
        data=files, split={"kind": "loo"},
    )  # fmt: skip
    train_run(config, folder / "run", verbose=False)
    return folder / "run"


def test_an_items_table_with_its_own_columns_places_new_items(tiny_lm, tmp_path, capsys):
    """Items described only by name and category (no title, no genres): the LM reads those columns,
    so a new comedy goes to the comedy fan and a new horror film to the horror fan (were read as
    'Movie: 13. Genres: unknown.' alike, and new items were asked for a title and genres)."""
    train_own_columns_run(tmp_path, tiny_lm)
    new = tmp_path / "new.parquet"  # (Parquet too; a column the run does not read is named, not used)
    pd.DataFrame({"item_id": [13, 14], "name": ["Funny Film 13", "Scary Film 14"], "category": ["Comedy", "Horror"],
                  "price": [3, 4]}).to_parquet(new)  # fmt: skip
    for user, first in (("1", "13"), ("7", "14")):
        assert main(["recommend", str(tmp_path / "run"), "--user", user, "--items", str(new), "-k", "2"]) == 0
        captured = capsys.readouterr()
        shown = re.findall(r"^\s*\d+\.\s+(\S+)", captured.out, flags=re.M)
        assert shown[0] == first, (user, shown)
        assert "not ['price']; those columns are left unread" in captured.err

    # a file without the columns the run reads: refused in one line, no warning before it
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("item_id,title\n13,Funny Film 13\n")
    assert main(["recommend", str(tmp_path / "run"), "--user", "1", "--items", str(wrong)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lack column(s) ['name', 'category']" in err, err

    # the API takes those columns in `fields`: all of them, and nothing it would not read
    client = served_copy(tmp_path / "run", tmp_path / "served")
    health = client.get("/v1/health").json()
    assert health["item_fields"] == ["name", "category"] and health["reads_genres"] is False
    bare = client.post("/v1/items", json={"title": "Funny Film 15"})
    assert bare.status_code == 422 and bare.json()["field"] == "fields" and "'name'" in bare.json()["error"]
    typo = client.post("/v1/items", json={"title": "X", "fields": {"name": "X", "category": "Comedy", "mood": "ok"}})
    assert typo.status_code == 422 and "unknown item field(s) ['mood']" in typo.json()["error"]
    for i, (name, category) in ((15, ("Funny Film 15", "Comedy")), (16, ("Scary Film 16", "Horror"))):
        body = {"item_id": i, "title": name, "fields": {"name": name, "category": category}}
        assert client.post("/v1/items", json=body).status_code == 201
    rows = client.get("/v1/users/1/recommendations", params={"k": 100}).json()["items"]
    score = {r["item_id"]: r["score"] for r in rows}
    assert score[15] > score[16]  # the comedy fan's new comedy
    # no title column: an item is shown by its name (was its ID, the loader's stand-in title)
    assert {r["title"] for r in rows if r["item_id"] in (2, 9)} == {"Funny Film 2", "Scary Film 9"}
    # genres this run does not read are refused, not dropped
    genres = client.post(
        "/v1/items", json={"title": "X", "genres": ["Comedy"], "fields": {"name": "X", "category": "Comedy"}}
    )
    assert genres.status_code == 422 and genres.json()["field"] == "genres"
    unknown = client.post("/v1/interactions", json={"user_id": 1, "item_id": 999})
    assert unknown.status_code == 404  # counted with the added items (said "this run knows 12 items")
    assert "this server knows 14 items (12 from its run" in unknown.json()["error"]


def test_each_file_in_its_own_separator_end_to_end(tiny_lm, tmp_path, capsys):
    """Interactions in '::' (ratings.dat), users in '|' and items in ';' (.txt: ',' by suffix): --sep
    was every file's, so such users and items tables could not be read next to those interactions."""
    files = write_data(tmp_path)
    for key, name, sep in (("dataset", "ratings.dat", "::"), ("users", "users.txt", "|"), ("items", "items.txt", ";")):
        (tmp_path / name).write_text(Path(files[key]).read_text().replace(",", sep))
    data = ["--dataset", str(tmp_path / "ratings.dat"), "--users", str(tmp_path / "users.txt"), "--users-sep", "|",
            "--items", str(tmp_path / "items.txt"), "--items-sep", ";"]  # fmt: skip

    assert main(["data", "info", *data[1:]]) == 0
    out = capsys.readouterr().out
    assert "users: 12\nitems: 12\n" in out and "user_columns: gender, age, occupation\n" in out
    assert "item_columns: title, genres, year\n" in out
    no_own = data[:4] + data[6:]  # users.txt read in the interactions' '::' (its suffix gives ','): named
    assert main(["data", "info", *no_own[1:], "--sep", "::"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith("split on the '::' separator (set --users-sep for another)")

    run = tmp_path / "run"
    train = ["train", "--model", "l3ae", "--lm", tiny_lm, "--set", "text_cache=false", "--set", "reg=1.0",
             "--set", "text_weight=1.0", "--split", "loo", "--quiet", "--out", str(run), *data]  # fmt: skip
    assert main(train) == 0
    saved = json.loads((run / "config.json").read_text())["data"]
    assert (saved["sep"], saved["users_sep"], saved["items_sep"]) == (None, "|", ";")
    capsys.readouterr()
    # new items come in the run's items table's separator: a comedy for the comedy fan, horror for the other
    new = tmp_path / "new.txt"
    new.write_text("item_id;title;genres\n13;Funny Film 13 (1999);Comedy\n14;Scary Film 14 (1989);Horror\n")
    for user, first in (("1", "13"), ("7", "14")):
        assert main(["recommend", str(run), "--user", user, "--items", str(new), "-k", "2", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["item_id"] == int(first)


def test_a_profile_s_reason_names_its_nearest_users_only_when_they_were_picked(tiny_lm, tmp_path, capsys):
    """With cold_user_k below the known users, a new user's rows count their nearest profiles; at or
    above it every user is a neighbour, and the reason says "all" (it claimed "nearest" then too)."""
    from serve_fixtures import train_tiny_run

    profile = json.dumps({"gender": "F", "age": 30, "occupation": "writer"})
    for k, said in ((4, r"of the 4 users with the profiles nearest yours had it"), (200, r"of all 12 users had it")):
        (tmp_path / str(k)).mkdir()
        run = train_tiny_run(tmp_path / str(k), tiny_lm, "l3ae", {"reg": 1.0, "text_weight": 1.0, "cold_user_k": k})
        assert main(["recommend", str(run), "--profile", profile, "-k", "3", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert len(rows) == 3 and all(re.search(said, r["reason"]) for r in rows), rows
