"""Lagrangian cloth (MeshGraphNets flag_simple; sphere_simple and flag_dynamic with
world edges).

Inputs: world_pos_t − world_pos_{t−1} [N, 3] + one-hot node type; `mesh` edge
features: relative world_pos and its norm, then relative mesh_pos and its norm
(world-space features on the mesh edges); for contact (sphere_simple: cloth and a
moving sphere in one mesh; flag_dynamic: self-contact) a `world` edge set joins nodes
within r_W that the mesh does not (`meshsim.tasks.world_edges`); output: the normalised
acceleration, integrated as x_{t+1} = 2x_t − x_{t−1} + a. NORMAL nodes are
simulated; HANDLE and OBSTACLE nodes follow their prescribed positions. Noise σ = 0.003,
γ = 0.1 (Pfaff et al. 2021, Table 4).
"""

import jax
import jax.numpy as jnp

from meshsim.diagnostics import ClothDiagnostics, ContactDiagnostics
from meshsim.node_types import NodeType
from meshsim.tasks.mesh import MeshTask, relative_edge_features
from meshsim.tasks.receptive_field import MeshOptions
from meshsim.tasks.world_edges import world_radius_from


class ClothTask(MeshTask):
    """A sheet whose state is its node positions; plots draw the moving mesh; rollouts are
    diagnosed by their edge strain."""

    diagnostics = ClothDiagnostics

    @property
    def mesh_edge_width(self) -> int:
        return self.output_size + 1 + self.mesh_dim + 1

    def mesh_edge_features(self, fields, senders, receivers) -> jax.Array:
        world = relative_edge_features(fields[self.state_field], senders, receivers)
        mesh = relative_edge_features(fields["mesh_pos"], senders, receivers)
        return jnp.concatenate([world, mesh], axis=-1)


class ContactClothTask(ClothTask):
    """Cloth with world edges; rollouts diagnosed by strain and obstacle penetrations."""

    diagnostics = ContactDiagnostics


def cloth_task(*, noise_std: float = 0.003, noise_gamma: float = 0.1, **options) -> ClothTask:
    """The flag_simple task of the MeshGraphNets paper; `options`: the receptive field's
    (`MeshOptions`: k_hop, dilation, dilation_levels, global_nodes)."""
    return ClothTask(
        name="cloth",
        state_field="world_pos",
        order=2,
        output_size=3,
        loss_node_types=(int(NodeType.NORMAL),),
        noise_std=noise_std,
        noise_gamma=noise_gamma,
        lagrangian=True,
        receptive_field=MeshOptions(**options),
    )


SPHERE_WORLD_RADIUS = 0.05  # default r_W of the cloth contact tasks (a dataset may set its own)


def cloth_contact_task(
    *,
    meta=None,
    noise_std: float = 1e-3,
    noise_gamma: float = 0.1,
    world_radius: float = 0.0,
    capacity_margin: float = 1.25,
    name: str = "sphere_simple",
    **options,
) -> ClothTask:
    """Cloth with world edges (MeshGraphNets sphere_simple / flag_dynamic): r_W from the
    option, the dataset's `world_edge_radius`, else 0.05. Contact rollouts are diagnosed
    by their penetrations (`ContactDiagnostics`). `options`: the receptive field's
    (`MeshOptions`)."""
    return ContactClothTask(
        name=name,
        state_field="world_pos",
        order=2,
        output_size=3,
        loss_node_types=(int(NodeType.NORMAL),),
        noise_std=noise_std,
        noise_gamma=noise_gamma,
        lagrangian=True,
        world_radius=world_radius_from(meta, world_radius, SPHERE_WORLD_RADIUS),
        capacity_margin=capacity_margin,
        receptive_field=MeshOptions(**options),
    )


def flag_dynamic_task(**kwargs) -> ClothTask:
    """MeshGraphNets' flag_dynamic: the contact cloth task with self-contact only."""
    return cloth_contact_task(name="flag_dynamic", **kwargs)
