"""One contract for every registered model: fit on data with an obvious answer, recommend, save,
load, and get the very same scores back.

Data: two disjoint user groups; group g consumes item block g. Each user's train set is their block
minus two items (one held out for valid, one for test), so a personalised model must put exactly
those two items at the top of the user's unseen items. Group 0 is larger, so its block is the most
popular: a non-personalised model must recommend group-0 items (and never a seen one). Every item of
block g has the one genre "block g", so a content model (genre_content) has the same obvious answer.

To add a model (e.g. a GPT-2 recommender), append a `Case` to CASES.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import pairs_frame
from gpt2rec.data.dataset import Dataset
from gpt2rec.data.splits import Split, SplitConfig
from gpt2rec.errors import DataError
from gpt2rec.models.base import ModelContext
from gpt2rec.models.registry import get_spec, model_names
from gpt2rec.train import checkpoint as ckpt
from gpt2rec.train.loop import TrainConfig
from gpt2rec.utils.config import from_dict

GROUP_SIZES = (14, 10)  # users per group
BLOCK = 10  # items per block


@dataclass
class Case:
    name: str
    model_config: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    personalised: bool = True


FAST = {"epochs": 60, "batch_size": 32, "lr": 0.05, "patience": 0, "seed": 0}
CASES = [
    Case("popularity", personalised=False),
    Case("itemknn", {"k": 5}),
    Case("ease", {"reg": 1.0}),
    Case("bpr", {"dim": 8}, FAST),
    Case("neumf", {"dim": 8, "mlp_layers": (16, 8)}, FAST),
    Case("genre_content", {"tiebreak": 1e-3}),
    Case("l3ae", {"lm": "tiny-gpt2", "text_cache": False, "reg": 1.0, "text_weight": 1.0, "pooling": "mean"}),
    Case(
        "l3ae_mf",
        {"lm": "tiny-gpt2", "text_cache": False, "reg": 1.0, "text_weight": 1.0, "pooling": "mean", "dim": 8},
        FAST,
    ),
    # GPT-2 recommenders on the tiny in-process GPT-2 (registered by the fixture below)
    Case("basic", {"lm": "tiny-gpt2", "text_cache": False, "dim": 8, "hidden": (16, 8), "dropout": 0.0}, FAST),
    # dim 16, batch 16: at dim 8 / batch 32 the enhanced model (contrastive off, its default) put a
    # cross-block item in 1-4 of the 24 users' top 2 on seeds 0-2; this setting gets all three right
    Case(
        "enhanced",
        {"lm": "tiny-gpt2", "text_cache": False, "dim": 16, "n_heads": 2, "dropout": 0.0, "id_dropout": 0.0},
        FAST | {"batch_size": 16},
    ),
]


@pytest.fixture(autouse=True)
def _tiny_lm(tiny_lm):
    """Lets a model config say lm='tiny-gpt2' (the GPT-2 recommenders' cases)."""
    yield


def make_data() -> tuple[Dataset, Split]:
    rows = {"train": [], "valid": [], "test": []}
    user = 0
    for g, size in enumerate(GROUP_SIZES):
        block = [g * BLOCK + j for j in range(BLOCK)]
        for m in range(size):
            valid, test = block[m % BLOCK], block[(m + 1) % BLOCK]
            for item in block:
                part = "valid" if item == valid else "test" if item == test else "train"
                rows[part].append((user, item))
            user += 1
    frames = {part: pairs_frame(r) for part, r in rows.items()}
    n_users, n_items = sum(GROUP_SIZES), BLOCK * len(GROUP_SIZES)
    raw = pd.concat(frames.values()).rename(columns={"user": "user_id", "item": "item_id"})
    raw["user_id"] += 1
    raw["item_id"] += 1
    genres = [[f"block {i // BLOCK}"] for i in range(n_items)]  # internal item i has raw ID i + 1
    items = pd.DataFrame({"item_id": np.arange(1, n_items + 1), "genres": genres})
    dataset = Dataset.from_frames("blocks", raw, items=items)
    assert (dataset.n_users, dataset.n_items) == (n_users, n_items)
    return dataset, Split(frames["train"], frames["valid"], frames["test"], SplitConfig())


BASELINES = {"popularity", "itemknn", "ease", "bpr", "neumf"}


def test_every_registered_model_has_a_case():
    names = {c.name for c in CASES}
    assert names <= set(model_names()) and BASELINES <= names
    missing = sorted(set(model_names()) - names)
    assert not missing, f"no contract case for {', '.join(missing)}: append a Case to CASES"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_model_contract(case: Case, tmp_path):
    from gpt2rec.pipeline import fit_model, recommend_items

    dataset, split = make_data()
    n_users, n_items = dataset.n_users, dataset.n_items
    spec = get_spec(case.name)
    config = from_dict(spec.config_cls, case.model_config)
    torch.manual_seed(0)
    ctx = ModelContext(n_users, n_items, dataset, split.train, torch.device("cpu"))
    model = spec.build(config, ctx)
    assert (model.n_users, model.n_items, model.config) == (n_users, n_items, config)
    fit_model(spec, model, ctx, split, TrainConfig(**case.train), tmp_path / "train", verbose=False)
    model.eval()

    users = torch.arange(n_users)
    with torch.no_grad():
        scores = model.score_users(users)  # (U, I)
        pairs = model.score_pairs(users.repeat_interleave(n_items), torch.arange(n_items).repeat(n_users))
    assert scores.shape == (n_users, n_items)
    torch.testing.assert_close(pairs.view(n_users, n_items), scores, rtol=1e-4, atol=1e-5)

    train = split.train.groupby("user")["item"].apply(list)
    held = pd.concat([split.valid, split.test]).groupby("user")["item"].apply(set)
    for u in range(n_users):
        items, item_scores = recommend_items(model, u, 2, np.array(train[u]))
        assert not set(items.tolist()) & set(train[u]), "a seen item was recommended"
        assert np.all(np.diff(item_scores) <= 0)
        if case.personalised:
            assert set(items.tolist()) == held[u], f"user {u}: got {items}, expected {held[u]}"
        else:
            assert all(i < BLOCK for i in items), f"user {u}: {items} are not the popular block"

    run = tmp_path / "run"
    ckpt.save_config(run, {"model": case.name, "model_config": ckpt.model_config_dict(model)})
    ckpt.save_id_maps(run, dataset)
    ckpt.save_model(run, model)
    loaded = ckpt.load_model(run, dataset)
    assert type(loaded) is type(model) and loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded.score_users(users), scores)
    reloaded_items, _ = recommend_items(loaded, 0, 2, np.array(train[0]))
    assert np.array_equal(reloaded_items, recommend_items(model, 0, 2, np.array(train[0]))[0])
    # without the dataset: the model is built at the shape saved with it and gives the same scores
    bare = ckpt.load_model(run)
    with torch.no_grad():
        assert torch.equal(bare.score_users(users), scores)

    # a model file from before checkpoint metadata existed: it loads, or one line says to retrain
    ckpt.save_tensors_meta(run / ckpt.MODEL, ckpt.flat_tensors("", model.state_dict()))
    if hasattr(model, "checkpoint_meta"):
        with pytest.raises(DataError, match=r"older gpt2rec.*retrain it") as err:
            ckpt.load_model(run)
        assert "\n" not in str(err.value)
    else:
        with torch.no_grad():
            assert torch.equal(ckpt.load_model(run).score_users(users), scores)

    # bad IDs: one ValueError for every model (a negative index used to count from a matrix's end,
    # a float one was truncated); lists are taken as tensors
    with torch.no_grad():
        torch.testing.assert_close(model.score_users([0, 1]), scores[:2])
        for bad, words in ((torch.tensor([-1]), "user index -1 is outside 0..23"),
                           (torch.tensor([n_users]), "user index 24 is outside"),
                           (torch.tensor([1.0]), "must be integer indices"), (torch.tensor(1), "1-D tensor")):  # fmt: skip
            with pytest.raises(ValueError, match=words):
                model.score_users(bad)
        with pytest.raises(ValueError, match="item index -2 is outside 0..19"):
            model.score_pairs(torch.tensor([0]), torch.tensor([-2]))
        with pytest.raises(ValueError, match=r"one shape \(B,\), got \(1,\) and \(3,\)"):
            model.score_pairs(torch.tensor([0]), torch.tensor([0, 1, 2]))

    # regression: k larger than the user's unseen items returns every unseen item, never a seen one
    items, _ = recommend_items(model, 0, n_items + 5, np.array(train[0]))
    assert sorted(items.tolist()) == sorted(set(range(n_items)) - set(train[0]))

    # regression: moved to another device (meta: storage dropped) and back, then reloaded: no scoring
    # cache may survive from the old storage
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.to("meta").to_empty(device="cpu").load_state_dict(state, strict=True)
    with torch.no_grad():
        assert torch.equal(model.score_users(users), scores)
