"""Weather data in WeatherBench2 layout: trajectories, weights (statistics: `weather_statistics`).

A WeatherBench2 dataset (zarr store or netCDF file) has dims `time`, `level`,
`latitude`, `longitude`; 3-D variables are over `time, level` and the two horizontal
dims, 2-D ones over `time` and them, static fields (land-sea mask, geopotential at
the surface) over the horizontal dims only, in either horizontal order and either
latitude direction (`meshsim.data.weather_store` opens and reads them). meshsim stacks
variables × levels into **channels** (`"u_component_of_wind/500"`, `"2m_temperature"`)
on the grid nodes, latitude-major and ascending (`node = i·W + j`), and reads frames
lazily: a window touches only the times it needs, never the whole archive.

Trajectories are the runs of equally spaced times (a gap in `time` starts a new
one), so one continuous reanalysis is one trajectory and a generated dataset of
separate simulations holds several.

Forcings are computed from the time, not read: `meshsim.data.forcing` (its names
are re-exported here).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from meshsim.data.forcing import (  # noqa: F401 (re-exported)
    FORCING_NAMES,
    SOLAR_CONSTANT,
    LazyForcing,
    forcing_frames,
    forcing_points,
    forcing_statistics,
    toa_incident_solar_radiation,
)
from meshsim.data.frame_cache import FrameCache
from meshsim.data.weather_statistics import (  # noqa: F401 (re-exported)
    WeatherStatistics,
    compute_statistics,
)
from meshsim.data.weather_store import (  # noqa: F401 (re-exported)
    LEVEL_SEPARATOR,
    Channel,
    StoreLayout,
    channels_of,
    check_variables,
    dynamic_variables,
    open_weather,
    read_frames,
    static_field,
    static_variables,
    store_layout,
    unreadable_variables,
)
from meshsim.meshes.sphere import cell_area_weights

logger = logging.getLogger(__name__)


def time_segments(times: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop)] index ranges of equally spaced times (the smallest spacing).

    Raises:
      ValueError: fewer than 2 times or times not strictly increasing.
    """
    times = np.asarray(times, "datetime64[ns]")
    if times.size < 2:
        raise ValueError(f"time: expected at least 2 times, got {times.size}")
    diffs = np.diff(times)
    if np.any(diffs <= np.timedelta64(0, "ns")):
        raise ValueError("time: expected strictly increasing times")
    step = diffs.min()
    cuts = np.flatnonzero(diffs != step) + 1
    bounds = [0, *cuts.tolist(), times.size]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= 1]


def time_step(times: np.ndarray) -> np.timedelta64:
    """The dataset's time step (the smallest spacing of `times`)."""
    return np.diff(np.asarray(times, "datetime64[ns]")).min()


# ---------------------------------------------------------------------------- lazy trajectories


def check_time_axis(ds, path: str) -> np.ndarray:
    """[T] datetime64[ns] times of a store; forcings are computed from them, so they must
    be a real datetime coordinate.

    Raises:
      ValueError: naming the file, when `time` has no coordinate values or they are not
        datetimes (e.g. plain integers).
    """
    if "time" not in ds.coords:
        raise ValueError(
            f"{path}: time: expected a datetime64 coordinate (forcings are computed from "
            "the time), but the store has a time dimension without coordinate values"
        )
    values = np.asarray(ds["time"].values)
    if values.dtype.kind != "M":
        raise ValueError(
            f"{path}: time: expected datetime64 values (forcings are computed from the "
            f"time), got {values.dtype} values such as {values.ravel()[:3].tolist()}"
        )
    return values.astype("datetime64[ns]")


def check_global_latitudes(latitudes: np.ndarray, path: str) -> None:
    """Checks that ascending `latitudes` [H] float64 (deg) span pole to pole, to within
    one grid spacing (grids with or without the poles), as the weather task's globe
    assumes.

    Raises:
      ValueError: naming the file and the latitudes covered, with the regional setting.
    """
    spacing = float(np.max(np.diff(latitudes)))
    if latitudes[0] - spacing > -90 + 1e-6 or latitudes[-1] + spacing < 90 - 1e-6:
        raise ValueError(
            f"{path}: latitude: expected a global grid (from within {spacing:g}° of each "
            f"pole), got {latitudes[0]:g}°…{latitudes[-1]:g}°; for a regional dataset set "
            "data.regional=True"
        )


