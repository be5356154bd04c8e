"""Domain tasks: how states become typed graphs and outputs become next states.

A task holds everything domain-specific (`Task`): its graph, targets, integration,
prescribed nodes, loss weights, noise, plots, diagnostics and how a trained run is
scored. Tasks are found by name (`TASKS`, `get_task`); `register_task` adds one,
from inside the package or from a user's module (`task.module` in a config).
"""

from meshsim.tasks.base import (
    MESH_EDGES,
    MeshTask,
    Task,
    one_hot_node_type,
    relative_edge_features,
)
from meshsim.tasks.cfd import CfdTask, cfd_task
from meshsim.tasks.cloth import ClothTask, cloth_task
from meshsim.tasks.particles import (
    PARTICLES,
    ParticleOptions,
    ParticleTask,
    particle_task,
)
from meshsim.tasks.registry import (
    TASKS,
    built_from_data,
    get_task,
    load_task_module,
    register_task,
    task_option_hint,
    task_options,
)
from meshsim.tasks.weather import (
    WeatherOptions,
    WeatherTask,
    channel_weights,
    weather_normalizers,
    weather_task,
)

register_task("cfd", cfd_task)
register_task("cloth", cloth_task)
register_task("weather", weather_task, options=WeatherOptions)
register_task("particles", particle_task, options=ParticleOptions)

__all__ = [
    "MESH_EDGES",
    "PARTICLES",
    "TASKS",
    "CfdTask",
    "ClothTask",
    "MeshTask",
    "ParticleOptions",
    "ParticleTask",
    "Task",
    "WeatherOptions",
    "WeatherTask",
    "built_from_data",
    "cfd_task",
    "channel_weights",
    "cloth_task",
    "get_task",
    "load_task_module",
    "one_hot_node_type",
    "particle_task",
    "register_task",
    "relative_edge_features",
    "task_option_hint",
    "task_options",
    "weather_normalizers",
    "weather_task",
]
