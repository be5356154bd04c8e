"""Training: a pure `train_step(state, batch, rng) -> (state, metrics)`, jitted or not.

The step works on a `Batch` whose leaves carry a leading batch axis `[B, ...]`
(several padded meshes per step): the network is `vmap`ped over it and every
reduction is a global mean, so the very same function runs with that axis
sharded across devices (`jit` + `NamedSharding`); there is no host-side
per-device logic here. `make_train_step(..., jit=False)` gives the bare step for
callers that wrap it themselves (`pmap`, `shard_map`).

A batch's graph is either stacked per example or one structure shared by every
example (`meshsim.graph.window.graph_batch_axis`); only features are batched inside
the step, so a shared structure is never copied per example.

MeshGraphNets recipe (Pfaff et al. 2021, App. A): noise on the state of
simulated nodes with the target corrected by (1 − γ)·noise; online normalizers
for inputs and targets; the first steps only accumulate statistics
(`accumulate_step`); Adam with an exponentially decaying learning rate.

Non-finite guard: a step whose loss or gradient norm is NaN or inf applies no
update (parameters, optimizer state and normalizer statistics stay as they were;
only the step counter advances, so the batch stream and the per-step keys stay
aligned) and reports `skipped = 1`. The step stays pure: the choice is a
`jnp.where` on a finite flag inside the compiled step. The caller decides what a
skipped step means (`train.on_nonfinite`: stop the run, or go on).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Protocol

import flax
import jax
import jax.numpy as jnp
import optax

from meshsim import normalization as norm
from meshsim.graph.window import Batch, graph_batch_axis
from meshsim.simulator import Simulator
from meshsim.training.ensemble_loss import ensemble_loss
from meshsim.training.multistep import output_loss, unrolled_loss


class OptimizerSettings(Protocol):
    """What the optimizer is made from: `meshsim.config.OptimizerConfig`."""

    learning_rate: float
    decay_steps: int
    decay_rate: float
    min_learning_rate: float
    grad_clip_norm: float | None


NONFINITE_POLICIES = ("stop", "skip")  # train.on_nonfinite


class NonFiniteError(FloatingPointError):
    """Training met a non-finite loss, gradient norm or statistic (and stopped)."""


@flax.struct.dataclass
class TrainState:
    """Everything a training run carries from step to step; a pytree checkpointed whole."""

    step: jax.Array  # [] int32, steps taken (statistics-only steps included)
    params: Any  # flax parameters
    opt_state: Any  # optax state
    normalizers: norm.Normalizers  # input/output statistics


def learning_rate(config: OptimizerSettings, count) -> jax.Array:
    """lr(count) = learning_rate · decay_rate^(count / decay_steps) + min_learning_rate."""
    return (
        config.learning_rate * config.decay_rate ** (count / config.decay_steps)
        + config.min_learning_rate
    )


def make_optimizer(config: OptimizerSettings) -> optax.GradientTransformation:
    """Adam (optionally after global-norm clipping) with the `learning_rate` schedule."""
    adam = optax.adam(lambda count: learning_rate(config, count))
    if config.grad_clip_norm is not None:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adam)
    return adam


def init_train_state(
    sim: Simulator,
    tx: optax.GradientTransformation,
    rng: jax.Array,
    *,
    max_accumulations: int = 1_000_000,
) -> TrainState:
    """Fresh parameters (from feature widths alone: no data is read), empty normalizers."""
    params = sim.init_params(rng)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        normalizers=sim.init_normalizers(max_accumulations=max_accumulations),
    )


def abstract_train_state(
    sim: Simulator, tx: optax.GradientTransformation, *, max_accumulations: int = 1_000_000
) -> TrainState:
    """The shapes and dtypes of a `TrainState` (`jax.eval_shape`): a restore template."""
    return jax.eval_shape(
        lambda rng: init_train_state(sim, tx, rng, max_accumulations=max_accumulations),
        jax.random.key(0),
    )


def _example_keys(rng: jax.Array, size: int, axis_name: str | None) -> jax.Array:
    """[size] keys, one per example: `split(rng, B)` of the whole batch, so the examples
    of device i under `pmap` over `axis_name` (B = size · devices) get the keys that a
    single device gives the same examples."""
    if axis_name is None:
        return jax.random.split(rng, size)
    devices = jax.lax.psum(1, axis_name)
    every = jax.random.split(rng, size * devices)
    return jax.lax.dynamic_slice_in_dim(every, jax.lax.axis_index(axis_name) * size, size)


def _prepare(
    sim: Simulator,
    batch: Batch,
    rng: jax.Array | None,
    axis_name: str | None = None,
    current: bool = False,
):
    """Per-example features, raw targets [B, N, F] ([B, N, K, F] bundled) and loss
    weights [B, N]; `current`: the batch's graph holds its dynamic edge sets already."""
    size = batch.fields[sim.task.state_field].shape[0]
    keys = None if rng is None else _example_keys(rng, size, axis_name)
    prepare = functools.partial(sim.prepare, current=current)
    return jax.vmap(prepare, in_axes=(0, graph_batch_axis(batch), 0 if keys is not None else None))(
        batch.fields, batch.graph, keys
    )


