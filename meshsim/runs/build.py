"""From a config to the objects of a run: its data, task, model and simulator.

`open_split` opens one split of the config's dataset (a mesh dataset in HDF5 or
TFRecord, or a WeatherBench2-layout zarr/netCDF store); `build_task` builds the
task the config names with its options (and, for a task built from its data, the
dataset's meta); `build_model` the network the config names, keeping the model's
own defaults for every field the config leaves unset; `build_simulator` both.
Bad settings raise ValueError/TypeError naming the config field.
"""

from __future__ import annotations

import jax

from meshsim.config import ExperimentConfig
from meshsim.data import open_dataset
from meshsim.data.weather import is_weather_directory, open_weather_split
from meshsim.models import EncodeProcessDecode, get_model
from meshsim.simulator import Simulator
from meshsim.tasks import Task, built_from_data, get_task, load_task_module


def open_split(config: ExperimentConfig, split: str):
    """One split of the config's dataset: a mesh dataset (HDF5/TFRecord, `open_dataset`)
    or a WeatherBench2-layout zarr/netCDF store (`open_weather_split`, read lazily,
    the variables of `data.variables`)."""
    if is_weather_directory(config.data.path):
        return open_weather_split(config.data.path, split, config.data.variables)
    return open_dataset(config.data.path, split)


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
    model's own defaults for the rest; its output comes from the task."""
    kwargs = config.model.model_kwargs()
    if "dtype" in kwargs:
        try:
            kwargs["dtype"] = jax.numpy.dtype(kwargs["dtype"])
        except TypeError as e:
            raise ValueError(
                f"model.dtype: expected a dtype name such as 'float32', got {kwargs['dtype']!r}"
            ) from e
    return get_model(
        config.model.name, output_size=task.output_size, output_node_set=task.node_set, **kwargs
    )


def build_simulator(config: ExperimentConfig, meta: dict | None = None) -> Simulator:
    """Task + model of a config; raises ValueError/TypeError for bad settings."""
    task = build_task(config, meta)
    return Simulator(model=build_model(config, task), task=task)
