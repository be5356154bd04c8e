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
* `forcing [N, 2F]`: forcings at t and t+1 (solar radiation, time of year/day); with
  `radiation="step_mean"` the radiation at a time is its mean over the step before it,
  so the one at t+1 is the heating the column receives during the step;
* `static [N, S]`: static variables (land-sea mask, surface geopotential);
* `area_weight [N]`: cell area (∝ cos latitude, mean 1), the loss weight; with
  `region_loss_fraction` the regional points carry that share of it.

Mesh nodes carry GraphCast's inputs: zeros of the grid's input width (everything but
the positions: `input_width`) before their positions, so the mesh embedder is as wide
as the grid's (DeepMind's code appends these "dummy" inputs; they weigh in the
parameter count, not in the function).

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
from meshsim.options import Validated, setting
from meshsim.tasks.base import Fields, Task
from meshsim.validation import check_int

GRID, MESH = "grid", "mesh"
GRID2MESH, MESH2GRID = "grid2mesh", "mesh2grid"
NUM_FORCINGS = 5  # meshsim.data.forcing.FORCING_NAMES
POSITION_FEATURES = 3  # sin latitude, cos longitude, sin longitude (meshes.sphere)
EDGE_FEATURES = 4  # displacement in the receiver's frame (3) + length
RADIATION_MODES = ("instant", "step_mean")  # WeatherOptions.radiation


