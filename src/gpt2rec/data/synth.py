"""A large synthetic catalog with a known structure, for scale tests and the scale benchmark.

Users belong to one of `n_clusters` taste clusters; cluster c likes genre c. Items have a primary
genre (and sometimes a second one) and a power-law popularity (weight rank^-alpha, ranks shuffled).
Each interaction is drawn, with probability `affinity`, from the items of the user's cluster genre
(by popularity within the genre), otherwise from the whole catalog (by popularity). User activity is
power-law too, with at least `min_per_user` interactions each when the budget allows.

The metadata carries the cluster: a user's `favourite_genre` is their cluster's genre with
probability `signal` (else a random genre), and an item's `genres` start with its primary genre, so
a text model can learn what the IDs alone learn slowly for rare users and items. Titles come from a
small word pool and user fields are coarse, so sentences repeat (deduplication matters when
encoding them). Everything is vectorised numpy; the same seed writes the same files.

Files: interactions.parquet (user_id, item_id, rating, timestamp), users.parquet (user_id, gender,
age, favourite_genre), items.parquet (item_id, title, genres "A|B", year), synth.json (the settings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..utils.io import atomic_path, write_json

GENRES = (
    "Action", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary", "Drama", "Family",
    "Fantasy", "History", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Sport", "Thriller", "War",
    "Western",
)  # fmt: skip
_ADJECTIVES = (
    "Silent", "Golden", "Broken", "Hidden", "Last", "Crimson", "Electric", "Frozen", "Lonely", "Midnight",
    "Wild", "Secret", "Burning", "Distant", "Quiet", "Savage", "Bright", "Lost", "Iron", "Velvet",
)  # fmt: skip
_NOUNS = (
    "Harbor", "Empire", "Garden", "River", "Machine", "Promise", "Kingdom", "Mirror", "Station", "Horizon",
    "Letter", "Island", "Storm", "Circus", "Frontier", "Dream", "Shadow", "Voyage", "Tower", "Orchard",
)  # fmt: skip
_AGES = np.array([16, 21, 30, 40, 47, 52, 60])


@dataclass
class SynthConfig:
    users: int = field(default=10_000, metadata={"help": "number of users"})
    items: int = field(default=10_000, metadata={"help": "number of items"})
    interactions: int = field(default=100_000, metadata={"help": "number of distinct (user, item) interactions"})
    seed: int = field(default=0, metadata={"help": "random seed (same seed, same files)"})
    n_clusters: int = field(default=len(GENRES), metadata={"help": f"taste clusters (<= {len(GENRES)} genres)"})
    affinity: float = field(default=0.8, metadata={"help": "share of a user's interactions in their cluster genre"})
    signal: float = field(default=0.8, metadata={"help": "chance a user's favourite_genre names their cluster"})
    alpha: float = field(default=0.9, metadata={"help": "item popularity exponent (weight = rank^-alpha)"})
    min_per_user: int = field(default=3, metadata={"help": "interactions every user gets at least"})

    def __post_init__(self):  # validation only (typed conversion: utils.config.from_dict)
        for name in ("users", "items", "interactions"):
            if getattr(self, name) < 1:
                raise ValueError(f"synth {name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"synth seed must be an integer >= 0, got {self.seed}")
        if not 1 <= self.n_clusters <= len(GENRES):
            raise ValueError(f"synth n_clusters must be in 1..{len(GENRES)}, got {self.n_clusters}")
        if self.interactions > self.users * self.items // 2:
            raise ValueError(
                f"{self.interactions} interactions do not fit {self.users} users x {self.items} items at "
                f"<= 50% density; raise --users/--items or lower --interactions"
            )
        for name in ("affinity", "signal"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"synth {name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class SynthData:
    interactions: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    user_cluster: np.ndarray  # (U,) the cluster (= genre index) of each user, by user_id order
    item_genre: np.ndarray  # (I,) primary genre index of each item


def generate(cfg: SynthConfig) -> SynthData:
    """The synthetic tables (user_id = 1..U, item_id = 1..I), built with vectorised numpy."""
    rng = np.random.default_rng(cfg.seed)
    n_u, n_i, n_c = cfg.users, cfg.items, cfg.n_clusters
    item_genre = rng.integers(0, n_c, n_i)  # (I,)
    weight = rng.permutation(np.arange(1, n_i + 1, dtype=np.float64) ** -cfg.alpha)  # (I,) power law
    user_cluster = rng.integers(0, n_c, n_u)  # (U,)

    # Draw, keep distinct (user, item) pairs, draw again for the shortfall (popular items repeat),
    # then trim to the budget in random order, never a user's guaranteed first draws.
    want = cfg.interactions
    base = min(cfg.min_per_user, want // n_u)  # guaranteed draws per user, within the budget
    users = _draw_users(rng, n_u, int(want * 1.3) + 16, base)  # (D,)
    items = _draw_items(rng, users, user_cluster, item_genre, weight, n_c, cfg.affinity)  # (D,)
    for _ in range(100):
        _, first = np.unique(users * n_i + items, return_index=True)
        if len(first) >= want:
            break
        more = _draw_users(rng, n_u, 2 * (want - len(first)) + 16, 0)
        first = np.sort(first)  # keep draw order, so the guaranteed draws stay in front
        users = np.concatenate([users[first], more])
        items = np.concatenate(
            [items[first], _draw_items(rng, more, user_cluster, item_genre, weight, n_c, cfg.affinity)]
        )
    else:
        raise UserError(f"could not draw {want} distinct interactions; raise --users/--items")
    keep = np.sort(first)  # earliest draw of each distinct pair (the guaranteed draws come first)
    fixed, free = keep[keep < n_u * base], keep[keep >= n_u * base]
    keep = np.sort(np.concatenate([fixed, rng.choice(free, max(0, want - len(fixed)), replace=False)]))
    users, items = users[keep], items[keep]
    in_cluster = item_genre[items] == user_cluster[users]
    rating = np.where(in_cluster, rng.integers(4, 6, len(users)), rng.integers(1, 6, len(users)))
    timestamp = 1_600_000_000 + np.sort(rng.integers(0, 10**8, len(users)))
    interactions = pd.DataFrame(
        {
            "user_id": users + 1,
            "item_id": items + 1,
            "rating": rating.astype(np.float32),
            "timestamp": rng.permutation(timestamp),
        }
    )
    return SynthData(
        interactions, _user_table(rng, cfg, user_cluster), _item_table(rng, item_genre), user_cluster, item_genre
    )


def write(cfg: SynthConfig, out: str | Path) -> dict:
    """Generate and write the Parquet files (atomically) into `out`; returns a summary."""
    out = Path(out)
    data = generate(cfg)
    for name, frame in (("interactions", data.interactions), ("users", data.users), ("items", data.items)):
        with atomic_path(out / f"{name}.parquet") as tmp:
            frame.to_parquet(tmp, index=False)
    summary = {
        **asdict(cfg),
        "written_interactions": len(data.interactions),
        "interactions_path": str(out / "interactions.parquet"),
        "users_path": str(out / "users.parquet"),
        "items_path": str(out / "items.parquet"),
    }
    write_json(out / "synth.json", summary)
    return summary


def _draw_users(rng: np.random.Generator, n_u: int, draws: int, base: int) -> np.ndarray:
    """Every user `base` times first, the rest by power-law activity."""
    fixed = np.repeat(np.arange(n_u, dtype=np.int64), base)
    activity = rng.permutation(np.arange(1, n_u + 1, dtype=np.float64) ** -0.7)
    cdf = np.cumsum(activity)
    rest = np.searchsorted(cdf, rng.random(draws - len(fixed)) * cdf[-1], side="right")
    return np.concatenate([fixed, np.minimum(rest, n_u - 1)])


def _draw_items(rng, users, user_cluster, item_genre, weight, n_c, affinity) -> np.ndarray:
    """Per draw: from the user's cluster genre with probability `affinity`, else from all items."""
    n = len(users)
    # Items sorted by genre; key = genre + within-genre cumulative share is increasing, so one
    # searchsorted of (genre + u) draws from that genre's popularity distribution.
    order = np.lexsort((np.arange(len(item_genre)), item_genre))
    g_sorted, w_sorted = item_genre[order], weight[order]
    cum = np.cumsum(w_sorted)
    start = np.searchsorted(g_sorted, np.arange(n_c))  # first sorted position of each genre
    end = np.searchsorted(g_sorted, np.arange(n_c), side="right")
    before = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0.0)
    total = cum[np.maximum(end - 1, 0)] - before
    key = g_sorted + (cum - before[g_sorted]) / np.where(total > 0, total, 1.0)[g_sorted]  # (I,)
    genre = user_cluster[users]
    empty = end[genre] == start[genre]  # a genre without items: draw from the catalog instead
    local = rng.random(n) < affinity
    q = genre + rng.random(n)
    pos = np.minimum(np.searchsorted(key, q, side="left"), len(key) - 1)
    in_genre = order[pos]
    cdf = np.cumsum(weight)
    anywhere = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(weight) - 1)
    return np.where(local & ~empty, in_genre, anywhere).astype(np.int64)