def check_same_layout(reference: WeatherDataset, other: WeatherDataset) -> None:
    """Checks that split `other` has the variables, levels and grid of `reference` (the
    training split), so a model trained on one reads the other.

    Raises:
      ValueError: naming `other`'s file and the first field that differs.
    """
    ref, got = reference.meta["channels"], other.meta["channels"]
    if ref != got:
        missing = [c for c in ref if c not in got]
        extra = [c for c in got if c not in ref]
        raise ValueError(
            f"{other.path}: variables: expected the channels of {reference.path} "
            f"(variables × levels: {ref}), missing {missing}, extra {extra}"
        )
    for name in ("latitudes", "longitudes"):
        a, b = getattr(reference, name), getattr(other, name)
        if a.shape != b.shape or not np.allclose(a, b):
            raise ValueError(
                f"{other.path}: {name[:-1]}: expected the grid of {reference.path} "
                f"({a.size} values {a[0]:g}…{a[-1]:g}), got {b.size} values {b[0]:g}…{b[-1]:g}"
            )
    if reference.static_names != other.static_names:
        raise ValueError(
            f"{other.path}: static variables: expected {list(reference.static_names)} "
            f"(as {reference.path}), got {list(other.static_names)}"
        )


class LazyFrames:
    """A `[T, H·W, C]` array-like over one trajectory that reads frames on demand.

    Integer and slice indexing along time read only those frames (the last few are
    cached, since consecutive windows overlap); `np.asarray` reads everything.

    Args:
      cache: frames kept by this trajectory (an int), or a `FrameCache` shared by every
        trajectory (out-of-core training: one byte cap, `data.cache_bytes`), where
        frame t is kept under `key + (start + t,)`.
      key: the shared cache's key prefix (the store path).
    """

    def __init__(
        self,
        ds,
        channels: Sequence[Channel],
        start: int,
        stop: int,
        cache: int | FrameCache = 8,
        key: tuple = (),
    ):
        self._ds, self._channels = ds, tuple(channels)
        self._start, self._stop = start, stop
        n = ds.sizes["latitude"] * ds.sizes["longitude"]
        self.shape = (stop - start, n, len(self._channels))
        self.ndim, self.dtype = 3, np.dtype(np.float32)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._shared = cache if isinstance(cache, FrameCache) else None
        self._key = (*key, self._channels)
        self._cache_size = 0 if self._shared is not None else cache

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, t: int) -> np.ndarray:
        return read_frames(self._ds, self._channels, [self._start + t])[0]

    def _frame(self, t: int) -> np.ndarray:
        if self._shared is not None:
            return self._shared.get((*self._key, self._start + t), lambda: self._read(t))
        if t in self._cache:
            self._cache.move_to_end(t)
            return self._cache[t]
        frame = self._read(t)
        self._cache[t] = frame
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return frame

    def __getitem__(self, index):
        if isinstance(index, int | np.integer):
            t = int(index) + (self.shape[0] if index < 0 else 0)
            if not 0 <= t < self.shape[0]:
                raise IndexError(f"time index {index} out of range for {self.shape[0]} frames")
            return self._frame(t)
        if isinstance(index, slice):
            ts = range(*index.indices(self.shape[0]))
            if not ts:
                return np.zeros((0, *self.shape[1:]), np.float32)
            return read_frames(self._ds, self._channels, [self._start + t for t in ts])
        return np.asarray(self)[index]

    def __array__(self, dtype=None, copy=None):
        frames = read_frames(self._ds, self._channels, slice(self._start, self._stop))
        return frames if dtype is None else frames.astype(dtype)


