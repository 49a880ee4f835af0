"""l3ae's routes for users and items outside its training data, given only as metadata.

- A brand-new user (a profile) is scored like a cold user: the share of the `cold_user_k` known users
  whose LM profile vectors are nearest who had each item (`profile_neighbours`).
- A request in plain words is read like an item sentence (`encode_text`), to rank the items by
  the cosine of their vectors (`gpt2rec.query`).
- A brand-new item (a metadata row) is scored by its text column: c_n, the text EASE's column for n,
  is the ridge regression of its unit vector f_n on the catalogue's unit vectors F (I, D) (Schur
  complement), and its column of B is c_n scaled by mu / (reg + mu), the column a catalogue item
  gets as reg and mu grow (P -> I / (reg + mu), B -> C):
      c_n = (F F^T + text_reg I)^-1 F f_n = F (F^T F + text_reg I)^-1 f_n
  so score(u, n) = x_u^T M f_n with M = mu / (reg + mu) F (F^T F + text_reg I)^-1 (I, D), kept
  from the fit. It is not the joint fit's column of a catalogue item without interactions,
  mu P c_n: P reweights the user's history by the inverse co-counts, which shrinks an unseen item
  towards 0 (right for a catalogue item nobody chose in training) but ranks new items poorly. On
  ML-100K cold-item VALIDATION at the defaults, ranking the held-out items among themselves (5
  draws): minilm 0.172 joint vs 0.322 text, gemma3-270m 0.173 vs 0.309; in one ranking with the
  known items (10% of training held out too, 3 draws) minilm 0.2779 vs 0.2791 (`benchmarks/README.md`).
  In such a mixed ranking the new items' columns are small beside the known items' co-occurrence
  columns, and a new item seldom reaches a top 10: `new_item_scale` multiplies w = mu / (reg + mu)
  (default 3, from the bench's mixed protocol, where known and new items compete; `--split mixed
  --tune` searches it on one's own data).

The sentences are rendered with the run's template and read by the run's LM, loaded on first need
(items with the LoRA adapters it was tuned with, `l3ae_tune`, when it was).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from .text_features import encode_rendered, field_names, make_encoder, resolve_lm_name
from .text_source import TextInfo


def text_info(config, dataset, dim: int) -> TextInfo:
    """What new users' profiles and new items' rows are read with: the LM, the template's fields,
    the metadata columns, the vectors' width."""
    from ..text.templates import ages_are_text, item_texts, user_texts

    users = [] if dataset.users is None else list(user_texts(dataset, config.template))
    return TextInfo(
        lm=resolve_lm_name(config.lm),
        user_fields=field_names(users),
        item_fields=field_names(item_texts(dataset, config.template)),
        text_dim=int(dim),
        user_columns=[] if dataset.users is None else [c for c in dataset.users.columns if c != "user_id"],
        item_columns=[c for c in dataset.items.columns if c != "item_id"],
        item_titles_column="title" if "title" in dataset.items.columns else None,
        text_ages=ages_are_text(dataset.users),
    )


def item_sentences(config, data, fields: list[str] | None = None) -> list:
    """The items' sentences (`Rendered`) as l3ae reads them: the template (over the run's item
    `fields` for new items), wrapped in `prompt` when set (the spans then no longer match the text:
    the config refuses fields pooling with a prompt)."""
    from ..text.templates import Rendered, item_texts

    rendered = item_texts(data, config.template, fields)
    if config.prompt:
        rendered = [Rendered(config.prompt_format.replace("{text}", r.text), {}) for r in rendered]
    return rendered


def read_items(encoder, rendered: list, fields: list[str] | None, use_cache: bool) -> torch.Tensor:
    """(N, D) item vectors: the sentence vector, or the mean of the per-field vectors (`fields`)."""
    vecs = encode_rendered(encoder, rendered, fields, use_cache, progress=False).float()
    return vecs.mean(1) if vecs.dim() == 3 else vecs  # (N, F, D) -> (N, D)


def new_item_weight(config) -> float:
    """w: a new item's column of B is w C[:, j]. mu / (reg + mu) is the closed form's limit for an item
    without interactions; `new_item_scale` calibrates it against the known items' columns, which
    matters only where new and known items are ranked together (the bench's mixed protocol)."""
    return config.new_item_scale * config.text_weight / (config.reg + config.text_weight)


def new_item_map(f: torch.Tensor, weight: float, text_reg: float) -> torch.Tensor:
    """M (I, D) = w F (F^T F + text_reg I)^-1, from the unit item vectors F (I, D)."""
    eye = torch.eye(f.shape[1], dtype=f.dtype, device=f.device)
    ridge = torch.linalg.solve(f.T @ f + text_reg * eye, f.T)  # (D, I) = (F^T F + l I)^-1 F^T
    return weight * ridge.T  # (I, D)