def _user_table(rng, cfg: SynthConfig, user_cluster: np.ndarray) -> pd.DataFrame:
    n = len(user_cluster)
    honest = rng.random(n) < cfg.signal
    favourite = np.where(honest, user_cluster, rng.integers(0, cfg.n_clusters, n))
    return pd.DataFrame(
        {
            "user_id": np.arange(1, n + 1),
            "gender": np.array(["F", "M"])[rng.integers(0, 2, n)],
            "age": _AGES[rng.integers(0, len(_AGES), n)],
            "favourite_genre": np.array(GENRES)[favourite],
        }
    )


def _item_table(rng, item_genre: np.ndarray) -> pd.DataFrame:
    n = len(item_genre)
    names = np.array([f"The {a} {b}" for a in _ADJECTIVES for b in _NOUNS])
    second = rng.integers(0, len(GENRES), n)
    has_second = (rng.random(n) < 0.5) & (second != item_genre)
    genres = np.array(GENRES, dtype=object)
    label = np.where(has_second, genres[item_genre] + "|" + genres[second], genres[item_genre])
    return pd.DataFrame(
        {
            "item_id": np.arange(1, n + 1),
            "title": names[rng.integers(0, len(names), n)],
            "genres": label.astype(str),
            "year": rng.integers(1950, 2026, n),
        }
    )
