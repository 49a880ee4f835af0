"""User and item metadata -> sentences, with the character span of every field.

Defaults (MovieLens):

    User profile: Gender is male, Age group is 25-34, Occupation is engineer.
    Movie: Toy Story (1995). Genres: Animation, Children's, Comedy.

Choices, documented once here:
- Gender letters become words ("M" -> "male", "F" -> "female"; `gender_words=False` keeps letters):
  a language model reads words, not codes.
- Age becomes one of ML-1M's groups: under 18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+. ML-100K gives
  exact ages and ML-1M gives the codes 1, 18, 25, 35, 45, 50, 56; every code is the lower bound of its
  group, so one threshold rule maps both to the same labels (code 1 and age 7 -> "under 18").
- Missing values (NaN, None, "") render as "unknown"; lists are joined with ", " (empty -> "unknown").
- Datasets without user metadata (ml-latest: the user table has only `user_id`) get the neutral
  `neutral_user_template` ("User {user_id}."), followed by the history sentence when it is on.
- History (`history > 0`) appends " Recently liked: A, B, C." with the titles of the user's last N
  TRAINING interactions (most recent first; ties by row order), rating >= `liked_threshold` when that
  is set. It needs the training frame explicitly, so validation/test items cannot leak in.

Templates are `str.format` strings over column names. Besides the table's columns, users offer the
derived field `age_group` (from `age`); every field may use a format spec (`{age:>3}`).
Each `Rendered` keeps `spans[field] = (start, end)`: text[start:end] is that field's value.
"""

from __future__ import annotations

import logging
import math
import string
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data.dataset import LOADER_ITEM_COLUMNS, filled_in
from ..errors import UserError

log = logging.getLogger(__name__)

MOVIELENS_USER_TEMPLATE = "User profile: Gender is {gender}, Age group is {age_group}, Occupation is {occupation}."
MOVIE_TEMPLATE = "Movie: {title}. Genres: {genres}."
NEUTRAL_USER_TEMPLATE = "User {user_id}."
HISTORY_TEMPLATE = " Recently liked: {history}."

AGE_GROUPS = ((1, "under 18"), (18, "18-24"), (25, "25-34"), (35, "35-44"), (45, "45-49"), (50, "50-55"), (56, "56+"))
GENDER_WORDS = {"M": "male", "F": "female"}
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Rendered:
    """One sentence and the character span of each field: `text[start:end]` is the field's value."""

    text: str
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)

    def field_text(self, name: str) -> str:
        start, end = self.spans[name]
        return self.text[start:end]


@dataclass
class TemplateConfig:
    """How metadata becomes text. `None` templates are chosen from the table's columns (see `resolve_*`)."""

    user_template: str | None = field(default=None, metadata={"help": "format string over user columns; None = auto"})
    item_template: str | None = field(default=None, metadata={"help": "format string over item columns; None = auto"})
    neutral_user_template: str = NEUTRAL_USER_TEMPLATE
    gender_words: bool = field(default=True, metadata={"help": "M/F -> male/female"})
    list_sep: str = ", "
    history: int = field(default=0, metadata={"help": "append the last N liked training items (0 = off)"})
    history_template: str = HISTORY_TEMPLATE
    history_field: str = field(default="title", metadata={"help": "item column named in the history"})
    liked_threshold: float | None = field(default=None, metadata={"help": "min rating counted as liked; None = all"})

    def __post_init__(self):
        for name in ("user_template", "item_template", "neutral_user_template"):
            value = getattr(self, name)
            if value is not None:
                _fields(value, name)  # raises on a malformed template
        if self.history < 0:
            raise ValueError(f"history must be >= 0 (number of recent items), got {self.history}")
        if self.history and _fields(self.history_template, "history_template") != ["history"]:
            raise ValueError(
                "history_template must contain exactly one field, {history}; e.g. ' Recently liked: {history}.'"
            )

    def signature(self) -> str:
        """A stable string naming everything that changes the text (for cache keys)."""
        import json
        from dataclasses import asdict

        return json.dumps(asdict(self), sort_keys=True)


def resolve_user_template(users: pd.DataFrame, cfg: TemplateConfig) -> str:
    """The user template in force: the configured one, else MovieLens / generic / neutral by columns."""
    columns = [c for c in users.columns if c != "user_id"]
    available = set(users.columns) | ({"age_group"} if "age" in users.columns else set())
    if cfg.user_template is not None:
        missing = [f for f in _fields(cfg.user_template, "user_template") if f not in available]
        if missing:
            raise UserError(
                f"user_template uses {missing}, which the user table lacks; available fields: "
                f"{sorted(available)}; set TemplateConfig(user_template=...) accordingly"
            )
        return cfg.user_template
    if {"gender", "age", "occupation"} <= set(columns):
        return MOVIELENS_USER_TEMPLATE
    if not columns:
        return cfg.neutral_user_template
    return "User profile: " + ", ".join(f"{c.replace('_', ' ')} is {{{c}}}" for c in columns) + "."


