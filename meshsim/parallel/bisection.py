"""Recursive coordinate bisection: the parts a graph is cut into. Host side.

Each cut is along the longest extent of the nodes at hand, at the median,
recursively, so every part holds ⌊N/K⌋ or ⌈N/K⌉ nodes of each node set. Graphs with
several node sets (the weather graph: `grid` and `mesh`) are cut by the same
sequence of axes, each node set at its own median, so a grid point and the mesh
vertices near it tend to land in the same part. Used by graph parallelism
(`meshsim.parallel.partition`) and sequential partitions (`meshsim.parallel.sequential`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from meshsim.graph.typed import DEFAULT_NODE_SET, Array
from meshsim.validation import check_int


def _bisect(points, members, first: int, count: int, out) -> None:
    """Assigns parts [first, first + count) to `members` {set: [n_s] int64 global index}."""
    if count == 1:
        for name, idx in members.items():
            out[name][idx] = first
        return
    left_parts = count // 2
    coords = [points[name][idx] for name, idx in members.items() if idx.size]
    axis = 0
    if coords:
        stacked = np.concatenate(coords)
        axis = int(np.argmax(stacked.max(0) - stacked.min(0)))
    left, right = {}, {}
    for name, idx in members.items():
        # Parts get q or q + 1 nodes, the first r parts the larger share: this split
        # keeps that true after recursion, so every part ends within ±1 of n / K.
        q, r = divmod(idx.size, count)
        n_left = left_parts * q + min(left_parts, r)
        order = np.lexsort((idx, points[name][idx, axis]))  # ties broken by index
        left[name], right[name] = idx[order[:n_left]], idx[order[n_left:]]
    _bisect(points, left, first, left_parts, out)
    _bisect(points, right, first + left_parts, count - left_parts, out)


def partition_nodes(
    positions: Array | Mapping[str, Array], num_parts: int
) -> np.ndarray | dict[str, np.ndarray]:
    """Recursive coordinate bisection of node positions into `num_parts` parts.

    Args:
      positions: [N, D] float positions of one node set, or {node set: [N_s, D]}
        (one D for all sets; e.g. xyz on the unit sphere for `grid` and `mesh`).
      num_parts: K ≥ 1 (any K, not only powers of two).

    Returns:
      [N] int32 part of each node (in [0, K)), or {node set: [N_s] int32}. Each node
      set's parts hold ⌊N_s/K⌋ or ⌈N_s/K⌉ nodes. Deterministic; O(N log N log K).

    Raises:
      ValueError: on bad shapes, non-finite positions or num_parts < 1.
    """
    k = check_int("num_parts", num_parts, minimum=1, expected="a positive int")
    single = not isinstance(positions, Mapping)
    named = {DEFAULT_NODE_SET: positions} if single else dict(positions)
    if not named:
        raise ValueError("positions: expected at least one node set, got none")
    points, dims = {}, set()
    for name, p in named.items():
        p = np.asarray(p, np.float64)
        where = "positions" if single else f"positions[{name!r}]"
        if p.ndim != 2 or p.shape[1] < 1:
            raise ValueError(f"{where}: expected shape [num_nodes, D], got {p.shape}")
        if not np.isfinite(p).all():
            raise ValueError(f"{where}: expected finite values")
        points[name] = p
        dims.add(p.shape[1])
    if len(dims) > 1:
        raise ValueError(f"positions: expected one dimension D for every node set, got {dims}")
    out = {name: np.zeros(p.shape[0], np.int32) for name, p in points.items()}
    _bisect(points, {n: np.arange(p.shape[0]) for n, p in points.items()}, 0, k, out)
    return out[DEFAULT_NODE_SET] if single else out


__all__ = ["partition_nodes"]
