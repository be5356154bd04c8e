"""A learned simulator = a task + a network + normalizers; shared by train and rollout.

All functions here are pure and jit-safe. `fields` and `structure` describe one
window (see `meshsim.tasks.base`); the trainer `vmap`s over a batch of them.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from meshsim import normalization as norm
from meshsim.graph import MultiGraph
from meshsim.tasks.base import Task


def init_normalizers(task: Task, *, max_accumulations: int) -> norm.Normalizers:
    """Empty online normalizers sized for the task's node, edge and output features."""
    return norm.Normalizers(
        node=norm.init_normalizer(task.node_feature_size, max_accumulations=max_accumulations),
        edges={
            name: norm.init_normalizer(size, max_accumulations=max_accumulations)
            for name, size in task.edge_feature_sizes.items()
        },
        output=norm.init_normalizer(task.output_size, max_accumulations=max_accumulations),
    )


def normalize_graph(normalizers: norm.Normalizers, graph: MultiGraph) -> MultiGraph:
    """Node and edge features mapped to zero mean, unit variance."""
    edge_sets = {
        name: es._replace(features=norm.normalize(normalizers.edges[name], es.features))
        for name, es in graph.edge_sets.items()
    }
    return graph._replace(nodes=norm.normalize(normalizers.node, graph.nodes), edge_sets=edge_sets)


def update_normalizers(
    normalizers: norm.Normalizers, graphs: MultiGraph, targets: jax.Array
) -> norm.Normalizers:
    """Accumulates statistics of real nodes/edges of a (batched) graph and the targets.

    Like MeshGraphNets, every real node counts (not only the simulated ones).
    """
    return norm.Normalizers(
        node=norm.update(normalizers.node, graphs.nodes, graphs.node_mask),
        edges={
            name: norm.update(normalizers.edges[name], es.features, es.mask)
            for name, es in graphs.edge_sets.items()
        },
        output=norm.update(normalizers.output, targets, graphs.node_mask),
    )


def predict_next_state(
    model: nn.Module,
    task: Task,
    params: Any,
    normalizers: norm.Normalizers,
    fields: dict,
    structure: MultiGraph,
) -> jax.Array:
    """[N, d] the next state predicted for every node (prescribed nodes not yet applied)."""
    graph = normalize_graph(normalizers, task.build_graph(fields, structure))
    output = model.apply(params, graph)
    return task.integrate(fields, norm.denormalize(normalizers.output, output))


def masked_node_loss(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """MeshGraphNets loss: mean over masked nodes of the squared error summed over features.

    pred, target: [..., N, F]; mask: [..., N] bool. Returns a scalar float32.
    """
    err = jnp.sum(jnp.square(pred - target), axis=-1)
    m = mask.astype(err.dtype)
    return jnp.sum(err * m) / jnp.maximum(jnp.sum(m), 1.0)