class WeatherSplit(Sequence):
    """What every weather split shares: its trajectories are the `segments` time
    ranges, and its statistics are computed once (`compute_statistics`, which reads
    `frames`, `point_latitudes`, `point_longitudes`, `static`, `times`).

    Subclasses: `WeatherDataset` (a lat-lon grid), `meshsim.data.stretched.
    StretchedDataset`, `meshsim.data.weather_points.PointsDataset`.
    """

    segments: list[tuple[int, int]]
    region_mask = None  # [N] bool nodes of a fine region (stretched grids), or None

    def __len__(self) -> int:
        return len(self.segments)

    def segment(self, index: int) -> tuple[int, int]:
        """(start, stop) time indices of trajectory `index` (negative counts back).

        Raises:
          IndexError: no such trajectory.
        """
        if not -len(self) <= index < len(self):
            raise IndexError(f"trajectory {index} out of range for {len(self)} trajectories")
        return self.segments[index]

    def __iter__(self) -> Iterator[dict]:
        return (self[i] for i in range(len(self)))

    def statistics(self) -> WeatherStatistics:
        """`compute_statistics` of this split (one streaming pass; cached)."""
        if getattr(self, "_statistics", None) is None:
            self._statistics = compute_statistics(self)
        return self._statistics

    def iter(self, fields: Sequence[str] | None = None) -> Iterator[dict]:
        """Trajectories restricted to `fields` (all when None)."""
        for traj in self:
            yield traj if fields is None else {k: traj[k] for k in fields if k in traj}


class WeatherDataset(WeatherSplit):
    """One split of a WeatherBench2-layout dataset as a sequence of trajectories.

    Each trajectory is a dict: `state` (`LazyFrames` `[T, H·W, C]`), `forcing`
    (`LazyForcing` `[T, H·W, 5]`, computed for the times indexed), `static` `[H·W, S]`
    float32 (static variables, then cos/sin of latitude ... see `WeatherTask`),
    `latitude [H]`, `longitude [W]` float64 (deg) and `time [T]` datetime64. Only
    `state` touches the store, frame by frame.

    Attributes:
      ds: the lazily opened xarray Dataset.
      channels: the forecast channels.
      segments: [(start, stop)] time-index ranges of the trajectories.
      layout: the source's `StoreLayout` (forecasts are written back in it).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        variables: Sequence[str] = (),
        *,
        regional: bool = False,
        static: Sequence[str] | None = None,
    ):
        self.path = os.fspath(path)
        self.ds = open_weather(self.path)
        check_variables(self.ds, [*variables, *(static or ())] if variables else ())
        self.channels = channels_of(self.ds, variables)
        self.times = check_time_axis(self.ds, self.path)
        self.segments = time_segments(self.times)
        self.latitudes = np.asarray(self.ds["latitude"].values, np.float64)
        self.regional = bool(regional)  # a limited-area grid, not pole to pole
        if not regional:
            check_global_latitudes(self.latitudes, self.path)
        self.longitudes = np.asarray(self.ds["longitude"].values, np.float64)
        self.static_names = _static_names(self.ds, static, self.path)
        static_values = [static_field(self.ds, n).reshape(-1) for n in self.static_names]
        n = self.latitudes.size * self.longitudes.size
        self.static = np.stack(static_values, -1) if static_values else np.zeros((n, 0), np.float32)
        for k, name in enumerate(self.static_names):
            if not np.all(np.isfinite(self.static[:, k])):
                raise ValueError(f"{self.path}: static variable {name!r} holds NaN or Inf")
        self.layout = store_layout(self.ds, list(dict.fromkeys(c.variable for c in self.channels)))
        self.meta = {
            "format": "weatherbench2",
            "channels": [c.name for c in self.channels],
            "static": list(self.static_names),
            "time_step_hours": float(time_step(self.times) / np.timedelta64(1, "h")),
        }

    def __repr__(self) -> str:
        return (
            f"WeatherDataset({self.path!r}, {len(self)} trajectories, "
            f"{len(self.latitudes)}×{len(self.longitudes)} grid, channels={self.meta['channels']})"
        )

    def __getitem__(self, index: int) -> dict:
        return self.lazy(index)

    def lazy(self, index: int, cache: FrameCache | None = None) -> dict:
        """Trajectory `index` (what indexing gives), its frames kept in `cache`, shared
        by every trajectory (out-of-core training, `data.cache_bytes`), instead of a
        few per trajectory."""
        start, stop = self.segment(index)
        times = self.times[start:stop]
        frames = 8 if cache is None else cache
        return {
            "state": LazyFrames(self.ds, self.channels, start, stop, frames, (self.path,)),
            "forcing": LazyForcing(times, self.point_latitudes, self.point_longitudes),
            "static": self.static,
            "latitude": self.latitudes,
            "longitude": self.longitudes,
            "time": times,
        }

    def frames(self, start: int, stop: int) -> np.ndarray:
        """[stop − start, N, C] float32 frames of the time indices start..stop − 1."""
        return read_frames(self.ds, self.channels, slice(start, stop))

    @property
    def point_latitudes(self) -> np.ndarray:
        """[N] float64 latitude of every node (latitude-major)."""
        return np.repeat(self.latitudes, self.longitudes.size)

    @property
    def point_longitudes(self) -> np.ndarray:
        """[N] float64 longitude of every node."""
        return np.tile(self.longitudes, self.latitudes.size)

    @property
    def weights(self) -> np.ndarray:
        """[N] float32 area weights of the nodes, mean 1 (`node_weights`)."""
        return node_weights(self.latitudes, self.longitudes)


def _static_names(ds, static: Sequence[str] | None, path: str) -> tuple[str, ...]:
    """The static variables to read: `static` (checked), or all of the store's."""
    valid = static_variables(ds)
    if static is None:
        return tuple(valid)
    for name in static:
        if name not in valid:
            raise ValueError(f"{path}: static variables: {name!r} is not one of {valid}")
    return tuple(static)