@functools.lru_cache(maxsize=4)
def _cached_graph(
    lat: bytes,
    lon: bytes,
    splits: int,
    radius_fraction: float,
    region: tuple[float, ...],
    region_splits: int,
    points: bool,
) -> MultiGraph:
    from meshsim.meshes.regional import Refinement
    from meshsim.meshes.sphere import build_points_mesh, build_weather_mesh

    refinement = Refinement.box(*region, extra_splits=region_splits) if region else None
    build = build_points_mesh if points else build_weather_mesh
    mesh = build(
        np.frombuffer(lat, np.float64),
        np.frombuffer(lon, np.float64),
        splits=splits,
        radius_fraction=radius_fraction,
        refinement=refinement,
    )
    return mesh.graph()


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeatherOptions(Validated):
    """The weather task's own settings (`task.options.*` in a config).

    `mesh_splits`: icosahedron refinements of the multimesh (6 in GraphCast);
    `radius_fraction`: grid→mesh radius as a fraction of the longest finest mesh edge;
    `variable_weights`: loss weights as "variable=weight" (others weigh 1);
    `level_weighting`: 3-D variables weighted by pressure level (GraphCast);
    `region`: (lat_min, lat_max, lon_min, lon_max) degrees where the multimesh is
    refined `region_splits` more times (`meshsim.meshes.regional.Refinement.box`; a
    box may cross 0°E: lon_min > lon_max), () for none;
    `limited_area`: on a stretched grid, forecast the fine region only; the other
    points take the host model's values (the global data) at every step, the
    boundary forcing of a limited-area model;
    `region_loss_fraction`: on a stretched grid, the share of the loss weight the
    regional points carry together (anemoi's `weight_frac_of_total`); each part keeps
    its area weights' proportions; 0 leaves the area weights as they are;
    `radiation`: the solar-radiation forcing at a time, "instant" (the flux then) or
    "step_mean" (its mean over the data's time step before then, as ERA5 accumulates
    it over the hour before; `meshsim.data.forcing.step_mean_radiation`).
    Autoregressive training is `train.unroll_steps` (every task has it); which
    variables are read is `data.variables`.
    """

    _section = "task.options"

    mesh_splits: int = setting(6, ge=0)
    radius_fraction: float = setting(0.6, gt=0)
    variable_weights: tuple[str, ...] = ()
    level_weighting: bool = True
    region: tuple[float, ...] = ()
    region_splits: int = setting(1, ge=1)
    limited_area: bool = False
    region_loss_fraction: float = setting(0.0, ge=0, lt=1)
    radiation: str = setting("instant", choices=RADIATION_MODES)

    def __post_init__(self):
        super().__post_init__()
        check_region(self.region)


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeatherTask(Task):
    """Grid ↔ multimesh forecasting of `output_size` channels with 2 input times.

    Attributes:
      num_static: static variables per grid node (S).
      mesh_splits: icosahedron refinements of the multimesh (6 in GraphCast).
      radius_fraction: grid→mesh radius over the longest finest mesh edge (0.6).
      channel_weights: per-channel loss weights (variables × levels; empty: all 1).
      region, region_splits: the refined region of the multimesh (`WeatherOptions`).
      points: the data nodes are a point set (`point_latitude`/`point_longitude`/
        `point_weight` fields: a stretched grid, `meshsim.data.stretched`), not the
        lat-lon grid of `latitude`/`longitude`.
      limited_area: forecast the `region_mask` points only (needs `points`); the others
        are prescribed: `prescribed_frames` carries the host's next state after the
        forcings, and `advance` puts it outside the region.
      region_loss_fraction: the regional points' share of the loss weight (needs
        `points`; 0: area weights as they are; `WeatherOptions`).
      radiation: "instant" or "step_mean" (`WeatherOptions`): what the first forcing
        of each time is; "step_mean" recomputes it from the trajectory's `time`.
    """

    scoring = "forecast"  # scores by lead time from many initial times

    name: str = "weather"
    state_field: str = "state"
    order: int = 1
    node_set: str = GRID
    shared_structure: bool = True
    num_static: int = 0
    mesh_splits: int = 6
    radius_fraction: float = 0.6
    channel_weights: tuple[float, ...] = ()
    region: tuple[float, ...] = ()
    region_splits: int = 1
    points: bool = False
    limited_area: bool = False
    region_loss_fraction: float = 0.0
    radiation: str = "instant"

    def __post_init__(self):
        super().__post_init__()
        check_region(self.region)
        if self.radiation not in RADIATION_MODES:
            raise ValueError(
                f"radiation: expected one of {RADIATION_MODES}, got {self.radiation!r}"
            )
        if self.limited_area and not self.points:
            raise ValueError(
                "task.options.limited_area: expected a stretched grid (data.regional_path): "
                "the fine region is forecast, the global data force its boundary"
            )
        if not 0.0 <= self.region_loss_fraction < 1.0:
            raise ValueError(
                "task.options.region_loss_fraction: expected in [0, 1), "
                f"got {self.region_loss_fraction}"
            )
        if self.region_loss_fraction and not self.points:
            raise ValueError(
                "task.options.region_loss_fraction: expected a stretched grid "
                "(data.regional_path): it weighs the regional points against the others"
            )
        check_int("output_size", self.output_size, minimum=1)
        check_int("num_static", self.num_static, minimum=0)
        if self.channel_weights and len(self.channel_weights) != self.output_size:
            raise ValueError(
                f"channel_weights: expected {self.output_size} weights, "
                f"got {len(self.channel_weights)}"
            )

    # ------------------------------------------------------------------ the graph

    @property
    def input_width(self) -> int:
        """Grid input features besides the positions: 2 input times of C channels, the
        forcings at t and t+1, the static variables."""
        return 2 * self.output_size + 2 * NUM_FORCINGS + self.num_static

    @property
    def node_feature_sizes(self) -> dict[str, int]:
        width = self.input_width + POSITION_FEATURES
        return {GRID: width, MESH: width}

    @property
    def edge_types(self) -> dict[str, tuple[str, str, int]]:
        return {
            GRID2MESH: (GRID, MESH, EDGE_FEATURES),
            MESH: (MESH, MESH, EDGE_FEATURES),
            MESH2GRID: (MESH, GRID, EDGE_FEATURES),
        }

    @property
    def structure_fields(self) -> tuple[str, ...]:
        return ("point_latitude", "point_longitude") if self.points else ("latitude", "longitude")

    def structure(self, trajectory: Mapping[str, np.ndarray]) -> MultiGraph:
        """The weather graph of the trajectory's grid (or point set), with its structural
        features (cached per grid: building it is the expensive part)."""
        lat_field, lon_field = self.structure_fields
        lat = np.ascontiguousarray(trajectory[lat_field], np.float64)
        lon = np.ascontiguousarray(trajectory[lon_field], np.float64)
        return _cached_graph(
            lat.tobytes(),
            lon.tobytes(),
            self.mesh_splits,
            float(self.radius_fraction),
            tuple(float(x) for x in self.region),
            int(self.region_splits),
            self.points,
        )

    def partition_positions(
        self, trajectory: Mapping[str, np.ndarray], structure: MultiGraph
    ) -> dict[str, np.ndarray]:
        """{grid, mesh: [N_s, 3] float64} unit vectors, from the structure's position
        features (sin latitude, cos longitude, sin longitude)."""
        out = {}
        for name, ns in structure.node_sets.items():
            sin_lat, cos_lon, sin_lon = np.asarray(ns.features, np.float64)[:, :3].T
            cos_lat = np.sqrt(np.clip(1.0 - sin_lat**2, 0.0, 1.0))
            out[name] = np.stack([cos_lat * cos_lon, cos_lat * sin_lon, sin_lat], axis=1)
        return out

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
        mesh = structure.node_sets[MESH]
        dummy = jnp.zeros((mesh.features.shape[0], self.input_width), features.dtype)
        mesh_features = jnp.concatenate([dummy, mesh.features.astype(features.dtype)], axis=-1)
        return structure.replace(
            node_sets={
                **structure.node_sets,
                GRID: grid.replace(features=features),
                MESH: mesh.replace(features=mesh_features),
            }
        )

    # ------------------------------------------------------------------ host side

    @property
    def history(self) -> int:
        return 1  # t−1 and t in, t+1.. out

    def static_fields(self, trajectory: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from meshsim.data.weather import node_weights

        static = np.asarray(trajectory["static"], np.float32)
        if static.ndim != 2 or static.shape[1] != self.num_static:
            raise ValueError(f"static: expected [N, {self.num_static}], got {static.shape}")
        if self.points:
            weight = np.asarray(trajectory["point_weight"], np.float32)
            if self.region_loss_fraction:
                from meshsim.data.stretched import region_weighted

                if "region_mask" not in trajectory:
                    raise ValueError(
                        "task.options.region_loss_fraction: expected a stretched grid "
                        "(data.regional_path); this point set has no regional points"
                    )
                weight = region_weighted(
                    weight, trajectory["region_mask"], self.region_loss_fraction
                )
        else:
            weight = node_weights(trajectory["latitude"], trajectory["longitude"])
        out = {"static": static, "area_weight": weight}
        if self.limited_area:
            out["region_mask"] = np.asarray(trajectory["region_mask"], bool)
        return out

    def input_fields(self, trajectory: Mapping[str, np.ndarray], t: int) -> dict[str, np.ndarray]:
        """Two input times and the forcings of the step t → t+1."""
        state = trajectory[self.state_field]
        if t < 1:
            raise ValueError(f"t: expected ≥ 1 (two input times), got {t}")
        return {
            f"prev|{self.state_field}": np.asarray(state[t - 1], np.float32),
            self.state_field: np.asarray(state[t], np.float32),
            "forcing": self.prescribed_frames(trajectory, t - 1, 1)[0, :, : 2 * NUM_FORCINGS],
        }

    def prescribed_frames(
        self, trajectory: Mapping[str, np.ndarray], start: int, steps: int
    ) -> np.ndarray:
        """[steps, N, 2F] the forcings of the step after rollout step k from `start`: at
        t+k and t+k+1 (times past the trajectory's end repeat its last frame; within the
        data only the last step's unused forcing does). A limited-area task appends the
        host's state at t+k ([steps, N, 2F + C]), what its boundary takes."""
        forcing = trajectory["forcing"]  # indexed as is: lazy forcings compute only these
        last = np.shape(forcing)[0] - 1
        index = np.minimum(np.arange(start + 1, start + 1 + steps), last)
        now = np.asarray(forcing[index], np.float32)
        after = np.asarray(forcing[np.minimum(index + 1, last)], np.float32)
        if self.radiation == "step_mean":
            now, after = (
                self._step_mean(trajectory, f, i)
                for f, i in ((now, index), (after, np.minimum(index + 1, last)))
            )
        parts = [now, after]
        if self.limited_area:
            state = trajectory[self.state_field]
            parts.append(np.stack([np.asarray(state[int(i)], np.float32) for i in index]))
        return np.concatenate(parts, axis=-1)

    def _step_mean(self, trajectory, forcing: np.ndarray, index: np.ndarray) -> np.ndarray:
        """`forcing [k, N, F]` of the times `index [k]` with the radiation (feature 0)
        replaced by its mean over the time step before each time."""
        from meshsim.data.forcing import step_mean_radiation, step_mean_radiation_points

        times = np.asarray(trajectory["time"], "datetime64[ns]")
        if times.size < 2:
            raise ValueError("time: radiation='step_mean' needs at least 2 times")
        step = np.diff(times).min()
        out = forcing.copy()
        if self.points:
            lat, lon = trajectory["point_latitude"], trajectory["point_longitude"]
            out[..., 0] = step_mean_radiation_points(times[index], lat, lon, step)
        else:
            lat, lon = trajectory["latitude"], trajectory["longitude"]
            out[..., 0] = step_mean_radiation(times[index], lat, lon, step)
        return out

    @property
    def output_weights(self) -> tuple[float, ...] | None:
        return self.channel_weights or None

    @property
    def uses_dataset_statistics(self) -> bool:
        return True

    def dataset_normalizers(self, statistics, structure: MultiGraph) -> norm.Normalizers:
        return weather_normalizers(self, statistics, structure)

    # ------------------------------------------------------------------ jit side

    def simulated_mask(self, fields: Fields) -> jax.Array:
        if self.limited_area:
            return fields["region_mask"]
        return jnp.ones(fields[self.state_field].shape[:1], bool)

    def loss_weights(self, fields: Fields, node_mask: jax.Array) -> jax.Array:
        keep = node_mask & self.simulated_mask(fields)
        return jnp.where(keep, fields["area_weight"], 0.0)

    def advance(self, fields: Fields, next_state: jax.Array, prescribed: jax.Array) -> dict:
        """Shifts the two input times and takes the next forcings (`prescribed [N, 2F]`;
        a limited-area task's boundary takes the host state after them)."""
        out = dict(fields)
        out[f"prev|{self.state_field}"] = fields[self.state_field]
        forcing = prescribed[..., : 2 * NUM_FORCINGS]
        if self.limited_area:
            host = prescribed[..., 2 * NUM_FORCINGS :]
            next_state = jnp.where(self.simulated_mask(fields)[:, None], next_state, host)
        out[self.state_field] = next_state
        out["forcing"] = forcing
        return out

    def plot_scalar(self, states: np.ndarray) -> tuple[np.ndarray, str]:
        return states[..., 0], "channel 0"


def channel_weights(
    channels, *, variable_weights: Mapping[str, float] | None = None, by_level: bool = True
) -> tuple[float, ...]:
    """Per-channel loss weights (GraphCast Sec. 3.2.2): a variable's weight (default 1)
    times, for 3-D variables, the pressure level over the mean level of that variable,
    so upper levels (low pressure) weigh less.

    Args:
      channels: channel names, `variable` or `variable/level`.
      variable_weights: {variable: weight}; unknown variables raise ValueError.
      by_level: scale 3-D channels by their pressure level.
    """
    from meshsim.data.weather import Channel

    parsed = [Channel.parse(c) for c in channels]
    variable_weights = dict(variable_weights or {})
    unknown = set(variable_weights) - {c.variable for c in parsed}
    if unknown:
        raise ValueError(
            f"variable_weights: {sorted(unknown)} are not forecast variables "
            f"{sorted({c.variable for c in parsed})}"
        )
    out = []
    for c in parsed:
        w = float(variable_weights.get(c.variable, 1.0))
        levels = [p.level for p in parsed if p.variable == c.variable]
        if by_level and c.level is not None:
            w *= c.level / float(np.mean(levels))
        out.append(w)
    return tuple(out)


def weather_task(
    *,
    meta: Mapping | None = None,
    variables: tuple[str, ...] = (),
    variable_weights: tuple[str, ...] = (),
    level_weighting: bool = True,
    **kwargs,
) -> WeatherTask:
    """The registry constructor: a `WeatherTask` for a dataset's channels.

    Args:
      meta: the dataset's meta (`WeatherDataset.meta`: "channels", "static"); without
        it the keyword `output_size` (and `num_static`) must be given.
      variables: the forecast variables of the config (checked against the meta's).
      variable_weights: "variable=weight" strings (`channel_weights`).
      level_weighting: weigh 3-D channels by pressure level.
      **kwargs: other `WeatherTask` fields (mesh_splits, radius_fraction, noise_std...).
    """
    if meta is None:
        if "output_size" not in kwargs:
            raise ValueError("weather task: needs the dataset's meta (its channels)")
        return WeatherTask(**kwargs)
    channels = list(meta["channels"])
    forecast = {c.split("/")[0] for c in channels}
    missing = [v for v in variables if v not in forecast]
    if missing:
        raise ValueError(f"variables: {missing} not in the dataset's {sorted(forecast)}")
    weights = {}
    for item in variable_weights:
        name, sep, value = item.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or weights[name] < 0:
            raise ValueError(
                f"task.options.variable_weights: expected 'variable=weight ≥ 0', got {item!r}"
            )
    return WeatherTask(
        points=bool(meta.get("points")),
        output_size=len(channels),
        num_static=len(meta.get("static", ())),
        channel_weights=channel_weights(
            channels, variable_weights=weights, by_level=level_weighting
        ),
        **kwargs,
    )


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

    mesh_positions = np.asarray(structure.node_sets[MESH].features, np.float64)

    return norm.Normalizers(
        nodes={
            GRID: norm.fixed_normalizer(grid_mean, grid_std, std_epsilon=1e-6),
            # the dummy inputs stay 0 (mean 0, std 1), then the positions' statistics
            MESH: norm.fixed_normalizer(
                np.concatenate([np.zeros(task.input_width), mesh_positions.mean(0)]),
                np.concatenate([np.ones(task.input_width), mesh_positions.std(0)]),
                std_epsilon=1e-6,
            ),
        },
        edges={k: structural(structure.edge_sets[k].features) for k in task.edge_types},
        output=norm.fixed_normalizer(np.zeros(c), stats.diff_std, std_epsilon=1e-8),
    )


def check_region(region) -> None:
    """Checks a refined region: () or (lat_min, lat_max, lon_min, lon_max) degrees.

    Raises:
      ValueError: naming `task.options.region`, the expected form and what it got.
    """
    if not region:
        return
    values = tuple(region)
    ok = len(values) == 4 and all(isinstance(v, int | float) for v in values)
    if ok:
        lat_min, lat_max, lon_min, lon_max = values
        ok = -90 <= lat_min < lat_max <= 90 and all(-360 <= v <= 360 for v in values[2:])
    if not ok:
        raise ValueError(
            "task.options.region: expected (lat_min, lat_max, lon_min, lon_max) degrees "
            f"with -90 ≤ lat_min < lat_max ≤ 90, got {values}"
        )
