"""Domain tasks: how states become typed graphs and outputs become next states."""

from meshsim.tasks.base import (
    MESH_EDGES,
    MeshTask,
    Task,
    one_hot_node_type,
    relative_edge_features,
)
from meshsim.tasks.cfd import CfdTask, cfd_task
from meshsim.tasks.cloth import ClothTask, cloth_task
from meshsim.tasks.weather import WeatherTask, channel_weights, weather_normalizers, weather_task

TASKS = {"cfd": cfd_task, "cloth": cloth_task, "weather": weather_task}


def get_task(name: str, **kwargs) -> Task:
    """A task by registry name; raises ValueError listing the valid names."""
    if name not in TASKS:
        raise ValueError(f"task: expected one of {sorted(TASKS)}, got {name!r}")
    return TASKS[name](**kwargs)


__all__ = [
    "MESH_EDGES",
    "TASKS",
    "CfdTask",
    "ClothTask",
    "MeshTask",
    "Task",
    "cfd_task",
    "WeatherTask",
    "channel_weights",
    "cloth_task",
    "get_task",
    "one_hot_node_type",
    "relative_edge_features",
    "weather_normalizers",
    "weather_task",
]
