"""What a learned simulator predicts, and how a prediction becomes the next state.

A `Task` is a frozen object of pure functions; everything domain-specific lives
here and nothing else (MeshGraphNets, Pfaff et al. 2021, Sec. 3 and App. A):

* which per-node *fields* a training window holds (`window`, host side),
* how fields become graph features (`build_graph`, jit-safe),
* the training target and the loss mask,
* how a network output becomes the next state (first order `x + Δ`, second
  order `2x_t − x_{t−1} + a`) and which nodes are prescribed,
* the training noise.

Fields are a dict of per-node arrays (`[N, d]`, node types `[N] int32`) using the
MeshGraphNets names: `mesh_pos`, `node_type`, the state field (`velocity` or
`world_pos`), `prev|<state>` for second-order tasks, and `target|<state>`.
A batch of windows stacks each field on a leading axis `[B, N, d]`; the task
functions work on one window and are `vmap`ped by the trainer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.graph import EdgeSet, MultiGraph
from meshsim.node_types import NUM_NODE_TYPES, NodeType

Fields = Mapping[str, jax.Array]


class Window(NamedTuple):
    """One training example: graph structure plus per-node fields.

    Fields:
      graph:  MultiGraph whose node/edge features are zero-width placeholders
              ([N, 0], [E, 0]); senders, receivers, counts and masks are real.
      fields: {name: [N, d] float32 or [N] int32} — see the module docstring.
    """

    graph: MultiGraph
    fields: dict[str, np.ndarray]


def relative_edge_features(positions: jax.Array, senders, receivers) -> jax.Array:
    """[E, d + 1]: x_sender − x_receiver and its Euclidean norm (MeshGraphNets)."""
    rel = positions[senders] - positions[receivers]
    return jnp.concatenate([rel, jnp.linalg.norm(rel, axis=-1, keepdims=True)], axis=-1)


def one_hot_node_type(node_type: jax.Array) -> jax.Array:
    """[N] int32 -> [N, 9] float32 one-hot."""
    return jax.nn.one_hot(node_type, NUM_NODE_TYPES, dtype=jnp.float32)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Task:
    """A MeshGraphNets-style next-step prediction task.

    Attributes:
      name: registry name ("cfd", "cloth").
      state_field: dynamic field the network advances ("velocity", "world_pos").
      order: 1 (predict Δ of the state) or 2 (predict the acceleration).
      output_size: width of the network output (= width of the state).
      mesh_dim: width of mesh_pos (2 for both built-in domains).
      world_edges: edge features include world-space relative positions (cloth).
      loss_node_types: node types that are simulated, hence in the loss and updated
        in rollouts; every other type is prescribed.
      noise_std: std of the Gaussian training noise on the state of simulated nodes.
      noise_gamma: fraction of the noise the target does NOT absorb; the target
        is moved by (1 − γ)·noise (1.0 for cfd, 0.1 for cloth in the paper).
      extra_dynamic_fields: other dynamic fields copied into the window (e.g.
        "pressure"), available to custom feature functions.
    """

    name: str
    state_field: str
    order: int
    output_size: int
    mesh_dim: int = 2
    world_edges: bool = False
    loss_node_types: tuple[int, ...] = (int(NodeType.NORMAL),)
    noise_std: float = 0.0
    noise_gamma: float = 1.0
    extra_dynamic_fields: tuple[str, ...] = ()

    def __post_init__(self):
        if self.order not in (1, 2):
            raise ValueError(f"order: expected 1 or 2, got {self.order}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std: expected ≥ 0, got {self.noise_std}")

    # ------------------------------------------------------------------ sizes

    @property
    def node_feature_size(self) -> int:
        return self.output_size + NUM_NODE_TYPES

    @property
    def edge_feature_sizes(self) -> dict[str, int]:
        size = self.mesh_dim + 1
        if self.world_edges:
            size += self.output_size + 1
        return {"mesh": size}

    @property
    def required_fields(self) -> tuple[str, ...]:
        return ("cells", "mesh_pos", "node_type", self.state_field)

    # ------------------------------------------------------------------ host side

    def window_times(self, trajectory_length: int) -> range:
        """Time indices t that have a target (t + 1) and enough history."""
        return range(self.order - 1, trajectory_length - 1)

    def window(self, trajectory: Mapping[str, np.ndarray], t: int, graph: MultiGraph) -> Window:
        """The window at time t of a trajectory (CONVENTIONS.md layout). Host side."""
        state = np.asarray(trajectory[self.state_field])
        if state.ndim != 3 or state.shape[-1] != self.output_size:
            raise ValueError(
                f"{self.state_field}: expected [T, N, {self.output_size}], got {state.shape}"
            )
        if t not in self.window_times(state.shape[0]):
            raise ValueError(
                f"t: expected in {self.window_times(state.shape[0])}, got {t} "
                f"(trajectory length {state.shape[0]}, order {self.order})"
            )
        fields = {
            "mesh_pos": np.asarray(trajectory["mesh_pos"])[0].astype(np.float32),
            "node_type": np.asarray(trajectory["node_type"])[0, :, 0].astype(np.int32),
            self.state_field: state[t].astype(np.float32),
            f"target|{self.state_field}": state[t + 1].astype(np.float32),
        }
        if self.order == 2:
            fields[f"prev|{self.state_field}"] = state[t - 1].astype(np.float32)
        for name in self.extra_dynamic_fields:
            fields[name] = np.asarray(trajectory[name])[t].astype(np.float32)
        return Window(graph=graph, fields=fields)

    # ------------------------------------------------------------------ jit side

    def velocity(self, fields: Fields) -> jax.Array:
        """[N, d] the node velocity input: the state itself, or x_t − x_{t−1}."""
        state = fields[self.state_field]
        if self.order == 1:
            return state
        return state - fields[f"prev|{self.state_field}"]

    def build_graph(self, fields: Fields, structure: MultiGraph) -> MultiGraph:
        """Fills node and edge features of `structure` from the fields. Jit-safe."""
        nodes = jnp.concatenate(
            [self.velocity(fields), one_hot_node_type(fields["node_type"])], axis=-1
        )
        mesh = structure.edge_sets["mesh"]
        features = relative_edge_features(fields["mesh_pos"], mesh.senders, mesh.receivers)
        if self.world_edges:
            world = relative_edge_features(fields[self.state_field], mesh.senders, mesh.receivers)
            features = jnp.concatenate([world, features], axis=-1)
        edge_sets = dict(structure.edge_sets)
        edge_sets["mesh"] = EdgeSet(
            features=features,
            senders=mesh.senders,
            receivers=mesh.receivers,
            n_edge=mesh.n_edge,
            mask=mesh.mask,
        )
        return structure._replace(nodes=nodes, edge_sets=edge_sets)

    def simulated_mask(self, fields: Fields) -> jax.Array:
        """[N] bool: nodes the network advances (the others are prescribed)."""
        node_type = fields["node_type"]
        mask = jnp.zeros(node_type.shape, bool)
        for t in self.loss_node_types:
            mask = mask | (node_type == t)
        return mask

    def target(self, fields: Fields) -> jax.Array:
        """[N, output_size] raw training target: Δstate (order 1) or acceleration (order 2)."""
        cur = fields[self.state_field]
        nxt = fields[f"target|{self.state_field}"]
        if self.order == 1:
            return nxt - cur
        return nxt - 2.0 * cur + fields[f"prev|{self.state_field}"]

    def integrate(self, fields: Fields, output: jax.Array) -> jax.Array:
        """[N, d] next state from a de-normalised network output."""
        cur = fields[self.state_field]
        if self.order == 1:
            return cur + output
        return 2.0 * cur + output - fields[f"prev|{self.state_field}"]

    def add_noise(self, fields: Fields, rng: jax.Array, node_mask: jax.Array) -> dict:
        """Training noise on simulated real nodes (MeshGraphNets App. A.2). Jit-safe.

        The state gets N(0, σ²) noise; for order 2 the previous state is left as is,
        so the noisy velocity input carries the noise. The target state moves by
        (1 − γ)·noise, so the network learns to remove γ of it.
        """
        if self.noise_std == 0.0:
            return dict(fields)
        state = fields[self.state_field]
        keep = (self.simulated_mask(fields) & node_mask)[:, None]
        noise = jnp.where(keep, self.noise_std * jax.random.normal(rng, state.shape), 0.0)
        out = dict(fields)
        out[self.state_field] = state + noise
        out[f"target|{self.state_field}"] = (
            fields[f"target|{self.state_field}"] + (1.0 - self.noise_gamma) * noise
        )
        return out

    def advance(self, fields: Fields, next_state: jax.Array, prescribed: jax.Array) -> dict:
        """Fields of the next rollout step: simulated nodes take `next_state`, the others
        take their `prescribed [N, d]` values (ground truth at t + 1)."""
        mask = self.simulated_mask(fields)[:, None]
        new_state = jnp.where(mask, next_state, prescribed)
        out = dict(fields)
        if self.order == 2:
            out[f"prev|{self.state_field}"] = fields[self.state_field]
        out[self.state_field] = new_state
        return out