def resolve_item_template(items: pd.DataFrame, cfg: TemplateConfig, fields: list[str] | None = None) -> str:
    """The item template in force: the configured one, else the one over `fields` (a run's own, so
    new items read as its catalogue did), else over the table's columns (`item_template_fields`)."""
    if cfg.item_template is not None:
        missing = [f for f in _fields(cfg.item_template, "item_template") if f not in items.columns]
        if missing:
            raise UserError(
                f"item_template uses {missing}, which the item table lacks; available fields: "
                f"{sorted(items.columns)}; set TemplateConfig(item_template=...) accordingly"
            )
        return cfg.item_template
    return item_template_for(item_template_fields(items) if fields is None else fields)


def item_template_fields(items: pd.DataFrame) -> list[str]:
    """The fields the automatic item template reads: title and genres (MovieLens' sentence) for a
    table of titles and genres (and years); else those of title, genres and year that carry data, then the
    table's own columns (name, category, description, ...): none of its metadata goes unread, and
    nothing it lacks ("Genres: unknown." for a table of titles alone) is read."""
    own = [c for c in items.columns if c != "item_id" and c not in LOADER_ITEM_COLUMNS]
    given = [c for c in LOADER_ITEM_COLUMNS if c in items.columns and not filled_in(items, c)]
    if not own and (not given or {"title", "genres"} <= set(given)):
        return ["title", "genres"]  # MovieLens' sentence (its year in the title); IDs only: as ever
    if {"title", "year"} <= set(given) and _years_in_titles(items):
        given.remove("year")  # "Heat (1995)" already says it
    return given + own


def _years_in_titles(items: pd.DataFrame) -> bool:
    return all(str(y) in str(t) for y, t in zip(items["year"].tolist(), items["title"].tolist()) if not _missing(y))


def item_template_for(fields: list[str]) -> str:
    """The automatic template over item `fields`: MOVIE_TEMPLATE for title and genres, else
    "Item: {title}. Category: {category}. ..." (a field's words from its column name)."""
    if list(fields) == ["title", "genres"]:
        return MOVIE_TEMPLATE
    head = "Item: {title}." if "title" in fields else "Item."
    return head + "".join(f" {f.replace('_', ' ').capitalize()}: {{{f}}}." for f in fields if f != "title")


def user_texts(dataset, cfg: TemplateConfig | None = None, train: pd.DataFrame | None = None) -> list[Rendered]:
    """One `Rendered` per internal user (row i = user i).

    `train`: the TRAINING interactions (internal indices); required when `cfg.history > 0`, and the
    only interactions the history ever reads.
    """
    cfg = cfg or TemplateConfig()
    template = resolve_user_template(dataset.users, cfg)
    rows = _records(dataset.users, cfg, user=True)
    history = _histories(dataset, cfg, train) if cfg.history else None
    out = []
    for i, row in enumerate(rows):
        text, spans = render(template, row)
        if history is not None:
            more, more_spans = render(cfg.history_template, {"history": history[i]}, offset=len(text))
            if history[i]:  # users with no liked training item get no history sentence
                text, spans = text + more, {**spans, **more_spans}
        out.append(Rendered(text, spans))
    return out


def item_texts(dataset, cfg: TemplateConfig | None = None, fields: list[str] | None = None) -> list[Rendered]:
    """One `Rendered` per internal item (row i = item i). Items with nothing but their IDs are
    named once per dataset: the LM would read each one as a number. `fields`: a run's item fields,
    for new items (`resolve_item_template`)."""
    cfg = cfg or TemplateConfig()
    _warn_if_bare(dataset)
    template = resolve_item_template(dataset.items, cfg, fields)
    return [Rendered(*render(template, row)) for row in _records(dataset.items, cfg, user=False)]


def texts_and_spans(rendered: list[Rendered]) -> tuple[list[str], list[dict[str, tuple[int, int]]]]:
    """Split into the two lists `TextEncoder.encode(texts, spans)` takes."""
    return [r.text for r in rendered], [r.spans for r in rendered]


def age_group(age) -> str:
    """Exact age (ML-100K) or ML-1M age code -> ML-1M group label; missing -> 'unknown'; an age
    written as text ("18-24", "adult") is its own group, as written."""
    if _missing(age):
        return UNKNOWN
    if not _numeric(age):
        return str(age).strip() or UNKNOWN
    label = AGE_GROUPS[0][1]
    for lower, name in AGE_GROUPS:
        if float(age) >= lower:
            label = name
    return label


def ages_are_text(users: pd.DataFrame | None) -> bool:
    """Whether a users table writes some age as text ("18-24"): those ages are read as groups as
    written, and a new user's profile may give one too."""
    if users is None or "age" not in users.columns:
        return False
    return any(not _numeric(v) for v in users["age"].unique() if not _missing(v))


