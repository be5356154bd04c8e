"""Domain tasks: how states become typed graphs and outputs become next states.

A task holds everything domain-specific (`Task`): its graph, targets, integration,
prescribed nodes, loss weights, noise, plots, diagnostics and how a trained run is
scored. Tasks are found by name (`TASKS`, `get_task`); `register_task` adds one,
from inside the package or from a user's module (`task.module` in a config).
"""

from meshsim.tasks.base import Task
from meshsim.tasks.cfd import AirfoilTask, CfdTask, airfoil_task, cfd_task
from meshsim.tasks.cloth import (
    ClothTask,
    ContactClothTask,
    cloth_contact_task,
    cloth_task,
    flag_dynamic_task,
)
from meshsim.tasks.mesh import (
    MESH_EDGES,
    MeshTask,
    one_hot_node_type,
    relative_edge_features,
)
from meshsim.tasks.particles import (
    PARTICLES,
    ParticleOptions,
    ParticleTask,
    particle_task,
)
from meshsim.tasks.receptive_field import (
    DILATED_EDGES,
    FROM_GLOBAL,
    GLOBAL_NODES,
    KHOP_EDGES,
    TO_GLOBAL,
    MeshOptions,
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
from meshsim.tasks.solids import DeformingPlateTask, deforming_plate_task
from meshsim.tasks.weather import (
    WeatherOptions,
    WeatherTask,
    channel_weights,
    weather_normalizers,
    weather_task,
)
from meshsim.tasks.world_edges import WORLD_EDGES, ContactOptions

register_task("cfd", cfd_task, options=MeshOptions)
register_task("cloth", cloth_task, options=MeshOptions)
register_task("weather", weather_task, options=WeatherOptions)
register_task("particles", particle_task, options=ParticleOptions)
register_task("airfoil", airfoil_task, options=MeshOptions)
register_task("deforming_plate", deforming_plate_task, options=ContactOptions)
register_task("sphere_simple", cloth_contact_task, options=ContactOptions)
register_task("flag_dynamic", flag_dynamic_task, options=ContactOptions)

__all__ = [
    "DILATED_EDGES",
    "FROM_GLOBAL",
    "GLOBAL_NODES",
    "KHOP_EDGES",
    "MESH_EDGES",
    "TO_GLOBAL",
    "PARTICLES",
    "TASKS",
    "WORLD_EDGES",
    "AirfoilTask",
    "CfdTask",
    "ClothTask",
    "ContactClothTask",
    "ContactOptions",
    "DeformingPlateTask",
    "MeshOptions",
    "MeshTask",
    "ParticleOptions",
    "ParticleTask",
    "Task",
    "WeatherOptions",
    "WeatherTask",
    "airfoil_task",
    "built_from_data",
    "cfd_task",
    "cloth_contact_task",
    "deforming_plate_task",
    "flag_dynamic_task",
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
