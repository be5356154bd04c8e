"""Lagrangian cloth (MeshGraphNets flag_simple).

Inputs: world_pos_t − world_pos_{t−1} [N, 3] + one-hot node type; `mesh` edge
features: relative world_pos and its norm, then relative mesh_pos and its norm
(world-space features on the mesh edges; MeshGraphNets' separate `world` edge
set, for contact, is not used by flag_simple); output: the normalised
acceleration, integrated as x_{t+1} = 2x_t − x_{t−1} + a. NORMAL nodes are
simulated; HANDLE nodes follow their prescribed positions. Noise σ = 0.003,
γ = 0.1 (Pfaff et al. 2021, Table 4).
"""

import jax
import jax.numpy as jnp

from meshsim.diagnostics import ClothDiagnostics
from meshsim.node_types import NodeType
from meshsim.tasks.base import MESH_EDGES, MeshTask, relative_edge_features


class ClothTask(MeshTask):
    """A sheet whose state is its node positions; plots draw the moving mesh; rollouts are
    diagnosed by their edge strain."""

    diagnostics = ClothDiagnostics

    @property
    def edge_types(self) -> dict[str, tuple[str, str, int]]:
        width = self.output_size + 1 + self.mesh_dim + 1
        return {MESH_EDGES: (self.node_set, self.node_set, width)}

    def mesh_edge_features(self, fields, senders, receivers) -> jax.Array:
        world = relative_edge_features(fields[self.state_field], senders, receivers)
        mesh = relative_edge_features(fields["mesh_pos"], senders, receivers)
        return jnp.concatenate([world, mesh], axis=-1)


def cloth_task(*, noise_std: float = 0.003, noise_gamma: float = 0.1) -> ClothTask:
    """The flag_simple task of the MeshGraphNets paper."""
    return ClothTask(
        name="cloth",
        state_field="world_pos",
        order=2,
        output_size=3,
        loss_node_types=(int(NodeType.NORMAL),),
        noise_std=noise_std,
        noise_gamma=noise_gamma,
        lagrangian=True,
    )
