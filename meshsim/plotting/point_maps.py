"""Maps of fields on arbitrary points of the sphere: stretched grids (a coarse global grid
plus a fine regional one), mesh vertices, station-like point sets.

The points are triangulated on the sphere: the convex hull of their unit vectors
(scipy's qhull) is a triangulation of the sphere for a global set, and of the region
plus a flat lid for a regional one; hull faces wider than 60° of arc (the lid) are
dropped. Each triangle is then laid out in the plot plane (x = longitude, y =
latitude) on its own copies of its corners, so that it never wraps:

- its longitudes are unwrapped around its first corner not at a pole (a triangle
  across the window's seam reaches past it, and a copy shifted by 360° fills the
  other side; the axes clip both);
- a corner at a pole (where longitude means nothing) becomes two corners at the
  longitudes of the other two, so the triangle becomes the quad it is on the map.

Fields are drawn with `tripcolor` (Gouraud shading) over forecast / truth / error
panels; `extent` zooms the axes to a lat-lon box, which may cross 0°E.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from meshsim.meshes.coordinates import latlon_to_xyz
from meshsim.plotting._figures import save_figure
from meshsim.plotting.anomaly import ANOMALY_CMAP, check_climatology, field_colours

__all__ = ["plane_triangulation", "plot_point_maps", "sphere_triangles"]

_POLE = 90.0 - 1e-9  # |latitude| at or above this is a pole
_MAX_FACE_COS = 0.5  # hull faces whose plane is nearer the centre (> 60° of arc) are dropped


def _points(latitudes, longitudes) -> tuple[np.ndarray, np.ndarray]:
    lat = np.asarray(latitudes, np.float64)
    lon = np.asarray(longitudes, np.float64)
    if lat.ndim != 1 or lat.shape != lon.shape or lat.size < 3:
        raise ValueError(
            f"latitudes, longitudes: expected two [N >= 3] arrays, got {lat.shape}, {lon.shape}"
        )
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()) or np.abs(lat).max() > 90:
        raise ValueError(
            "latitudes, longitudes: expected finite values, latitudes in [-90, 90], got "
            f"latitudes in [{np.nanmin(lat)}, {np.nanmax(lat)}]"
        )
    return lat, lon


def sphere_triangles(latitudes, longitudes) -> np.ndarray:
    """Triangles of the points on the sphere: their unit vectors' convex hull.

    Args:
      latitudes: [N] float degrees (repeated points, such as a pole row, are used once).
      longitudes: [N] float degrees.

    Returns:
      [T, 3] int64 point indices; hull faces wider than 60° of arc (a regional set's
      flat lid) are left out.
    """
    from scipy.spatial import ConvexHull, QhullError

    lat, lon = _points(latitudes, longitudes)
    try:
        hull = ConvexHull(latlon_to_xyz(lat, lon))
    except QhullError as error:
        raise ValueError(
            "latitudes, longitudes: expected points spanning an area of the sphere, "
            f"qhull failed: {str(error).splitlines()[0]}"
        ) from None
    # equations: n·x + offset <= 0 inside; -offset is the cosine from a face's plane
    # normal to its corners, near 1 for small faces of the sphere
    keep = -hull.equations[:, 3] > _MAX_FACE_COS
    return hull.simplices[keep].astype(np.int64)


def plane_triangulation(
    latitudes, longitudes, triangles, lon_start: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lays sphere triangles out in the (longitude, latitude) plane without wrapping.

    See the module doc. The window is [lon_start, lon_start + 360).

    Args:
      latitudes: [N] float degrees.
      longitudes: [N] float degrees.
      triangles: [T, 3] int point indices (`sphere_triangles`).
      lon_start: the west edge of the plotted longitudes, degrees.

    Returns:
      (x [M] float64 longitudes, y [M] float64 latitudes, plane_triangles [T', 3]
      int64 indices into x and y, source [M] int64: the point each plane corner copies).
      No plane triangle spans 180° of longitude or more.
    """
    lat, lon = _points(latitudes, longitudes)
    tri = np.asarray(triangles, np.int64)
    if (
        tri.ndim != 2
        or tri.shape[1] != 3
        or (tri.size and (tri.min() < 0 or tri.max() >= len(lat)))
    ):
        raise ValueError(f"triangles: expected [T, 3] indices below {len(lat)}, got {tri.shape}")
    x = lon_start + np.mod(lon - lon_start, 360.0)
    pole = np.abs(lat) >= _POLE
    tri = tri[pole[tri].sum(axis=1) <= 1]  # two poles in one face: not a map triangle
    # rotate each triangle so a pole corner (if any) comes last
    order = np.argsort(pole[tri], axis=1, kind="stable")
    tri = np.take_along_axis(tri, order, axis=1)
    has_pole = pole[tri[:, 2]]
    tx = x[tri]  # [T, 3]
    ref = tx[:, :1]
    tx = ref + np.mod(tx - ref + 180.0, 360.0) - 180.0  # unwrapped around corner 0
    # ordinary triangles: corners (a, b, c); pole ones: quads (a, b, P@x_b), (a, P@x_b, P@x_a)
    plain = ~has_pole
    corners_x = [tx[plain]]
    corners_src = [tri[plain]]
    a, b, p = tri[has_pole].T
    xa, xb = tx[has_pole, 0], tx[has_pole, 1]
    corners_x += [np.stack([xa, xb, xb], 1), np.stack([xa, xb, xa], 1)]
    corners_src += [np.stack([a, b, p], 1), np.stack([a, p, p], 1)]
    cx, src = np.concatenate(corners_x), np.concatenate(corners_src)  # [T', 3]
    span = cx.max(axis=1) - cx.min(axis=1)
    cx, src = cx[span < 180.0], src[span < 180.0]
    # copies across the seam: a triangle past the east edge shows again at the west edge
    east = cx.max(axis=1) > lon_start + 360.0
    west = cx.min(axis=1) < lon_start
    cx = np.concatenate([cx, cx[east] - 360.0, cx[west] + 360.0])
    src = np.concatenate([src, src[east], src[west]])
    cy = lat[src]
    m = len(src)
    return cx.ravel(), cy.ravel(), np.arange(3 * m).reshape(m, 3), src.ravel()


