"""Eulerian fluid on a fixed triangle mesh (MeshGraphNets cylinder_flow, airfoil).

Inputs: velocity [N, 2] + one-hot node type; edge features: relative mesh_pos and
its norm; output: the normalised velocity change. NORMAL and OUTFLOW nodes are
simulated and in the loss; INFLOW, WALL_BOUNDARY and OBSTACLE nodes keep their
prescribed values. Noise σ = 0.02, γ = 1 (Pfaff et al. 2021, Table 4).
"""

import numpy as np

from meshsim.diagnostics import FlowDiagnostics
from meshsim.node_types import NodeType
from meshsim.tasks.base import MeshTask


class CfdTask(MeshTask):
    """Velocity on a fixed mesh; plots colour the mesh by u_x; rollouts are diagnosed as
    an incompressible flow (energy, divergence, Strouhal number)."""

    diagnostics = FlowDiagnostics

    def plot_scalar(self, states: np.ndarray) -> tuple[np.ndarray, str]:
        return states[..., 0], "u_x"


def cfd_task(*, noise_std: float = 0.02, noise_gamma: float = 1.0) -> CfdTask:
    """The cylinder-flow task of the MeshGraphNets paper."""
    return CfdTask(
        name="cfd",
        state_field="velocity",
        order=1,
        output_size=2,
        loss_node_types=(int(NodeType.NORMAL), int(NodeType.OUTFLOW)),
        noise_std=noise_std,
        noise_gamma=noise_gamma,
    )
