"""The orthographic projection of the unit sphere, and great-circle arcs drawn through it.

The globe is seen from far away above `center` (lat, lon in degrees): a unit vector
p maps to (p·east, p·north) in the unit disc, where east and north are the local
unit vectors at the centre, so the centre maps to (0, 0), the pole above it (when
visible) to the top, and east to the right. Only the hemisphere facing the viewer
(p·c >= 0, c the centre's unit vector) is visible; its rim maps to the unit circle.

Edges are drawn as great-circle arcs sampled at most `max_step_deg` apart, and only
the pieces whose both ends are visible are kept: an edge is never cut short at a
longitude seam (there is none on the globe) or drawn as a chord through the disc.
Since the projection never lengthens a curve, each kept piece spans at most the
chord of `max_step_deg` in the plot plane. numpy only.
"""

from __future__ import annotations

import numpy as np

from meshsim.meshes.coordinates import latlon_to_xyz

__all__ = [
    "arc_points",
    "arc_segments",
    "globe_frame",
    "graticule",
    "orthographic",
    "outline",
    "path_segments",
]


def globe_frame(center) -> np.ndarray:
    """`[3, 3] float64` rows (east, north, towards the viewer) at `center` (lat, lon)°.

    At a pole "north" is the direction of 180°E (north pole) or 0°E (south pole)
    seen from above, so the frame is always right-handed and orthonormal.
    """
    center = np.asarray(center, np.float64)
    if center.shape != (2,) or not np.isfinite(center).all() or abs(center[0]) > 90:
        raise ValueError(
            f"center: expected finite (lat in [-90, 90], lon) degrees, got {center.tolist()}"
        )
    lat, lon = np.radians(center)
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    north = np.array([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)])
    return np.stack([east, north, latlon_to_xyz(*center)])


def _unit_vectors(name: str, xyz) -> np.ndarray:
    xyz = np.asarray(xyz, np.float64)
    if xyz.shape[-1:] != (3,) or not np.isfinite(xyz).all():
        raise ValueError(f"{name}: expected finite [..., 3] unit vectors, got shape {xyz.shape}")
    return xyz


def orthographic(xyz, center) -> tuple[np.ndarray, np.ndarray]:
    """Projects unit vectors onto the plane facing `center`.

    Args:
      xyz: [..., 3] float unit vectors.
      center: (lat, lon) degrees of the point seen at the middle of the disc.

    Returns:
      (xy [..., 2] float64 in the unit disc, visible [...] bool: on the near hemisphere).
    """
    xyz = _unit_vectors("xyz", xyz)
    frame = globe_frame(center)
    local = xyz @ frame.T  # [..., 3]: east, north, depth towards the viewer
    return local[..., :2], local[..., 2] >= 0.0


def _slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points at fraction `t [S]` along the minor great-circle arcs a [S, 3] → b [S, 3]."""
    cos = np.clip(np.einsum("sk,sk->s", a, b), -1.0, 1.0)
    theta = np.arccos(cos)[:, None]
    sin = np.sin(theta)
    small = sin[:, 0] < 1e-9  # (nearly) equal ends: the straight line is the arc
    safe = np.where(small[:, None], 1.0, sin)
    wa = np.where(small[:, None], 1.0 - t[:, None], np.sin((1.0 - t[:, None]) * theta) / safe)
    wb = np.where(small[:, None], t[:, None], np.sin(t[:, None] * theta) / safe)
    p = wa * a + wb * b
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def arc_points(a, b, max_step_deg: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Samples along the minor great-circle arcs from `a` to `b`.

    Args:
      a: [E, 3] float unit vectors, the arcs' starts.
      b: [E, 3] float unit vectors, the arcs' ends (not antipodal to the starts).
      max_step_deg: the largest angle between consecutive samples, > 0.

    Returns:
      (starts [S, 3], ends [S, 3]) float64 unit vectors: the pieces of all arcs, each
      at most `max_step_deg` of arc long; an arc of angle θ gives ceil(θ / step) pieces.
    """
    a, b = _unit_vectors("a", a).reshape(-1, 3), _unit_vectors("b", b).reshape(-1, 3)
    if a.shape != b.shape:
        raise ValueError(f"a, b: expected the same [E, 3] shape, got {a.shape} and {b.shape}")
    if not max_step_deg > 0:
        raise ValueError(f"max_step_deg: expected > 0, got {max_step_deg!r}")
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    theta = np.degrees(np.arccos(np.clip(np.einsum("ek,ek->e", a, b), -1.0, 1.0)))
    pieces = np.maximum(np.ceil(theta / max_step_deg - 1e-9), 1).astype(np.int64)  # [E]
    edge = np.repeat(np.arange(len(a)), pieces)  # [S]
    first = np.cumsum(pieces) - pieces
    index = np.arange(len(edge)) - first[edge]
    n = pieces[edge].astype(np.float64)
    return (
        _slerp(a[edge], b[edge], index / n),
        _slerp(a[edge], b[edge], (index + 1) / n),
    )


def arc_segments(a, b, center, max_step_deg: float = 2.0) -> np.ndarray:
    """The visible pieces of great-circle arcs a → b, projected (`orthographic`).

    Args:
      a: [E, 3] float unit vectors, the arcs' starts.
      b: [E, 3] float unit vectors, the arcs' ends.
      center: (lat, lon) degrees of the projection's centre.
      max_step_deg: the longest piece in degrees of arc (> 0).

    Returns:
      [S, 2, 2] float64 line segments ((x0, y0), (x1, y1)) for a LineCollection, only
      pieces with both ends on the near hemisphere.
    """
    starts, ends = arc_points(a, b, max_step_deg)
    return path_segments(np.stack([starts, ends], axis=1), center)


def path_segments(paths, center) -> np.ndarray:
    """The visible pieces of polylines on the sphere, projected (`orthographic`).

    Args:
      paths: [P, K, 3] float unit vectors, P polylines of K >= 2 points each (dense
        enough that a straight piece in the plot plane follows the curve).
      center: (lat, lon) degrees of the projection's centre.

    Returns:
      [S, 2, 2] float64 segments between consecutive points both on the near hemisphere.
    """
    paths = _unit_vectors("paths", paths)
    if paths.ndim != 3 or paths.shape[1] < 2:
        raise ValueError(f"paths: expected [P, K >= 2, 3], got shape {paths.shape}")
    xy, visible = orthographic(paths, center)
    keep = visible[:, :-1] & visible[:, 1:]  # [P, K - 1]
    return np.stack([xy[:, :-1][keep], xy[:, 1:][keep]], axis=1)


def graticule(center, step_deg: float = 30.0, samples: int = 181) -> np.ndarray:
    """`[S, 2, 2]` visible segments of the parallels and meridians every `step_deg`°."""
    lats = np.arange(-90.0 + step_deg, 90.0, step_deg)
    lons = np.arange(0.0, 360.0, step_deg)
    around = np.linspace(0.0, 360.0, samples)
    pole_to_pole = np.linspace(-90.0, 90.0, samples)
    parallels = latlon_to_xyz(lats[:, None], around[None, :])  # [P, K, 3]
    meridians = latlon_to_xyz(pole_to_pole[None, :], lons[:, None])
    return np.concatenate([path_segments(parallels, center), path_segments(meridians, center)])


def outline(samples: int = 361) -> np.ndarray:
    """`[samples, 2]` points of the globe's rim: the unit circle."""
    angle = np.linspace(0.0, 2 * np.pi, samples)
    return np.stack([np.cos(angle), np.sin(angle)], axis=1)
