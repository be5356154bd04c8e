"""Maps on the sphere: forecast / truth / error panels (plate carrée; anomalies against a
climatology where its pattern dominates, `meshsim.plotting.anomaly`), forecast
animations, score curves, and the multimesh with its grid↔mesh edges on the globe
(orthographic, `meshsim.plotting.globe`). Maps of fields on arbitrary points are in
`meshsim.plotting.point_maps`.

Fields are lat-lon grids `[H, W]` (or latitude-major node arrays `[H·W]`) with
ascending latitudes and longitudes in [0, 360). Files are written atomically
through the helpers of `meshsim.plotting`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from meshsim.plotting._figures import save_figure, write_animation
from meshsim.plotting.anomaly import ANOMALY_CMAP, FieldColours, check_climatology, field_colours
from meshsim.plotting.globe import arc_segments, globe_frame, graticule, orthographic, outline

__all__ = [
    "animate_forecast",
    "default_center",
    "plot_forecast_maps",
    "plot_multimesh",
    "plot_score_curves",
]


def grid_field(values, latitudes, longitudes, name: str) -> np.ndarray:
    """[..., H, W] float64 `values` given as [..., H, W] or latitude-major [..., H·W]."""
    h, w = len(latitudes), len(longitudes)
    values = np.asarray(values, np.float64)
    if values.shape[-2:] != (h, w):
        if values.shape[-1] != h * w:
            raise ValueError(
                f"{name}: expected [..., {h}, {w}] or [..., {h * w}], got {values.shape}"
            )
        values = values.reshape(*values.shape[:-1], h, w)
    return values


def map_extent(latitudes, longitudes) -> list[float]:
    """imshow's [lon0, lon1, lat0, lat1] of a lat-lon grid (cells to the east of each longitude)."""
    dlon = float(np.diff(longitudes).mean()) if len(longitudes) > 1 else 1.0
    return [
        float(longitudes[0]),
        float(longitudes[-1]) + dlon,
        float(latitudes[0]),
        float(latitudes[-1]),
    ]


def _colours(truth, climatology, anomaly, shape) -> FieldColours:
    clim = None if climatology is None else check_climatology(climatology, shape)
    return field_colours(truth, clim, anomaly=anomaly)


def _map_panels(fig, latitudes, longitudes, pred, truth, title: str, colours: FieldColours):
    """Three map axes (forecast, truth, error). Forecast and truth share the truth's
    colour range (`colours`), so a blown-up forecast saturates instead of washing out
    the truth panel; they show anomalies when `colours.anomaly`."""
    err = pred - truth
    emax = max(
        float(np.nanmax(np.abs(err[np.isfinite(err)]))) if np.isfinite(err).any() else 1.0, 1e-12
    )
    axes = fig.subplots(1, 3)
    images = []
    extent = map_extent(latitudes, longitudes)
    field = dict(vmin=colours.vmin, vmax=colours.vmax, cmap=colours.cmap)
    for ax, data, label, kwargs in (
        (axes[0], colours.shown(pred), colours.label("forecast"), field),
        (axes[1], colours.shown(truth), colours.label("truth"), field),
        (axes[2], err, "forecast − truth", dict(vmin=-emax, vmax=emax, cmap=ANOMALY_CMAP)),
    ):
        im = ax.imshow(data, origin="lower", extent=extent, aspect="auto", **kwargs)
        ax.set_title(label)
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
    climatology=None,
    anomaly: bool | None = None,
    title: str = "",
    dpi: int = 100,
) -> Path:
    """Forecast, truth and error maps of one channel at one lead time.

    With a `climatology` whose pattern dominates the field (`anomaly.mean_dominates`:
    its spatial std exceeds that of truth − climatology), forecast and truth are drawn
    as anomalies on a diverging colour map centred at 0, and the panel titles say so.
    The error panel is forecast − truth either way.

    Args:
      pred: [H, W] or [H·W] forecast field (latitude-major).
      truth: the true field, shaped like `pred`.
      climatology: optional [H, W] or [H·W] time mean of the channel (the run's
        `statistics.npz`, `WeatherStatistics.climatology[:, c]`).
      anomaly: True / False forces anomaly / absolute maps; None applies the rule.
    """
    from matplotlib.figure import Figure

    pred = grid_field(pred, latitudes, longitudes, "pred")
    truth = grid_field(truth, latitudes, longitudes, "truth")
    colours = _colours(truth, climatology, anomaly, truth.shape)
    fig = Figure(figsize=(15, 3.8), layout="constrained")
    _map_panels(fig, latitudes, longitudes, pred, truth, title, colours)
    return save_figure(fig, path, dpi)


