"""A learned simulator = a task + a network (+ normalizers); shared by train and rollout.

`Simulator` is a frozen, hashable pair, so it can be a static argument of
`jax.jit`. Its methods are pure; those on fields and structures are jit-safe
and work on one window (the trainer `vmap`s them over a batch). Normalizers
are kept per node set, per edge set and for the output (MeshGraphNets'
online normalizers, or fixed statistics as in GraphCast).
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
from meshsim.tasks.base import Task


@dataclasses.dataclass(frozen=True)
class Simulator:
    """A task and the network that predicts its updates.

    Attributes:
      model: a flax module mapping a normalized graph to `[N_out, task.output_size]`.
      task: the domain (graph building, targets, integration).
    """

    model: nn.Module
    task: Task

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
        self, fields: dict, structure: MultiGraph, rng: jax.Array | None
    ) -> tuple[GraphFeatures, jax.Array, jax.Array]:
        """One training example: (raw graph features, raw target [N, F], loss weights [N]).

        Noise is added when `rng` is given. Only features leave, so a structure shared
        by a batch is never copied per example.
        """
        node_mask = structure.node_sets[self.task.node_set].mask
        if rng is not None:
            fields = self.task.add_noise(fields, rng, node_mask)
        graph = self.task.build_graph(fields, structure)
        weights = self.task.loss_weights(fields, node_mask)
        return graph.features(), self.task.target(fields), weights

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

    def apply(self, params: Any, normalizers: norm.Normalizers, graph: MultiGraph) -> jax.Array:
        """Normalized network output for a graph with raw features."""
        return self.model.apply(params, self.normalize_graph(normalizers, graph))

    def predict(
        self, params: Any, normalizers: norm.Normalizers, fields: dict, structure: MultiGraph
    ) -> jax.Array:
        """[N, d] the next state predicted for every node (prescribed nodes not yet applied)."""
        graph = self.task.build_graph(fields, structure)
        output = self.apply(params, normalizers, graph)
        return self.task.integrate(fields, norm.denormalize(normalizers.output, output))
