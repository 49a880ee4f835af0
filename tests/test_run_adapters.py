"""LoRA adapters in run folders: saved apart by peft's own functions, loaded back exactly; resume and
folders from before the split still work."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from gpt2_fixtures import ctx_for, enhanced
from gpt2rec.data.splits import Split, SplitConfig
from gpt2rec.errors import DataError
from gpt2rec.train import checkpoint as ckpt
from gpt2rec.train.loop import TrainConfig, fit
from gpt2rec.utils.config import to_dict

USERS = torch.arange(8)


def split_of(train):
    held = train.groupby("user").head(1)
    rest = train.drop(held.index).reset_index(drop=True)
    return Split(rest, held.reset_index(drop=True), held.reset_index(drop=True), SplitConfig())


def scores(model):
    model.eval()
    with torch.no_grad():
        return model.score_users(USERS)  # (8, 6)


def trained_run(tiny_lm, out, epochs=2, fast=True):
    """An end-to-end (LoRA) enhanced model trained `epochs` epochs, its run folder written to `out`."""
    model, dataset, train = enhanced(tiny_lm, strategy="end2end", top_n_blocks=1, dynamic_sample=0, fast=fast)
    split = split_of(train)
    fit(model, ctx_for(dataset, split.train), split, TrainConfig(epochs=epochs, batch_size=8, lr=0.01, patience=0), out)
    ckpt.save_config(out, {"model": "enhanced", "model_config": to_dict(model.config)})
    ckpt.save_id_maps(out, dataset)
    ckpt.save_model(out, model)
    return model, dataset, split


def test_lora_run_folder_holds_peft_adapters_apart_and_loads_exactly(tiny_lm, tmp_path):
    from peft import get_peft_model_state_dict

    model, dataset, _ = trained_run(tiny_lm, tmp_path)
    peft_names = set(get_peft_model_state_dict(model.text.lm.runtime.backbone))
    assert peft_names and all("lora_" in k for k in peft_names)

    adapter = load_file(str(tmp_path / ckpt.ADAPTER))
    assert set(adapter) == peft_names  # peft's names, and nothing else
    own = load_file(str(tmp_path / ckpt.MODEL))
    assert not any(k.startswith("text.lm.") or "lora" in k for k in own)
    assert "user_emb.weight" in own
    last = load_file(str(tmp_path / "last.safetensors"))  # the resume checkpoint: the same split
    assert {k[len("adapter.") :] for k in last if k.startswith("adapter.")} == peft_names
    assert not any(k.startswith("model.text.lm.") for k in last)

    loaded = ckpt.load_model(tmp_path, dataset)
    assert torch.equal(scores(loaded), scores(model))
    for name, value in get_peft_model_state_dict(loaded.text.lm.runtime.backbone).items():
        assert torch.equal(value, adapter[name])
    assert any(adapter[n].abs().sum() > 0 for n in peft_names if "lora_B" in n)  # trained (B starts at 0)


@pytest.mark.parametrize("fast", [True, False])
def test_resume_with_adapters_is_bit_identical(tiny_lm, tmp_path, fast):
    # regression (fast): the dynamic step took `fast_encoder or encode_train`, and a FastEncoder with an
    # empty cache is falsy, so fast mode only began once a refresh had filled it: a resumed run (empty
    # cache) trained its next epoch on the slow path and ended with other scores (max difference 0.077)
    straight, _, _ = trained_run(tiny_lm, tmp_path / "straight", epochs=2, fast=fast)
    assert straight.text.fast_encoder is None or straight.text.fast_encoder.cache_misses > 0
    trained_run(tiny_lm, tmp_path / "resumed", epochs=1, fast=fast)
    resumed, _, _ = trained_run(tiny_lm, tmp_path / "resumed", epochs=2, fast=fast)  # picks up last.safetensors
    assert torch.equal(scores(resumed), scores(straight))
    a, b = (load_file(str(tmp_path / name / ckpt.ADAPTER)) for name in ("resumed", "straight"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_folders_from_before_the_split_load_or_say_retrain(tiny_lm, tmp_path):
    model, dataset, _ = trained_run(tiny_lm, tmp_path)
    expected = scores(model)
    _, meta = ckpt.runfolder.read_safetensors(tmp_path / ckpt.MODEL)
    own = load_file(str(tmp_path / ckpt.MODEL))
    adapter_file = (tmp_path / ckpt.ADAPTER).read_bytes()

    # the previous format: every tensor (adapters under the model's own names) in model.safetensors
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / ckpt.MODEL), metadata=meta)
    (tmp_path / ckpt.ADAPTER).unlink()
    assert torch.equal(scores(ckpt.load_model(tmp_path, dataset)), expected)

    # model.safetensors of the new format without its adapters: one line that says to retrain
    save_file(own, str(tmp_path / ckpt.MODEL), metadata=meta)
    with pytest.raises(DataError, match="retrain it") as err:
        ckpt.load_model(tmp_path, dataset)
    assert "\n" not in str(err.value)
    (tmp_path / ckpt.ADAPTER).write_bytes(adapter_file)
    assert torch.equal(scores(ckpt.load_model(tmp_path, dataset)), expected)


def test_run_folders_from_before_the_distinct_text_tables_load(tiny_lm, tmp_path):
    """The layout before sentences were deduplicated: one text-cache row per entity, no `*_rows`."""
    import json

    model, dataset, _ = trained_run(tiny_lm, tmp_path, epochs=1)
    expected = scores(model)
    _, meta = ckpt.runfolder.read_safetensors(tmp_path / ckpt.MODEL)
    own = load_file(str(tmp_path / ckpt.MODEL))
    model_meta = json.loads(meta["model_meta"])
    for kind in ("user", "item"):
        cache = next(k for k in own if k.endswith(f"{kind}_cache"))
        rows = own.pop(cache.removesuffix("cache") + "rows")  # (N,) each entity's distinct row
        own[cache] = own[cache][rows].contiguous()  # (N, F, D): one row per entity
        model_meta["text"][f"{kind}_texts"] = None
    save_file(own, str(tmp_path / ckpt.MODEL), metadata={**meta, "model_meta": json.dumps(model_meta)})
    assert torch.equal(scores(ckpt.load_model(tmp_path, dataset)), expected)
