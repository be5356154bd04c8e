"""Figures of ensemble forecasts: energy spectra, spread/skill and CRPS by lead time, and
maps of a few members beside the truth and the deterministic forecast.

The inputs are what `meshsim evaluate` writes for a weather run (`metrics.json`'s
"spectra" and "ensemble" entries, `meshsim.evaluation.forecast_table`) and forecasts
on a lat-lon grid (latitude-major, ascending). Files are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from meshsim.plotting._figures import save_figure
from meshsim.plotting.anomaly import check_climatology, field_colours
from meshsim.plotting.weather import grid_field, map_extent

__all__ = ["plot_ensemble_scores", "plot_member_maps", "plot_spectra"]


def plot_spectra(
    path: str | os.PathLike,
    metrics: Mapping[str, Mapping],
    channels: Sequence[str],
    lead: int,
    *,
    lead_hours: float | None = None,
    dpi: int = 100,
) -> Path:
    """Power per total wavenumber at one lead time, one panel per channel (log scales).

    Args:
      metrics: {label: a weather run's metrics} (each with "spectra"); the truth is
        drawn from the first.
      channels: the channels to draw.
      lead: index of the lead time (0 = the first).

    Raises:
      ValueError: a metrics entry without "spectra" (not a global lat-lon grid), or a
        lead or channel it does not hold.
    """
    from matplotlib.figure import Figure

    for label, m in metrics.items():
        if "spectra" not in m:
            raise ValueError(f"metrics[{label!r}]: no spectra (not a global lat-lon grid)")
    fig = Figure(figsize=(4.2 * len(channels), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(channels)))
    first = next(iter(metrics.values()))["spectra"]
    for ax, channel in zip(axes, channels):
        series = {"truth": first["truth"][channel]}
        series.update({label: m["spectra"]["model"][channel] for label, m in metrics.items()})
        for label, per_lead in series.items():
            if not 0 <= lead < len(per_lead):
                raise ValueError(f"lead: expected 0..{len(per_lead) - 1}, got {lead}")
            power = np.asarray(per_lead[lead], np.float64)
            degree = np.arange(power.size)
            style = dict(color="black", lw=2) if label == "truth" else dict(lw=1.5)
            ax.loglog(degree[1:], np.maximum(power[1:], 1e-30), label=label, **style)
        ax.set_title(channel)
        ax.set_xlabel("total wavenumber l")
    axes[0].set_ylabel("power")
    axes[0].legend()
    when = f"{lead_hours:g} h" if lead_hours is not None else f"lead {lead + 1}"
    fig.suptitle(f"Spherical-harmonic power at {when}")
    return save_figure(fig, path, dpi)


def plot_ensemble_scores(
    path: str | os.PathLike,
    metrics: Mapping[str, Mapping],
    channels: Sequence[str],
    *,
    dpi: int = 100,
) -> Path:
    """CRPS (top row) and spread/skill ratio (bottom row) against lead time per channel.

    Args:
      metrics: {label: a weather run's metrics} with "ensemble" and "lead_hours"; a
        deterministic run's CRPS is its mean absolute error (one member).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(channels), 6.4), layout="constrained")
    axes = fig.subplots(2, len(channels), squeeze=False)
    for k, channel in enumerate(channels):
        for i, (label, m) in enumerate(metrics.items()):
            hours, colour = m["lead_hours"], f"C{i}"  # one colour per run in both rows
            crps = m["ensemble"]["crps"][channel]
            axes[0, k].plot(hours, crps, marker="o", color=colour, label=label)
            if m["ensemble"]["members"] > 1:
                ratio = m["ensemble"]["spread_skill"][channel]
                axes[1, k].plot(hours, ratio, marker="o", color=colour, label=label)
        axes[1, k].axhline(1.0, color="grey", lw=1, ls="--")
        axes[1, k].axhspan(0.7, 1.3, color="grey", alpha=0.1)
        axes[0, k].set_title(channel)
        axes[1, k].set_xlabel("lead time (h)")
    axes[0, 0].set_ylabel("CRPS (one member: MAE)")
    axes[1, 0].set_ylabel("spread / skill")
    axes[0, 0].legend()
    return save_figure(fig, path, dpi)


def plot_member_maps(
    path: str | os.PathLike,
    members,
    truth,
    latitudes,
    longitudes,
    *,
    deterministic=None,
    climatology=None,
    title: str = "",
    dpi: int = 100,
) -> Path:
    """Maps of one channel at one lead time: the truth, the deterministic forecast (if
    given) and each member, in one colour scale (anomalies where the climatology's
    pattern dominates, as `meshsim.plotting.weather.plot_forecast_maps` decides).

    Args:
      members: [M, H·W] or [M, H, W] the members' fields.
      truth: [H·W] or [H, W]; deterministic: like truth, or None.
      climatology: like truth, or None.
    """
    from matplotlib.figure import Figure

    members = grid_field(members, latitudes, longitudes, "members")
    if members.ndim != 3:
        raise ValueError(f"members: expected [M, H·W] or [M, H, W], got {members.shape}")
    truth = grid_field(truth, latitudes, longitudes, "truth")
    clim = None if climatology is None else check_climatology(climatology, truth.shape)
    colours = field_colours(truth, clim)
    panels = [("truth", truth)]
    if deterministic is not None:
        panels.append(("deterministic", grid_field(deterministic, latitudes, longitudes, "det")))
    panels += [(f"member {m}", field) for m, field in enumerate(members)]
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.6 * cols, 2.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    extent = map_extent(latitudes, longitudes)
    image = None
    for ax, (label, field) in zip(axes, panels):
        image = ax.imshow(
            colours.shown(field),
            origin="lower",
            extent=extent,
            aspect="auto",
            vmin=colours.vmin,
            vmax=colours.vmax,
            cmap=colours.cmap,
        )
        ax.set_title(colours.label(label))
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.colorbar(image, ax=list(axes[: len(panels)]), shrink=0.8)
    fig.suptitle(title)
    return save_figure(fig, path, dpi)
