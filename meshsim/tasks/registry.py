"""Tasks by name: the built-in ones, those a user module registers, and their options.

`TASKS` maps a name to a factory (`cfd_task(*, noise_std=..., noise_gamma=...)`).
A task with settings of its own registers an options class with it (a
`meshsim.options.Validated` dataclass, `_section = "task.options"`), and a config's
`task.options` are checked against that class. A domain defined outside the package
is a Python file or module that calls `register_task`; `task.module` names it and
`load_task_module` imports it once. Host side.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from meshsim.options import type_hints

TASKS: dict[str, Callable[..., Any]] = {}
_OPTIONS: dict[str, type] = {}
_LOADED: dict[str, object] = {}  # task.module -> the module it loaded


def register_task(
    name: str, factory: Callable[..., Any], *, options: type | None = None, replace: bool = False
) -> None:
    """Adds a task to `TASKS`.

    Args:
      name: the name configs use (`task.name`).
      factory: keyword-only constructor of the task; it takes `noise_std` and
        `noise_gamma`, the fields of `options`, and `meta` (the dataset's meta dict)
        if the task is built from its data.
      options: the task's options class (a `Validated` dataclass) or None (no options).
      replace: allow replacing a registered name (otherwise ValueError).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty str, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory: expected a callable, got {type(factory).__name__}")
    if options is not None and not dataclasses.is_dataclass(options):
        raise TypeError(f"options: expected a dataclass or None, got {options!r}")
    if name in TASKS and TASKS[name] is not factory and not replace:
        raise ValueError(f"task {name!r} is registered already (pass replace=True)")
    TASKS[name] = factory
    if options is None:
        _OPTIONS.pop(name, None)
    else:
        _OPTIONS[name] = options


def load_task_module(module: str) -> object | None:
    """Imports `module` (a `.py` path, or a dotted module name) once; None for "".

    Raises:
      FileNotFoundError: no such file; ImportError: no such module.
    """
    if not module:
        return None
    if module in _LOADED:
        return _LOADED[module]
    if module.endswith(".py") or os.sep in module:
        path = os.path.abspath(module)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"task.module: no such file {module!r}")
        name = f"meshsim_task_{abs(hash(path)):x}"
        spec = importlib.util.spec_from_file_location(name, path)
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded  # dataclasses look their module up while it runs
        try:
            spec.loader.exec_module(loaded)
        except BaseException:
            del sys.modules[name]
            raise
    else:
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as e:
            raise ImportError(f"task.module: cannot import {module!r}: {e}") from None
    _LOADED[module] = loaded
    return loaded


def _check_name(name: str, module: str) -> None:
    load_task_module(module)
    if name not in TASKS:
        where = f" (after loading task.module {module!r})" if module else ""
        raise ValueError(f"task.name: expected one of {sorted(TASKS)}{where}, got {name!r}")


def task_options(name: str, options: Mapping[str, Any], module: str = "") -> dict[str, Any]:
    """The options of task `name` checked against its options class, every field filled
    in (the class's defaults); {} for a task without options.

    Raises:
      ValueError, TypeError: an unknown task or option, or a bad option value (the
        message names `task.options.<key>`).
    """
    _check_name(name, module)
    cls = _OPTIONS.get(name)
    if cls is None:
        if options:
            raise ValueError(f"task.options: task {name!r} takes no options, got {sorted(options)}")
        return {}
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"task.options: unknown keys {unknown} for task {name!r}; valid: {valid}")
    checked = cls(**options)
    return {f: getattr(checked, f) for f in valid}


def task_option_hint(name: str, key: str) -> Any:
    """The type hint of option `key` of a registered task (Any if it has none)."""
    cls = _OPTIONS.get(name)
    return type_hints(cls).get(key, Any) if cls is not None else Any


def built_from_data(name: str) -> bool:
    """Whether the task's factory takes its dataset's `meta` (weather: the channels)."""
    factory = TASKS.get(name)
    return factory is not None and "meta" in inspect.signature(factory).parameters


def get_task(name: str, **kwargs) -> Any:
    """A task by registry name; raises ValueError listing the valid names."""
    if name not in TASKS:
        raise ValueError(f"task: expected one of {sorted(TASKS)}, got {name!r}")
    return TASKS[name](**kwargs)
