"""Shared fixtures. `tiny_gpt2`: a 2-layer, 32-wide GPT-2 and a byte-level BPE tokenizer trained here.

    def test_x(tiny_gpt2):
        model, tokenizer = tiny_gpt2          # GPT2Model (fresh, seeded) + GPT2TokenizerFast (pad set)
        enc = TextEncoder(EncoderConfig(), model=model, tokenizer=tokenizer)

No network, no files: the tokenizer is trained once per session (~0.1 s) on the sentences below;
each test gets a fresh model (seed 0), so tests may modify it (LoRA injection, training).
"""

from __future__ import annotations

import pytest

TINY_CORPUS = [
    "User profile: Gender is male, Age group is 25-34, Occupation is engineer.",
    "User profile: Gender is female, Age group is under 18, Occupation is student.",
    "User profile: Gender is male, Age group is 56+, Occupation is retired. Recently liked: Heat, Fargo.",
    "Movie: Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "Movie: GoldenEye (1995). Genres: Action, Adventure, Thriller.",
    "Movie: Four Rooms (1995). Genres: Thriller. The quick brown fox jumps over the lazy dog.",
]


def train_tiny_tokenizer():
    """The byte-level BPE tokenizer of the tiny GPT-2 (deterministic: the same in every process)."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        TINY_CORPUS * 3, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"], show_progress=False
    )
    return bpe._tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer_object():
    return train_tiny_tokenizer()


def make_tiny_gpt2(tokenizer_object, seed: int = 0, n_layer: int = 2):
    """(GPT2Model, GPT2TokenizerFast) with the pad token set to <|endoftext|>."""
    import torch
    from transformers import GPT2Config, GPT2Model, GPT2TokenizerFast

    tokenizer = GPT2TokenizerFast(
        tokenizer_object=tokenizer_object.__class__.from_str(tokenizer_object.to_str()),
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=n_layer,
        n_head=2,
        n_embd=32,
        vocab_size=len(tokenizer),
        n_positions=64,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2Model(config).eval()
    return model, tokenizer


@pytest.fixture
def tiny_gpt2(tiny_tokenizer_object):
    return make_tiny_gpt2(tiny_tokenizer_object)


@pytest.fixture
def tiny_gpt2_4layers(tiny_tokenizer_object):
    return make_tiny_gpt2(tiny_tokenizer_object, n_layer=4)


@pytest.fixture
def tiny_gpt2_factory(tiny_tokenizer_object):
    """A callable `(seed=0, n_layer=2) -> (model, tokenizer)` for tests that need several fresh copies."""
    return lambda seed=0, n_layer=2: make_tiny_gpt2(tiny_tokenizer_object, seed=seed, n_layer=n_layer)


def write_ml100k_folder(folder, n_users: int = 12, n_items: int = 16):
    """u.data / u.user / u.item in the GroupLens ml-100k format: users in the first half rate the
    first half of the items, the others the second half (an obvious answer)."""
    half_u, half_i = n_users // 2, n_items // 2
    rows = []
    for u in range(1, n_users + 1):
        block = range(1, half_i + 1) if u <= half_u else range(half_i + 1, n_items + 1)
        rows += [f"{u}\t{i}\t{1 + (u + i) % 5}\t{880000000 + 10 * u + i}" for i in block]
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    users = [f"{u}|{20 + u}|{'MF'[u % 2]}|student|0{u:04d}" for u in range(1, n_users + 1)]
    (folder / "u.user").write_text("\n".join(users) + "\n")
    flags = "|".join(["0"] * 18 + ["1"])
    items = [
        f"{i}|Movie {i} (199{i % 10})|01-Jan-199{i % 10}||http://example.org/{i}|{flags}" for i in range(1, n_items + 1)
    ]
    (folder / "u.item").write_text("\n".join(items) + "\n", encoding="latin-1")
    return folder


@pytest.fixture
def tiny_lm(tiny_tokenizer_object):
    """Registers lm='tiny-gpt2' (a fresh tiny GPT-2 per load) for the GPT-2 recommenders."""
    from gpt2rec.models.text_features import register_lm

    register_lm("tiny-gpt2", lambda: make_tiny_gpt2(tiny_tokenizer_object))
    yield "tiny-gpt2"
    register_lm("tiny-gpt2", None)


def pairs_frame(pairs):
    """Interactions (internal indices) from (user, item) pairs: rating 1, timestamp 0."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        {
            "user": np.array([u for u, _ in pairs], np.int64),
            "item": np.array([i for _, i in pairs], np.int64),
            "rating": np.ones(len(pairs), np.float32),
            "timestamp": np.zeros(len(pairs), np.int64),
        }
    )


@pytest.fixture(scope="session")
def served_run_dir(tmp_path_factory, tiny_tokenizer_object):
    """The tiny enhanced run of `serve_fixtures` (comedy and horror fans), trained once per session
    with lm='tiny-gpt2'; tests that write serve a copy of it (`serve_fixtures.served_copy`)."""
    from gpt2rec.models.text_features import register_lm
    from serve_fixtures import train_tiny_run

    register_lm("tiny-gpt2", lambda: make_tiny_gpt2(tiny_tokenizer_object))
    yield train_tiny_run(tmp_path_factory.mktemp("served"), "tiny-gpt2")
    register_lm("tiny-gpt2", None)


@pytest.fixture(scope="module")
def ml(tmp_path_factory):
    """A small MovieLens-100K-format folder (12 users, 16 items), one per test module."""
    return write_ml100k_folder(tmp_path_factory.mktemp("ml-100k"), 12, 16)