def animate_forecast(
    path: str | os.PathLike,
    pred,
    truth,
    latitudes,
    longitudes,
    *,
    lead_hours: Sequence[float],
    climatology=None,
    anomaly: bool | None = None,
    title: str = "",
    fps: float = 4.0,
    dpi: int = 80,
) -> list[Path]:
    """A GIF of forecast / truth / error maps over lead times.

    Forecast and truth use one colour range, the truth's over all frames; with a
    dominating `climatology` they show anomalies (as `plot_forecast_maps`, the rule
    applied to all frames at once).

    Args:
      pred: [L, H, W] or [L, H·W] forecast fields of one channel.
      truth: the true fields, shaped like `pred`.
      lead_hours: [L] lead time of each frame.
      climatology: optional [H, W] or [H·W] time mean of the channel.
      anomaly: True / False forces anomaly / absolute maps; None applies the rule.
    """
    from matplotlib.figure import Figure

    pred = grid_field(pred, latitudes, longitudes, "pred")
    truth = grid_field(truth, latitudes, longitudes, "truth")
    if pred.shape != truth.shape or pred.ndim != 3 or pred.shape[0] != len(lead_hours):
        raise ValueError(
            f"pred, truth, lead_hours: expected [L, H, W] twice and L leads, got {pred.shape}, "
            f"{truth.shape}, {len(lead_hours)}"
        )
    colours = _colours(truth, climatology, anomaly, truth.shape[1:])
    fig = Figure(figsize=(15, 3.8), layout="constrained")
    images = _map_panels(fig, latitudes, longitudes, pred[0], truth[0], title, colours)

    def draw(t: int) -> None:
        shown = (colours.shown(pred[t]), colours.shown(truth[t]), pred[t] - truth[t])
        for im, data in zip(images, shown):
            im.set_data(data)
        fig.suptitle(f"{title} +{lead_hours[t]:g} h")

    return write_animation(fig, draw, list(range(pred.shape[0])), Path(path), fps, dpi, False)


