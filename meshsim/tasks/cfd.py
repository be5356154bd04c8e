"""Eulerian fluid on a fixed triangle mesh (MeshGraphNets cylinder_flow, airfoil).

cylinder_flow (incompressible): inputs velocity [N, 2] + one-hot node type; edge
features: relative mesh_pos and its norm; output: the normalised velocity change.
NORMAL and OUTFLOW nodes are simulated and in the loss; INFLOW, WALL_BOUNDARY and
OBSTACLE nodes keep their prescribed values. Noise σ = 0.02, γ = 1 (Pfaff et al.
2021, Table 4).

airfoil (compressible): the state is `velocity+density+pressure [N, 4]`; velocity
and density are inputs and advance by predicted changes, pressure is predicted as a
value (an output only). Noise: σ = 10 on velocity and 0.01 on density (the paper's
airfoil noise), γ = 1.
"""

import numpy as np

from meshsim.diagnostics import FlowDiagnostics
from meshsim.node_types import NodeType
from meshsim.tasks.mesh import MeshTask
from meshsim.tasks.receptive_field import MeshOptions


class CfdTask(MeshTask):
    """Velocity on a fixed mesh; plots colour the mesh by u_x; rollouts are diagnosed as
    an incompressible flow (energy, divergence, Strouhal number)."""

    diagnostics = FlowDiagnostics

    def plot_scalar(self, states: np.ndarray) -> tuple[np.ndarray, str]:
        return states[..., 0], "u_x"


class AirfoilTask(CfdTask):
    """Compressible flow: velocity, density and pressure. The incompressible diagnostics
    (divergence, Strouhal number) do not apply, so rollouts are scored by RMSE only."""

    diagnostics = None


def airfoil_task(*, noise_std: float = 10.0, noise_gamma: float = 1.0, **options) -> AirfoilTask:
    """MeshGraphNets' airfoil task (`noise_std` is the velocity noise; density gets 1e-3
    of it); `options`: the receptive field's (`MeshOptions`: k_hop, dilation, ...)."""
    return AirfoilTask(
        name="airfoil",
        state_field="velocity+density+pressure",
        state_parts=(("velocity", 2), ("density", 1), ("pressure", 1)),
        direct_channels=(3,),
        noise_scale=(1.0, 1.0, 1e-3, 0.0),
        order=1,
        output_size=4,
        loss_node_types=(int(NodeType.NORMAL), int(NodeType.OUTFLOW)),
        noise_std=noise_std,
        noise_gamma=noise_gamma,
        receptive_field=MeshOptions(**options),
    )


def cfd_task(*, noise_std: float = 0.02, noise_gamma: float = 1.0, **options) -> CfdTask:
    """The cylinder-flow task of the MeshGraphNets paper; `options`: the receptive
    field's (`MeshOptions`: k_hop, dilation, dilation_levels, global_nodes)."""
    return CfdTask(
        name="cfd",
        state_field="velocity",
        order=1,
        output_size=2,
        loss_node_types=(int(NodeType.NORMAL), int(NodeType.OUTFLOW)),
        noise_std=noise_std,
        noise_gamma=noise_gamma,
        receptive_field=MeshOptions(**options),
    )