def text_columns(b: torch.Tensor, c: torch.Tensor, items: torch.Tensor, weight: float) -> torch.Tensor:
    """B (I, I) with the columns of `items` (catalogue items known to be new) replaced by their text
    columns w C[:, j], the route of brand-new items (C's diagonal is 0: B's stays 0)."""
    b[:, items] = weight * c[:, items].to(b)
    return b


def _encoder(model, pooling: str, items: bool):
    """The run's LM, loaded once: for `items` (new items, plain words) with the tuned adapters the
    catalogue was read with, if any; for profiles always frozen (as the users were read)."""
    adapters = model.lm_adapter.tensors() if items else {}
    key = ("items" if adapters else "frozen", pooling)
    if key not in model._lm:
        cfg, device = model.config, model.weight.device
        if adapters:
            from .l3ae_tune import encoder_with_adapters

            encoder = encoder_with_adapters(cfg, model.text_info.lm, device, pooling, cfg.tune_blocks, adapters)
        else:
            encoder = make_encoder(cfg, model.text_info.lm, device, pooling)
        model._lm[key] = encoder
    return model._lm[key]


@torch.no_grad()
def score_new_user(model, profile: dict) -> torch.Tensor:
    """Scores (I,) of a brand-new user given only as a metadata profile."""
    from .new_entities import new_user_text

    info = model.text_info
    if info is not None and not info.user_columns:  # cold_users=neighbours would not help here
        raise ValueError(
            "this l3ae run was trained without a users table, so it has no profiles to compare a new "
            "user's with; retrain it with --users FILE (user_id and profile columns, e.g. age, gender)"
        )
    if model.neighbours is None or info is None or not info.user_fields:
        raise ValueError(
            "this l3ae run cannot score new users (trained with cold_users='none', or before the "
            "profile route existed); retrain it with cold_users=neighbours"
        )
    rendered = new_user_text(info, model.config.template, profile)
    text = encode_rendered(_encoder(model, "fields", items=False), [rendered], info.user_fields, False, False).float()
    text = text if text.dim() == 3 else text.unsqueeze(1)  # (1, F, D)
    known = model.user_known.nonzero().squeeze(1)  # (K,)
    return model.neighbours(text, model.user_text[known], known, model.profile_mean, model.profile_std)[0]


@torch.no_grad()
def encode_text(model, text: str) -> torch.Tensor:
    """(D,) the LM vector of `text`, pooled as the items were (wrapped in the run's prompt), centred
    as they were."""
    from ..text.templates import Rendered

    if model.item_text is None:
        raise ValueError("this l3ae run keeps no item text vectors (text_weight=0, or saved before); retrain it")
    cfg = model.config
    pooling = cfg.item_pooling(model.text_info.lm)
    if cfg.prompt:
        text = cfg.prompt_format.replace("{text}", text)
    rendered = Rendered(text, {"query": (0, len(text))})
    vec = encode_rendered(
        _encoder(model, pooling, items=True), [rendered], ["query"] if pooling == "fields" else None, False, False
    )
    return vec.float().reshape(-1).to(model.text_mean) - model.text_mean  # (D,)


@torch.no_grad()
def score_new_items(model, user: int, items_df) -> torch.Tensor:
    """Scores (N,) of brand-new items (a metadata table) for the known internal user `user`."""
    if not 0 <= int(user) < model.n_users:
        raise ValueError(f"user index {user} is out of range (0..{model.n_users - 1})")
    _, columns, _ = new_item_rows(model, items_df)  # (N, I)
    hist = model.history.dense(torch.tensor([int(user)], device=model.weight.device))  # (1, I)
    return (hist @ columns.T)[0]  # (N,)


@torch.no_grad()
def new_item_rows(model, items_df) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """New items encoded once, for repeated scoring: their unit vectors (N, 1, D), their columns of
    B as rows (N, I) (M f_n: a user's score is the training-item row (I,) times it) and zero
    biases (N,)."""
    from .new_entities import normalise_items

    if model.item_map is None:
        raise ValueError(
            "this l3ae run cannot score new items (text_weight=0, or saved before the new-item route "
            "existed); retrain it with text_weight > 0"
        )
    cfg, info = model.config, model.text_info
    df = normalise_items(info, items_df)
    rendered = item_sentences(cfg, SimpleNamespace(items=df, n_items=len(df)), info.item_fields)
    pooling = cfg.item_pooling(info.lm)
    fields = info.item_fields if pooling == "fields" else None
    vecs = read_items(
        _encoder(model, pooling, items=True), rendered, fields, False
    )  # (N, D), as the catalogue's were read
    f = torch.nn.functional.normalize(vecs.to(model.item_map) - model.text_mean, dim=1)  # (N, D)
    return f.unsqueeze(1), f @ model.item_map.T, f.new_zeros(len(f))  # (N, 1, D), (N, I), (N,)