def plot_score_curves(
    path: str | os.PathLike,
    lead_hours: Sequence[float],
    scores: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    ylabel: str = "latitude-weighted RMSE",
    xlabel: str = "lead time (h)",
    dpi: int = 100,
) -> Path:
    """One panel per channel: score against lead time for each forecast kind.

    Args:
      lead_hours: [L] the x values (lead times in hours for a forecast; any time axis,
        named by `xlabel`, for a mesh rollout).
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
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[0].legend()
    return save_figure(fig, path, dpi)


def default_center(weather_mesh) -> tuple[float, float]:
    """The globe's default centre (lat, lon)°: the refined region's middle, else (20, 0).

    A disc's centre; a box's middle latitude and the longitude halfway east from
    `lon_min` to `lon_max` (so (350, 10) gives 0°E).
    """
    refinement = getattr(weather_mesh, "refinement", None)
    if refinement is None:
        return (20.0, 0.0)
    if refinement.center is not None:
        return tuple(float(v) for v in refinement.center)
    lat_min, lat_max, lon_min, lon_max = refinement.bounds
    span = lon_max - lon_min if lon_max - lon_min >= 360 else (lon_max - lon_min) % 360
    return ((lat_min + lat_max) / 2, float((lon_min + span / 2) % 360))


def _edge_levels(weather_mesh, senders, receivers) -> np.ndarray:
    """`[E] int` the coarsest mesh level whose faces hold each edge."""
    num = weather_mesh.mesh.num_vertices
    keys = senders.astype(np.int64) * num + receivers
    level = np.full(len(keys), len(weather_mesh.levels) - 1)
    for k in range(len(weather_mesh.levels) - 1, -1, -1):
        faces = weather_mesh.levels[k].faces.astype(np.int64)
        sides = faces[:, [0, 1, 2, 1, 2, 0]] * num + faces[:, [1, 2, 0, 0, 1, 2]]
        level[np.isin(keys, sides)] = k
    return level


def plot_multimesh(
    path: str | os.PathLike,
    weather_mesh,
    *,
    grid_points: int = 40,
    center: tuple[float, float] | None = None,
    max_step_deg: float = 2.0,
    dpi: int = 100,
) -> Path:
    """The multimesh on the globe (orthographic projection, `meshsim.plotting.globe`).

    Each edge is a great-circle arc sampled every `max_step_deg` at most, drawn where
    it lies on the visible hemisphere and coloured by the coarsest level that holds
    it (coarse levels darker, wider and on top: their arcs run along finer ones).
    Also the globe's rim, a 30° graticule, and for a few grid points their grid→mesh
    and mesh→grid edges.

    Args:
      weather_mesh: `meshsim.meshes.sphere.WeatherMesh`.
      grid_points: how many grid points (a fixed random choice) show their grid↔mesh
        edges; 0 for none.
      center: (lat, lon) degrees seen at the middle of the disc; default
        `default_center` (the refined region's middle, if any).
      max_step_deg: the longest straight piece of an arc, in degrees of arc.
    """
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    from meshsim.meshes.sphere import WeatherMesh

    if not isinstance(weather_mesh, WeatherMesh):
        raise TypeError(f"weather_mesh: expected a WeatherMesh, got {type(weather_mesh).__name__}")
    if not (isinstance(grid_points, int) and grid_points >= 0):
        raise ValueError(f"grid_points: expected an int >= 0, got {grid_points!r}")
    center = default_center(weather_mesh) if center is None else center
    globe_frame(center)  # validates it
    vertices = weather_mesh.mesh.vertices
    senders, receivers = weather_mesh.mesh_edges
    one_way = senders < receivers  # the multimesh holds both directions
    senders, receivers = senders[one_way], receivers[one_way]
    levels = _edge_levels(weather_mesh, senders, receivers)
    num_levels = len(weather_mesh.levels)

    fig = Figure(figsize=(9.5, 7.5), layout="constrained")
    ax = fig.subplots()
    ax.add_collection(LineCollection(graticule(center), linewidths=0.4, colors="0.85"))
    cmap = colormaps["viridis"]
    for k in range(num_levels - 1, -1, -1):  # fine first: coarse arcs, wider, lie on top
        pick = levels == k
        if not pick.any():
            continue
        ax.add_collection(
            LineCollection(
                arc_segments(
                    vertices[senders[pick]], vertices[receivers[pick]], center, max_step_deg
                ),
                linewidths=1.4 - 0.9 * k / max(num_levels - 1, 1),
                colors=[cmap(0.85 * k / max(num_levels - 1, 1))],
                label=f"mesh level {k}",
            )
        )
    if grid_points:
        grid = weather_mesh.grid_xyz
        chosen = np.random.default_rng(0).choice(
            len(grid), min(grid_points, len(grid)), replace=False
        )
        g_s, m_r = weather_mesh.grid2mesh
        m_s, g_r = weather_mesh.mesh2grid
        # grid→mesh drawn wide and pale under mesh→grid: they often join the same pairs
        for pick, a, b, colour, width, label in (
            (np.isin(g_s, chosen), grid[g_s], vertices[m_r], "tab:blue", 2.6, "grid→mesh"),
            (np.isin(g_r, chosen), vertices[m_s], grid[g_r], "tab:red", 0.9, "mesh→grid"),
        ):
            segments = arc_segments(a[pick], b[pick], center, max_step_deg)
            ax.add_collection(
                LineCollection(
                    segments, linewidths=width, colors=colour, alpha=0.8, label=label, zorder=2.5
                )
            )
        xy, visible = orthographic(grid[chosen], center)
        ax.scatter(*xy[visible].T, s=8, c="k", zorder=3, label="grid points")
    ax.plot(*outline().T, color="k", linewidth=1.0)
    ax.set_xlim(-1.03, 1.03)
    ax.set_ylim(-1.03, 1.03)
    ax.set_aspect("equal")
    ax.set_axis_off()
    region = "" if weather_mesh.refinement is None else ", regionally refined"
    ax.set_title(
        f"multimesh{region}: {len(vertices)} vertices, {2 * len(senders)} edges; "
        f"seen from ({center[0]:g}°N, {center[1]:g}°E)"
    )
    handles, labels = ax.get_legend_handles_labels()
    level_of = {f"mesh level {k}": k for k in range(num_levels)}  # coarse first, then grid
    order = sorted(
        range(len(labels)), key=lambda i: (labels[i] not in level_of, level_of.get(labels[i], i))
    )
    ax.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="upper left",
        fontsize=8,
        bbox_to_anchor=(1.0, 1.0),
    )
    return save_figure(fig, path, dpi)
