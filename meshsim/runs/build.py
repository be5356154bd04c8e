"""From a config to the objects of a run: its data, task, model and simulator.

`open_split` opens one split of the config's dataset (a mesh dataset in HDF5 or
TFRecord, or a WeatherBench2-layout zarr/netCDF store); `build_task` builds the
task the config names with its options (and, for a task built from its data, the
dataset's meta); `build_model` the network the config names, keeping the model's
own defaults for every field the config leaves unset; `build_simulator` both.
Bad settings raise ValueError/TypeError naming the config field.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np

from meshsim.config import ExperimentConfig
from meshsim.data import open_dataset
from meshsim.data.stretched import StretchedDataset, open_stretched_split
from meshsim.data.weather import (
    WeatherSplit,
    check_same_layout,
    is_weather_directory,
    open_weather_split,
    split_path,
)
from meshsim.data.weather_points import PointsDataset, is_points_store
from meshsim.models import EncodeProcessDecode, get_block, get_model
from meshsim.models.ensemble import Ensemble
from meshsim.simulator import Simulator
from meshsim.tasks import Task, built_from_data, get_task, load_task_module


def open_split(config: ExperimentConfig, split: str):
    """One split of the config's dataset: a mesh dataset (HDF5/TFRecord, `open_dataset`)
    or a WeatherBench2-layout zarr/netCDF store (`open_weather_split`, read lazily,
    the variables of `data.variables` and
    `data.static_variables`)."""
    path = config.data.path
    if path and not os.path.exists(path):
        raise FileNotFoundError(
            f"data.path: dataset directory {path!r} does not exist (if the dataset has "
            "moved, give its new place with --set data.path=DIR)"
        )
    if config.data.regional_path:
        return open_stretched_split(
            path,
            os.path.join(path, config.data.regional_path),
            split,
            config.data.variables,
            static=config.data.static_variables,
            margin=config.data.region_margin,
        )
    if is_weather_directory(path) and is_points_store(store := split_path(path, split)):
        return PointsDataset(store, config.data.variables, static=config.data.static_variables)
    if is_weather_directory(path):
        return open_weather_split(
            path,
            split,
            config.data.variables,
            regional=config.data.regional,
            static=config.data.static_variables,
        )
    return open_dataset(path, split)


def check_splits(config: ExperimentConfig, train) -> None:
    """Checks that the validation split, where there is one, has the training split's
    layout (for WeatherBench2 stores: variables, levels, grid), before a run writes
    anything.

    Raises:
      ValueError: naming the validation file and the field that differs.
    """
    if not isinstance(train, WeatherSplit):
        return  # mesh splits share one meta.json
    try:
        valid = open_split(config, config.data.valid_split)
    except FileNotFoundError:
        return
    if isinstance(train, StretchedDataset) and isinstance(valid, StretchedDataset):
        check_same_layout(train.coarse, valid.coarse)
        check_same_layout(train.fine, valid.fine)
        return
    if isinstance(train, PointsDataset):
        same = valid.meta["channels"] == train.meta["channels"] and np.array_equal(
            valid.point_latitudes, train.point_latitudes
        )
        if not same or not np.array_equal(valid.point_longitudes, train.point_longitudes):
            raise ValueError(
                f"{valid.path}: expected the channels and points of {train.path} "
                f"({len(train.channels)} channels, {train.weights.size} points)"
            )
        return
    check_same_layout(train, valid)


def _fields_of(dataset) -> list[str]:
    """The trajectory fields a dataset holds (from its meta, else its first trajectory)."""
    features = dataset.meta.get("features")
    if isinstance(features, dict):
        return sorted(features)
    return sorted(dataset[0]) if len(dataset) else []


def build_for_data(config: ExperimentConfig, dataset) -> tuple[dict | None, Simulator]:
    """(the dataset meta the task is built from, the simulator) for training on
    `dataset`, checking that the data has the fields the task reads.

    Raises:
      ValueError: one line naming the task, the data directory and the missing fields
        (e.g. a mesh task on weather data, or the reverse).
    """
    name, path = config.task.name, config.data.path
    meta = task_meta(config, dataset)
    try:
        sim = build_simulator(config, meta)
    except KeyError as e:
        raise ValueError(
            f"task {name!r}: the data in {path!r} lacks the field(s) {[e.args[0]]} the task "
            f"is built from (it has {sorted(meta or {})}): data of another kind of task?"
        ) from None
    task = sim.task
    needed = {*task.state_sources, *(task.structure_fields or ())}
    have = _fields_of(dataset)
    missing = sorted(needed - set(have))
    if missing:
        raise ValueError(
            f"task {name!r}: the data in {path!r} lacks the field(s) {missing} the task reads "
            f"(it has {have}): data of another kind of task?"
        )
    return meta, sim


def task_meta(config: ExperimentConfig, dataset) -> dict | None:
    """The dataset meta the config's task is built from (None for tasks that need none)."""
    load_task_module(config.task.module)
    return dict(dataset.meta) if built_from_data(config.task.name) else None


def build_task(config: ExperimentConfig, meta: dict | None = None) -> Task:
    """The task of `config.task` (loading `task.module` first, if any), with its noise
    overrides and options, and for tasks built from their data the dataset's `meta`."""
    tc = config.task
    load_task_module(tc.module)
    kwargs = dict(tc.options)
    if tc.noise_std is not None:
        kwargs["noise_std"] = tc.noise_std
    if tc.noise_gamma is not None:
        kwargs["noise_gamma"] = tc.noise_gamma
    if built_from_data(tc.name):
        kwargs["meta"] = meta
    return get_task(tc.name, **kwargs)


def build_model(config: ExperimentConfig, task: Task) -> EncodeProcessDecode:
    """The model named by `config.model.name`, with the fields the config sets and the
    model's own defaults for the rest, and the processor block `config.model.block`
    with its settings; its output comes from the task."""
    kwargs = config.model.model_kwargs()
    kwargs["block"] = get_block(config.model.block)
    kwargs["block_options"] = tuple(sorted(config.model.block_kwargs().items()))
    if "dtype" in kwargs:
        try:
            kwargs["dtype"] = jax.numpy.dtype(kwargs["dtype"])
        except TypeError as e:
            raise ValueError(
                f"model.dtype: expected a dtype name such as 'float32', got {kwargs['dtype']!r}"
            ) from e
    noise_size = build_ensemble(config).network_noise_size
    if noise_size:
        kwargs["noise_size"] = noise_size
    return get_model(
        config.model.name, output_size=task.output_size, output_node_set=task.node_set, **kwargs
    )


def build_ensemble(config: ExperimentConfig) -> Ensemble:
    """The ensemble of `config.model.ensemble` (one deterministic member by default)."""
    return Ensemble(**dataclasses.asdict(config.model.ensemble))


def build_simulator(config: ExperimentConfig, meta: dict | None = None) -> Simulator:
    """Task + model of a config; raises ValueError/TypeError for bad settings."""
    task = build_task(config, meta)
    ensemble = build_ensemble(config)
    return Simulator(
        model=build_model(config, task),
        task=task,
        ensemble=ensemble if ensemble.stochastic else None,
    )
