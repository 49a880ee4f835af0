"""The one config converter: plain JSON dicts and command-line strings -> typed dataclass configs.

`from_dict(cls, data)` builds a config from a dict whose values are JSON values or command-line
strings ("64", "0.5", "true", "64,32", "none"), converting each to its field's type (nested
dataclasses, optionals, tuples included). It is the edge where user input enters: an unknown
field, a value of the wrong type, or a value the config's `__post_init__` rejects (a ValueError)
becomes one `UserError` naming the field and the fix. `__post_init__` methods only validate.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from typing import Any, TypeVar

from ..errors import UserError

T = TypeVar("T")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def field_types(cls: type) -> dict[str, Any]:
    """{field name: resolved type} of the fields a dataclass takes in its constructor."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def from_dict(cls: type[T], data: dict, flags: dict[str, str] | None = None) -> T:
    """Build `cls` from a dict of JSON values or strings; UserError on any bad field or value.

    `flags` (a command's): how a refusal starts -> the command line's words for it ("threads " ->
    "--threads "; the first that matches); with it the refusal drops the config's name, which means
    nothing on the command line."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    types_ = field_types(cls)
    unknown = set(data) - set(types_)
    if unknown:
        raise UserError(f"unknown field(s) {sorted(unknown)} for {cls.__name__}; valid fields: {sorted(types_)}")
    try:
        kwargs = {name: convert(types_[name], value, name) for name, value in data.items()}
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # what __post_init__ rejects
        message, label = str(exc), f"{cls.__name__}: "
        if flags is not None:
            message = message.removeprefix(label)
            start = next((k for k in flags if message.startswith(k)), "")
            raise UserError(flags.get(start, "") + message[len(start) :]) from None
        raise UserError(message if message.startswith(label) else label + message) from None  # named once


def convert(tp: Any, value: Any, name: str = "value") -> Any:
    """`value` (a JSON value or a command-line string) as type `tp`; ValueError naming `name` if it
    does not fit. Strings parse as the type says: "a,b" for tuples, "none" for optionals."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        optional = type(None) in args
        if optional and (value is None or _means_none(value, args)):
            return None
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) == 1:  # X | None: X's own message
            return convert(kinds[0], value, name)
        for arg in kinds:
            try:
                return convert(arg, value, name)
            except ValueError:
                continue
        raise ValueError(f"{name}={value!r} is not a valid {type_name(tp)}")
    if value is None:
        raise ValueError(f"{name} must be {'an' if type_name(tp)[0] in 'aeiou' else 'a'} {type_name(tp)}, got None")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return from_dict(tp, value)
        raise ValueError(f"{name} must be a JSON object of {tp.__name__} fields, got {value!r}")
    if origin in (tuple, list) or tp in (tuple, list):
        if isinstance(value, str):
            value = [p.strip() for p in value.strip().strip("()[]").split(",") if p.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        if (origin is tuple and len(args) == 2 and args[1] is Ellipsis) or (origin is list and args):
            items = [convert(args[0], v, name) for v in value]
        elif origin is tuple and args:
            if len(args) != len(value):
                raise ValueError(f"{name} needs {len(args)} values, got {len(value)}")
            items = [convert(a, v, name) for a, v in zip(args, value)]
        else:
            items = list(value)
        return tuple(items) if (origin or tp) is tuple else items
    if tp is bool:
        return _to_bool(value, name)
    if tp in (int, float):
        return _to_number(tp, value, name)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        return value
    return value  # dicts and other plain JSON values pass through


class FieldTypeError(TypeError, ValueError):
    """A config field given a value of the wrong type: a TypeError, and a ValueError as every other bad
    value of a config is (callers that catch ValueError keep working)."""


_SCALARS = {bool: (bool, "true or false"), int: (numbers.Integral, "an integer"), float: (numbers.Real, "a number"),
            str: (str, "a string")}  # fmt: skip


def check_field_types(config: Any, label: str) -> None:
    """For a config dataclass built directly rather than by `from_dict`: each scalar field holds a value
    of its type (checked with `convert`, never converted from text): TrainConfig(epochs="5") failed on
    a bare '>=', epochs=2.5 trained 3 epochs, batch_size=True a batch of 1. FieldTypeError naming the
    field. A numpy number (seed=np.int64(3), lr=np.float32(0.01)) becomes the plain Python one: the
    config is saved as JSON next to every checkpoint, which cannot hold numpy scalars."""
    for name, tp in field_types(type(config)).items():
        value = getattr(config, name)
        if isinstance(value, float) and not math.isfinite(value):
            continue  # a float, but NaN / inf: the config's own value checks name the bound
        try:
            typed = convert(tp, value, name)
        except (ValueError, UserError) as exc:
            raise FieldTypeError(f"{label}: {exc}") from None
        kind, what = _SCALARS.get(type(typed), (None, ""))
        if kind is None:  # None, tuples, lists, nested configs: convert's check is enough
            continue
        # convert also reads strings ("5", "true"), 5.0 as 5 and 0 / 1 as booleans: typed values only here
        if not isinstance(value, kind) or isinstance(value, bool) and type(typed) is not bool:
            raise FieldTypeError(f"{label}: {name} must be {what}, got {value!r}")
        if type(value) is not type(typed):  # np.int64(3) -> 3; 3 for a float -> 3.0
            object.__setattr__(config, name, typed)  # frozen configs too


def check_k(k: Any, name: str = "k") -> int:
    """`k`, a number of items to return, as an int; UserError unless it is a whole number >= 1 (a bool,
    2.7 or "3" would otherwise be read as 1, cut to 2, or fail deep inside the ranking)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise UserError(f"{name} must be a whole number >= 1 (a number of items), got {k!r}; e.g. {name}=10")
    return int(k)


def _means_none(value: Any, args: tuple) -> bool:
    """ "none" / "null" (any case) is None; so is "" unless the type also takes strings ("" is a string)."""
    if not isinstance(value, str):
        return False
    return value.lower() in ("none", "null") or (value == "" and str not in args)


def _to_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{name}={value!r} is not a boolean (true/false)")


def _to_number(tp: type, value: Any, name: str):
    number = _parse_number(tp, value, name)
    if tp is float and not math.isfinite(number):  # NaN / inf settings only ever break training
        raise ValueError(f"{name}={value!r} is not a finite number")
    return number


def _parse_number(tp: type, value: Any, name: str):
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not a{'n integer' if tp is int else ' number'}")
    try:
        if isinstance(value, str):
            value = value.strip()
            return int(value) if tp is int else float(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a{'n integer' if tp is int else ' number'}") from None


def type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
