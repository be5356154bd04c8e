"""Jitted training and rollout steps shared by the JAX implementations (meshsim, jraph).

The training step is the paper's: forward, masked MSE on node outputs, backward,
Adam (lr 1e-4), with params and optimizer state donated. The rollout step is one
forward pass plus the first-order update of the velocity input (x + Δ), so a
rollout is this step applied repeatedly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from meshsim.evaluation.metrics import masked_mse

LEARNING_RATE = 1e-4

# apply(params, graph) -> [num_nodes, output_size] float32
ApplyFn = Callable[[Any, Any], jax.Array]


def optimizer() -> optax.GradientTransformation:
    return optax.adam(LEARNING_RATE)


def make_train_step(apply: ApplyFn, *, donate: bool = True):
    """jit(train_step)(params, opt_state, graph, target, mask) -> (params, opt_state, loss)."""
    tx = optimizer()

    def loss_fn(params, graph, target, mask):
        return masked_mse(apply(params, graph), target, mask, feature_reduction="sum")

    def train_step(params, opt_state, graph, target, mask):
        loss, grads = jax.value_and_grad(loss_fn)(params, graph, target, mask)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(train_step, donate_argnums=(0, 1) if donate else ())


def make_rollout_step(
    apply: ApplyFn,
    nodes_of: Callable[[Any], jax.Array],
    with_nodes: Callable[[Any, jax.Array], Any],
):
    """jit(rollout_step)(params, graph) -> graph with velocity features advanced by Δ.

    `nodes_of(graph)` gives the node features, `with_nodes(graph, nodes)` the graph with
    its node features replaced.
    """

    def rollout_step(params, graph):
        delta = apply(params, graph)
        nodes = nodes_of(graph)
        nodes = jnp.concatenate([nodes[:, :2] + delta, nodes[:, 2:]], axis=1)
        return with_nodes(graph, nodes)

    return jax.jit(rollout_step)
