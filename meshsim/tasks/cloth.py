"""Lagrangian cloth (MeshGraphNets flag_simple).

Inputs: world_pos_t − world_pos_{t−1} [N, 3] + one-hot node type; edge features:
relative world_pos and its norm plus relative mesh_pos and its norm; output: the
normalised acceleration, integrated as x_{t+1} = 2x_t − x_{t−1} + a. NORMAL nodes
are simulated; HANDLE nodes follow their prescribed positions. Noise σ = 0.003,
γ = 0.1 (Pfaff et al. 2021, Table 4).
"""

from meshsim.node_types import NodeType
from meshsim.tasks.base import Task


def cloth_task(*, noise_std: float = 0.003, noise_gamma: float = 0.1) -> Task:
    """The flag_simple task of the MeshGraphNets paper."""
    return Task(
        name="cloth",
        state_field="world_pos",
        order=2,
        output_size=3,
        world_edges=True,
        loss_node_types=(int(NodeType.NORMAL),),
        noise_std=noise_std,
        noise_gamma=noise_gamma,
    )
