"""Quasi-static solid mechanics on tetrahedra (MeshGraphNets deforming_plate).

An elastic plate, clamped on one side (HANDLE nodes), is pushed by a rigid actuator
whose motion is prescribed (OBSTACLE nodes). The state holds every node's world
position and von Mises stress, `world_pos+stress [N, 4]`; the network predicts the
position change of the plate (order 1, x_{t+1} = x_t + Δ) and the stress itself
(a value, not a change: `direct_channels`). Inputs (Pfaff et al. 2021, Sec. 4 and
App. A.1): the one-hot node type and, on the actuator, its prescribed velocity
x_{t+1} − x_t (0 elsewhere; the plate is quasi-static, so its own velocity is no
input); `mesh` edges carry the relative world position and the relative rest
position, each with its norm; `world` edges join nodes within r_W that the mesh
does not (`meshsim.tasks.world_edges`), carrying the relative world position and
its norm. NORMAL nodes are simulated and in the loss. Noise σ = 0.003 on the
positions, γ = 1.

Window fields: `world_pos+stress [N, 4]`, `next|world_pos [N, 3]` (the truth at
t + 1; read on the actuator only), `mesh_pos [N, 3]`, `node_type [N]`. A rollout's
prescribed frames carry the next `next|world_pos` too (`prescribed_frames`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.diagnostics import PlateDiagnostics
from meshsim.node_types import NUM_NODE_TYPES, NodeType
from meshsim.tasks.base import Fields
from meshsim.tasks.mesh import MeshTask, one_hot_node_type, relative_edge_features
from meshsim.tasks.receptive_field import MeshOptions
from meshsim.tasks.world_edges import world_radius_from

PLATE_STATE = "world_pos+stress"
NEXT_POSITION = "next|world_pos"
PLATE_WORLD_RADIUS = 0.03  # r_W of deforming_plate (PhysicsNeMo's example of it)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeformingPlateTask(MeshTask):
    """A plate pushed by a prescribed actuator: positions and stress (module doc)."""

    diagnostics = PlateDiagnostics

    kinematic_types: tuple[int, ...] = (int(NodeType.OBSTACLE),)

    @property
    def node_input_width(self) -> int:
        return self.world_dim + NUM_NODE_TYPES

    @property
    def mesh_edge_width(self) -> int:
        return self.world_dim + 1 + self.mesh_dim + 1

    def mesh_edge_features(self, fields: Fields, senders, receivers) -> jax.Array:
        world = relative_edge_features(self.world_position(fields), senders, receivers)
        mesh = relative_edge_features(fields["mesh_pos"], senders, receivers)
        return jnp.concatenate([world, mesh], axis=-1)

    def _kinematic(self, node_type: jax.Array) -> jax.Array:
        mask = jnp.zeros(node_type.shape, bool)
        for kind in self.kinematic_types:
            mask = mask | (node_type == kind)
        return mask

    def node_features(self, fields: Fields) -> jax.Array:
        """The actuator's prescribed velocity (0 on other nodes) and the one-hot type."""
        velocity = fields[NEXT_POSITION] - self.world_position(fields)
        moving = self._kinematic(fields["node_type"])[:, None]
        return jnp.concatenate(
            [jnp.where(moving, velocity, 0.0), one_hot_node_type(fields["node_type"])], axis=-1
        )

    def input_fields(self, trajectory: Mapping[str, np.ndarray], t: int) -> dict[str, np.ndarray]:
        fields = super().input_fields(trajectory, t)
        last = self.num_frames(trajectory) - 1
        fields[NEXT_POSITION] = np.asarray(trajectory["world_pos"][min(t + 1, last)], np.float32)
        return fields

    def prescribed_frames(
        self, trajectory: Mapping[str, np.ndarray], start: int, steps: int
    ) -> np.ndarray:
        """[steps, N, 7]: the state at start+k+1 (4) and the world positions at start+k+2
        (3, the next step's actuator input), both held at the last frame past the end."""
        state = super().prescribed_frames(trajectory, start, steps)
        last = self.num_frames(trajectory) - 1
        index = np.minimum(np.arange(start + 2, start + 2 + steps), last)
        world = trajectory["world_pos"][index] if steps else state[..., :3]
        return np.concatenate([state, np.asarray(world, np.float32)], axis=-1)

    def advance(self, fields: Fields, next_state: jax.Array, prescribed: jax.Array) -> dict:
        out = super().advance(fields, next_state, prescribed[..., : self.output_size])
        out[NEXT_POSITION] = prescribed[..., self.output_size :]
        return out

    def plot_scalar(self, states: np.ndarray) -> tuple[np.ndarray, str]:
        return states[..., 3], "von Mises stress"

    def plot_positions(self, states: np.ndarray) -> np.ndarray:
        return states[..., : self.world_dim]


def deforming_plate_task(
    *,
    meta: Mapping[str, Any] | None = None,
    noise_std: float = 3e-3,
    noise_gamma: float = 1.0,
    world_radius: float = 0.0,
    capacity_margin: float = 1.25,
    **options,
) -> DeformingPlateTask:
    """MeshGraphNets' deforming_plate task; r_W from the option, the dataset's
    `world_edge_radius`, else 0.03; `options`: the receptive field's (`MeshOptions`)."""
    return DeformingPlateTask(
        name="deforming_plate",
        state_field=PLATE_STATE,
        state_parts=(("world_pos", 3), ("stress", 1)),
        direct_channels=(3,),
        order=1,
        output_size=4,
        mesh_dim=3,
        loss_node_types=(int(NodeType.NORMAL),),
        noise_std=noise_std,
        noise_gamma=noise_gamma,
        lagrangian=True,
        world_radius=world_radius_from(meta, world_radius, PLATE_WORLD_RADIUS),
        capacity_margin=capacity_margin,
        receptive_field=MeshOptions(**options),
    )
