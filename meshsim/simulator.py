"""A learned simulator = a task + a network (+ normalizers); shared by train and rollout.

`Simulator` is a frozen, hashable pair, so it can be a static argument of
`jax.jit`. Its methods are pure; those on fields and structures are jit-safe
and work on one window (the trainer `vmap`s them over a batch). Normalizers
are kept per node set, per edge set and for the output (MeshGraphNets'
online normalizers, or fixed statistics as in GraphCast).

Temporal bundling (Brandstetter et al., "Message Passing Neural PDE Solvers",
ICLR 2022, Sec. 2.3): with `bundle_steps` K > 1 one network call predicts K
frames. The output `[N, K·d]` is read as K slices `[N, K, d]`; slice j is the
task's ordinary one-step target of frame t+j+1 *relative to frame t+j* (Δ of the
state for first-order tasks, the acceleration for second-order ones), so every
slice has the statistics of a one-step target and is normalized by the one
output normalizer `[d]`. A bundle becomes states by applying the task's own
`integrate` and `advance` K times in turn (`advance_bundle`), prescribed nodes
taking the truth of each frame: there is no second copy of the physics. K = 1 is
the unbundled simulator, computation for computation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from meshsim import normalization as norm
from meshsim.graph import GraphFeatures, MultiGraph, placeholder_graph
from meshsim.models.ensemble import Ensemble, perturb_state
from meshsim.tasks.base import Task


@dataclasses.dataclass(frozen=True)
class Simulator:
    """A task and the network that predicts its updates.

    Attributes:
      model: a flax module mapping a normalized graph to `[N_out, task.output_size · K]`,
        K = its `bundle_steps` (1 for a model without that field).
      task: the domain (graph building, targets, integration).
    """

    model: nn.Module
    task: Task
    # Graph parallelism: a `meshsim.parallel.blocked.BlockedPartition` (examples in the
    # blocked layout, what training uses) or `meshsim.parallel.graph_parallel.GraphPartition`
    # (examples in global order) that runs `model` on the parts of the shared structure
    # (None: the whole graph on one device).
    partition: Any = None
    # The ensemble it trains and rolls out (`meshsim.models.ensemble.Ensemble`); None: one
    # deterministic member. With kind "fgn" the model's `noise_size` must match.
    ensemble: Ensemble | None = None

    def __post_init__(self):
        ensemble = self.ensemble
        want = 0 if ensemble is None else ensemble.network_noise_size
        have = int(getattr(self.model, "noise_size", 0))
        if want != have:
            raise ValueError(
                f"ensemble: kind {None if ensemble is None else ensemble.kind!r} needs a "
                f"network with noise_size {want}, got {have}"
            )
        if have and self.partition is not None:
            raise ValueError(
                f"ensemble.kind {ensemble.kind!r}: graph parallelism does not pass the noise"
            )

    @property
    def members(self) -> int:
        """M ≥ 1: ensemble members per example."""
        return 1 if self.ensemble is None else self.ensemble.members

    def member_fields(
        self, normalizers: norm.Normalizers, fields: dict, structure: MultiGraph, key: jax.Array
    ) -> dict:
        """One member's fields: the state perturbed for kinds "initial" and "fgn+initial"
        (simulated real nodes, `initial_std` × the output normalizer's std), else `fields`
        as they are. `key`: the member's key (`meshsim.models.ensemble.member_keys`).
        Jit-safe."""
        if self.ensemble is None or not self.ensemble.perturbs_state:
            return fields
        name = self.task.state_field
        keep = self.task.simulated_mask(fields) & structure.node_sets[self.task.node_set].mask
        _, std = norm.mean_and_std(normalizers.output)
        out = dict(fields)
        out[name] = perturb_state(self.ensemble, key, fields[name], keep, std)
        return out

    @property
    def bundle_steps(self) -> int:
        """K ≥ 1: frames the network predicts per call (see the module doc)."""
        return int(getattr(self.model, "bundle_steps", 1))

    # ------------------------------------------------------------------ set-up

    def template_graph(self) -> MultiGraph:
        """A one-node-per-set graph with the task's feature widths (a shape template)."""
        return placeholder_graph(self.task.node_feature_sizes, self.task.edge_types)

    def init_params(self, rng: jax.Array) -> Any:
        """Fresh parameters. Their shapes depend on feature widths only, so no data is read."""
        return jax.jit(self.model.init)(rng, self.template_graph())

    def init_normalizers(self, *, max_accumulations: int) -> norm.Normalizers:
        """Empty online normalizers sized for the task's node, edge and output features;
        for a task whose statistics come from its dataset, identity fixed normalizers of
        the same sizes (a template the dataset's statistics replace)."""
        if self.task.uses_dataset_statistics:
            new = lambda size: norm.fixed_normalizer(np.zeros(size), np.ones(size))
        else:
            new = lambda size: norm.init_normalizer(size, max_accumulations=max_accumulations)
        return norm.Normalizers(
            nodes={k: new(f) for k, f in self.task.node_feature_sizes.items()},
            edges={k: new(f) for k, (_, _, f) in self.task.edge_types.items()},
            output=new(self.task.output_size),
        )

    # ------------------------------------------------------------------ jit side

    def prepare(
        self, fields: dict, structure: MultiGraph, rng: jax.Array | None, *, current: bool = False
    ) -> tuple[GraphFeatures, jax.Array, jax.Array]:
        """One training example: (raw graph features, raw targets, loss weights [N]).

        The targets are `[N, d]`, or `[N, K, d]` for a bundled simulator
        (`bundle_targets`). Noise is added when `rng` is given. Only features leave,
        so a structure shared by a batch is never copied per example. A task's dynamic
        edge sets are built from the (noisy) fields, unless `current` says `structure`
        holds them already; `graph_for` on the same fields gives the structure these
        features belong to.
        """
        node_mask = structure.node_sets[self.task.node_set].mask
        if rng is not None:
            fields = self.task.add_noise(fields, rng, node_mask)
        if not current:
            structure = self.graph_for(fields, structure)
        graph = self.task.build_graph(fields, structure)
        weights = self.task.loss_weights(fields, node_mask)
        if self.bundle_steps == 1:
            return graph.features(), self.task.target(fields), weights
        return graph.features(), self.bundle_targets(fields), weights

    def graph_for(self, fields: dict, structure: MultiGraph) -> MultiGraph:
        """The structure the network runs on for these fields: `structure` itself, or
        with the task's dynamic edge sets rebuilt from the state (`Task.dynamic_structure`).
        Pair it with `prepare`'s features: `sim.graph_for(f, s).with_features(features)`.
        Jit-safe."""
        return self.task.dynamic_structure(fields, structure)[0]

    def future_frames(self, fields: dict, name: str, count: int) -> jax.Array:
        """[count, N, ...] the first `count` frames of the window field `future|<name>`
        (`[N, k, ...]`, `Task.window(..., horizon=k)`), time first.

        Raises:
          ValueError: the field is missing or holds fewer than `count` frames (the
            windows were cut with too small a horizon).
        """
        key = f"future|{name}"
        if key not in fields or fields[key].ndim < 2 or fields[key].shape[1] < count:
            got = fields[key].shape if key in fields else "no such field"
            raise ValueError(
                f"{key}: expected [N, ≥ {count}, ...] ({count} future frames: bundle_steps "
                f"{self.bundle_steps} × network calls; cut windows with "
                f"horizon={count}), got {got}"
            )
        return jnp.swapaxes(fields[key][:, :count], 0, 1)

    def bundle_targets(self, fields: dict) -> jax.Array:
        """[N, K, d] raw targets of a bundle: slice j is `task.target` of frame t+j+1
        relative to frame t+j. Jit-safe (`lax.scan` over the K frames).

        The frames are the chain a teacher-forced rollout walks: the (noise-corrected)
        `target|<state>` first, then the true `future|<state>` frames, each taken in
        by `task.advance` with the frame's `future|prescribed` values. Integrating the
        K targets from the (noisy) input state with `advance_bundle` lands exactly on
        those frames.
        """
        task, k = self.task, self.bundle_steps
        name = task.state_field
        frames = self.future_frames(fields, name, k)  # [K, N, d]
        frames = frames.at[0].set(fields[f"target|{name}"])
        prescribed = self.future_frames(fields, "prescribed", k)  # [K, N, P]
        carry = {n: v for n, v in fields.items() if not n.startswith(("target|", "future|"))}

        def body(carry, xs):
            frame, prescribed_j = xs
            target = task.target({**carry, f"target|{name}": frame})
            return task.advance(carry, frame, prescribed_j), target

        _, targets = jax.lax.scan(body, carry, (frames, prescribed))  # [K, N, d]
        return jnp.swapaxes(targets, 0, 1)

    def advance_bundle(
        self,
        fields: dict,
        increments: jax.Array,
        prescribed: jax.Array,
        active: jax.Array | None = None,
    ) -> tuple[dict, jax.Array]:
        """The K frames of a bundle: `task.integrate` then `task.advance`, K times.

        Jit-safe (`lax.scan` over the K frames); works for any K, 1 included.

        Args:
          fields: the fields at frame t (no `target|` / `future|` entries).
          increments: [N, K, d] de-normalized network output slices.
          prescribed: [K, N, P] what `advance` takes at frames t+1..t+K (the truth of
            prescribed nodes; for weather, the forcings).
          active: [K] bool, optional: frames past the end of a rollout whose length is
            not a multiple of K; the fields stop advancing at the first inactive frame.

        Returns:
          (fields at the last active frame, states [K, N, d] of frames t+1..t+K).
        """
        task = self.task
        if active is None:
            active = jnp.ones(prescribed.shape[:1], bool)

        def body(carry, xs):
            increment, prescribed_j, active_j = xs
            new = task.advance(carry, task.integrate(carry, increment), prescribed_j)
            new = jax.tree_util.tree_map(lambda a, b: jnp.where(active_j, a, b), new, carry)
            return new, new[task.state_field]

        xs = (jnp.swapaxes(increments, 0, 1), prescribed, active)
        return jax.lax.scan(body, fields, xs)

    def normalize_graph(self, normalizers: norm.Normalizers, graph: MultiGraph) -> MultiGraph:
        """Node and edge features mapped to zero mean, unit variance."""
        features = graph.features()
        return graph.with_features(
            GraphFeatures(
                nodes={
                    k: norm.normalize(normalizers.nodes[k], v) for k, v in features.nodes.items()
                },
                edges={
                    k: norm.normalize(normalizers.edges[k], v) for k, v in features.edges.items()
                },
            )
        )

    def update_normalizers(
        self,
        normalizers: norm.Normalizers,
        features: GraphFeatures,
        structure: MultiGraph,
        targets: jax.Array,
        *,
        axis_name: str | None = None,
    ) -> norm.Normalizers:
        """Accumulates statistics of real nodes/edges and of the targets of a batch.

        `features` and `targets` carry a leading batch axis; `structure` may be stacked
        (`[B, ...]`) or shared by the batch. Like MeshGraphNets, every real node counts
        (not only the simulated ones).
        """

        def update(normalizer, x, mask):  # a shared structure's mask covers every example
            return norm.update(
                normalizer, x, jnp.broadcast_to(mask, x.shape[:-1]), axis_name=axis_name
            )

        if self.bundle_steps > 1:  # [B, N, K, d] -> [K, B, N, d]: every slice is a sample
            targets = jnp.moveaxis(targets, -2, 0)
        nodes, edges = structure.node_sets, structure.edge_sets
        return norm.Normalizers(
            nodes={
                k: update(normalizers.nodes[k], x, nodes[k].mask) for k, x in features.nodes.items()
            },
            edges={
                k: update(normalizers.edges[k], x, edges[k].mask) for k, x in features.edges.items()
            },
            output=update(normalizers.output, targets, nodes[self.task.node_set].mask),
        )

    def apply(
        self,
        params: Any,
        normalizers: norm.Normalizers,
        graph: MultiGraph,
        noise: jax.Array | None = None,
    ) -> jax.Array:
        """Normalized network output for a graph with raw features: `[N, d]`, or the
        slices `[N, K, d]` of a bundled simulator. `noise`: [noise_size] a member's FGN
        noise (`meshsim.models.ensemble.network_noise`); None for a deterministic network
        (an FGN network then runs with zero noise)."""
        graph = self.normalize_graph(normalizers, graph)
        if self.partition is not None:
            output = self.partition.apply(self.model, params, graph)
        elif noise is not None:
            output = self.model.apply(params, graph, noise)
        else:
            output = self.model.apply(params, graph)
        if self.bundle_steps == 1:
            return output
        return output.reshape(*output.shape[:-1], self.bundle_steps, self.task.output_size)

    def predict(
        self,
        params: Any,
        normalizers: norm.Normalizers,
        fields: dict,
        structure: MultiGraph,
        *,
        current: bool = False,
        noise: jax.Array | None = None,
    ) -> jax.Array:
        """[N, d] the next state predicted for every node (prescribed nodes not yet applied).

        One frame: a bundled simulator (K > 1) steps with `predict_bundle`. `current`:
        `structure` holds the dynamic edge sets of `fields` already (see `prepare`);
        `noise` as in `apply`.
        """
        if self.bundle_steps != 1:
            raise ValueError(
                f"predict: gives one frame, but bundle_steps is {self.bundle_steps}; "
                "use predict_bundle"
            )
        if not current:
            structure = self.graph_for(fields, structure)
        graph = self.task.build_graph(fields, structure)
        output = self.apply(params, normalizers, graph, noise)
        return self.task.integrate(fields, norm.denormalize(normalizers.output, output))

    def predict_bundle(
        self,
        params: Any,
        normalizers: norm.Normalizers,
        fields: dict,
        structure: MultiGraph,
        prescribed: jax.Array,
        active: jax.Array | None = None,
        *,
        current: bool = False,
        noise: jax.Array | None = None,
    ) -> tuple[dict, jax.Array]:
        """One network call, K frames: (fields at t+K, states [K, N, d] of t+1..t+K),
        prescribed nodes taking `prescribed [K, N, P]` at each frame (`advance_bundle`;
        `active` as there; `current` and `noise` as in `predict`). Jit-safe."""
        if not current:
            structure = self.graph_for(fields, structure)
        graph = self.task.build_graph(fields, structure)
        slices = self.apply(params, normalizers, graph, noise)
        if self.bundle_steps == 1:  # [N, d] -> [N, 1, d]
            slices = slices[:, None]
        increments = norm.denormalize(normalizers.output, slices)  # [N, K, d]
        return self.advance_bundle(fields, increments, prescribed, active)