def _loss(sim: Simulator, params, normalizers, batch: Batch, features, targets, weights):
    """MeshGraphNets loss on normalized targets: masked mean over nodes of the squared
    error summed over output features (each weighted by the task's `output_weights`)."""

    def predict(f, structure):
        return sim.apply(params, normalizers, structure.with_features(f))

    pred = jax.vmap(predict, in_axes=(0, graph_batch_axis(batch)))(features, batch.graph)
    return output_loss(sim, normalizers, pred, targets, weights)


def _unrolled_loss(
    sim, params, normalizers, batch: Batch, fields, weights, horizon, mode, keys=None
):
    """Mean over the batch of `meshsim.training.multistep.unrolled_loss` (k-step rollouts); `keys`
    [B]: one per example, for pushforward's sampled depth."""

    def one(f, structure, w, key):
        return unrolled_loss(
            sim, params, normalizers, f, structure, w, horizon=horizon, mode=mode, rng=key
        )

    per_example = jax.vmap(
        one, in_axes=(0, graph_batch_axis(batch), 0, 0 if keys is not None else None)
    )(fields, batch.graph, weights, keys)
    return jnp.mean(per_example)


def _noisy_fields(sim: Simulator, batch: Batch, rng: jax.Array, axis_name: str | None) -> dict:
    """The batch's fields with the task's training noise, one key per example."""
    keys = _example_keys(rng, batch.fields[sim.task.state_field].shape[0], axis_name)

    def noisy(fields, structure, key):
        return sim.task.add_noise(fields, key, structure.node_sets[sim.task.node_set].mask)

    return jax.vmap(noisy, in_axes=(0, graph_batch_axis(batch), 0))(batch.fields, batch.graph, keys)


def _dynamic_graphs(sim: Simulator, batch: Batch, fields: dict) -> tuple[Batch, dict]:
    """The batch with `fields` and its dynamic edge sets rebuilt from them (per example),
    and {edge set: [] int32 the most edges an example needed}."""
    axis = graph_batch_axis(batch)
    graph, demand = jax.vmap(sim.task.dynamic_structure, in_axes=(0, axis))(fields, batch.graph)
    return batch._replace(fields=fields, graph=graph), {k: jnp.max(v) for k, v in demand.items()}


def _overflow(batch: Batch, needed: dict) -> jax.Array:
    """[] bool: some dynamic edge set needed more edges than its slots."""
    flag = jnp.zeros((), bool)
    for name, count in needed.items():
        flag = flag | (count > batch.graph.edge_sets[name].num_edges)
    return flag


def _global_loss(loss: jax.Array, weights: jax.Array, axis_name: str | None, *, weighted: bool):
    """This device's share of the whole batch's loss (identity without `axis_name`).

    Under `pmap`, `psum` of the shares (and of their gradients) is the loss one device
    computes on the whole batch: a weighted mean over nodes (`weighted`: the share is
    local mean × local weight / total weight, the total a constant) or a mean over
    examples (an equal share per device: local mean / devices).
    """
    if axis_name is None:
        return loss
    if not weighted:
        return loss / jax.lax.psum(1, axis_name)
    local = jnp.sum(weights.astype(jnp.float32))
    total = jax.lax.stop_gradient(jax.lax.psum(local, axis_name))
    return loss * local / jnp.where(total > 0, total, 1.0)


def _maybe_jit(fn, jit: bool, **kwargs):
    return jax.jit(fn, **kwargs) if jit else fn


