"""`meshsim inspect` of a weather directory: the WeatherBench2-layout splits in it.

Reads coordinates and attributes only (no data variable leaves the store), and reports
what training would read: the forecast variables with their levels and units, the
static fields, the times and the trajectories they form, the grid and the source's
layout, and, separately, any variable that cannot be read as a grid field.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from meshsim.data import weather_store as store
from meshsim.data.weather import time_segments


def _splits(directory: str) -> list[str]:
    names = sorted(os.listdir(directory))
    return [n.rsplit(".", 1)[0] for n in names if n.endswith((".zarr", ".nc"))]


def _split_path(directory: str, split: str) -> str:
    for ext in (".zarr", ".nc"):
        path = os.path.join(directory, split + ext)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"weather dataset: no {split}.zarr or {split}.nc in {directory!r}")


def _times(ds) -> dict[str, Any]:
    values = np.asarray(ds["time"].values) if "time" in ds.coords else np.zeros(0)
    if values.dtype.kind != "M" or values.size < 2:
        return {"count": int(values.size), "first": None, "last": None, "step_hours": None}
    values = values.astype("datetime64[ns]")
    return {
        "count": int(values.size),
        "first": str(values[0].astype("datetime64[s]")),
        "last": str(values[-1].astype("datetime64[s]")),
        "step_hours": float(np.diff(values).min() / np.timedelta64(1, "h")),
    }


def _trajectories(ds) -> dict[str, Any] | None:
    try:
        segments = time_segments(np.asarray(ds["time"].values, "datetime64[ns]"))
    except (ValueError, TypeError):
        return None
    lengths = [b - a for a, b in segments]
    return {
        "count": len(segments),
        "frames": {"min": min(lengths), "mean": float(np.mean(lengths)), "max": max(lengths)},
    }


def _grid(ds, layout: store.StoreLayout) -> dict[str, Any]:
    lat, lon = (np.asarray(ds[c].values, np.float64) for c in ("latitude", "longitude"))
    return {
        "latitudes": int(lat.size),
        "longitudes": int(lon.size),
        "latitude_range": [float(lat[0]), float(lat[-1])],
        "longitude_range": [float(lon[0]), float(lon[-1])],
        "resolution_deg": [float(np.diff(lat).min()), float(np.diff(lon).min())],
        "horizontal_order": list(layout.horizontal),
        "latitude_descending": layout.latitude_descending,
    }


def _points_split(path: str) -> dict[str, Any]:
    """The report of a point-set store (`meshsim.data.weather_points`)."""
    from meshsim.data.weather_points import PointsDataset

    data = PointsDataset(path)
    levels = (
        [int(v) for v in np.asarray(data.ds["level"].values)] if "level" in data.ds.dims else []
    )
    variables = {}
    for c in data.channels:
        var = data.ds[c.variable]
        variables[c.variable] = {
            "levels": c.level is not None,
            "dims": list(var.dims),
            "units": var.attrs.get("units"),
        }
    lat, lon = data.point_latitudes, data.point_longitudes
    return {
        "format": "zarr" if os.path.isdir(path) else "netcdf",
        "path": path,
        "variables": variables,
        "channels": len(data.channels),
        "levels": levels,
        "static": list(data.static_names),
        "unreadable": {},
        "time": _times(data.ds),
        "trajectories": _trajectories(data.ds),
        "grid": {
            "points": int(lat.size),
            "dim": data.dim,
            "latitude_range": [float(lat.min()), float(lat.max())],
            "longitude_range": [float(lon.min()), float(lon.max())],
        },
    }


def inspect_split(path: str) -> dict[str, Any]:
    """The report of one store (see `inspect_weather_dataset`)."""
    from meshsim.data.weather_points import is_points_store

    if is_points_store(path):
        return _points_split(path)
    ds = store.open_weather(path)
    dynamic = store.dynamic_variables(ds)
    layout = store.store_layout(ds, dynamic)
    levels = [int(v) for v in np.asarray(ds["level"].values)] if "level" in ds.dims else []
    variables = {
        name: {
            "levels": "level" in ds[name].dims,
            "dims": list(ds[name].dims),
            "units": ds[name].attrs.get("units"),
        }
        for name in dynamic
    }
    return {
        "format": "zarr" if os.path.isdir(path) else "netcdf",
        "path": path,
        "variables": variables,
        "channels": sum(len(levels) if v["levels"] else 1 for v in variables.values()),
        "levels": levels,
        "static": store.static_variables(ds),
        "unreadable": {k: list(v) for k, v in store.unreadable_variables(ds).items()},
        "time": _times(ds),
        "trajectories": _trajectories(ds),
        "grid": _grid(ds, layout),
    }


def inspect_weather_dataset(
    directory: str | os.PathLike, *, splits: Sequence[str] | None = None
) -> dict[str, Any]:
    """Summarises a directory of WeatherBench2-layout splits (`<split>.zarr` / `.nc`).

    Returns:
      {"kind": "weather", "directory", "splits": {split: {"format", "path",
      "variables": {name: {"levels": bool, "dims", "units"}}, "channels": int,
      "levels": [int], "static": [names], "unreadable": {name: dims}, "time": {"count",
      "first", "last", "step_hours"}, "trajectories": {"count", "frames": {"min",
      "mean", "max"}} or None, "grid": {"latitudes", "longitudes", "latitude_range",
      "longitude_range", "resolution_deg", "horizontal_order", "latitude_descending"}
      (for a point set: {"points", "dim", "latitude_range", "longitude_range"})}}}.
    """
    directory = os.fspath(directory)
    names = _splits(directory) if splits is None else list(splits)
    return {
        "kind": "weather",
        "directory": directory,
        "splits": {s: inspect_split(_split_path(directory, s)) for s in names},
    }


def format_weather_inspection(report: dict[str, Any]) -> str:
    """Renders `inspect_weather_dataset`'s report as plain text for the CLI."""
    lines = [f"weather dataset {report['directory']} (WeatherBench2 layout)"]
    for split, info in report["splits"].items():
        grid, time, traj = info["grid"], info["time"], info["trajectories"]
        lines.append(f"  {split}: {info['format']} {info['path']}")
        if "points" in grid:
            lines.append(
                f"    grid       {grid['points']} points along {grid['dim']!r} (latitude "
                f"{grid['latitude_range'][0]:g}…{grid['latitude_range'][1]:g})"
            )
        else:
            order = "×".join(grid["horizontal_order"])
            direction = "descending" if grid["latitude_descending"] else "ascending"
            lines.append(
                f"    grid       {grid['latitudes']} latitudes × {grid['longitudes']} "
                f"longitudes ({grid['resolution_deg'][0]:g}° × {grid['resolution_deg'][1]:g}°, "
                f"latitude {grid['latitude_range'][0]:g}…{grid['latitude_range'][1]:g}, "
                f"stored {order}, latitude {direction})"
            )
        step = f", every {time['step_hours']:g} h" if time["step_hours"] else ""
        lines.append(f"    times      {time['count']} from {time['first']} to {time['last']}{step}")
        if traj is not None:
            f = traj["frames"]
            lines.append(
                f"    trajectories {traj['count']} (frames min/mean/max "
                f"{f['min']}/{f['mean']:.1f}/{f['max']})"
            )
        levels = ", ".join(str(v) for v in info["levels"]) or "-"
        lines.append(f"    levels     {levels}")
        lines.append(f"    variables  {len(info['variables'])} ({info['channels']} channels)")
        for name, v in info["variables"].items():
            units = f" [{v['units']}]" if v["units"] else ""
            lines.append(f"      {name}{' (levels)' if v['levels'] else ''}{units}")
        lines.append(f"    static     {', '.join(info['static']) or '-'}")
        for name, dims in info["unreadable"].items():
            lines.append(f"    NOT READ   {name} {tuple(dims)}: not a grid field's dims")
    return "\n".join(lines)
