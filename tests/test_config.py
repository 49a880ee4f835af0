"""The one config converter: JSON values and command-line strings -> typed dataclass fields."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gpt2rec.errors import UserError
from gpt2rec.models.neumf import NeuMFConfig
from gpt2rec.train.config import RESUMABLE_CHANGES, TrainConfig, resumable_view
from gpt2rec.utils.config import convert, from_dict, to_dict


@dataclass
class Inner:
    k: int = 1


@dataclass
class Outer:
    n: int = 0
    x: float = 0.0
    flag: bool = False
    name: str = "a"
    widths: tuple[int, ...] = (1,)
    maybe: int | None = None
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self):
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")


def test_strings_from_the_command_line_become_typed_values():
    cfg = from_dict(Outer, {"n": "3", "x": "0.5", "flag": "yes", "name": "b", "widths": "64,32", "maybe": "none"})
    assert (cfg.n, cfg.x, cfg.flag, cfg.name, cfg.widths, cfg.maybe) == (3, 0.5, True, "b", (64, 32), None)
    assert from_dict(Outer, {"maybe": "7", "widths": "(8)", "flag": "off"}).maybe == 7
    assert from_dict(Outer, {"maybe": ""}).maybe is None


@dataclass
class Text:
    sep: str | None = None


def test_strings_stay_as_given_even_blank():
    assert from_dict(Text, {"sep": "\t"}).sep == "\t"  # whitespace is a value, not "nothing"
    assert from_dict(Text, {"sep": " "}).sep == " "
    assert from_dict(Text, {"sep": "None"}).sep is None


def test_json_values_become_typed_values_and_round_trip():
    cfg = from_dict(Outer, {"n": 2.0, "x": 1, "flag": 1, "widths": [4, 2], "inner": {"k": "5"}})
    assert (cfg.n, cfg.x, cfg.flag, cfg.widths, cfg.inner) == (2, 1.0, True, (4, 2), Inner(5))
    assert type(cfg.n) is int and type(cfg.x) is float
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "data, message",
    [
        ({"n": "three"}, "n='three' is not an integer"),
        ({"n": 2.5}, "n=2.5 is not an integer"),
        ({"n": True}, "n=True is not an integer"),
        ({"x": "fast"}, "x='fast' is not a number"),
        ({"flag": "maybe"}, "flag='maybe' is not a boolean"),
        ({"name": 3}, "name must be a string"),
        ({"widths": "1,b"}, "widths='b' is not an integer"),
        ({"n": -1}, "n must be >= 0"),  # __post_init__'s ValueError, wrapped at the edge
        ({"size": 1}, r"unknown field\(s\) \['size'\]"),
        ({"inner": {"j": 1}}, r"unknown field\(s\) \['j'\] for Inner"),
    ],
)
def test_bad_values_are_one_user_error_naming_the_field(data, message):
    with pytest.raises(UserError, match=message):
        from_dict(Outer, data)


def test_convert_alone_raises_value_error():
    assert convert(tuple[int, ...], "3, 4") == (3, 4)
    with pytest.raises(ValueError, match="dim='x'"):
        convert(int, "x", "dim")


def test_model_and_train_configs_go_through_it():
    assert from_dict(NeuMFConfig, {"mlp_layers": "16,8", "dim": "4"}).mlp_layers == (16, 8)
    with pytest.raises(UserError, match="mlp_layers"):
        from_dict(NeuMFConfig, {"mlp_layers": "7,4"})  # first width must be even
    assert from_dict(TrainConfig, {"lr": "0.01", "epochs": "3"}).lr == 0.01


def test_negative_seeds_are_one_user_error():
    from gpt2rec.data.synth import SynthConfig

    # numpy's default_rng(-1) raised a raw "expected non-negative integer" traceback
    with pytest.raises(UserError, match="seed must be an integer >= 0"):
        from_dict(TrainConfig, {"seed": "-1"})
    with pytest.raises(UserError, match="seed must be an integer >= 0"):
        from_dict(SynthConfig, {"seed": "-1", "users": "5", "items": "5", "interactions": "5"})


def test_one_list_of_settings_that_may_change_on_resume():
    cfg = to_dict(TrainConfig())
    changed = {**cfg, "epochs": 99, "patience": 0, "device": "cpu", "eval_batch_size": 7, "lazy_adam": False}
    assert resumable_view(changed) == resumable_view(cfg)
    assert resumable_view({**cfg, "lr": 0.5}) != resumable_view(cfg)
    # lazy_adam: both optimizers keep the same state, and runs saved before it existed lack it
    assert RESUMABLE_CHANGES == {"epochs", "device", "eval_batch_size", "patience", "lazy_adam"}
