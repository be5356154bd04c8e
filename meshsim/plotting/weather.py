"""Maps on the sphere: forecast / truth / error panels, forecast animations, score curves,
and the multimesh with its grid↔mesh edges (matplotlib, plate carrée).

Fields are lat-lon grids `[H, W]` (or latitude-major node arrays `[H·W]`) with
ascending latitudes and longitudes in [0, 360). Files are written atomically
through the helpers of `meshsim.plotting`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from meshsim.plotting._figures import finite_range, save_figure, write_animation

__all__ = ["animate_forecast", "plot_forecast_maps", "plot_multimesh", "plot_score_curves"]


def _grid(values, latitudes, longitudes, name: str) -> np.ndarray:
    h, w = len(latitudes), len(longitudes)
    values = np.asarray(values, np.float64)
    if values.shape[-2:] != (h, w):
        if values.shape[-1] != h * w:
            raise ValueError(
                f"{name}: expected [..., {h}, {w}] or [..., {h * w}], got {values.shape}"
            )
        values = values.reshape(*values.shape[:-1], h, w)
    return values


def _extent(latitudes, longitudes) -> list[float]:
    dlon = float(np.diff(longitudes).mean()) if len(longitudes) > 1 else 1.0
    return [
        float(longitudes[0]),
        float(longitudes[-1]) + dlon,
        float(latitudes[0]),
        float(latitudes[-1]),
    ]


def _map_panels(fig, latitudes, longitudes, pred, truth, title: str):
    """Three map axes (forecast, truth, error) drawn with the truth's colour range, so a
    blown-up forecast saturates instead of washing out the truth panel."""
    vmin, vmax = finite_range(truth)
    err = pred - truth
    emax = max(
        float(np.nanmax(np.abs(err[np.isfinite(err)]))) if np.isfinite(err).any() else 1.0, 1e-12
    )
    axes = fig.subplots(1, 3)
    images = []
    extent = _extent(latitudes, longitudes)
    for ax, data, label, kwargs in (
        (axes[0], pred, "forecast", dict(vmin=vmin, vmax=vmax, cmap="viridis")),
        (axes[1], truth, "truth", dict(vmin=vmin, vmax=vmax, cmap="viridis")),
        (axes[2], err, "forecast − truth", dict(vmin=-emax, vmax=emax, cmap="RdBu_r")),
    ):
        im = ax.imshow(data, origin="lower", extent=extent, aspect="auto", **kwargs)
        ax.set_title(f"{label}")
        ax.set_xlabel("longitude (°E)")
        fig.colorbar(im, ax=ax, shrink=0.8)
        images.append(im)
    axes[0].set_ylabel("latitude (°N)")
    fig.suptitle(title)
    return images


def plot_forecast_maps(
    path: str | os.PathLike,
    pred,
    truth,
    latitudes,
    longitudes,
    *,
    title: str = "",
    dpi: int = 100,
) -> Path:
    """Forecast, truth and error maps of one channel at one lead time.

    Args:
      pred: [H, W] or [H·W] forecast field (latitude-major).
      truth: the true field, shaped like `pred`.
    """
    from matplotlib.figure import Figure

    pred = _grid(pred, latitudes, longitudes, "pred")
    truth = _grid(truth, latitudes, longitudes, "truth")
    fig = Figure(figsize=(15, 3.8), layout="constrained")
    _map_panels(fig, latitudes, longitudes, pred, truth, title)
    return save_figure(fig, path, dpi)


def animate_forecast(
    path: str | os.PathLike,
    pred,
    truth,
    latitudes,
    longitudes,
    *,
    lead_hours: Sequence[float],
    title: str = "",
    fps: float = 4.0,
    dpi: int = 80,
) -> list[Path]:
    """A GIF of forecast / truth / error maps over lead times.

    Args:
      pred: [L, H, W] or [L, H·W] forecast fields of one channel.
      truth: the true fields, shaped like `pred`.
      lead_hours: [L] lead time of each frame.
    """
    from matplotlib.figure import Figure

    pred = _grid(pred, latitudes, longitudes, "pred")
    truth = _grid(truth, latitudes, longitudes, "truth")
    if pred.shape != truth.shape or pred.shape[0] != len(lead_hours):
        raise ValueError(
            f"pred, truth, lead_hours: expected [L, H, W] twice and L leads, got {pred.shape}, "
            f"{truth.shape}, {len(lead_hours)}"
        )
    fig = Figure(figsize=(15, 3.8), layout="constrained")
    images = _map_panels(fig, latitudes, longitudes, pred[0], truth[0], title)

    def draw(t: int) -> None:
        for im, data in zip(images, (pred[t], truth[t], pred[t] - truth[t])):
            im.set_data(data)
        fig.suptitle(f"{title} +{lead_hours[t]:g} h")

    return write_animation(fig, draw, list(range(pred.shape[0])), Path(path), fps, dpi, False)


def plot_score_curves(
    path: str | os.PathLike,
    lead_hours: Sequence[float],
    scores: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    ylabel: str = "latitude-weighted RMSE",
    dpi: int = 100,
) -> Path:
    """One panel per channel: score against lead time for each forecast kind.

    Args:
      scores: {kind ("model", "persistence", ...): {channel: [L values]}}.
    """
    from matplotlib.figure import Figure

    channels = list(next(iter(scores.values())))
    fig = Figure(figsize=(4.2 * len(channels), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(channels)))
    for ax, channel in zip(axes, channels):
        for kind, values in scores.items():
            ax.plot(lead_hours, values[channel], marker="o", ms=3, label=kind)
        ax.set_title(channel)
        ax.set_xlabel("lead time (h)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[0].legend()
    return save_figure(fig, path, dpi)


def plot_multimesh(
    path: str | os.PathLike,
    weather_mesh,
    *,
    grid_points: int = 40,
    dpi: int = 100,
) -> Path:
    """The multimesh's edges (coloured by refinement level) and, for a few grid points,
    their grid→mesh and mesh→grid edges, on a plate-carrée map.

    Args:
      weather_mesh: `meshsim.meshes.sphere.WeatherMesh`.
      grid_points: how many grid points (evenly spread) show their grid↔mesh edges.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    from meshsim.meshes.sphere import xyz_to_latlon

    mesh = weather_mesh.mesh
    lat, lon = xyz_to_latlon(mesh.vertices)
    lon = np.mod(lon, 360.0)
    senders, receivers = weather_mesh.mesh_edges
    fig = Figure(figsize=(11, 5.5), layout="constrained")
    ax = fig.subplots()

    def segments(lon_a, lat_a, lon_b, lat_b):
        keep = np.abs(lon_a - lon_b) < 180  # drop edges that cross the date line
        return np.stack([np.stack([lon_a, lat_a], -1), np.stack([lon_b, lat_b], -1)], 1)[keep]

    ax.add_collection(
        LineCollection(
            segments(lon[senders], lat[senders], lon[receivers], lat[receivers]),
            linewidths=0.3,
            colors="0.4",
            label="multimesh",
        )
    )
    glat, glon = xyz_to_latlon(weather_mesh.grid_xyz)
    glon = np.mod(glon, 360.0)
    chosen = np.random.default_rng(0).choice(len(glat), min(grid_points, len(glat)), replace=False)
    g_s, m_r = weather_mesh.grid2mesh
    pick = np.isin(g_s, chosen)
    ax.add_collection(
        LineCollection(
            segments(glon[g_s[pick]], glat[g_s[pick]], lon[m_r[pick]], lat[m_r[pick]]),
            linewidths=0.8,
            colors="tab:blue",
            label="grid→mesh",
        )
    )
    m_s, g_r = weather_mesh.mesh2grid
    pick = np.isin(g_r, chosen)
    ax.add_collection(
        LineCollection(
            segments(lon[m_s[pick]], lat[m_s[pick]], glon[g_r[pick]], glat[g_r[pick]]),
            linewidths=0.8,
            colors="tab:red",
            label="mesh→grid",
        )
    )
    ax.scatter(glon[chosen], glat[chosen], s=6, c="k", zorder=3, label="grid points")
    ax.set_xlim(0, 360)
    ax.set_ylim(-90, 90)
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_title(f"multimesh: {len(lat)} vertices, {len(senders)} edges")
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path, dpi)
