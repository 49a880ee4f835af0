"""A tiny served run with an obvious answer, trained once per test module.

12 users, 12 items: items 1-6 are comedies, 7-12 horror films; users 1-6 hold every comedy but one
(user u misses comedy u % 6 + 1), users 7-12 every horror film but one (user u misses u % 6 + 7).
Leave-one-out split: each user's last two films (by timestamp) are held out, so a user trains on
three films of their block and the obvious answer is a film of the same block.
"""

from __future__ import annotations

from pathlib import Path

COMEDY, HORROR = range(1, 7), range(7, 13)


def missing(user: int) -> int:
    return user % 6 + (1 if user <= 6 else 7)


def text_id(kind: str, n: int) -> str:
    """The text ID of user or item `n` in `write_data(text_ids=True)`: users "u1", items "001" (a
    leading zero: the loaders keep such IDs as text)."""
    return f"u{n}" if kind == "user" else f"{n:03d}"


def write_data(folder: Path, text_ids: bool = False) -> dict:
    user, item = (lambda n: text_id("user", n), lambda n: text_id("item", n)) if text_ids else (str, str)
    rows = []
    for u in range(1, 13):
        block = COMEDY if u <= 6 else HORROR
        rows += [f"{user(u)},{item(i)},5,{1000 + i}" for i in block if i != missing(u)]
    (folder / "ratings.csv").write_text("user_id,item_id,rating,timestamp\n" + "\n".join(rows) + "\n")
    occupations = ["student", "writer", "engineer"]
    users = [f"{user(u)},{'MF'[u % 2]},{18 + u},{occupations[u % 3]}" for u in range(1, 13)]
    (folder / "users.csv").write_text("user_id,gender,age,occupation\n" + "\n".join(users) + "\n")
    items = [f"{item(i)},Funny Film {i} (199{i % 10}),Comedy" for i in COMEDY]
    items += [f"{item(i)},Scary Film {i} (198{i % 10}),Horror" for i in HORROR]
    (folder / "items.csv").write_text("item_id,title,genres\n" + "\n".join(items) + "\n")
    return {k: str(folder / f"{k if k != 'dataset' else 'ratings'}.csv") for k in ("dataset", "users", "items")}


def train_tiny_run(folder: Path, lm: str, model: str = "enhanced", model_config: dict | None = None) -> Path:
    from gpt2rec.pipeline import RunConfig, train_run

    config = RunConfig.create(
        model=model,
        model_config={"lm": lm, "text_cache": False, **(model_config or {"dim": 8, "n_heads": 2})},
        data=write_data(folder),
        split={"kind": "loo"},
        train={"epochs": 15, "batch_size": 8, "lr": 0.03, "patience": 0, "seed": 0},
    )
    train_run(config, folder / "run", verbose=False)
    return folder / "run"


def served_copy(run: Path, dest: Path, api_key: str | None = None):
    """A TestClient over a fresh copy of `run` (writes stay in the copy)."""
    import shutil

    from fastapi.testclient import TestClient

    from gpt2rec.serve.app import create_app
    from gpt2rec.serve.service import load_service

    if not dest.exists():
        shutil.copytree(run, dest)
    return TestClient(create_app(load_service(dest), api_key=api_key))
