"""Stretched grids: a coarse global grid with a fine regional grid set into it.

Nipen et al. (*Regional data-driven weather modeling with a global stretched-grid*,
2024; ECMWF's anemoi implements it) train one model on the points of a coarse global
dataset outside a region plus those of a fine regional dataset inside it. Here the
regional dataset is a second WeatherBench2-layout store on a lat-lon grid over a box
(e.g. `meshsim generate shallow_water --region ...` writes one beside its global
store), the same variables at the same times. The box is the regional store's extent;
global points inside it grown by `margin` degrees are dropped, so each part of the
globe is covered once.

The nodes are a point set, not a grid: global points first (latitude-major, as
kept), then regional ones. Each carries its own area weight: the solid angle of its
cell (a band between the midpoints to its neighbouring rows, times its longitude
spacing; global rows reach the poles at the ends, WeatherBench2's rule), normalised to
mean 1 over all points, so a fine region weighs by its area, not by its number of
points. `region_mask` marks the regional points (scores inside and outside the region).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from meshsim.data.forcing import LazyForcing
from meshsim.data.weather import LazyFrames, WeatherDataset, WeatherSplit

REGIONAL_DIR = "regional"  # the regional stores: {path}/regional/{split}.zarr


def _row_areas(latitudes: np.ndarray, *, to_poles: bool) -> np.ndarray:
    """[H] float64 sin(upper) − sin(lower) of each row's band (ascending latitudes):
    midpoints between rows; the end rows reach the poles (`to_poles`) or half a spacing
    past themselves."""
    lat = np.radians(np.asarray(latitudes, np.float64))
    mid = (lat[:-1] + lat[1:]) / 2
    half = (lat[1] - lat[0]) / 2 if lat.size > 1 else np.pi / 2
    low = -np.pi / 2 if to_poles else max(lat[0] - half, -np.pi / 2)
    high = np.pi / 2 if to_poles else min(lat[-1] + half, np.pi / 2)
    bounds = np.concatenate([[low], mid, [high]])
    return np.sin(bounds[1:]) - np.sin(bounds[:-1])


def cell_areas(latitudes, longitudes, *, to_poles: bool) -> np.ndarray:
    """[H·W] float64 solid angle (sr) of each cell of a regular lat-lon grid,
    latitude-major; longitudes spaced by their smallest step."""
    lon = np.asarray(longitudes, np.float64)
    spacing = np.radians(np.diff(lon).min()) if lon.size > 1 else 2 * np.pi
    rows = _row_areas(latitudes, to_poles=to_poles) * spacing
    return np.repeat(rows, lon.size)


def region_box(latitudes, longitudes) -> tuple[float, float, float, float]:
    """(lat_min, lat_max, lon_min, lon_max) degrees spanned by a regional grid; the
    longitudes run east from lon_min, so a region across 0°E has lon_min > lon_max."""
    lat, lon = np.asarray(latitudes, np.float64), np.sort(np.asarray(longitudes, np.float64))
    gaps = np.diff(np.concatenate([lon, [lon[0] + 360.0]]))  # the gap after each longitude
    k = int(np.argmax(gaps))  # the widest gap is outside the region
    return float(lat.min()), float(lat.max()), float(lon[(k + 1) % lon.size]), float(lon[k])


def in_box(latitudes, longitudes, box, margin: float = 0.0) -> np.ndarray:
    """[N] bool: points (`latitudes [N]`, `longitudes [N]` deg) within `box` grown by
    `margin` degrees on every side."""
    lat_min, lat_max, lon_min, lon_max = box
    span = (lon_max - lon_min) % 360 + 2 * margin
    lat, lon = np.asarray(latitudes, np.float64), np.asarray(longitudes, np.float64)
    inside_lat = (lat >= lat_min - margin) & (lat <= lat_max + margin)
    return inside_lat & ((lon - (lon_min - margin)) % 360 <= span)


class StretchedFrames:
    """A `[T, N, C]` array-like: a trajectory's global frames at the kept points, then
    its regional frames; integer and slice indexing read only those times."""

    def __init__(self, coarse, fine, keep: np.ndarray):
        self._coarse, self._fine, self._keep = coarse, fine, keep
        self.shape = (coarse.shape[0], int(keep.sum()) + fine.shape[1], coarse.shape[2])
        self.ndim, self.dtype = 3, np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        if isinstance(index, int | np.integer | slice):
            coarse = np.asarray(self._coarse[index])[..., self._keep, :]
            return np.concatenate([coarse, np.asarray(self._fine[index])], axis=-2)
        return np.asarray(self)[index]

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class StretchedDataset(WeatherSplit):
    """One split of a stretched grid: a global `WeatherDataset` and a regional one.

    Each trajectory is a dict like `WeatherDataset`'s with the nodes a point set:
    `state` (`StretchedFrames` `[T, N, C]`), `forcing [T, N, 5]`, `static [N, S]`,
    `point_latitude`, `point_longitude` `[N]` float64 (deg), `point_weight [N]` float32
    (area, mean 1), `region_mask [N]` bool and `time [T]`.

    Attributes:
      coarse, fine: the global and regional `WeatherDataset`s.
      keep: [H·W] bool global points outside the region (grown by the margin).
      box: the region (`region_box` of the regional grid).
      channels, times, segments, meta, static_names, layout: the global split's.

    Raises:
      ValueError: the two splits differ in variables, static fields or times, or the
        region holds no global point to replace.
    """

    def __init__(self, coarse: WeatherDataset, fine: WeatherDataset, *, margin: float = 0.0):
        if not np.isfinite(margin) or margin < 0:
            raise ValueError(f"data.region_margin: expected degrees ≥ 0, got {margin}")
        self.coarse, self.fine = coarse, fine
        self.path = coarse.path
        for name in ("channels", "static_names"):
            a, b = ([getattr(x, "name", x) for x in getattr(d, name)] for d in (coarse, fine))
            if a != b:
                raise ValueError(
                    f"{fine.path}: {name}: expected those of the global split {coarse.path} "
                    f"({a}), got {b}"
                )
        if coarse.times.shape != fine.times.shape or np.any(coarse.times != fine.times):
            raise ValueError(
                f"{fine.path}: time: expected the times of the global split {coarse.path} "
                f"({coarse.times.size} from {coarse.times[0]}), got {fine.times.size} from "
                f"{fine.times[0]}"
            )
        self.box = region_box(fine.latitudes, fine.longitudes)
        inside = in_box(coarse.point_latitudes, coarse.point_longitudes, self.box, margin)
        if not inside.any():
            raise ValueError(
                f"{fine.path}: the region {self.box} holds no point of the global grid of "
                f"{coarse.path}; a regional grid must replace some global points"
            )
        self.keep = ~inside
        self.channels, self.times, self.segments = coarse.channels, coarse.times, coarse.segments
        self.static_names, self.layout = coarse.static_names, coarse.layout
        self.latitudes, self.longitudes = coarse.latitudes, coarse.longitudes
        self.meta = {
            **coarse.meta,
            "points": True,
            "region": list(self.box),
            "regional_path": fine.path,
        }
        area = np.concatenate(
            [
                cell_areas(coarse.latitudes, coarse.longitudes, to_poles=True)[self.keep],
                cell_areas(fine.latitudes, fine.longitudes, to_poles=False),
            ]
        )
        self.weights = (area / area.mean()).astype(np.float32)
        self.static = np.concatenate([coarse.static[self.keep], fine.static])
        self.region_mask = np.concatenate(
            [np.zeros(int(self.keep.sum()), bool), np.ones(fine.point_latitudes.size, bool)]
        )

    @property
    def point_latitudes(self) -> np.ndarray:
        return np.concatenate([self.coarse.point_latitudes[self.keep], self.fine.point_latitudes])

    @property
    def point_longitudes(self) -> np.ndarray:
        return np.concatenate([self.coarse.point_longitudes[self.keep], self.fine.point_longitudes])

    def __repr__(self) -> str:
        return (
            f"StretchedDataset({self.coarse.path!r} + {self.fine.path!r}, {len(self)} "
            f"trajectories, {self.weights.size} points, {int(self.region_mask.sum())} regional)"
        )

    def __getitem__(self, index: int) -> dict:
        # The two splits share their times (checked): one segment indexes both, and
        # only the joined point set's forcings are computed, not each split's own.
        start, stop = self.segment(index)
        times = self.times[start:stop]
        coarse = LazyFrames(self.coarse.ds, self.channels, start, stop)
        fine = LazyFrames(self.fine.ds, self.channels, start, stop)
        lat, lon = self.point_latitudes, self.point_longitudes
        return {
            "state": StretchedFrames(coarse, fine, self.keep),
            "forcing": LazyForcing(times, lat, lon),
            "static": self.static,
            "point_latitude": lat,
            "point_longitude": lon,
            "point_weight": self.weights,
            "region_mask": self.region_mask,
            "time": times,
        }

    def frames(self, start: int, stop: int) -> np.ndarray:
        """[stop − start, N, C] float32 frames of the time indices start..stop − 1."""
        coarse = self.coarse.frames(start, stop)[:, self.keep]
        return np.concatenate([coarse, self.fine.frames(start, stop)], axis=1)


def open_stretched_split(
    directory: str | os.PathLike,
    regional: str | os.PathLike,
    split: str,
    variables: Sequence[str] = (),
    *,
    static: Sequence[str] | None = None,
    margin: float = 0.0,
) -> StretchedDataset:
    """`{directory}/{split}.zarr` (global) with `{regional}/{split}.zarr` set into it."""
    from meshsim.data.weather import open_weather_split

    coarse = open_weather_split(directory, split, variables, static=static)
    fine = open_weather_split(regional, split, variables, regional=True, static=static)
    return StretchedDataset(coarse, fine, margin=margin)


def region_weighted(weights, region_mask, fraction: float) -> np.ndarray:
    """[N] float32 `weights` rescaled so that the `region_mask` points carry `fraction`
    of their sum and the others the rest, each part in its own proportions (the sum
    is kept).

    Args:
      weights: [N] float area weights (> 0).
      region_mask: [N] bool, the regional points; both parts must be non-empty.
      fraction: in (0, 1).
    """
    w = np.asarray(weights, np.float64)
    inside = np.asarray(region_mask, bool)
    if inside.shape != w.shape:
        raise ValueError(f"region_mask: expected shape {w.shape}, got {inside.shape}")
    if inside.all() or not inside.any():
        raise ValueError(
            f"region_mask: expected regional and other points, got {int(inside.sum())} "
            f"regional of {inside.size}"
        )
    total = w.sum()
    scale = np.where(
        inside, fraction * total / w[inside].sum(), (1 - fraction) * total / w[~inside].sum()
    )
    return (w * scale).astype(np.float32)