def _extent(extent) -> tuple[float, float, float, float]:
    values = tuple(float(v) for v in np.asarray(extent, np.float64).ravel())
    if len(values) != 4 or not all(map(math.isfinite, values)):
        raise ValueError(f"extent: expected (lat_min, lat_max, lon_min, lon_max), got {extent!r}")
    lat_min, lat_max, lon_min, lon_max = values
    if not -90 <= lat_min < lat_max <= 90 or lon_min == lon_max:
        raise ValueError(
            "extent: expected -90 <= lat_min < lat_max <= 90 and lon_min != lon_max, "
            f"got {extent!r}"
        )
    span = lon_max - lon_min if lon_max - lon_min >= 360 else (lon_max - lon_min) % 360
    return lat_min, lat_max, lon_min, lon_min + min(span, 360.0)


def _field(name: str, values, n: int) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.shape != (n,):
        raise ValueError(f"{name}: expected shape [{n}], got {list(values.shape)}")
    return values


def plot_point_maps(
    path: str | os.PathLike,
    pred,
    truth,
    latitudes,
    longitudes,
    *,
    extent=None,
    climatology=None,
    anomaly: bool | None = None,
    title: str = "",
    dpi: int = 100,
) -> Path:
    """Forecast, truth and error maps of one channel on arbitrary points.

    Args:
      pred: [N] float forecast at the points.
      truth: [N] float true values.
      latitudes: [N] float degrees of the points, in any order.
      longitudes: [N] float degrees of the points (any real, taken mod 360).
      extent: None (the whole globe) or (lat_min, lat_max, lon_min, lon_max) degrees:
        the axes show exactly that box, running east from lon_min to lon_max, so
        (350, 10) crosses 0°E (x runs 350..370, labelled mod 360). The colour
        ranges then come from the points inside the box.
      climatology: optional [N] float time mean per point; where its pattern dominates
        (`meshsim.plotting.anomaly`), forecast and truth show anomalies.
      anomaly: True / False forces anomaly / absolute maps; None applies the rule.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter
    from matplotlib.tri import Triangulation

    lat, lon = _points(latitudes, longitudes)
    n = len(lat)
    pred, truth = _field("pred", pred, n), _field("truth", truth, n)
    clim = None if climatology is None else check_climatology(climatology, (n,))
    if extent is None:
        lat_min, lat_max, x_min, x_max = -90.0, 90.0, 0.0, 360.0
    else:
        lat_min, lat_max, x_min, x_max = _extent(extent)
    inside = (lat >= lat_min) & (lat <= lat_max) & (np.mod(lon - x_min, 360.0) <= x_max - x_min)
    colours = field_colours(truth, clim, anomaly=anomaly, where=inside)
    err = pred - truth
    err_shown = err[inside] if inside.any() else err
    finite = np.abs(err_shown[np.isfinite(err_shown)])
    emax = max(float(finite.max()) if finite.size else 1.0, 1e-12)

    x, y, plane, source = plane_triangulation(lat, lon, sphere_triangles(lat, lon), x_min)
    fig = Figure(figsize=(15, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    field = dict(vmin=colours.vmin, vmax=colours.vmax, cmap=colours.cmap)
    for ax, data, label, kwargs in (
        (axes[0], colours.shown(pred), colours.label("forecast"), field),
        (axes[1], colours.shown(truth), colours.label("truth"), field),
        (axes[2], err, "forecast − truth", dict(vmin=-emax, vmax=emax, cmap=ANOMALY_CMAP)),
    ):
        values = data[source]
        triangulation = Triangulation(x, y, plane)
        triangulation.set_mask(~np.isfinite(values[plane]).all(axis=1))
        artist = ax.tripcolor(triangulation, np.nan_to_num(values), shading="gouraud", **kwargs)
        ax.set_xlim(x_min, x_max)
        ax.set_ylim(lat_min, lat_max)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v % 360:g}"))
        ax.set_title(label)
        ax.set_xlabel("longitude (°E)")
        fig.colorbar(artist, ax=ax, shrink=0.8)
    axes[0].set_ylabel("latitude (°N)")
    fig.suptitle(title)
    return save_figure(fig, path, dpi)
