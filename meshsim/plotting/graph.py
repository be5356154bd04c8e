"""Plots of graph partitions: which device owns each node of a 2-D mesh, and the halos.

A graph-parallel run (`meshsim.parallel.graph_parallel`) splits a mesh into K parts; each
device also holds a *halo*, the nodes owned elsewhere that send it edges.
`plot_partition` draws a triangle mesh with every cell coloured by the part that
owns its first node and, given a `PartitionedGraph`, rings the halo nodes, so the
cut and what crosses it can be seen at a glance. Like `meshsim.plotting`, it draws
on a matplotlib Axes the caller owns (no pyplot state, headless-safe).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from meshsim.plotting._figures import mesh_arrays

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["halo_nodes", "plot_partition"]


def halo_nodes(pgraph: Any, node_set: str = "mesh") -> np.ndarray:
    """`[N] bool`: the nodes of `node_set` that are in the halo of at least one part.

    Args:
      pgraph: a `meshsim.graph.PartitionedGraph` (its `global_index` and `owned`
        tables `[K, N_local]` are read on the host).
      node_set: the node set to read.

    Returns:
      A bool array over the global nodes of `node_set`. Host side, O(K · N_local).

    Raises:
      ValueError: if `node_set` is not a node set of the partition.
    """
    if node_set not in pgraph.global_index:
        raise ValueError(
            f"node_set: expected one of {sorted(pgraph.global_index)}, got {node_set!r}"
        )
    index = np.asarray(pgraph.global_index[node_set])  # [K, N_local] int, -1 on padding
    owned = np.asarray(pgraph.owned[node_set])  # [K, N_local] bool
    num_nodes = int(np.asarray(pgraph.parts[node_set]).shape[0])
    halo = np.zeros(num_nodes, bool)
    halo[index[(index >= 0) & ~owned]] = True
    return halo


def plot_partition(
    ax: Axes,
    mesh_pos: Any,
    cells: Any,
    partition: Any,
    *,
    node_set: str = "mesh",
    cmap: str = "tab10",
    title: str | None = None,
    show_halo: bool = True,
):
    """Draws a 2-D triangle mesh coloured by part, with the halo nodes ringed.

    Args:
      ax: a 2-D matplotlib Axes.
      mesh_pos: `[N, 2]` float node positions (or `[1, N, 2]`).
      cells: `[C, 3]` int triangles (or `[1, C, 3]`).
      partition: `[N]` int part of each node (e.g. `meshsim.graph.partition_nodes`),
        or a `PartitionedGraph` (its parts of `node_set`; its halo nodes are ringed).
      node_set: the node set of a `PartitionedGraph` that the mesh's nodes are.
      cmap: a qualitative colour map, one colour per part.
      title: axes title (default: "K parts").
      show_halo: ring the halo nodes (only with a `PartitionedGraph`).

    Returns:
      The cells' `PolyCollection` (flat colours: the part of each cell's first node).

    Raises:
      ValueError: on bad shapes, or parts that are not ints ≥ 0, one per node.
    """
    import matplotlib.tri as mtri

    mesh_pos, cells = mesh_arrays(mesh_pos, cells)
    halo = None
    if hasattr(partition, "global_index"):  # a PartitionedGraph
        if show_halo:
            halo = halo_nodes(partition, node_set)
        partition = partition.parts[node_set]
    parts = np.asarray(partition)
    if parts.shape != (mesh_pos.shape[0],) or not np.issubdtype(parts.dtype, np.integer):
        raise ValueError(
            f"partition: expected [{mesh_pos.shape[0]}] int parts, got {parts.shape} {parts.dtype}"
        )
    if parts.size and parts.min() < 0:
        raise ValueError(f"partition: expected parts ≥ 0, got {int(parts.min())}")
    k = int(parts.max()) + 1 if parts.size else 1
    triangulation = mtri.Triangulation(mesh_pos[:, 0], mesh_pos[:, 1], cells)
    collection = ax.tripcolor(
        triangulation,
        facecolors=parts[cells[:, 0]].astype(np.float64),
        cmap=cmap,
        vmin=-0.5,
        vmax=max(k, 10) - 0.5,  # tab10: part p gets the p-th colour for K ≤ 10
        edgecolors="w",
        linewidth=0.1,
    )
    if halo is not None and halo.any():
        ax.scatter(
            mesh_pos[halo, 0],
            mesh_pos[halo, 1],
            s=9,
            facecolors="none",
            edgecolors="k",
            linewidths=0.6,
            label=f"halo nodes ({int(halo.sum())})",
        )
        ax.legend(loc="upper right", fontsize=8)
    ax.set_aspect("equal")
    ax.set_title(f"{k} parts" if title is None else title)
    return collection
