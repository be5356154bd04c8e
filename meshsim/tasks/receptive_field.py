"""A mesh task's wider receptive field: K-hop, dilated and global edge sets (task options).

A message-passing step or an attention layer sees one hop of the mesh; information
crosses a mesh of diameter D in D steps. The seed paper of the transformer block
(Garnier et al., "Training Transformers for Mesh-Based Simulations", 2025) widens the
adjacency its attention is masked by with K-hop neighbourhoods, dilated windows and a
few global tokens. Here each is an edge set of the task's graph, built once per
trajectory on the host from the mesh edges (`meshsim.graph.hops`), so every block
(interaction or transformer) and every stage can use it, and the padding budget,
the normalizers and graph parallelism treat it like the `mesh` edge set:

* `khop` (`k_hop` K ≥ 2): pairs 2..K hops apart, both directions; features as the
  `mesh` edges' (`MeshTask.mesh_edge_features`: relative positions and their norms).
* `dilated` (`dilation` d ≥ 2): pairs exactly d, 2d, …, `dilation_levels`·d hops
  apart; features as the `mesh` edges'.
* `global` node set (`global_nodes` G ≥ 1), joined to every mesh node both ways by
  `mesh2global` and `global2mesh`. A global node has no position: its features, and
  those of its edges, are the one-hot index of the global node [G], so each has a
  learned embedding (the encoder) and the G of them do not stay identical.

They are task options (`task.options.k_hop=2`), not model options: they change the
graph the task builds (its edge sets, feature widths, padding and normalizers), which
the network only reads, and they serve the interaction block as well as the
transformer.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.graph import EdgeSet, NodeSet, edge_set
from meshsim.graph import node_set as make_node_set
from meshsim.graph.hops import dilated_pairs, global_pairs, k_hop_pairs
from meshsim.options import Validated, setting

KHOP_EDGES = "khop"
DILATED_EDGES = "dilated"
GLOBAL_NODES = "global"
TO_GLOBAL = "mesh2global"
FROM_GLOBAL = "global2mesh"


@dataclasses.dataclass(frozen=True, kw_only=True)
class MeshOptions(Validated):
    """The mesh tasks' own settings (`task.options.*` in a config; module doc).

    `k_hop`: K, join nodes within K hops (1: the mesh edges only); `dilation`: d, join
    nodes exactly d, 2d, …, `dilation_levels`·d hops apart (0: off; 1 is refused, it
    would repeat the mesh edges); `global_nodes`: G global nodes joined to every mesh
    node (0: none).
    """

    _section = "task.options"

    k_hop: int = setting(1, ge=1)
    dilation: int = setting(0, ge=0)
    dilation_levels: int = setting(2, ge=1)
    global_nodes: int = setting(0, ge=0)

    def __post_init__(self):
        super().__post_init__()
        if self.dilation == 1:
            raise ValueError(
                "task.options.dilation: expected 0 (off) or an int ≥ 2, got 1 (pairs 1 hop "
                "apart are the mesh edges)"
            )

    @property
    def receptive_field(self) -> MeshOptions:
        """These settings alone (a subclass's other fields dropped), for `MeshTask`."""
        names = [f.name for f in dataclasses.fields(MeshOptions)]
        return MeshOptions(**{n: getattr(self, n) for n in names})

    def node_sizes(self) -> dict[str, int]:
        """{node set: feature width} of the node sets these options add."""
        return {GLOBAL_NODES: self.global_nodes} if self.global_nodes else {}

    def edge_types(self, mesh_set: str, mesh_width: int) -> dict[str, tuple[str, str, int]]:
        """{edge set: (sender, receiver, feature width)} of the edge sets these options add
        to a mesh on node set `mesh_set` whose mesh edges have `mesh_width` features."""
        types = {}
        if self.k_hop > 1:
            types[KHOP_EDGES] = (mesh_set, mesh_set, mesh_width)
        if self.dilation:
            types[DILATED_EDGES] = (mesh_set, mesh_set, mesh_width)
        if self.global_nodes:
            types[TO_GLOBAL] = (mesh_set, GLOBAL_NODES, self.global_nodes)
            types[FROM_GLOBAL] = (GLOBAL_NODES, mesh_set, self.global_nodes)
        return types

    def positions(self, mesh_positions: np.ndarray) -> dict[str, np.ndarray]:
        """{added node set: [N_s, D] float64} where graph parallelism places the added
        nodes: the global nodes, which have no place of their own, at the centroid of
        `mesh_positions [N, D]`."""
        if not self.global_nodes:
            return {}
        centroid = np.asarray(mesh_positions, np.float64).mean(0, keepdims=True)
        return {GLOBAL_NODES: np.repeat(centroid, self.global_nodes, axis=0)}

    def structure(
        self, senders: np.ndarray, receivers: np.ndarray, num_nodes: int, mesh_set: str
    ) -> tuple[dict[str, NodeSet], dict[str, EdgeSet]]:
        """(added node sets, added edge sets) with zero-width features, from the mesh
        edges `senders, receivers [E] int32` on `num_nodes` nodes of node set `mesh_set`.
        Host side."""
        edges: dict[str, EdgeSet] = {}
        pairs = {}
        if self.k_hop > 1:
            pairs[KHOP_EDGES] = k_hop_pairs(senders, receivers, num_nodes, self.k_hop)
        if self.dilation:
            pairs[DILATED_EDGES] = dilated_pairs(
                senders, receivers, num_nodes, self.dilation, self.dilation_levels
            )
        for name, (s, r) in pairs.items():
            empty = np.zeros((s.shape[0], 0), np.float32)
            edges[name] = edge_set(empty, s, r, sender=mesh_set, receiver=mesh_set, name=name)
        nodes = {}
        if self.global_nodes:
            s, r = global_pairs(num_nodes, self.global_nodes)
            empty = np.zeros((s.shape[0], 0), np.float32)
            edges[TO_GLOBAL] = edge_set(
                empty, s, r, sender=mesh_set, receiver=GLOBAL_NODES, name=TO_GLOBAL
            )
            order = np.lexsort((r, s))  # global2mesh: sorted by its receiver, the mesh node
            edges[FROM_GLOBAL] = edge_set(
                empty, r[order], s[order], sender=GLOBAL_NODES, receiver=mesh_set, name=FROM_GLOBAL
            )
            nodes[GLOBAL_NODES] = make_node_set(np.zeros((self.global_nodes, 0), np.float32))
        return nodes, edges

    def features(
        self, structure, mesh_edge_features
    ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """({added node set: [N_s, F] float32}, {added edge set: [E_k, F] float32}) of a
        (padded) `structure`; `mesh_edge_features(senders, receivers)` gives the K-hop
        and dilated edges' features. Padding rows of the global set get zeros. Jit-safe."""
        nodes, edges = {}, {}
        for name in (KHOP_EDGES, DILATED_EDGES):
            if name in structure.edge_sets:
                es = structure.edge_sets[name]
                edges[name] = mesh_edge_features(es.senders, es.receivers)
        if self.global_nodes:
            g = self.global_nodes
            rows = structure.node_sets[GLOBAL_NODES].features.shape[0]
            nodes[GLOBAL_NODES] = jax.nn.one_hot(jnp.arange(rows), g, dtype=jnp.float32)
            to_global = structure.edge_sets[TO_GLOBAL].receivers
            from_global = structure.edge_sets[FROM_GLOBAL].senders
            edges[TO_GLOBAL] = jax.nn.one_hot(to_global, g, dtype=jnp.float32)
            edges[FROM_GLOBAL] = jax.nn.one_hot(from_global, g, dtype=jnp.float32)
        return nodes, edges
