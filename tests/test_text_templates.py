"""Templates: exact sentences, age groups for both MovieLens encodings, spans, history without leakage."""

import pandas as pd
import pytest

from gpt2rec.data.dataset import Dataset
from gpt2rec.errors import UserError
from gpt2rec.text.templates import (
    TemplateConfig,
    age_group,
    ages_are_text,
    item_texts,
    render,
    texts_and_spans,
    user_texts,
)


def _dataset(users=True):
    inter = pd.DataFrame(
        {
            "user_id": [10, 10, 10, 10, 20],
            "item_id": [1, 2, 3, 4, 1],
            "rating": [5, 4, 5, 2, 5],
            "timestamp": [100, 300, 200, 400, 50],
        }
    )
    user_table = (
        pd.DataFrame(
            {
                "user_id": [10, 20],
                "gender": ["M", "F"],
                "age": [24, 1],
                "occupation": ["engineer", "student"],
                "zip_code": ["1", "2"],
            }
        )
        if users
        else None
    )
    items = pd.DataFrame(
        {
            "item_id": [1, 2, 3, 4],
            "title": ["Toy Story (1995)", "Heat (1995)", "Fargo (1996)", "Jaws (1975)"],
            "year": pd.array([1995, 1995, 1996, 1975], dtype="Int64"),
            "genres": [["Animation", "Comedy"], ["Action"], [], ["Horror", "Thriller"]],
        }
    )
    return Dataset.from_frames("tiny", inter, user_table, items)


@pytest.mark.parametrize(
    "age,label",
    [
        (1, "under 18"),
        (7, "under 18"),
        (17, "under 18"),
        (18, "18-24"),
        (24, "18-24"),
        (25, "25-34"),
        (34, "25-34"),
        (35, "35-44"),
        (45, "45-49"),
        (49, "45-49"),
        (50, "50-55"),
        (55, "50-55"),
        (56, "56+"),
        (73, "56+"),
        (None, "unknown"),
    ],
)
def test_age_groups_exact_ages_and_ml1m_codes(age, label):
    assert age_group(age) == label


def test_ages_written_as_text_are_their_own_groups():
    assert [age_group(a) for a in ("18-24", " adult ", "25")] == ["18-24", "adult", "25-34"]
    assert ages_are_text(pd.DataFrame({"age": ["18-24", None]})) and not ages_are_text(pd.DataFrame({"age": [3, "25"]}))
    users = pd.DataFrame(
        {"user_id": [1, 2], "gender": ["F", "M"], "age": ["18-24", "unknown"], "occupation": ["x", "y"]}
    )
    data = Dataset(
        "t", pd.DataFrame({"user": [0, 1], "item": [0, 0]}), users, pd.DataFrame({"item_id": [1], "title": ["A"]})
    )
    assert "Age group is 18-24" in user_texts(data, TemplateConfig())[0].text


def test_default_movielens_sentences_exactly():
    ds = _dataset()
    users = user_texts(ds)
    assert users[0].text == "User profile: Gender is male, Age group is 18-24, Occupation is engineer."
    assert users[1].text == "User profile: Gender is female, Age group is under 18, Occupation is student."
    items = item_texts(ds)
    assert items[0].text == "Movie: Toy Story (1995). Genres: Animation, Comedy."
    assert items[2].text == "Movie: Fargo (1996). Genres: unknown."


def test_gender_letters_kept_when_asked():
    assert "Gender is M," in user_texts(_dataset(), TemplateConfig(gender_words=False))[0].text


def test_spans_line_up_with_their_text():
    ds = _dataset()
    for r in user_texts(ds) + item_texts(ds) + user_texts(ds, TemplateConfig(history=2), train=ds.interactions):
        for _name, (start, end) in r.spans.items():
            assert 0 <= start <= end <= len(r.text)
    u = user_texts(ds)[1]
    assert list(u.spans) == ["gender", "age_group", "occupation"]
    assert u.field_text("gender") == "female" and u.field_text("age_group") == "under 18"
    assert u.field_text("occupation") == "student"
    i = item_texts(ds)[3]
    assert i.field_text("title") == "Jaws (1975)" and i.field_text("genres") == "Horror, Thriller"
    texts, spans = texts_and_spans([i])
    assert texts == [i.text] and spans == [i.spans]


def test_render_records_spans_with_format_specs_and_repeats():
    text, spans = render("{a:>4}|{b}|{a}", {"a": 7, "b": "xy"}, offset=3)
    assert text == "   7|xy|7"
    assert spans == {"a": (3, 7), "b": (8, 10)}  # first use of a; offset shifts both


def test_custom_template_over_columns_and_clear_error():
    ds = _dataset()
    cfg = TemplateConfig(user_template="A {age}-year-old {occupation} from {zip_code}.")
    r = user_texts(ds, cfg)[0]
    assert r.text == "A 24-year-old engineer from 1." and r.field_text("zip_code") == "1"
    with pytest.raises(UserError, match="lacks"):
        user_texts(ds, TemplateConfig(user_template="Lives in {country}."))
    with pytest.raises(ValueError, match="not a valid format string"):
        TemplateConfig(item_template="Movie: {title")


