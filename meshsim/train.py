"""Training: a pure, jitted `train_step(state, batch, rng) -> (state, metrics)`.

The step works on a `Batch` whose leaves carry a leading batch axis `[B, ...]`
(several padded meshes per step): the network is `vmap`ped over it and every
reduction is a global mean, so the very same function runs with that axis
sharded across devices (`jit` + `NamedSharding`); there is no host-side
per-device logic here.

MeshGraphNets recipe (Pfaff et al. 2021, App. A): noise on the state of
simulated nodes with the target corrected by (1 − γ)·noise; online normalizers
for inputs and targets; the first steps only accumulate statistics
(`accumulate_step`); Adam with an exponentially decaying learning rate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from meshsim import normalization as norm
from meshsim.data.pipeline import Batch
from meshsim.simulator import (
    init_normalizers,
    masked_node_loss,
    normalize_graph,
    update_normalizers,
)
from meshsim.tasks.base import Task


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerConfig:
    """Adam with lr(step) = learning_rate · decay_rate^(step / decay_steps) + min_learning_rate.

    Defaults are the paper's: 1e-4 decaying ×0.1 over 5M steps, floor 1e-6.
    """

    learning_rate: float = 1e-4
    decay_steps: int = 5_000_000
    decay_rate: float = 0.1
    min_learning_rate: float = 1e-6
    grad_clip_norm: float | None = None  # global-norm clipping, off by default


@flax.struct.dataclass
class TrainState:
    """Everything a training run carries from step to step; a pytree checkpointed whole."""

    step: jax.Array  # [] int32, steps taken (statistics-only steps included)
    params: Any  # flax parameters
    opt_state: Any  # optax state
    normalizers: norm.Normalizers  # input/output statistics


def learning_rate(config: OptimizerConfig, count) -> jax.Array:
    """The schedule's value after `count` optimizer updates."""
    return (
        config.learning_rate * config.decay_rate ** (count / config.decay_steps)
        + config.min_learning_rate
    )


def make_optimizer(config: OptimizerConfig) -> optax.GradientTransformation:
    """Adam (optionally after global-norm clipping) with the `learning_rate` schedule."""
    adam = optax.adam(lambda count: learning_rate(config, count))
    if config.grad_clip_norm is not None:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adam)
    return adam


def init_train_state(
    model: nn.Module,
    task: Task,
    tx: optax.GradientTransformation,
    batch: Batch,
    rng: jax.Array,
    *,
    max_accumulations: int = 1_000_000,
) -> TrainState:
    """Parameters initialised on the first window of `batch`; empty normalizers."""
    first = jax.tree_util.tree_map(lambda x: x[0], batch)
    graph = task.build_graph(first.fields, first.graph)
    params = jax.jit(model.init)(rng, graph)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        normalizers=init_normalizers(task, max_accumulations=max_accumulations),
    )


def _prepare(task: Task, batch: Batch, rng: jax.Array):
    """Noisy fields → (graphs [B, ...], raw targets [B, N, F], loss mask [B, N])."""
    keys = jax.random.split(rng, batch.fields[task.state_field].shape[0])

    def one(fields, structure, key):
        fields = task.add_noise(fields, key, structure.node_mask)
        graph = task.build_graph(fields, structure)
        mask = task.simulated_mask(fields) & structure.node_mask
        return graph, task.target(fields), mask

    return jax.vmap(one)(batch.fields, batch.graph, keys)


def make_train_step(
    model: nn.Module, task: Task, tx: optax.GradientTransformation
) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict]]:
    """The jitted training step; the state's buffers are donated (updated in place).

    Returns `train_step(state, batch, rng) -> (state, metrics)` with metrics
    {"loss", "grad_norm"} as float32 scalars. `rng` should differ per step
    (e.g. `jax.random.fold_in(key, step)`), which makes a resumed run identical
    to an uninterrupted one.
    """

    def train_step(state: TrainState, batch: Batch, rng: jax.Array):
        graphs, targets, mask = _prepare(task, batch, rng)
        normalizers = update_normalizers(state.normalizers, graphs, targets)
        graphs = jax.vmap(normalize_graph, in_axes=(None, 0))(normalizers, graphs)
        targets = norm.normalize(normalizers.output, targets)

        def loss_fn(params):
            pred = jax.vmap(model.apply, in_axes=(None, 0))(params, graphs)
            return masked_node_loss(pred, targets, mask)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = TrainState(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            normalizers=normalizers,
        )
        return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    return jax.jit(train_step, donate_argnums=0)


def make_accumulate_step(task: Task) -> Callable[[TrainState, Batch, jax.Array], TrainState]:
    """A jitted step that only accumulates normalizer statistics (MeshGraphNets' warm-up)."""

    def accumulate_step(state: TrainState, batch: Batch, rng: jax.Array) -> TrainState:
        graphs, targets, _ = _prepare(task, batch, rng)
        normalizers = update_normalizers(state.normalizers, graphs, targets)
        return state.replace(step=state.step + 1, normalizers=normalizers)

    return jax.jit(accumulate_step, donate_argnums=0)


def make_eval_loss(model: nn.Module, task: Task) -> Callable[[TrainState, Batch], jax.Array]:
    """Jitted one-step loss without noise and without updating statistics."""
    clean = dataclasses.replace(task, noise_std=0.0)

    def eval_loss(state: TrainState, batch: Batch) -> jax.Array:
        graphs, targets, mask = _prepare(clean, batch, jax.random.key(0))
        graphs = jax.vmap(normalize_graph, in_axes=(None, 0))(state.normalizers, graphs)
        targets = norm.normalize(state.normalizers.output, targets)
        pred = jax.vmap(model.apply, in_axes=(None, 0))(state.params, graphs)
        return masked_node_loss(pred, targets, mask)

    return jax.jit(eval_loss)
