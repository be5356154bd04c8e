"""Bilinear interpolation from a regular lat-lon grid to any points on the sphere.

Compares a model on one grid with truth on another: a uniform coarse forecast at a
fine region's points (`experiments/stretched_grid.py`). Longitude is periodic;
latitudes beyond the grid's first or last row take that row's value (grids without
the poles).
"""

from __future__ import annotations

import numpy as np


def bilinear_weights(latitudes, longitudes, point_latitudes, point_longitudes):
    """The four grid nodes around each point and their weights.

    Args:
      latitudes: [H] ascending degrees; longitudes: [W] ascending in [0, 360), evenly
        spaced (periodic).
      point_latitudes, point_longitudes: [N] degrees.

    Returns:
      (index [N, 4] int64 latitude-major node indices i·W + j, weight [N, 4] float64
      summing to 1).

    Raises:
      ValueError: shapes or ranges that are not a grid and points.
    """
    lat = np.asarray(latitudes, np.float64)
    lon = np.asarray(longitudes, np.float64)
    plat = np.asarray(point_latitudes, np.float64)
    plon = np.asarray(point_longitudes, np.float64) % 360.0
    if lat.ndim != 1 or lon.ndim != 1 or lat.size < 2 or lon.size < 2:
        raise ValueError(
            f"latitudes, longitudes: expected [H], [W] ≥ 2, got {lat.shape}, {lon.shape}"
        )
    if np.any(np.diff(lat) <= 0) or np.any(np.diff(lon) <= 0):
        raise ValueError("latitudes, longitudes: expected strictly ascending")
    if plat.shape != plon.shape or plat.ndim != 1:
        raise ValueError(f"points: expected two [N] arrays, got {plat.shape} and {plon.shape}")
    w = lon.size
    i = np.clip(np.searchsorted(lat, plat, side="right") - 1, 0, lat.size - 2)
    t = np.clip((plat - lat[i]) / (lat[i + 1] - lat[i]), 0.0, 1.0)
    spacing = 360.0 / w
    shifted = (plon - lon[0]) % 360.0
    j = np.floor(shifted / spacing).astype(np.int64) % w
    u = (shifted - j * spacing) / spacing
    j1 = (j + 1) % w
    index = np.stack([i * w + j, i * w + j1, (i + 1) * w + j, (i + 1) * w + j1], axis=1)
    weight = np.stack([(1 - t) * (1 - u), (1 - t) * u, t * (1 - u), t * u], axis=1)
    return index, weight


def interpolate_to_points(values, latitudes, longitudes, point_latitudes, point_longitudes):
    """[..., N, C] bilinear values at the points from `values [..., H·W, C]` on the grid
    (latitude-major nodes)."""
    index, weight = bilinear_weights(latitudes, longitudes, point_latitudes, point_longitudes)
    values = np.asarray(values)
    gathered = values[..., index, :]  # [..., N, 4, C]
    return np.einsum("...nkc,nk->...nc", gathered, weight).astype(values.dtype)
