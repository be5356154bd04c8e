"""Experiment configuration: frozen, typed dataclasses with dotted overrides.

Presets live in `experiments/<name>.py` as `get_config() -> ExperimentConfig`.
`apply_overrides(config, ["model.latent_size=64"])` returns a new config; an
unknown key raises ValueError listing the valid ones. A run directory stores
`config.json` (`config_to_dict`), and `config_from_dict` reads it back.

Every section validates itself when it is built (`__post_init__`), so a preset, a
`--set` override and a config.json are all checked at load time by one helper,
`_validate`, driven by the type hints (`bool` is a real bool, `int` is not a float
or a bool, `float` accepts an int, `X | None`, `tuple[str, ...]`, nested sections)
and by each field's declared constraint (`_field(default, ge=1)`, `choices=...`).
Errors name the dotted field, the expected and the actual value, e.g.
`model.latent_size: expected an int ≥ 1, got -3`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
import json
import math
import operator
import os
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any


class ConfigTypeError(TypeError, ValueError):
    """A config value of the wrong type (`model.remat=maybe`, `latent_size: "abc"`).

    A TypeError that is also a ValueError, so that callers treating any bad config as
    bad input (`except ValueError`) catch it like a constraint violation.
    """


def _field(default: Any, **check: Any) -> Any:
    """A dataclass field with a declared constraint, checked by `_validate`.

    Constraints: `ge`, `gt`, `le` (bounds), `choices` (a collection, or a function
    returning one, called at validation time so registries are imported lazily),
    `nonempty` (strings), `what` (the words describing a choice, e.g. "a dtype name").
    """
    return dataclasses.field(default=default, metadata={"check": check})


# Choices owned by other modules, looked up when a config is validated. Lazy so that
# this module stays importable from anywhere; `meshsim` has imported them by then.
def _model_names() -> list[str]:
    from meshsim.models import MODELS

    return sorted(MODELS)


def _task_names() -> list[str]:
    from meshsim.tasks import TASKS

    return sorted(TASKS)


def _activations() -> list[str]:
    from meshsim.nn import ACTIVATIONS

    return sorted(ACTIVATIONS)


def _aggregations() -> list[str]:
    from meshsim.ops import AGGREGATIONS

    return sorted(AGGREGATIONS)


# Kept here rather than imported: `meshsim.solvers` pulls in the meshing extras.
# tests/test_bad_inputs.py checks it covers `meshsim.solvers.generate.DOMAINS`;
# "shallow_water" (meshsim.solvers.shallow_water) is the weather-style domain.
GENERATE_DOMAINS = ("cylinder_flow", "flag", "shallow_water")
# Matmul dtypes `EncodeProcessDecode` runs in (float64 needs `jax_enable_x64`).
MODEL_DTYPES = ("bfloat16", "float16", "float32", "float64")


# --------------------------------------------------------------------------- validation


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _split_optional(hint: Any) -> tuple[Any, bool]:
    """(the hint without None, whether None is allowed) for `X | None`."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"config fields support `X | None` unions only, got {hint}")
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


_BOUNDS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le}


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
        text = {bool: "a bool", int: "an int", float: "a float", str: "a str"}[base]
        if check.get("nonempty"):
            text = "a non-empty str"
        low = ("[", check["ge"]) if "ge" in check else ("(", check["gt"]) if "gt" in check else None
        if low is not None and "le" in check:
            text += f" in {low[0]}{low[1]}, {check['le']}]"
        elif low is not None:
            text += f" {'≥' if low[0] == '[' else '>'} {low[1]}"
        elif "le" in check:
            text += f" ≤ {check['le']}"
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
    else:
        raise TypeError(f"{name}: config fields of type {base} are not supported")
    if not ok:
        raise ConfigTypeError(
            f"{name}: expected {expected}, got {value!r} ({type(value).__name__})"
        )
    return value


def _check_value(value: Any, hint: Any, check: dict, name: str) -> Any:
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


def _validate(config: Any) -> None:
    """Checks every field of a config section against its hint and constraint; raises
    ConfigTypeError / ValueError naming the dotted field. Normalises in place (frozen
    instance, before anyone has seen it): ints given for floats become floats."""
    cls = type(config)
    prefix = f"{cls._section}." if cls._section else ""
    for f in dataclasses.fields(cls):
        value = getattr(config, f.name)
        checked = _check_value(
            value, _hints(cls)[f.name], f.metadata.get("check", {}), prefix + f.name
        )
        if checked is not value:
            object.__setattr__(config, f.name, checked)