def open_weather_split(
    directory: str | os.PathLike,
    split: str,
    variables: Sequence[str] = (),
    *,
    regional: bool = False,
    static: Sequence[str] | None = None,
) -> WeatherDataset:
    """`{directory}/{split}.zarr` (or `.nc`) as a `WeatherDataset` (`regional`: latitudes
    need not cover the globe; `static`: the static variables to read, None for all)."""
    return WeatherDataset(split_path(directory, split), variables, regional=regional, static=static)


def split_path(directory: str | os.PathLike, split: str) -> str:
    """`{directory}/{split}.zarr`, else `.nc`.

    Raises:
      FileNotFoundError: neither exists.
    """
    for ext in (".zarr", ".nc"):
        path = os.path.join(os.fspath(directory), split + ext)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"weather dataset: no {split}.zarr or {split}.nc in {directory!r}")


def is_weather_directory(directory: str | os.PathLike) -> bool:
    """True when `directory` holds WeatherBench2-layout splits (`*.zarr` or `*.nc`)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    return any(n.endswith((".zarr", ".nc")) for n in names)


def latitude_weights(latitudes) -> np.ndarray:
    """[H] float64 area weights ∝ cos(latitude), mean 1 (WeatherBench2-style scores), in
    the order given: `meshsim.meshes.sphere.cell_area_weights` of the sorted rows (pole
    rows of an equiangular grid get their half cell, not zero)."""
    lat = np.asarray(latitudes, np.float64)
    order = np.argsort(lat)
    weights = np.empty_like(lat)
    weights[order] = cell_area_weights(lat[order])
    return weights


def node_weights(latitudes, longitudes) -> np.ndarray:
    """[H·W] float32 latitude weights per grid node (latitude-major), mean 1."""
    w = latitude_weights(latitudes)
    return np.repeat(w, len(longitudes)).astype(np.float32)


def channel_index(channels: Sequence[str] | Mapping) -> dict[str, list[int]]:
    """{variable: [channel indices]} for per-variable scores."""
    out: dict[str, list[int]] = {}
    for k, name in enumerate(channels):
        out.setdefault(Channel.parse(name).variable, []).append(k)
    return out