def test_neutral_user_text_without_user_table():
    ds = _dataset(users=False)
    assert [r.text for r in user_texts(ds)] == ["User 10.", "User 20."]
    hist = user_texts(ds, TemplateConfig(history=1), train=ds.interactions)
    assert hist[0].text == "User 10. Recently liked: Jaws (1975)."


def test_history_lists_recent_liked_training_items_newest_first():
    ds = _dataset()
    cfg = TemplateConfig(history=2, liked_threshold=4.0)
    r = user_texts(ds, cfg, train=ds.interactions)[0]
    # user 10 liked (>=4): Toy Story t=100, Fargo t=200, Heat t=300; Jaws t=400 has rating 2
    assert r.text.endswith(" Recently liked: Heat (1995), Fargo (1996).")
    assert r.field_text("history") == "Heat (1995), Fargo (1996)"


def test_history_never_reads_held_out_interactions():
    ds = _dataset()
    inter = ds.interactions
    latest = inter.sort_values("timestamp").groupby("user").tail(1)  # leave-last-out test items
    train = inter.drop(latest.index)
    cfg = TemplateConfig(history=10)
    rendered = user_texts(ds, cfg, train=train)
    for user, item in zip(latest["user"], latest["item"]):
        title = ds.items["title"][item]
        assert title not in rendered[user].text, f"held-out {title} leaked into {rendered[user].text!r}"
    # with the full table the newest item would appear: the check above can fail
    assert "Jaws (1975)" in user_texts(ds, cfg, train=inter)[0].text


def test_history_requires_the_training_frame():
    with pytest.raises(UserError, match="training interactions"):
        user_texts(_dataset(), TemplateConfig(history=3))


def test_items_with_ids_only_are_named_once(caplog):
    from gpt2rec.text.templates import describes_items

    inter = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [7, 8, 7]})
    bare = Dataset.from_frames("bare-items", inter)  # no items table: the title is the ID itself
    assert not describes_items(bare.items)
    with caplog.at_level("WARNING", logger="gpt2rec"):
        assert [r.text for r in item_texts(bare)] == ["Movie: 7. Genres: unknown.", "Movie: 8. Genres: unknown."]
        item_texts(bare)
    assert caplog.text.count("bare-items: no item has metadata beyond its ID") == 1
    one_title = pd.DataFrame({"item_id": [7], "title": ["Heat (1995)"]})
    assert describes_items(Dataset.from_frames("x", inter, items=one_title).items)
    one_genre = pd.DataFrame({"item_id": [7, 8], "genres": [[], ["Drama"]]})
    assert describes_items(Dataset.from_frames("y", inter, items=one_genre).items)
    assert describes_items(pd.DataFrame({"title": ["Heat (1995)"]}))  # new items may come without IDs


def test_an_items_table_with_its_own_columns_is_read_whole():
    """Columns beyond title / genres / year (name, category, ...) are read; the loaders' stand-ins
    (title = the ID, no genres, no year) are left out, so the LM never reads an ID as a title."""
    items = pd.DataFrame({"item_id": ["B1", "B2"], "name": ["Kind of Blue", "Nevermind"],
                          "release_date": ["1959", "1991"]})  # fmt: skip
    data = Dataset.from_frames("own", pd.DataFrame({"user_id": [1, 1], "item_id": ["B1", "B2"]}), items=items)
    first = item_texts(data)[0]
    assert first.text == "Item. Name: Kind of Blue. Release date: 1959."
    assert list(first.spans) == ["name", "release_date"]


def test_real_titles_and_genres_lead_an_own_columns_sentence():
    items = pd.DataFrame({"item_id": [1], "title": ["Heat (1995)"], "genres": [["Crime"]], "director": ["Mann"]})
    data = Dataset.from_frames("own", pd.DataFrame({"user_id": [1], "item_id": [1]}), items=items)
    assert item_texts(data)[0].text == "Item: Heat (1995). Genres: Crime. Director: Mann."


def test_new_items_read_with_their_runs_fields():
    """A run keeps its catalogue's item fields: new items with more columns read as the catalogue
    did (MovieLens' sentence for a title/genres run), not by their own columns."""
    new = pd.DataFrame({"item_id": [9], "title": ["Heat (1995)"], "genres": [["Crime"]], "director": ["Mann"]})
    data = Dataset.from_frames("new", pd.DataFrame({"user_id": [1], "item_id": [9]}), items=new)
    assert item_texts(data, fields=["title", "genres"])[0].text == "Movie: Heat (1995). Genres: Crime."


def test_a_table_of_titles_alone_is_not_read_as_movies_without_genres():
    """Was 'Movie: Blue. Genres: unknown.' (and new items were asked for genres); a year the title
    does not show is read too."""
    for items, text in (
        (pd.DataFrame({"item_id": [1], "title": ["Blue"]}), "Item: Blue."),
        (pd.DataFrame({"item_id": [1], "title": ["Heat (1995)"], "year": [1995]}), "Item: Heat (1995)."),
        (pd.DataFrame({"item_id": [1], "title": ["Dune"], "year": [1965]}), "Item: Dune. Year: 1965."),
        (
            pd.DataFrame({"item_id": [1], "title": ["Dune"], "year": [1965], "genres": [["SF"]]}),
            "Movie: Dune. Genres: SF.",
        ),
    ):
        data = Dataset.from_frames("own", pd.DataFrame({"user_id": [1], "item_id": [1]}), items=items)
        assert item_texts(data)[0].text == text
