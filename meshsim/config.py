"""Experiment configuration: frozen, typed dataclasses with dotted overrides.

Presets live in `experiments/<name>.py` as `get_config() -> ExperimentConfig`.
`apply_overrides(config, ["model.latent_size=64"])` returns a new config; an
unknown key raises ValueError listing the valid ones. A run directory stores
`config.json` (`config_to_dict`), and `config_from_dict` reads it back.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import os
import typing
from typing import Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerConfig:
    """Adam with lr(step) = learning_rate · decay_rate^(step / decay_steps) + min_learning_rate.

    Defaults are the paper's: 1e-4 decaying ×0.1 over 5M steps, floor 1e-6.
    """

    learning_rate: float = 1e-4
    decay_steps: int = 5_000_000
    decay_rate: float = 0.1
    min_learning_rate: float = 1e-6
    grad_clip_norm: float | None = None  # global-norm clipping, off by default


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Where the dataset lives and how windows are batched.

    `generate_*` describe the built-in dataset `meshsim demo` / `meshsim generate`
    create when `path` is empty (domain "cylinder_flow" or "flag").
    """

    path: str = "data/cylinder_flow"
    train_split: str = "train"
    valid_split: str = "valid"
    batch_size: int = 1  # meshes per step (the paper uses 1)
    pool_size: int = 16  # trajectories resident in memory for shuffling
    prefetch: int = 2  # batches prepared ahead in a background thread
    generate_domain: str = "cylinder_flow"
    generate_train_trajectories: int = 20
    generate_valid_trajectories: int = 4
    generate_steps: int = 300
    generate_seed: int = 0
    generate_mesh_resolution: float = 1.0  # channel_mesh / cloth_mesh refinement factor


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Network settings: `name` picks a model of `meshsim.models.MODELS`, the other fields
    are that model's (see `meshsim.models.EncodeProcessDecode`); MeshGraphNets defaults.
    The output width and output node set come from the task."""

    name: str = "meshgraphnet"
    latent_size: int = 128
    num_message_passing_steps: int = 15
    mlp_hidden_layers: int = 2
    activation: str = "relu"
    layer_norm: bool = True
    aggregation: str = "sum"
    concat_trick: bool = True
    remat: bool | None = None  # None: on for CPU (see EncodeProcessDecode.remat)
    scan_unroll: int = 1
    dtype: str = "float32"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Training loop settings."""

    steps: int = 10_000_000
    accumulate_steps: int = 1000  # statistics only, no gradient step (paper)
    normalizer_max_accumulations: int = 1_000_000
    seed: int = 0
    log_every: int = 100
    eval_every: int = 10_000
    eval_trajectories: int = 2
    eval_rollout_steps: int = 50
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 3
    # A non-finite loss or gradient: "stop" the run (the last good checkpoint stays the
    # latest) or "skip" the update and go on.
    on_nonfinite: str = "stop"
    optimizer: OptimizerConfig = OptimizerConfig()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParallelConfig:
    """How a run spreads over devices (see `meshsim.sharding`).

    `data`: devices on the data axis (None: every device not used by `graph`);
    `backend`: "jit" (jit + NamedSharding) or "pmap"; `graph`: partitions of each
    graph (graph/domain parallel, halo exchange); `shard_optimizer`: shard the
    optimizer state over the data axis.
    """

    backend: str = "jit"
    data: int | None = None
    graph: int = 1
    shard_optimizer: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeatherConfig:
    """Settings of the `weather` task (grid ↔ multimesh forecasting, GraphCast-style).

    `variables`: data variables forecast (empty: every variable with a `time` dim);
    `mesh_splits`: icosahedron refinements of the multimesh (6 in GraphCast);
    `radius_fraction`: grid→mesh radius as a fraction of the longest finest mesh edge;
    `train_rollout_steps`: autoregressive steps per training example (gradients
    through the rollout); `train_rollout_schedule`: training steps after which the
    rollout length grows by one until it reaches `train_rollout_steps` (0: fixed).
    """

    variables: tuple[str, ...] = ()
    mesh_splits: int = 3
    radius_fraction: float = 0.6
    train_rollout_steps: int = 1
    train_rollout_schedule: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """Everything that defines a run."""

    name: str = "experiment"
    task: str = "cfd"  # a name in meshsim.tasks.TASKS
    noise_std: float | None = None  # None: the task's paper value
    noise_gamma: float | None = None
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


def config_to_dict(config) -> dict:
    """Nested plain dict (JSON-serialisable)."""
    return dataclasses.asdict(config)


def config_from_dict(cls, data: dict):
    """Inverse of `config_to_dict` for dataclass `cls`; unknown keys raise ValueError."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}; valid: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = config_from_dict(hint, value)
        kwargs[key] = value
    return cls(**kwargs)


def _coerce(value: str, current: Any, key: str, optional: bool = False):
    """Parses an override string to the type of the current value (None accepts any).

    `optional`: the field is declared `X | None`, so "none"/"null" give None.
    """
    lowered = value.lower()
    if optional and lowered in ("none", "null"):
        return None
    if isinstance(current, bool) or current is None:
        if lowered in ("true", "yes"):
            return True
        if lowered in ("false", "no"):
            return False
        if isinstance(current, bool):
            raise ValueError(f"{key}: expected a bool, got {value!r}")
    if lowered in ("none", "null"):
        return None
    if isinstance(current, str):
        return value
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    if isinstance(current, float) and isinstance(parsed, int):
        parsed = float(parsed)
    if current is not None and not isinstance(parsed, type(current)):
        raise ValueError(
            f"{key}: expected {type(current).__name__}, got {value!r} ({type(parsed).__name__})"
        )
    return parsed


def apply_overrides(config, overrides: list[str]):
    """Returns `config` with dotted `KEY=VALUE` overrides applied, e.g. `train.steps=100`."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override: expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        config = _replace_path(config, key.strip().split("."), value.strip(), key)
    return config


def _replace_path(obj, path: list[str], value: str, full_key: str):
    names = [f.name for f in dataclasses.fields(obj)]
    if path[0] not in names:
        raise ValueError(f"override {full_key!r}: unknown key {path[0]!r}; valid: {names}")
    current = getattr(obj, path[0])
    if len(path) == 1:
        if dataclasses.is_dataclass(current):
            raise ValueError(f"override {full_key!r}: is a section; set one of its fields")
        hint = typing.get_type_hints(type(obj))[path[0]]
        optional = type(None) in typing.get_args(hint)
        new = _coerce(value, current, full_key, optional)
    else:
        if not dataclasses.is_dataclass(current):
            raise ValueError(f"override {full_key!r}: {path[0]!r} is not a section")
        new = _replace_path(current, path[1:], value, full_key)
    return dataclasses.replace(obj, **{path[0]: new})


def load_config(path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """Loads `get_config()` from a Python file (or a run's config.json) and applies overrides."""
    if path.endswith(".json"):
        import json

        with open(path) as f:
            config = config_from_dict(ExperimentConfig, json.load(f))
    else:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config: no such file {path!r}")
        spec = importlib.util.spec_from_file_location("meshsim_experiment_config", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not hasattr(module, "get_config"):
            raise ValueError(f"config: {path!r} defines no get_config()")
        config = module.get_config()
    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config: get_config() must return ExperimentConfig, got {type(config)}")
    return apply_overrides(config, overrides or [])
