"""Walls as segments: the nearest point of each wall segment to each particle. Jit-safe.

Boundary GNNs (Mayr et al., AAAI 2023) give particles the distance and direction to
the nearest wall element instead of filling walls with particles; the particle task
uses these as node features and for its wall-contact edges. Segments are `[S, 2, D]`
(2-D container walls, or edges in space); the cost is O(N·S), walls having few
elements.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["closest_points", "nearest_segment"]


def closest_points(points: jax.Array, segments: jax.Array) -> tuple[jax.Array, jax.Array]:
    """([N, S, D] the closest point of every segment to every point, [N, S] distances)."""
    a, b = segments[:, 0], segments[:, 1]  # [S, D]
    ab = b - a
    length2 = jnp.maximum(jnp.sum(ab * ab, axis=-1), 1e-30)  # [S]
    t = jnp.sum((points[:, None, :] - a[None]) * ab[None], axis=-1) / length2  # [N, S]
    t = jnp.clip(t, 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]  # [N, S, D]
    squared = jnp.sum((points[:, None, :] - closest) ** 2, axis=-1)
    distance = jnp.sqrt(jnp.maximum(squared, 1e-30))  # finite gradient on the wall itself
    return closest, distance


def nearest_segment(
    points: jax.Array, segments: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The nearest wall segment of each point. Jit-safe.

    Args:
      points: [N, D] float.
      segments: [S, 2, D] float, S ≥ 1.

    Returns:
      (distance [N] float, unit normal [N, D] pointing from the wall to the point
      (0 for a point on the wall), index [N] int32 of the segment).
    """
    closest, distance = closest_points(points, segments)
    index = jnp.argmin(distance, axis=1).astype(jnp.int32)  # [N]
    nearest = jnp.take_along_axis(closest, index[:, None, None], axis=1)[:, 0]  # [N, D]
    best = jnp.take_along_axis(distance, index[:, None], axis=1)[:, 0]
    away = points - nearest
    safe = jnp.where(best > 0, best, 1.0)[:, None]
    normal = jnp.where((best > 0)[:, None], away / safe, 0.0)
    return best, normal, index
