"""What a learned simulator predicts, and how a prediction becomes the next state.

A `Task` is a frozen object of pure functions holding everything domain-specific
(MeshGraphNets, Pfaff et al. 2021, Sec. 3 and App. A; GraphCast for weather):

* the typed graph: its node sets and edge sets (`structure`, host side), their
  feature widths (`node_feature_sizes`, `edge_types`) and features
  (`build_graph`, jit-safe);
* which per-node *fields* a training window holds (`window`, host side);
* the training target, the loss weights (mask) and the training noise;
* how a network output becomes the next state (first order `x + Δ`, second
  order `2x_t − x_{t−1} + a`) and which nodes are prescribed;
* what a plot of the state shows, which physical diagnostics its rollouts get
  (`diagnostics`) and how a trained run is scored (`scoring`).

Fields are a dict of per-node arrays on the task's `node_set` (`[N, d]`, node
types `[N] int32`) using the MeshGraphNets names: `mesh_pos`, `node_type`, the
state field (`velocity` or `world_pos`), `prev|<state>` for second-order tasks
and `target|<state>`. The task functions work on one window; the trainer
`vmap`s them over a batch. New domain = a new subclass; nothing outside
`tasks/` asks "is this cloth?".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.diagnostics import RolloutDiagnostics
from meshsim.graph import DEFAULT_NODE_SET, MultiGraph
from meshsim.graph.window import Window, node_normal
from meshsim.node_types import NodeType

Fields = Mapping[str, jax.Array]


def _indexable(field):
    """`field` itself when it is array-like (an array, a lazily read field: indexing it
    reads only what is indexed), else as an array (a list)."""
    return field if hasattr(field, "shape") else np.asarray(field)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Task:
    """A next-step prediction task on a typed graph: the domain-independent part.

    Subclasses define the graph (`structure`, `node_feature_sizes`, `edge_types`,
    `build_graph`); the rest has defaults that suit first- and second-order tasks.

    Attributes:
      name: registry name ("cfd", "cloth").
      state_field: dynamic field the network advances ("velocity", "world_pos").
      order: 1 (predict Δ of the state) or 2 (predict the acceleration).
      output_size: width of the network output (= width of the state).
      node_set: the node set that holds the fields and that the network decodes on.
      loss_node_types: node types that are simulated, hence in the loss and updated
        in rollouts; every other type is prescribed.
      noise_std: std of the Gaussian training noise on the state of simulated nodes.
      noise_gamma: fraction of the noise the target does NOT absorb; the target
        is moved by (1 − γ)·noise (1.0 for cfd, 0.1 for cloth in the paper).
      lagrangian: the state is the node positions (plots and exports move the mesh).
      shared_structure: every example has the same graph, so a batch holds one copy.
      state_parts: ((trajectory field, width), ...) concatenated into the state when it
        is made of several fields (airfoil: velocity, density and pressure; the plate:
        world_pos and stress); () when the state is the trajectory field `state_field`.
        A composite state's name joins the parts with "+" ("velocity+density+pressure").
      direct_channels: state channels the network predicts as values rather than as
        changes (pressure, stress: MeshGraphNets' outputs that are not integrated); they
        are not network inputs. Order-1 tasks only.
      noise_scale: per-channel factor on `noise_std` (airfoil: density noise 1e-3 of the
        velocity noise); None: the same noise on every channel.

    Class attributes (what the layers above ask a task instead of its name):
      diagnostics: the `meshsim.diagnostics.RolloutDiagnostics` subclass evaluation
        runs on this task's rollouts (None: RMSE only).
      scoring: how `meshsim evaluate` and the demo score a trained run: "rollout"
        (RMSE against persistence over whole trajectories, `meshsim.runs.evaluate`)
        or "forecast" (scores by lead time from many initial times,
        `meshsim.runs.forecast`).
    """

    diagnostics: ClassVar[type[RolloutDiagnostics] | None] = None
    scoring: ClassVar[str] = "rollout"

    name: str
    state_field: str
    order: int
    output_size: int
    node_set: str = DEFAULT_NODE_SET
    loss_node_types: tuple[int, ...] = (int(NodeType.NORMAL),)
    noise_std: float = 0.0
    noise_gamma: float = 1.0
    lagrangian: bool = False
    shared_structure: bool = False
    state_parts: tuple[tuple[str, int], ...] = ()
    direct_channels: tuple[int, ...] = ()
    noise_scale: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.order not in (1, 2):
            raise ValueError(f"order: expected 1 or 2, got {self.order}")
        if self.state_parts:
            width = sum(w for _, w in self.state_parts)
            if width != self.output_size:
                raise ValueError(
                    f"state_parts: widths {self.state_parts} add up to {width}, expected "
                    f"output_size {self.output_size}"
                )
        if any(not 0 <= c < self.output_size for c in self.direct_channels):
            raise ValueError(
                f"direct_channels: expected channels in 0..{self.output_size - 1}, "
                f"got {self.direct_channels}"
            )
        if self.direct_channels and self.order != 1:
            raise ValueError("direct_channels: only order-1 tasks predict values directly")
        if self.noise_scale is not None and len(self.noise_scale) != self.output_size:
            raise ValueError(
                f"noise_scale: expected {self.output_size} factors, got {self.noise_scale}"
            )
        for field in ("noise_std", "noise_gamma"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{field}: expected a number, got {value!r}")
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{field}: expected a finite number ≥ 0, got {value!r}")

    # ------------------------------------------------------------------ the graph

    @property
    def node_feature_sizes(self) -> dict[str, int]:
        """{node set: input feature width}."""
        raise NotImplementedError

    @property
    def edge_types(self) -> dict[str, tuple[str, str, int]]:
        """{edge set: (sender node set, receiver node set, feature width)}."""
        raise NotImplementedError

    def structure(self, trajectory: Mapping[str, np.ndarray]) -> MultiGraph:
        """The graph structure of a trajectory (zero-width features). Host side."""
        raise NotImplementedError

    @property
    def structure_fields(self) -> tuple[str, ...] | None:
        """The trajectory fields `structure` reads (None: all), so a padding budget can be
        sized without loading the dynamic fields."""
        return None

    def partition_positions(
        self, trajectory: Mapping[str, np.ndarray], structure: MultiGraph
    ) -> dict[str, np.ndarray]:
        """{node set: [N_s, D] float64} where the nodes are, for cutting a graph into parts
        (graph parallelism, `meshsim.graph.partition_nodes`); default: `mesh_pos` of
        frame 0 for the task's node set. Host side."""
        if "mesh_pos" not in trajectory or len(structure.node_sets) != 1:
            raise ValueError(
                f"task {self.name!r}: graph parallelism needs node positions (`mesh_pos`) "
                "for every node set"
            )
        pos = np.asarray(trajectory["mesh_pos"], np.float64)
        return {self.node_set: pos[0] if pos.ndim == 3 else pos}

    def build_graph(self, fields: Fields, structure: MultiGraph) -> MultiGraph:
        """`structure` with node and edge features computed from `fields`. Jit-safe.

        A task with dynamic edge sets expects `structure` to hold them for these
        fields already (`dynamic_structure`; the simulator does this)."""
        raise NotImplementedError

    @property
    def dynamic_edge_sets(self) -> tuple[str, ...]:
        """Edge sets rebuilt from the state inside every step (particles' radius graph,
        MeshGraphNets' world edges); () for a graph fixed by its mesh. Their structure
        holds masked slots (the padding budget sizes them) that `dynamic_structure`
        fills."""
        return ()

    def dynamic_structure(
        self, fields: Fields, structure: MultiGraph
    ) -> tuple[MultiGraph, dict[str, jax.Array]]:
        """(`structure` with the dynamic edge sets' indices and masks of the state in
        `fields`, {dynamic edge set: [] int32 edges the state needs}). More edges
        needed than the structure has slots is an overflow: those graphs were cut
        short, and the host grows the budget and recompiles. Identity and {} without
        dynamic edge sets. Jit-safe."""
        return structure, {}

    # ------------------------------------------------------------------ host side

    @property
    def state_sources(self) -> tuple[str, ...]:
        """The trajectory fields the state is read from."""
        return tuple(name for name, _ in self.state_parts) or (self.state_field,)

    def state(self, trajectory: Mapping[str, np.ndarray], index=slice(None)) -> np.ndarray:
        """[T', N, output_size] the state at frames `index` (an int, a slice or an index
        array) of a trajectory: its state field, or its `state_parts` concatenated. The
        index goes to the field itself, so a lazily read field (weather's `LazyFrames`,
        `meshsim.data.hdf5_lazy.LazyField`) reads only those frames."""
        if not self.state_parts:
            return np.asarray(_indexable(trajectory[self.state_field])[index])
        parts = []
        for name, width in self.state_parts:
            if name not in trajectory:
                raise ValueError(
                    f"{name}: the trajectory has no such field; task {self.name!r} reads its "
                    f"state from {list(self.state_sources)}, it has {sorted(trajectory)}"
                )
            value = _indexable(trajectory[name])  # a lazy field reads only `index`
            if np.ndim(value) != 3 or np.shape(value)[-1] != width:
                raise ValueError(f"{name}: expected [T, N, {width}], got {np.shape(value)}")
            parts.append(np.asarray(value[index]))
        return np.concatenate(parts, axis=-1)

    def state_shape(self, trajectory: Mapping[str, np.ndarray]) -> tuple[int, ...]:
        """(T, N, d) the shape of `state(trajectory)`, read from the fields' shapes (no
        frame is read)."""
        if any(name not in trajectory for name in self.state_sources):
            self.state(trajectory, 0)  # raises, naming the missing field
        shapes = [tuple(np.shape(trajectory[name])) for name in self.state_sources]
        if not self.state_parts:
            return shapes[0]
        widths = [w for _, w in self.state_parts]
        if any(len(s) != 3 or s[-1] != w for s, w in zip(shapes, widths)):
            self.state(trajectory, 0)  # raises, naming the part
        return (*shapes[0][:2], sum(s[-1] for s in shapes))

    def num_frames(self, trajectory: Mapping[str, np.ndarray]) -> int:
        """Frames in a trajectory (the length of its first state field)."""
        return int(np.shape(trajectory[self.state_sources[0]])[0])

    @property
    def input_channels(self) -> tuple[int, ...]:
        """State channels that are network inputs (all but `direct_channels`)."""
        return tuple(c for c in range(self.output_size) if c not in self.direct_channels)

    @property
    def history(self) -> int:
        """Frames before t a window needs (order − 1; GraphCast's two input times: 1)."""
        return self.order - 1

    def window_times(self, trajectory_length: int, horizon: int = 1) -> range:
        """Time indices t that have `horizon` targets (t + 1 .. t + horizon) and enough
        history."""
        return range(self.history, trajectory_length - horizon)

    def static_fields(self, trajectory: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-node fields that do not change in time (e.g. mesh_pos, node_type)."""
        return {}

    def window(
        self, trajectory: Mapping[str, np.ndarray], t: int, graph: MultiGraph, horizon: int = 1
    ) -> Window:
        """The window at time t of a trajectory (CONVENTIONS.md layout). Host side.

        With `horizon` k > 1 the window also holds what a k-step unrolled loss needs:
        `future|<state> [N, k, d]` (the truth at t+1..t+k) and `future|prescribed
        [N, k, P]` (`prescribed_frames`). A simulator bundling K frames per call reads
        its targets from these too (k ≥ K; k·K for k unrolled calls).
        """
        shape = self.state_shape(trajectory)
        if len(shape) != 3 or shape[-1] != self.output_size:
            raise ValueError(
                f"{self.state_field}: expected [T, N, {self.output_size}], got {shape}"
            )
        if t not in self.window_times(shape[0], horizon):
            raise ValueError(
                f"t: expected in {self.window_times(shape[0], horizon)}, got {t} "
                f"(trajectory length {shape[0]}, order {self.order}, horizon {horizon})"
            )
        fields = {**self.static_fields(trajectory), **self.input_fields(trajectory, t)}
        fields[f"target|{self.state_field}"] = np.asarray(self.state(trajectory, t + 1), np.float32)
        if horizon > 1:
            future = np.asarray(self.state(trajectory, slice(t + 1, t + 1 + horizon)), np.float32)
            fields[f"future|{self.state_field}"] = future.swapaxes(0, 1)
            prescribed = self.prescribed_frames(trajectory, t, horizon)
            fields["future|prescribed"] = prescribed.swapaxes(0, 1)
        return Window(graph=graph, fields=fields)

    def input_fields(self, trajectory: Mapping[str, np.ndarray], t: int) -> dict[str, np.ndarray]:
        """The dynamic inputs at time t: the state, and for order 2 the previous one."""
        fields = {self.state_field: np.asarray(self.state(trajectory, t), np.float32)}
        if self.order == 2:
            previous = self.state(trajectory, t - 1)
            fields[f"prev|{self.state_field}"] = np.asarray(previous, np.float32)
        return fields

    def prescribed_frames(
        self, trajectory: Mapping[str, np.ndarray], start: int, steps: int
    ) -> np.ndarray:
        """[steps, N, P] what rollout step k from `start` takes besides its prediction
        (`advance`'s `prescribed`): here the states at start+1..start+steps, used on the
        prescribed nodes. Times past the trajectory's end repeat its last frame (a
        rollout checks first that this is right: `meshsim.rollout`). Host side."""
        last = self.num_frames(trajectory) - 1
        index = np.minimum(np.arange(start + 1, start + 1 + steps), last)
        return np.asarray(self.state(trajectory, index if index.size else slice(0, 0)), np.float32)

    @property
    def uses_dataset_statistics(self) -> bool:
        """Normalizers come from statistics of the training split computed once
        (`dataset_normalizers`, GraphCast) instead of accumulating online (MeshGraphNets)."""
        return False

    def dataset_normalizers(self, statistics, structure: MultiGraph):
        """Fixed normalizers from a dataset's statistics (tasks with
        `uses_dataset_statistics`)."""
        raise NotImplementedError(f"task {self.name!r} accumulates its statistics online")

    @property
    def output_weights(self) -> tuple[float, ...] | None:
        """Per-output-feature loss weights (e.g. per variable and pressure level on the
        sphere); None weighs every feature 1."""
        return None

    # ------------------------------------------------------------------ jit side

    def velocity(self, fields: Fields) -> jax.Array:
        """[N, d'] the node velocity input: the state itself (its `input_channels`), or
        x_t − x_{t−1}."""
        state = fields[self.state_field]
        if self.order == 1:
            return state[..., list(self.input_channels)] if self.direct_channels else state
        return state - fields[f"prev|{self.state_field}"]

    def simulated_mask(self, fields: Fields) -> jax.Array:
        """[N] bool: nodes the network advances (the others are prescribed)."""
        node_type = fields["node_type"]
        mask = jnp.zeros(node_type.shape, bool)
        for t in self.loss_node_types:
            mask = mask | (node_type == t)
        return mask

    def loss_weights(self, fields: Fields, node_mask: jax.Array) -> jax.Array:
        """[N] float32 weight of each node in the loss (0: not in it). Real simulated nodes
        weigh 1; a task on the sphere would weigh by cell area instead."""
        return (self.simulated_mask(fields) & node_mask).astype(jnp.float32)

    def target(self, fields: Fields) -> jax.Array:
        """[N, output_size] raw training target: Δstate (order 1) or acceleration (order 2)."""
        cur = fields[self.state_field]
        nxt = fields[f"target|{self.state_field}"]
        if self.order == 1:
            return jnp.where(self._direct(), nxt, nxt - cur)
        return nxt - 2.0 * cur + fields[f"prev|{self.state_field}"]

    def integrate(self, fields: Fields, output: jax.Array) -> jax.Array:
        """[N, d] next state from a de-normalised network output."""
        cur = fields[self.state_field]
        if self.order == 1:
            return jnp.where(self._direct(), output, cur + output)
        return 2.0 * cur + output - fields[f"prev|{self.state_field}"]

    def _direct(self) -> np.ndarray:
        """[output_size] bool: the channels predicted as values (`direct_channels`)."""
        return np.isin(np.arange(self.output_size), self.direct_channels)

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
        std = self.noise_std * np.asarray(self.noise_scale or 1.0, np.float32)
        std = np.where(self._direct(), 0.0, std).astype(np.float32)  # values: no noise
        noise = jnp.where(keep, std * node_normal(rng, fields, state.shape), 0.0)
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

    # ------------------------------------------------------------------ plots

    def plot_scalar(self, states: np.ndarray) -> tuple[np.ndarray, str]:
        """([..., N] the scalar a mesh plot colours nodes by, its label) for `[..., N, d]`
        states. Lagrangian tasks are drawn as moving meshes instead."""
        return states[..., 0], f"{self.state_field}[0]"

    def plot_positions(self, states: np.ndarray) -> np.ndarray:
        """[..., N, D] where a Lagrangian task's nodes are drawn, from `[..., N, d]` states
        (the states themselves unless they hold more than positions)."""
        return states
