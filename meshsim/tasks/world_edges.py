"""MeshGraphNets' world edges: nodes close in world space that the mesh does not join.

Contact needs them (Pfaff et al. 2021, Sec. 3): a plate pushed by an actuator, cloth
falling on a sphere or folding onto itself. Nodes i, j with |x_i − x_j| < r_W are
joined in both directions unless a mesh edge joins them already; the edges are
rebuilt from the current positions inside every step (`meshsim.graph.radius_graph`,
then `meshsim.graph.membership.edges_in` to drop mesh neighbours) into a fixed
number of masked slots, and their features are the world-space relative position
and its norm. A step that finds more pairs than slots reports it, and the host grows
the budget (the dynamic edge sets of `meshsim.tasks.base.Task`).

Here: the options of the contact tasks, the slots' capacity from a trajectory (host
side) and the rebuild itself (jit side). `MeshTask` (`world_radius > 0`) uses them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.graph import EdgeSet, radius_graph
from meshsim.graph.membership import edges_in
from meshsim.options import setting
from meshsim.tasks.receptive_field import MeshOptions

WORLD_EDGES = "world"  # the edge set's name
_CAPACITY_FRAMES = 16  # frames sampled per trajectory to size the slots


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContactOptions(MeshOptions):
    """The contact tasks' own settings (`task.options.*` in a config): the mesh tasks'
    (`MeshOptions`: k_hop, dilation, dilation_levels, global_nodes) and

    `world_radius`: r_W, the world-edge radius (0: the dataset's `world_edge_radius`
    in meta.json, else the task's published default); `capacity_margin`: world-edge
    slots over the most pairs within r_W seen in the data (the host grows them when a
    step needs more).
    """

    _section = "task.options"

    world_radius: float = setting(0.0, ge=0)
    capacity_margin: float = setting(1.25, ge=1)


def world_radius_from(meta: Mapping[str, Any] | None, option: float, default: float) -> float:
    """r_W: the option if set, else the dataset's `world_edge_radius`, else `default`."""
    if option:
        return float(option)
    value = (meta or {}).get("world_edge_radius")
    return float(value) if value else float(default)


def world_edge_capacity(positions: np.ndarray, radius: float, margin: float) -> int:
    """Slots for `positions [T, N, D]`: the most directed pairs within `radius` on up
    to 16 evenly spaced frames (mesh neighbours included: the search finds them before
    they are dropped), times `margin`. Host side (scipy)."""
    from scipy.spatial import cKDTree

    positions = np.asarray(positions, np.float64)
    frames = np.unique(np.linspace(0, positions.shape[0] - 1, _CAPACITY_FRAMES).astype(int))
    most = max(2 * len(cKDTree(positions[t]).query_pairs(radius)) for t in frames)
    return max(1, int(math.ceil(most * margin)))


def world_edge_slots(capacity: int, num_nodes: int, node_set: str) -> EdgeSet:
    """`capacity` masked slots of a world edge set on `num_nodes` nodes (the step fills
    them)."""
    slots = np.full(capacity, num_nodes - 1, np.int32)
    return EdgeSet(
        features=np.zeros((capacity, 0), np.float32),
        senders=slots,
        receivers=slots.copy(),
        n_edge=np.array([capacity], np.int32),
        mask=np.zeros(capacity, bool),
        sender=node_set,
        receiver=node_set,
    )


def dynamic_edge_counts(edges: EdgeSet, real: jax.Array) -> jax.Array:
    """[num_graphs] int32 edge counts of rebuilt slots: `real` in the graph, the empty
    slots in the first padding graph (`meshsim.graph.pad`'s convention)."""
    n_edge = jnp.zeros(edges.n_edge.shape, jnp.int32).at[0].set(real)
    if edges.n_edge.shape[0] > 1:
        n_edge = n_edge.at[1].set(edges.num_edges - real)
    return n_edge


def rebuild_world_edges(
    positions: jax.Array, slots: EdgeSet, mesh: EdgeSet, node_mask: jax.Array, radius: float
) -> tuple[EdgeSet, jax.Array]:
    """(`slots` filled with the world edges of `positions [N, D]`, [] int32 the slots
    the search needed). Pairs within `radius` that a real `mesh` edge joins are left
    out; padding nodes (`node_mask` False) join nothing. Jit-safe."""
    fill = node_mask.shape[0] - 1
    found = radius_graph(
        positions, radius, capacity=slots.num_edges, node_mask=node_mask, fill=fill
    )
    linked = edges_in(found.senders, found.receivers, mesh.senders, mesh.receivers, mesh.mask)
    real = found.mask & ~linked
    rebuilt = slots.replace(
        senders=jnp.where(real, found.senders, fill).astype(jnp.int32),
        receivers=jnp.where(real, found.receivers, fill).astype(jnp.int32),
        mask=real,
        n_edge=dynamic_edge_counts(slots, jnp.sum(real.astype(jnp.int32))),
    )
    needed = jnp.where(found.cell_overflow, slots.num_edges + 1, found.count)
    return rebuilt, needed.astype(jnp.int32)