def make_train_step(
    sim: Simulator,
    tx: optax.GradientTransformation,
    *,
    jit: bool = True,
    horizon: int = 1,
    mode: str = "unrolled",
    axis_name: str | None = None,
    member_sharding: Any = None,
) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict]]:
    """The training step; jitted with the state's buffers donated unless `jit=False`.

    `horizon` k > 1 trains on k-step rollouts (`meshsim.training.multistep`, `mode` "unrolled" or
    "pushforward"); the batch must hold windows of at least k future frames
    (`iter_batches(..., horizon=k)`). Noise goes on the initial state only; pushforward
    draws each example's number of frozen calls from 0..k − 1. A bundled
    simulator (`sim.bundle_steps` K > 1) needs k·K future frames (k network calls of
    K frames each; k = 1 scores the K output slices against their targets).

    Returns `train_step(state, batch, rng) -> (state, metrics)` with metrics
    {"loss", "grad_norm"} as float32 scalars and "skipped" as an int32 0/1: 1 when
    the loss or the gradient norm was non-finite and no update was applied (see the
    module docstring). A task with dynamic edge sets builds them from the noisy state
    and adds "overflow" (int32 0/1: an example needed more edges than the batch's
    slots, so no update was applied) and "edges_needed/<edge set>" (int32, the most
    any example needed): the host grows the budget and recompiles. `rng` should differ
    per step (e.g. `jax.random.fold_in(key, step)`), which makes a resumed run
    identical to an uninterrupted one.

    `axis_name`: under `pmap` (with `jit=False`), the axis the batch is split over;
    each device holds B / devices examples, and the loss, gradients and normalizer
    statistics are reduced over the axis so that every device takes the step one
    device would take on the whole batch (see `_global_loss`).

    An ensemble (`sim.ensemble` set, `model.ensemble.*`) trains on the CRPS of its
    `sim.members` members per example (`meshsim.training.ensemble_loss`; one-step, or
    unrolled over `horizon` calls, each member its own trajectory; not pushforward).
    `member_sharding`: a sharding of `[B, M, ...]` arrays (the `data` and `ensemble`
    axes of a device mesh) under which each device computes its own members.
    """

    dynamic = bool(sim.task.dynamic_edge_sets)
    ensemble = sim.ensemble is not None
    if ensemble and horizon > 1 and mode != "unrolled":
        raise ValueError(
            f"train.unroll_mode: an ensemble trains on unrolled rollouts, got {mode!r}"
        )

    def train_step(state: TrainState, batch: Batch, rng: jax.Array):
        needed = {}
        if ensemble:
            fields = _noisy_fields(sim, batch, rng, axis_name)
            if dynamic:
                batch, needed = _dynamic_graphs(sim, batch, fields)
            size = fields[sim.task.state_field].shape[0]
            member_rng = _example_keys(jax.random.fold_in(rng, 2), size, axis_name)
            features, targets, weights = _prepare(
                sim, batch._replace(fields=fields), None, current=dynamic
            )
        elif horizon == 1 and not dynamic:
            features, targets, weights = _prepare(sim, batch, rng, axis_name)
        else:
            fields = _noisy_fields(sim, batch, rng, axis_name)
            if dynamic:  # edges of the noisy state, as the network will see them
                batch, needed = _dynamic_graphs(sim, batch, fields)
            size = fields[sim.task.state_field].shape[0]
            depth_keys = (
                _example_keys(jax.random.fold_in(rng, 1), size, axis_name)
                if mode == "pushforward"
                else None
            )
            features, targets, weights = _prepare(
                sim, batch._replace(fields=fields), None, current=dynamic
            )
        normalizers = sim.update_normalizers(
            state.normalizers, features, batch.graph, targets, axis_name=axis_name
        )

        def loss_fn(p):
            if ensemble:
                loss = ensemble_loss(
                    sim,
                    p,
                    normalizers,
                    batch,
                    fields,
                    weights,
                    member_rng,
                    horizon=horizon,
                    current=dynamic,
                    member_sharding=member_sharding,
                )
                return _global_loss(loss, weights, axis_name, weighted=True)
            if horizon == 1:
                loss = _loss(sim, p, normalizers, batch, features, targets, weights)
                return _global_loss(loss, weights, axis_name, weighted=True)
            loss = _unrolled_loss(
                sim, p, normalizers, batch, fields, weights, horizon, mode, depth_keys
            )
            return _global_loss(loss, weights, axis_name, weighted=False)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        if axis_name is not None:
            loss, grads = jax.lax.psum((loss, grads), axis_name)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        updated = TrainState(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            normalizers=normalizers,
        )
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        kept = state.replace(step=state.step + 1)
        metrics = {"loss": loss, "grad_norm": grad_norm}
        apply = finite
        if dynamic:  # a truncated graph is never trained on: no update, and say so
            overflow = _overflow(batch, needed)
            if axis_name is not None:
                overflow = jax.lax.psum(overflow.astype(jnp.int32), axis_name) > 0
                needed = {k: jax.lax.pmax(v, axis_name) for k, v in needed.items()}
            apply = finite & ~overflow
            metrics["overflow"] = overflow.astype(jnp.int32)
            metrics.update({f"edges_needed/{k}": v for k, v in needed.items()})
        new_state = jax.tree_util.tree_map(lambda a, b: jnp.where(apply, a, b), updated, kept)
        metrics["skipped"] = jnp.logical_not(finite).astype(jnp.int32)
        return new_state, metrics

    return _maybe_jit(train_step, jit, donate_argnums=0)


