"""Configs in and out: plain dicts as config.json holds them (older layouts
upgraded), dotted `KEY=VALUE` overrides, and presets loaded from
`experiments/<name>.py` (`get_config()`) or a run's config.json."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from meshsim.config.sections import ExperimentConfig, TaskConfig
from meshsim.options import from_dict, parse_value, type_hints


def config_to_dict(config) -> dict:
    """Nested plain dict as JSON holds it (tuples become lists), so a dict read back from
    config.json compares equal to the config that wrote it."""
    return _json_types(dataclasses.asdict(config))


def _json_types(value):
    if isinstance(value, dict):
        return {k: _json_types(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_types(v) for v in value]
    return value


def config_from_dict(cls, data: dict):
    """Inverse of `config_to_dict` for dataclass `cls`; validated like any config.

    JSON lists become tuples for `tuple[...]` fields and nested objects become sections;
    unknown keys raise ValueError listing the valid ones. An `ExperimentConfig` dict
    written before the `task` section existed (`"task": "cfd"`, top-level
    `noise_std`, a `weather` section) is read as the same run.
    """
    if cls is ExperimentConfig and isinstance(data, dict):
        data = _upgrade(data)
    return from_dict(cls, data)


def _upgrade(data: dict) -> dict:
    """An older config.json dict in today's layout (task name, noise and the weather
    section moved into `task`; the forecast variables into `data.variables`)."""
    legacy = {"noise_std", "noise_gamma", "weather"} & set(data)
    if not (legacy or isinstance(data.get("task"), str)):
        return data
    data = dict(data)
    task = {"name": data.pop("task", TaskConfig.name)}
    for key in ("noise_std", "noise_gamma"):
        if key in data:
            task[key] = data.pop(key)
    section = dict(data.pop("weather", None) or {})  # the one task section there was
    variables = section.pop("variables", [])
    from meshsim.tasks import task_option_hint

    if any(task_option_hint(task["name"], key) is not Any for key in section):
        task["options"] = section  # the task whose section it was
    if variables:
        data["data"] = {**data.get("data", {}), "variables": variables}
    data["task"] = task
    return data


# --------------------------------------------------------------------------- overrides


def apply_overrides(config, overrides: Sequence[str]):
    """Returns `config` with dotted `KEY=VALUE` overrides applied, e.g. `train.steps=100`.

    Values are parsed by the field's type (`true`/`false`/`none`, numbers, `a,b` for
    tuples) and validated like any config: a bad value raises naming the field.
    """
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override: expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        config = _replace_path(config, key.strip().split("."), value.strip(), key.strip())
    return config


def _replace_path(obj, path: list[str], value: str, full_key: str):
    names = [f.name for f in dataclasses.fields(obj)]
    if path[0] not in names:
        raise ValueError(f"override {full_key!r}: unknown key {path[0]!r}; valid: {names}")
    current = getattr(obj, path[0])
    if len(path) == 1:
        if dataclasses.is_dataclass(current):
            raise ValueError(f"override {full_key!r}: is a section; set one of its fields")
        new = parse_value(value, type_hints(type(obj))[path[0]])
        if isinstance(obj, TaskConfig) and path[0] in ("name", "module") and new != current:
            # Another task: the old one's options left at their defaults do not carry over.
            return dataclasses.replace(obj, **{path[0]: new, "options": obj.set_options()})
    elif isinstance(current, dict) and len(path) == 2:  # task.options.KEY: the task's hint
        new = {**current, path[1]: parse_value(value, obj.option_hint(path[1]))}
    else:
        if not dataclasses.is_dataclass(current):
            raise ValueError(f"override {full_key!r}: {path[0]!r} is not a section")
        new = _replace_path(current, path[1:], value, full_key)
    return dataclasses.replace(obj, **{path[0]: new})


# --------------------------------------------------------------------------- files


def _load_json(path: str) -> ExperimentConfig:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"config: no such file {path!r}") from None
    except UnicodeDecodeError as e:
        raise ValueError(
            f"config: {path!r} is not UTF-8 text: {e.reason} at byte {e.start}"
        ) from None
    except json.JSONDecodeError as e:
        raise ValueError(f"config: {path!r} is not valid JSON: {e}") from None
    return config_from_dict(ExperimentConfig, data)


def _exception_text(e: BaseException) -> str:
    """`Type: message` of an exception, on one line."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {'; '.join(lines)}" if lines else type(e).__name__


def _call_get_config(path: str):
    """Imports the config file `path` and calls its `get_config()`.

    Raises:
      ValueError: the file cannot be imported (not Python, a syntax error, an exception
        at import) or `get_config()` raises; the message names the file and carries the
        exception's own message.
    """
    spec = importlib.util.spec_from_file_location("meshsim_experiment_config", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"config: {path!r} is not a Python file (expected experiments/<name>.py)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ValueError(
            f"config: {path!r} cannot be imported as Python ({_exception_text(e)})"
        ) from e
    get_config: Callable | None = getattr(module, "get_config", None)
    if get_config is None:
        raise ValueError(f"config: {path!r} defines no get_config()")
    try:
        return get_config()
    except Exception as e:
        raise ValueError(f"config: get_config() of {path!r} failed ({_exception_text(e)})") from e


def load_config(path: str, overrides: Sequence[str] | None = None) -> ExperimentConfig:
    """Loads `get_config()` from a Python file (or a run's config.json) and applies
    overrides; the result is validated (see the module doc)."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"config: {path!r} is a directory; expected a .py or .json file")
    if path.endswith(".json"):
        config = _load_json(path)
    else:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config: no such file {path!r}")
        config = _call_get_config(path)
    if not isinstance(config, ExperimentConfig):
        raise TypeError(
            f"config: get_config() must return ExperimentConfig, got {type(config).__name__}"
        )
    return apply_overrides(config, overrides or [])