class _Validated:
    """Mixin of the config sections: validates every field when an instance is built.

    `_section` is the section's dotted path in `ExperimentConfig` ("" for the root),
    so errors name `train.optimizer.learning_rate` however the section was built.
    """

    _section = ""

    def __post_init__(self):
        _validate(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerConfig(_Validated):
    """Adam with lr(step) = learning_rate · decay_rate^(step / decay_steps) + min_learning_rate.

    Defaults are the paper's: 1e-4 decaying ×0.1 over 5M steps, floor 1e-6.
    """

    _section = "train.optimizer"

    learning_rate: float = _field(1e-4, gt=0)
    decay_steps: int = _field(5_000_000, ge=1)
    decay_rate: float = _field(0.1, gt=0, le=1)
    min_learning_rate: float = _field(1e-6, ge=0)
    grad_clip_norm: float | None = _field(None, gt=0)  # global-norm clipping, off by default


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig(_Validated):
    """Where the dataset lives and how windows are batched.

    `generate_*` describe the built-in dataset `meshsim demo` / `meshsim generate`
    create when `path` is empty (domain "cylinder_flow", "flag" or "shallow_water").
    """

    _section = "data"

    path: str = "data/cylinder_flow"
    train_split: str = _field("train", nonempty=True)
    valid_split: str = _field("valid", nonempty=True)
    batch_size: int = _field(1, ge=1)  # meshes per step (the paper uses 1)
    pool_size: int = _field(16, ge=1)  # trajectories resident in memory for shuffling
    prefetch: int = _field(2, ge=1)  # batches prepared ahead in a background thread
    generate_domain: str = _field("cylinder_flow", choices=GENERATE_DOMAINS)
    generate_train_trajectories: int = _field(20, ge=1)
    generate_valid_trajectories: int = _field(4, ge=0)
    generate_steps: int = _field(300, ge=1)
    generate_seed: int = _field(0, ge=0)
    # channel_mesh / cloth_mesh refinement factor
    generate_mesh_resolution: float = _field(1.0, gt=0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig(_Validated):
    """Network settings: `name` picks a model of `meshsim.models.MODELS`, the other fields
    are that model's (see `meshsim.models.EncodeProcessDecode`); MeshGraphNets defaults.
    The output width and output node set come from the task.

    `bundle_steps` K (temporal bundling, Brandstetter et al., ICLR 2022): the network
    predicts K future frames per call (output width K·d, one slice per frame, each the
    task's one-step target relative to the frame before it) and a rollout advances K
    frames per call (`meshsim.simulator.Simulator`). Training windows then hold
    `train.unroll_steps`·K future frames. 1: one frame per call, as MeshGraphNets.
    """

    _section = "model"

    name: str = _field("meshgraphnet", choices=_model_names)
    latent_size: int = _field(128, ge=1)
    num_message_passing_steps: int = _field(15, ge=1)
    mlp_hidden_layers: int = _field(2, ge=0)
    activation: str = _field("relu", choices=_activations)
    layer_norm: bool = True
    aggregation: str = _field("sum", choices=_aggregations)
    concat_trick: bool = True
    remat: bool | None = None  # None: on for CPU (see EncodeProcessDecode.remat)
    scan_unroll: int = _field(1, ge=1)
    dtype: str = _field("float32", choices=MODEL_DTYPES, what="a dtype name")
    bundle_steps: int = _field(1, ge=1)  # frames predicted per network call (K)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(_Validated):
    """Training loop settings (`eval_every` 0: no periodic evaluation)."""

    _section = "train"

    steps: int = _field(10_000_000, ge=1)
    accumulate_steps: int = _field(1000, ge=0)  # statistics only, no gradient step (paper)
    normalizer_max_accumulations: int = _field(1_000_000, ge=1)
    seed: int = _field(0, ge=0)
    log_every: int = _field(100, ge=1)
    eval_every: int = _field(10_000, ge=0)
    eval_trajectories: int = _field(2, ge=1)
    eval_rollout_steps: int = _field(50, ge=1)
    checkpoint_every: int = _field(10_000, ge=1)
    keep_checkpoints: int = _field(3, ge=1)
    # A non-finite loss or gradient: "stop" the run (the last good checkpoint stays the
    # latest) or "skip" the update and go on.
    on_nonfinite: str = _field("stop", choices=("stop", "skip"))
    # Multi-step training (meshsim.unroll): roll out `unroll_steps` steps per example,
    # "unrolled" (gradients through the rollout, GraphCast) or "pushforward" (only the
    # last step trains, Brandstetter et al.); the horizon grows by one every
    # `unroll_schedule` steps from 1 (0: `unroll_steps` from the start).
    unroll_steps: int = _field(1, ge=1)
    unroll_mode: str = _field("unrolled", choices=("unrolled", "pushforward"))
    unroll_schedule: int = _field(0, ge=0)
    optimizer: OptimizerConfig = OptimizerConfig()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParallelConfig(_Validated):
    """How a run spreads over devices (see `meshsim.sharding`).

    `data`: devices on the data axis (None: every device not used by `graph`);
    `backend`: "jit" (jit + NamedSharding) or "pmap"; `graph`: partitions of each
    graph (graph/domain parallel, halo exchange); `shard_optimizer`: shard the
    optimizer state over the data axis; `halo_exchange`: how graph parts refresh
    their halo latents ("all_gather" or "ppermute", `meshsim.graph_parallel`).
    """

    _section = "parallel"

    backend: str = _field("jit", choices=("jit", "pmap"))
    data: int | None = _field(None, ge=1)
    graph: int = _field(1, ge=1)
    shard_optimizer: bool = False
    halo_exchange: str = _field("all_gather", choices=("all_gather", "ppermute"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeatherConfig(_Validated):
    """Settings of the `weather` task (grid ↔ multimesh forecasting, GraphCast-style).

    `variables`: data variables forecast (empty: every variable with a `time` dim);
    `mesh_splits`: icosahedron refinements of the multimesh (6 in GraphCast);
    `radius_fraction`: grid→mesh radius as a fraction of the longest finest mesh edge;
    `variable_weights`: loss weights as "variable=weight" (others weigh 1);
    `level_weighting`: 3-D variables weighted by pressure level (GraphCast).
    Autoregressive training is `train.unroll_steps` (every task has it).
    """

    _section = "weather"

    variables: tuple[str, ...] = ()
    mesh_splits: int = _field(3, ge=0)
    radius_fraction: float = _field(0.6, gt=0)
    variable_weights: tuple[str, ...] = ()
    level_weighting: bool = True


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExperimentConfig(_Validated):
    """Everything that defines a run."""

    name: str = _field("experiment", nonempty=True)
    task: str = _field("cfd", choices=_task_names)  # a name in meshsim.tasks.TASKS
    noise_std: float | None = _field(None, ge=0)  # None: the task's paper value
    noise_gamma: float | None = _field(None, ge=0)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    parallel: ParallelConfig = ParallelConfig()
    weather: WeatherConfig = WeatherConfig()


def lite_train_config() -> TrainConfig:
    """The short CPU schedule of the `*_lite` presets: 3000 steps (100 statistics-only),
    Adam 1e-3 decaying ×0.1 over 4000 steps to a 1e-5 floor, checkpoints every 500."""
    return TrainConfig(
        steps=3000,
        accumulate_steps=100,
        normalizer_max_accumulations=3000,
        log_every=50,
        eval_every=0,
        checkpoint_every=500,
        optimizer=OptimizerConfig(learning_rate=1e-3, decay_steps=4000, min_learning_rate=1e-5),
    )


# --------------------------------------------------------------------------- dicts


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
    unknown keys raise ValueError listing the valid ones.
    """
    where = cls._section or "config"
    if not isinstance(data, dict):
        raise ConfigTypeError(f"{where}: expected a JSON object, got {type(data).__name__}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; valid: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        base, _ = _split_optional(hints[key])
        if dataclasses.is_dataclass(base) and isinstance(value, dict):
            value = config_from_dict(base, value)
        elif typing.get_origin(base) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


# --------------------------------------------------------------------------- overrides


def _parse(text: str, hint: Any) -> Any:
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
        new = _parse(value, _hints(type(obj))[path[0]])
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
        spec = importlib.util.spec_from_file_location("meshsim_experiment_config", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        get_config: Callable | None = getattr(module, "get_config", None)
        if get_config is None:
            raise ValueError(f"config: {path!r} defines no get_config()")
        config = get_config()
    if not isinstance(config, ExperimentConfig):
        raise TypeError(
            f"config: get_config() must return ExperimentConfig, got {type(config).__name__}"
        )
    return apply_overrides(config, overrides or [])
