"""Weather forecasting on the sphere, GraphCast-style (Lam et al., Science 2023).

The graph has node sets `grid` (the lat-lon points, latitude-major) and `mesh`
(the icosahedral multimesh) and edge sets `grid2mesh`, `mesh` and `mesh2grid`
(`meshsim.meshes.sphere.weather_graph`). It is the same for every example, so it
is built once per grid and shared by a whole batch (`shared_structure`); its
structural features (positions on the sphere, edge displacements in the
receiver's frame) live in the structure itself.

Fields (on `grid`, `N = H·W` nodes, `C` channels = variables × levels):

* `prev|state [N, C]`, `state [N, C]`: the two input times t−1 and t;
* `target|state [N, C]`: the truth at t+1 (training only);
* `forcing [N, 2F]`: forcings at t and t+1 (solar radiation, time of year/day);
* `static [N, S]`: static variables (land-sea mask, surface geopotential);
* `area_weight [N]`: cell area (∝ cos latitude, mean 1), the loss weight.

The network predicts the residual `x_{t+1} − x_t`, scaled by the std of one-step
time differences (a fixed output normalizer; inputs are z-scored with dataset
statistics: `weather_normalizers`). Every grid node is forecast: there are no
prescribed nodes, and a rollout's "prescribed" input is the next step's forcing.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from meshsim import normalization as norm
from meshsim.graph import MultiGraph
from meshsim.tasks.base import Fields, Task

GRID, MESH = "grid", "mesh"
GRID2MESH, MESH2GRID = "grid2mesh", "mesh2grid"
NUM_FORCINGS = 5  # meshsim.data.weather.FORCING_NAMES
POSITION_FEATURES = 3  # sin latitude, cos longitude, sin longitude (meshes.sphere)
EDGE_FEATURES = 4  # displacement in the receiver's frame (3) + length


@functools.lru_cache(maxsize=4)
def _cached_graph(lat: bytes, lon: bytes, splits: int, radius_fraction: float) -> MultiGraph:
    from meshsim.meshes.sphere import weather_graph

    return weather_graph(
        np.frombuffer(lat, np.float64),
        np.frombuffer(lon, np.float64),
        splits=splits,
        radius_fraction=radius_fraction,
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeatherTask(Task):
    """Grid ↔ multimesh forecasting of `output_size` channels with 2 input times.

    Attributes:
      num_static: static variables per grid node (S).
      mesh_splits: icosahedron refinements of the multimesh (6 in GraphCast).
      radius_fraction: grid→mesh radius over the longest finest mesh edge (0.6).
      channel_weights: per-channel loss weights (variables × levels; empty: all 1).
    """

    name: str = "weather"
    state_field: str = "state"
    order: int = 1
    node_set: str = GRID
    shared_structure: bool = True
    num_static: int = 0
    mesh_splits: int = 6
    radius_fraction: float = 0.6
    channel_weights: tuple[float, ...] = ()

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.output_size, int) or self.output_size < 1:
            raise ValueError(f"output_size: expected an int ≥ 1, got {self.output_size!r}")
        if not isinstance(self.num_static, int) or self.num_static < 0:
            raise ValueError(f"num_static: expected an int ≥ 0, got {self.num_static!r}")
        if self.channel_weights and len(self.channel_weights) != self.output_size:
            raise ValueError(
                f"channel_weights: expected {self.output_size} weights, "
                f"got {len(self.channel_weights)}"
            )

    # ------------------------------------------------------------------ the graph

    @property
    def node_feature_sizes(self) -> dict[str, int]:
        c, f = self.output_size, NUM_FORCINGS
        return {GRID: 2 * c + 2 * f + self.num_static + POSITION_FEATURES, MESH: POSITION_FEATURES}

    @property
    def edge_types(self) -> dict[str, tuple[str, str, int]]:
        return {
            GRID2MESH: (GRID, MESH, EDGE_FEATURES),
            MESH: (MESH, MESH, EDGE_FEATURES),
            MESH2GRID: (MESH, GRID, EDGE_FEATURES),
        }

    @property
    def structure_fields(self) -> tuple[str, ...]:
        return ("latitude", "longitude")

    def structure(self, trajectory: Mapping[str, np.ndarray]) -> MultiGraph:
        """The weather graph of the trajectory's grid, with its structural features
        (cached per grid: building it is the expensive part)."""
        lat = np.ascontiguousarray(trajectory["latitude"], np.float64)
        lon = np.ascontiguousarray(trajectory["longitude"], np.float64)
        return _cached_graph(
            lat.tobytes(), lon.tobytes(), self.mesh_splits, float(self.radius_fraction)
        )

    def build_graph(self, fields: Fields, structure: MultiGraph) -> MultiGraph:
        grid = structure.node_sets[GRID]
        position = grid.features[..., -POSITION_FEATURES:]
        features = jnp.concatenate(
            [
                fields[f"prev|{self.state_field}"],
                fields[self.state_field],
                fields["forcing"],
                fields["static"],
                position,
            ],
            axis=-1,
        )
        return structure.replace(
            node_sets={**structure.node_sets, GRID: grid.replace(features=features)}
        )

    # ------------------------------------------------------------------ host side

    def window_times(self, trajectory_length: int, horizon: int = 1) -> range:
        return range(1, trajectory_length - horizon)  # t−1 and t in, t+1.. out

    def static_fields(self, trajectory: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from meshsim.data.weather import node_weights

        static = np.asarray(trajectory["static"], np.float32)
        if static.ndim != 2 or static.shape[1] != self.num_static:
            raise ValueError(f"static: expected [N, {self.num_static}], got {static.shape}")
        return {
            "static": static,
            "area_weight": node_weights(trajectory["latitude"], trajectory["longitude"]),
        }

    def input_fields(self, trajectory: Mapping[str, np.ndarray], t: int) -> dict[str, np.ndarray]:
        """Two input times and the forcings of the step t → t+1."""
        state = trajectory[self.state_field]
        if t < 1:
            raise ValueError(f"t: expected ≥ 1 (two input times), got {t}")
        return {
            f"prev|{self.state_field}": np.asarray(state[t - 1], np.float32),
            self.state_field: np.asarray(state[t], np.float32),
            "forcing": self.prescribed_frames(trajectory, t - 1, 1)[0],
        }

    def prescribed_frames(
        self, trajectory: Mapping[str, np.ndarray], start: int, steps: int
    ) -> np.ndarray:
        """[steps, N, 2F] the forcings of the step after rollout step k from `start`: at
        t+k and t+k+1 (a time past the trajectory's end, needed by no prediction, repeats
        the last frame)."""
        forcing = np.asarray(trajectory["forcing"], np.float32)
        last = forcing.shape[0] - 1
        if start + steps > last:
            raise ValueError(
                f"steps: the trajectory has {last - start} frames after {start}, expected {steps}"
            )
        index = np.arange(start + 1, start + 1 + steps)
        return np.concatenate([forcing[index], forcing[np.minimum(index + 1, last)]], axis=-1)

    @property
    def output_weights(self) -> tuple[float, ...] | None:
        return self.channel_weights or None

    # ------------------------------------------------------------------ jit side

    def simulated_mask(self, fields: Fields) -> jax.Array:
        return jnp.ones(fields[self.state_field].shape[:1], bool)

    def loss_weights(self, fields: Fields, node_mask: jax.Array) -> jax.Array:
        return jnp.where(node_mask, fields["area_weight"], 0.0)

    def advance(self, fields: Fields, next_state: jax.Array, prescribed: jax.Array) -> dict:
        """Shifts the two input times and takes the next forcings (`prescribed [N, 2F]`)."""
        out = dict(fields)
        out[f"prev|{self.state_field}"] = fields[self.state_field]
        out[self.state_field] = next_state
        out["forcing"] = prescribed
        return out

    def plot_scalar(self, states: np.ndarray) -> tuple[np.ndarray, str]:
        return states[..., 0], "channel 0"


def weather_task(**kwargs) -> WeatherTask:
    """`WeatherTask` (registry constructor; `output_size` and `num_static` from the data)."""
    kwargs.setdefault("output_size", 1)
    return WeatherTask(**kwargs)


def weather_normalizers(task: WeatherTask, stats, structure: MultiGraph) -> norm.Normalizers:
    """Fixed normalizers from dataset statistics (GraphCast Sec. 3.2.1).

    Grid inputs: channels z-scored with their mean/std (both input times), forcings
    and static variables with their own statistics, positions as they are; mesh
    nodes and edges: statistics of the structural features; output: mean 0, std of
    one-step differences (residual targets).

    Args:
      stats: `meshsim.data.weather.WeatherStatistics` of the training split.
      structure: the task's weather graph (unpadded).
    """
    c = task.output_size
    if len(stats.channels) != c:
        raise ValueError(f"stats: expected {c} channels, got {len(stats.channels)}")
    if len(stats.static_mean) != task.num_static:
        raise ValueError(
            f"stats: expected {task.num_static} static variables, got {len(stats.static_mean)}"
        )
    grid = np.asarray(structure.node_sets[GRID].features, np.float64)
    f_mean, f_std = stats.forcing_mean, stats.forcing_std
    positions = grid[:, -POSITION_FEATURES:]
    grid_mean = np.concatenate(
        [stats.mean, stats.mean, f_mean, f_mean, stats.static_mean, positions.mean(0)]
    )
    grid_std = np.concatenate(
        [stats.std, stats.std, f_std, f_std, stats.static_std, positions.std(0)]
    )

    def structural(features):
        x = np.asarray(features, np.float64)
        return norm.fixed_normalizer(x.mean(0), x.std(0), std_epsilon=1e-6)

    return norm.Normalizers(
        nodes={
            GRID: norm.fixed_normalizer(grid_mean, grid_std, std_epsilon=1e-6),
            MESH: structural(structure.node_sets[MESH].features),
        },
        edges={k: structural(structure.edge_sets[k].features) for k in task.edge_types},
        output=norm.fixed_normalizer(np.zeros(c), stats.diff_std, std_epsilon=1e-8),
    )