def _numeric(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def render(template: str, values: dict, offset: int = 0) -> tuple[str, dict[str, tuple[int, int]]]:
    """Format `template` with `values`, recording each field's (start, end) character span.

    A field used twice keeps its first span. `offset` shifts spans (for text appended to another).
    """
    parts: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    pos = offset
    for literal, name, spec, conversion in string.Formatter().parse(template):
        parts.append(literal)
        pos += len(literal)
        if name is None:
            continue
        value = values.get(name, UNKNOWN)
        if conversion:
            value = {"r": repr, "s": str, "a": ascii}[conversion](value)
        piece = format(value, spec) if spec else str(value)
        parts.append(piece)
        spans.setdefault(name, (pos, pos + len(piece)))
        pos += len(piece)
    return "".join(parts), spans


def describes_items(items: pd.DataFrame) -> bool:
    """True when some item has metadata beyond its ID: a title that is not the ID itself (the loader's
    stand-in when no items table is given), a genre, or any other filled column."""
    ids = items["item_id"].astype(str) if "item_id" in items else pd.Series([""] * len(items))
    for col in items.columns:
        if col == "item_id":
            continue
        shown = [_display(v, "|") for v in items[col].tolist()]
        stand_ins = ids if col == "title" else [UNKNOWN] * len(shown)
        if any(v != UNKNOWN and str(v) != stand_in for v, stand_in in zip(shown, stand_ins)):
            return True
    return False


_WARNED_BARE: set[tuple] = set()


def _warn_if_bare(dataset) -> None:
    name = getattr(dataset, "name", "new items")
    key = (name, len(dataset.items), tuple(dataset.items.columns))
    if key in _WARNED_BARE or describes_items(dataset.items):
        return
    _WARNED_BARE.add(key)
    log.warning(
        "%s: no item has metadata beyond its ID (no items table, one with IDs only, or only empty cells), so the "
        "language model reads nothing that tells items apart; pass --items FILE with title/genres columns for the "
        "text to carry meaning",
        name,
    )


def _records(table: pd.DataFrame, cfg: TemplateConfig, user: bool) -> list[dict]:
    """Table rows as dicts of display values (missing -> 'unknown', lists joined, derived fields)."""
    columns = {}
    for col in table.columns:
        values = table[col].tolist()
        if col == "gender" and cfg.gender_words:
            values = [GENDER_WORDS.get(str(v).upper(), str(v)) if not _missing(v) else UNKNOWN for v in values]
        else:
            values = [_display(v, cfg.list_sep) for v in values]
        columns[col] = values
    if user and "age" in table.columns:
        columns["age_group"] = [age_group(v) for v in table["age"].tolist()]
    rows = [{k: v[i] for k, v in columns.items()} for i in range(len(table))]
    return rows


def _histories(dataset, cfg: TemplateConfig, train: pd.DataFrame | None) -> list[str]:
    """Per user: the last `cfg.history` liked TRAINING items, most recent first, joined."""
    if train is None:
        raise UserError(
            "history-aware user texts need the training interactions: call user_texts(dataset, cfg, "
            "train=split.train); the full interaction table would leak validation/test items"
        )
    if cfg.history_field not in dataset.items.columns:
        raise UserError(
            f"history_field '{cfg.history_field}' is not an item column; available: {list(dataset.items.columns)}"
        )
    frame = train
    if cfg.liked_threshold is not None:
        frame = frame[frame["rating"] >= cfg.liked_threshold]
    order = np.lexsort((-np.arange(len(frame)), -frame["timestamp"].to_numpy()))  # newest first, later rows first
    frame = frame.iloc[order]
    recent = frame.groupby("user", sort=False).head(cfg.history)
    names = [_display(v, cfg.list_sep) for v in dataset.items[cfg.history_field].tolist()]
    out = [[] for _ in range(dataset.n_users)]
    for user, item in zip(recent["user"].to_numpy(), recent["item"].to_numpy()):
        out[int(user)].append(names[int(item)])
    return [cfg.list_sep.join(x) for x in out]


def _fields(template: str, what: str) -> list[str]:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"{what} is not a valid format string ({exc}): {template!r}") from None
    bad = [n for n in names if not n or not n.replace("_", "a").isalnum()]
    if bad:
        raise ValueError(f"{what} must name plain columns like {{title}}, got {bad} in {template!r}")
    return names


def _missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _display(value, sep: str):
    if isinstance(value, (list, tuple, np.ndarray)):
        items = [str(v) for v in value if not _missing(v)]
        return sep.join(items) if items else UNKNOWN
    if _missing(value):
        return UNKNOWN
    if isinstance(value, np.generic):
        return value.item()
    return value
