"""Typed, validated settings: frozen dataclasses whose fields check themselves.

The machinery behind `meshsim.config` (experiment configs) and a task's own options
(`meshsim.tasks`): a settings class subclasses `Validated`, declares fields with
type hints and, where needed, a constraint (`setting(default, ge=1)`,
`choices=...`), and every instance is checked when it is built, by hints (`bool`
is a real bool, `int` is not a float or a bool, `float` accepts an int, `X | None`,
`tuple[str, ...]`, `dict` mappings of plain values, nested sections) and
constraints. Errors name the dotted field, the expected and the actual value, e.g.
`model.latent_size: expected an int ≥ 1, got -3`. `from_dict` reads a JSON dict
back (unknown keys raise, listing the valid ones) and `parse_value` reads a
`--set` string by the field's type. Core layer: standard library only.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
import operator
import types
import typing
from typing import Any


class ConfigTypeError(TypeError, ValueError):
    """A config value of the wrong type (`model.remat=maybe`, `latent_size: "abc"`).

    A TypeError that is also a ValueError, so that callers treating any bad config as
    bad input (`except ValueError`) catch it like a constraint violation.
    """


def setting(default: Any, **check: Any) -> Any:
    """A dataclass field with a declared constraint, checked by `_validate`.

    Constraints: `ge`, `gt`, `le`, `lt` (bounds), `choices` (a collection, or a function
    returning one, called at validation time so registries are imported lazily),
    `nonempty` (strings), `what` (the words describing a choice, e.g. "a dtype name").
    """
    return dataclasses.field(default=default, metadata={"check": check})


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _split_optional(hint: Any) -> tuple[Any, bool]:
    """(the hint without None, whether None is allowed) for `X | None`."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"config fields support `X | None` unions only, got {hint}")
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


_BOUNDS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}


def _choices(check: dict) -> list | None:
    choices = check.get("choices")
    if choices is None:
        return None
    return list(choices() if callable(choices) else choices)


def _describe(hint: Any, check: dict) -> str:
    """What a field accepts, in words: "an int ≥ 1", "a float in (0, 1] or None", ..."""
    base, optional = _split_optional(hint)
    choices = _choices(check)
    if choices is not None:
        text = f"one of {choices}"
        if "what" in check:
            text = f"{check['what']}, {text}"
    elif dataclasses.is_dataclass(base):
        text = f"{'an' if base.__name__[0] in 'AEIOU' else 'a'} {base.__name__} section"
    elif typing.get_origin(base) is tuple:
        text = f"a tuple of {typing.get_args(base)[0].__name__}"
    else:
        text = {bool: "a bool", int: "an int", float: "a float", str: "a str", dict: "a mapping"}[
            base
        ]
        if check.get("nonempty"):
            text = "a non-empty str"
        low = ("[", check["ge"]) if "ge" in check else ("(", check["gt"]) if "gt" in check else None
        high = ("]", check["le"]) if "le" in check else None
        high = (")", check["lt"]) if "lt" in check else high
        if low is not None and high is not None:
            text += f" in {low[0]}{low[1]}, {high[1]}{high[0]}"
        elif low is not None:
            text += f" {'≥' if low[0] == '[' else '>'} {low[1]}"
        elif high is not None:
            text += f" {'≤' if high[0] == ']' else '<'} {high[1]}"
    return text + (" or None" if optional else "")


def _check_type(value: Any, base: Any, name: str, expected: str) -> Any:
    """`value` if it has type `base` (an int is widened to float); ConfigTypeError if not."""
    ok = False
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif base is str:
        ok = isinstance(value, str)
    elif typing.get_origin(base) is tuple:
        (item, _) = typing.get_args(base)
        ok = isinstance(value, tuple)
        if ok:
            for i, v in enumerate(value):
                _check_type(v, item, f"{name}[{i}]", f"a {item.__name__}")
    elif dataclasses.is_dataclass(base):
        ok = isinstance(value, base)
    elif base is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
    else:
        raise TypeError(f"{name}: config fields of type {base} are not supported")
    if not ok:
        raise ConfigTypeError(
            f"{name}: expected {expected}, got {value!r} ({type(value).__name__})"
        )
    return value


def check_value(value: Any, hint: Any, check: dict, name: str) -> Any:
    """Checks one field (type, then constraint) and returns it normalised (int → float)."""
    base, optional = _split_optional(hint)
    if value is None and optional:
        return None
    expected = _describe(hint, check)
    checked = _check_type(value, base, name, expected)
    if isinstance(checked, float) and not math.isfinite(checked):
        raise ValueError(f"{name}: expected {expected} (finite), got {value!r}")
    choices = _choices(check)
    bad = (choices is not None and checked not in choices) or (
        check.get("nonempty") and not checked
    )
    bad = bad or any(k in check and not op(checked, check[k]) for k, op in _BOUNDS.items())
    if bad:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return checked


def validate(config: Any) -> None:
    """Checks every field of a config section against its hint and constraint; raises
    ConfigTypeError / ValueError naming the dotted field. Normalises in place (frozen
    instance, before anyone has seen it): ints given for floats become floats."""
    cls = type(config)
    prefix = f"{cls._section}." if cls._section else ""
    for f in dataclasses.fields(cls):
        value = getattr(config, f.name)
        checked = check_value(
            value, type_hints(cls)[f.name], f.metadata.get("check", {}), prefix + f.name
        )
        if checked is not value:
            object.__setattr__(config, f.name, checked)


class Validated:
    """Mixin of the config sections: validates every field when an instance is built.

    `_section` is the section's dotted path in `ExperimentConfig` ("" for the root),
    so errors name `train.optimizer.learning_rate` however the section was built.
    """

    _section = ""

    def __post_init__(self):
        validate(self)


def parse_value(text: str, hint: Any) -> Any:
    """An override string as a value for a field of type `hint`, or the string itself
    when it does not parse (the field's validation then names what was expected)."""
    base, optional = _split_optional(hint)
    lowered = text.lower()
    if optional and lowered in ("none", "null"):
        return None
    if base is str:
        return text
    if base is bool:
        return {"true": True, "yes": True, "false": False, "no": False}.get(lowered, text)
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        parsed = text
    if typing.get_origin(base) is tuple:
        if isinstance(parsed, list | tuple):
            return tuple(parsed)
        return tuple(s.strip() for s in text.split(",") if s.strip())
    return parsed


def from_dict(cls, data: dict):
    """Inverse of `config_to_dict` for dataclass `cls`; validated like any config.

    JSON lists become tuples for `tuple[...]` fields and nested objects become sections;
    unknown keys raise ValueError listing the valid ones.
    """
    where = cls._section or "config"
    if not isinstance(data, dict):
        raise ConfigTypeError(f"{where}: expected a JSON object, got {type(data).__name__}")
    hints = type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; valid: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        base, _ = _split_optional(hints[key])
        if dataclasses.is_dataclass(base) and isinstance(value, dict):
            value = from_dict(base, value)
        elif typing.get_origin(base) is tuple and isinstance(value, list):
            value = tuple(value)
        elif base is dict and isinstance(value, dict):
            value = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
        kwargs[key] = value
    return cls(**kwargs)