def make_accumulate_step(
    sim: Simulator, *, jit: bool = True, axis_name: str | None = None
) -> Callable[[TrainState, Batch, jax.Array], TrainState]:
    """A step that only accumulates normalizer statistics (MeshGraphNets' warm-up);
    `axis_name` as in `make_train_step`."""

    dynamic = bool(sim.task.dynamic_edge_sets)

    def accumulate_step(state: TrainState, batch: Batch, rng: jax.Array) -> TrainState:
        if dynamic:  # statistics of the edges the noisy state has
            fields = _noisy_fields(sim, batch, rng, axis_name)
            batch, _ = _dynamic_graphs(sim, batch, fields)
            features, targets, _ = _prepare(sim, batch, None, current=True)
        else:
            features, targets, _ = _prepare(sim, batch, rng, axis_name)
        normalizers = sim.update_normalizers(
            state.normalizers, features, batch.graph, targets, axis_name=axis_name
        )
        return state.replace(step=state.step + 1, normalizers=normalizers)

    return _maybe_jit(accumulate_step, jit, donate_argnums=0)


def make_eval_loss(sim: Simulator, *, jit: bool = True) -> Callable[[TrainState, Batch], jax.Array]:
    """One-step loss without noise and without updating statistics."""

    dynamic = bool(sim.task.dynamic_edge_sets)

    def eval_loss(state: TrainState, batch: Batch) -> jax.Array:
        if dynamic:
            batch, _ = _dynamic_graphs(sim, batch, batch.fields)
        features, targets, weights = _prepare(sim, batch, None, current=dynamic)
        return _loss(sim, state.params, state.normalizers, batch, features, targets, weights)

    return _maybe_jit(eval_loss, jit)


def empty_totals() -> dict:
    """Start of a log interval's sums for `add_to_totals` (host values, moved on first add)."""
    return {
        "loss": jnp.zeros((), jnp.float32),  # sum over applied updates
        "grad_norm": jnp.zeros((), jnp.float32),
        "applied": jnp.zeros((), jnp.int32),
        "skipped": jnp.zeros((), jnp.int32),
        "overflow": jnp.zeros((), jnp.int32),  # steps not applied: a dynamic edge set overflowed
        "first_skipped_step": jnp.full((), -1, jnp.int32),  # -1: none in this interval
        "first_skipped_loss": jnp.zeros((), jnp.float32),
        "first_skipped_grad_norm": jnp.zeros((), jnp.float32),
    }


@jax.jit
def add_to_totals(totals: dict, metrics: dict, step) -> dict:
    """Adds one step's metrics to a log interval's sums, on device (no host sync per step).

    Losses of skipped steps are left out of the sums; the first skipped step of the
    interval (`step`: the global step count after it) and its loss and gradient norm
    are kept for the message that names it.
    """
    overflow = metrics.get("overflow", jnp.zeros((), jnp.int32))
    ok = (metrics["skipped"] == 0) & (overflow == 0)
    first = (totals["first_skipped_step"] < 0) & (metrics["skipped"] != 0)
    needed = {
        k: jnp.maximum(totals.get(k, jnp.zeros((), jnp.int32)), v)
        for k, v in metrics.items()
        if k.startswith("edges_needed/")
    }
    return {
        **needed,
        "overflow": totals["overflow"] + overflow,
        "loss": totals["loss"] + jnp.where(ok, metrics["loss"], 0.0),
        "grad_norm": totals["grad_norm"] + jnp.where(ok, metrics["grad_norm"], 0.0),
        "applied": totals["applied"] + ok.astype(jnp.int32),
        "skipped": totals["skipped"] + metrics["skipped"],
        "first_skipped_step": jnp.where(first, step, totals["first_skipped_step"]),
        "first_skipped_loss": jnp.where(first, metrics["loss"], totals["first_skipped_loss"]),
        "first_skipped_grad_norm": jnp.where(
            first, metrics["grad_norm"], totals["first_skipped_grad_norm"]
        ),
    }


def nonfinite_quantity(loss: float, grad_norm: float) -> str:
    """Words naming what was non-finite, e.g. "loss nan and gradient norm nan"."""
    parts = [
        f"{name} {value}"
        for name, value in (("loss", loss), ("gradient norm", grad_norm))
        if not math.isfinite(value)
    ]
    return " and ".join(parts) or f"loss {loss}, gradient norm {grad_norm}"


def _float_leaves(tree) -> list:
    leaves = jax.tree_util.tree_leaves(tree)
    return [x for x in leaves if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]


@jax.jit
def _count_nonfinite(leaves: list) -> jax.Array:
    return sum((jnp.sum(~jnp.isfinite(x)) for x in leaves), jnp.zeros((), jnp.int32))


def count_nonfinite(tree) -> tuple[int, int]:
    """(NaN/inf values, all values) over the floating leaves of a pytree. Host side;
    one compiled reduction per tree structure."""
    leaves = _float_leaves(tree)
    return int(_count_nonfinite(leaves)), sum(int(x.size) for x in leaves)
