"""Tasks on one triangle or tetrahedral mesh (MeshGraphNets' domains): `MeshTask`,
the mesh-space edge set from cells, world edges, and the features they share
(`relative_edge_features`, `one_hot_node_type`). The task contract: `meshsim.tasks.base`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.graph import MultiGraph, edge_set, edges_from_cells, node_set
from meshsim.node_types import NUM_NODE_TYPES
from meshsim.tasks.base import Fields, Task
from meshsim.tasks.receptive_field import MeshOptions
from meshsim.tasks.world_edges import (
    WORLD_EDGES,
    rebuild_world_edges,
    world_edge_capacity,
    world_edge_slots,
)

MESH_EDGES = "mesh"  # MeshGraphNets' mesh-space edge set (cells → edges)


def relative_edge_features(positions: jax.Array, senders, receivers) -> jax.Array:
    """[E, d + 1]: x_sender − x_receiver and its Euclidean norm (MeshGraphNets).

    The norm of a zero vector (a padding edge from a node to itself) has gradient 0,
    not NaN: training through a rollout differentiates these features when the
    positions are predicted (cloth), and a NaN there would poison every gradient.
    The values are those of `jnp.linalg.norm`.
    """
    rel = positions[senders] - positions[receivers]  # [E, d]
    zero = jnp.all(rel == 0, axis=-1, keepdims=True)  # [E, 1]
    norm = jnp.linalg.norm(jnp.where(zero, 1.0, rel), axis=-1, keepdims=True)
    return jnp.concatenate([rel, jnp.where(zero, 0.0, norm)], axis=-1)


def one_hot_node_type(node_type: jax.Array) -> jax.Array:
    """[N] int32 -> [N, 9] float32 one-hot."""
    return jax.nn.one_hot(node_type, NUM_NODE_TYPES, dtype=jnp.float32)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MeshTask(Task):
    """A task on one triangle/tetrahedral mesh: node set `mesh`, edge set `mesh` from cells,
    with `world_radius > 0` MeshGraphNets' world edges (`meshsim.tasks.world_edges`), and
    the K-hop, dilated and global edge sets its `receptive_field` asks for
    (`meshsim.tasks.receptive_field`).

    Node features: the velocity input and the one-hot node type; edge features:
    the relative mesh-space position and its norm (`mesh_edge_features`); world edges:
    the relative world position and its norm.

    Attributes:
      mesh_dim: width of mesh_pos (2 for both built-in domains).
      world_radius: r_W, the world-edge radius; 0: no world edges.
      world_dim: the state channels that are world positions (the first `world_dim`).
      capacity_margin: world-edge slots over the most pairs seen in the data.
      receptive_field: the K-hop, dilated and global edge sets (`MeshOptions`; none by
        default).
    """

    mesh_dim: int = 2
    world_radius: float = 0.0
    world_dim: int = 3
    capacity_margin: float = 1.25
    receptive_field: MeshOptions = MeshOptions()

    def __post_init__(self):
        super().__post_init__()
        radius = self.world_radius
        if not (isinstance(radius, int | float) and np.isfinite(radius)) or radius < 0:
            raise ValueError(f"world_radius: expected a finite number ≥ 0, got {radius!r}")
        if self.world_radius and self.world_dim > self.output_size:
            raise ValueError(
                f"world_dim: the state has {self.output_size} channels, got {self.world_dim}"
            )
        if not isinstance(self.receptive_field, MeshOptions):
            raise TypeError(
                f"receptive_field: expected MeshOptions, got {type(self.receptive_field).__name__}"
            )
        # Only the receptive-field settings (not a subclass's), so equal tasks hash alike.
        object.__setattr__(self, "receptive_field", self.receptive_field.receptive_field)

    @property
    def node_input_width(self) -> int:
        """Width of the mesh nodes' features (`node_features`)."""
        return len(self.input_channels) + NUM_NODE_TYPES

    @property
    def node_feature_sizes(self) -> dict[str, int]:
        return {self.node_set: self.node_input_width, **self.receptive_field.node_sizes()}

    @property
    def edge_types(self) -> dict[str, tuple[str, str, int]]:
        types = {MESH_EDGES: (self.node_set, self.node_set, self.mesh_edge_width)}
        if self.world_radius:
            types[WORLD_EDGES] = (self.node_set, self.node_set, self.world_dim + 1)
        types.update(self.receptive_field.edge_types(self.node_set, self.mesh_edge_width))
        return types

    @property
    def mesh_edge_width(self) -> int:
        """Width of the `mesh` edge features (`mesh_edge_features`)."""
        return self.mesh_dim + 1

    @property
    def dynamic_edge_sets(self) -> tuple[str, ...]:
        return (WORLD_EDGES,) if self.world_radius else ()

    @property
    def structure_fields(self) -> tuple[str, ...]:
        extra = self.state_sources if self.world_radius else ()
        return ("cells", "mesh_pos", *extra)

    def structure(self, trajectory: Mapping[str, np.ndarray]) -> MultiGraph:
        """`mesh` edges (both directions) from the cells of frame 0; N from mesh_pos; with
        world edges, their slots sized from the trajectory's positions; the receptive
        field's edge sets from the mesh edges."""
        cells = np.asarray(trajectory["cells"])
        cells = cells[0] if cells.ndim == 3 else cells
        num_nodes = int(np.asarray(trajectory["mesh_pos"]).shape[-2])
        senders, receivers = edges_from_cells(cells)
        if senders.size and int(senders.max()) >= num_nodes:
            raise ValueError(
                f"cells: node index {int(senders.max())} out of range for {num_nodes} nodes "
                "(mesh_pos)"
            )
        no_features = np.zeros((senders.shape[0], 0), np.float32)
        edge_sets = {
            MESH_EDGES: edge_set(
                no_features, senders, receivers, sender=self.node_set, receiver=self.node_set
            )
        }
        if self.world_radius:
            frames = self.num_frames(trajectory)
            sample = np.unique(np.linspace(0, frames - 1, 16).astype(int))
            positions = self.state(trajectory, sample)[..., : self.world_dim]
            capacity = world_edge_capacity(positions, self.world_radius, self.capacity_margin)
            edge_sets[WORLD_EDGES] = world_edge_slots(capacity, num_nodes, self.node_set)
        extra_nodes, extra_edges = self.receptive_field.structure(
            senders, receivers, num_nodes, self.node_set
        )
        mesh_nodes = node_set(np.zeros((num_nodes, 0), np.float32))
        return MultiGraph(
            node_sets={self.node_set: mesh_nodes, **extra_nodes},
            edge_sets={**edge_sets, **extra_edges},
            graph_mask=np.ones(1, bool),
        )

    def partition_positions(self, trajectory, structure):
        if self.world_radius:
            raise ValueError(
                f"task {self.name!r}: graph parallelism cuts a fixed graph into parts once, "
                "but world edges are rebuilt every step; use parallel.data instead of "
                "parallel.graph"
            )
        mesh_only = structure.replace(node_sets={self.node_set: structure.node_sets[self.node_set]})
        positions = super().partition_positions(trajectory, mesh_only)
        return {**positions, **self.receptive_field.positions(positions[self.node_set])}

    def world_position(self, fields: Fields) -> jax.Array:
        """[N, world_dim] node positions in world space (the state's first channels)."""
        return fields[self.state_field][..., : self.world_dim]

    def dynamic_structure(
        self, fields: Fields, structure: MultiGraph
    ) -> tuple[MultiGraph, dict[str, jax.Array]]:
        """`structure` with the world edges of the current positions. Jit-safe."""
        if not self.world_radius:
            return structure, {}
        world, needed = rebuild_world_edges(
            self.world_position(fields),
            structure.edge_sets[WORLD_EDGES],
            structure.edge_sets[MESH_EDGES],
            structure.node_sets[self.node_set].mask,
            self.world_radius,
        )
        edge_sets = {**structure.edge_sets, WORLD_EDGES: world}
        return structure.replace(edge_sets=edge_sets), {WORLD_EDGES: needed}

    def static_fields(self, trajectory: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {
            "mesh_pos": np.asarray(trajectory["mesh_pos"])[0].astype(np.float32),
            "node_type": np.asarray(trajectory["node_type"])[0, :, 0].astype(np.int32),
        }

    def mesh_edge_features(self, fields: Fields, senders, receivers) -> jax.Array:
        """[E, F] features of `mesh` edges: relative mesh_pos and its norm."""
        return relative_edge_features(fields["mesh_pos"], senders, receivers)

    def node_features(self, fields: Fields) -> jax.Array:
        """[N, F] node features: the velocity input and the one-hot node type."""
        return jnp.concatenate(
            [self.velocity(fields), one_hot_node_type(fields["node_type"])], axis=-1
        )

    def build_graph(self, fields: Fields, structure: MultiGraph) -> MultiGraph:
        mesh = structure.edge_sets[MESH_EDGES]
        features = self.mesh_edge_features(fields, mesh.senders, mesh.receivers)
        edge_sets = {**structure.edge_sets, MESH_EDGES: mesh.replace(features=features)}
        if self.world_radius:
            world = structure.edge_sets[WORLD_EDGES]
            x = self.world_position(fields)
            rel = relative_edge_features(x, world.senders, world.receivers)
            rel = jnp.where(world.mask[:, None], rel, 0.0)
            edge_sets[WORLD_EDGES] = world.replace(features=rel)
        node_sets = {
            **structure.node_sets,
            self.node_set: structure.node_sets[self.node_set].replace(
                features=self.node_features(fields)
            ),
        }
        extra_nodes, extra_edges = self.receptive_field.features(
            structure, lambda s, r: self.mesh_edge_features(fields, s, r)
        )
        for name, x in extra_nodes.items():
            node_sets[name] = node_sets[name].replace(features=x)
        for name, x in extra_edges.items():
            edge_sets[name] = edge_sets[name].replace(features=x)
        return structure.replace(node_sets=node_sets, edge_sets=edge_sets)
