"""Multi-step training losses: gradients through a short rollout, or the pushforward trick.

A k-step loss rolls the model out from a training window with the very step a
rollout uses (`meshsim.rollout.rollout_step`: predict, integrate, keep the
prescribed nodes), and scores every predicted state against the truth. The
error of a state, divided by the output normalizer's std, equals the error of
the normalized network output (for `x + Δ` and for `2x − x_prev + a` alike), so
k = 1 is the one-step loss.

* **unrolled** (GraphCast's autoregressive fine-tuning, Lam et al. 2023, Sec.
  3.3): the mean of the k step losses, gradients through the whole rollout
  (`lax.scan`, each step rematerialized on the backward pass).
* **pushforward** (Brandstetter et al., ICLR 2022, Sec. 2.3): a number of calls
  drawn per example from 0..k − 1 run with frozen parameters and no gradient, and
  the next one is scored with the one-step loss from the state they reached (its
  targets: the true frames after it), so the model learns to correct the inputs
  its own rollouts produce, and still learns from true inputs, at the cost of
  k − 1 extra forward passes.

Temporal bundling (`Simulator.bundle_steps` K > 1): each of the k steps is one
network call that advances K frames (`meshsim.rollout.bundle_step`), so the loss
needs k·K future frames (windows cut with `horizon=k·K`) and scores every one of
the k·K predicted states (unrolled). The error of frame j of a call then carries
the errors of the slices before it (they are integrated in turn), so for K > 1 the
unrolled k = 1 loss is not the one-step loss on the slices, which the trainer uses
for k = 1 and pushforward uses for its last call.

Window fields: the task's inputs at t, `target|<state>` (the truth at t+1, moved
by the training noise), `future|<state> [N, k·K, d]` and `future|prescribed
[N, k·K, P]` (`Task.window(..., horizon=k·K)`). Jit-safe; works on one example
(the trainer `vmap`s it).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from meshsim import normalization as norm
from meshsim.evaluation.metrics import masked_mse
from meshsim.graph import MultiGraph
from meshsim.rollout import bundle_step, rollout_step
from meshsim.simulator import Simulator
from meshsim.validation import check_int

MODES = ("unrolled", "pushforward")


def horizon_at(step: int, *, max_horizon: int, schedule: int) -> int:
    """Curriculum: 1 step at first, one more every `schedule` training steps, up to
    `max_horizon` (`schedule` 0: always `max_horizon`)."""
    if schedule <= 0:
        return max_horizon
    return min(max_horizon, 1 + step // schedule)


def output_scale(sim: Simulator, normalizers: norm.Normalizers) -> jax.Array:
    """[d] what a state error is multiplied by before squaring: 1 / output std, times
    √(the task's per-channel loss weights)."""
    _, std = norm.mean_and_std(normalizers.output)
    scale = 1.0 / std
    weights = sim.task.output_weights
    if weights is not None:
        scale = scale * jnp.sqrt(jnp.asarray(weights, jnp.float32))
    return scale


def unrolled_loss(
    sim: Simulator,
    params: Any,
    normalizers: norm.Normalizers,
    fields: dict,
    structure: MultiGraph,
    weights: jax.Array,
    *,
    horizon: int,
    mode: str = "unrolled",
    remat: bool = True,
    rng: jax.Array | None = None,
) -> jax.Array:
    """The k-step loss of one window (see the module doc).

    Args:
      fields: one window's fields with `future|…` entries of at least `horizon` ·
        `sim.bundle_steps` frames.
      structure: its graph structure (zero-width features where the task has them).
      weights: [N] loss weight per node (`Task.loss_weights`), constant over the rollout.
      horizon: k ≥ 1 network calls, static.
      mode: "unrolled" or "pushforward".
      remat: recompute each step on the backward pass (memory O(1) in k).
      rng: pushforward only: draw the number of frozen calls uniformly from 0..k − 1
        (Brandstetter et al.'s sampling, so the model also keeps training from true
        inputs); without it, always k − 1.

    Returns:
      [] float32 loss: the mean over steps (unrolled) or the last step's (pushforward);
      a bundled step's loss is the mean over its K frames.

    Raises:
      ValueError: a bad `mode` or `horizon`, or windows with too few future frames.
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    horizon = check_int("horizon", horizon, minimum=1, expected="≥ 1")
    state_field = sim.task.state_field
    bundle = sim.bundle_steps
    frames = horizon * bundle
    future = sim.future_frames(fields, state_field, frames)  # [k·K, N, d]
    prescribed = sim.future_frames(fields, "prescribed", frames)  # [k·K, N, P]
    future = future.at[0].set(fields[f"target|{state_field}"])  # the noise-corrected target
    if bundle > 1:  # one row of K frames per network call
        prescribed = prescribed.reshape(horizon, bundle, *prescribed.shape[1:])  # [k, K, N, P]
    step = rollout_step if bundle == 1 else bundle_step
    carry = {k: v for k, v in fields.items() if not k.startswith(("target|", "future|"))}
    if mode == "pushforward":
        depth = horizon - 1 if rng is None else jax.random.randint(rng, (), 0, horizon)
        return _pushforward_loss(
            sim,
            params,
            normalizers,
            fields,
            carry,
            structure,
            weights,
            step,
            prescribed,
            future[depth * bundle],
            depth,
        )
    if bundle > 1:
        future = future.reshape(horizon, bundle, *future.shape[1:])  # [k, K, N, d]
    scale = output_scale(sim, normalizers)

    def body(carry, xs):
        truth, prescribed_t = xs
        new, state = step(
            sim, params, normalizers, fields=carry, structure=structure, prescribed=prescribed_t
        )
        error = (state - truth) * scale
        return new, masked_mse(error, jnp.zeros_like(error), weights, feature_reduction="sum")

    body = jax.checkpoint(body) if remat else body
    _, losses = jax.lax.scan(body, carry, (future, prescribed))
    return jnp.mean(losses)


def output_loss(
    sim: Simulator, normalizers: norm.Normalizers, pred: jax.Array, targets: jax.Array, weights
) -> jax.Array:
    """[] the MeshGraphNets loss: masked mean over nodes of the squared error of the
    normalized output, summed over output features (each weighted by the task's
    `output_weights`); for a bundle, also the mean over its K slices.

    Args:
      pred: [..., N, d] normalized network output ([..., N, K, d] bundled).
      targets: raw targets of the same shape (`Simulator.prepare`).
      weights: [..., N] loss weight per node.
    """
    targets = norm.normalize(normalizers.output, targets)
    if sim.task.output_weights is not None:
        scale = jnp.sqrt(jnp.asarray(sim.task.output_weights, jnp.float32))
        pred, targets = pred * scale, targets * scale
    if sim.bundle_steps > 1:  # slices [..., N, K, d] -> [K, ..., N, d]: the mean over slices
        pred, targets = jnp.moveaxis(pred, -2, 0), jnp.moveaxis(targets, -2, 0)
    return masked_mse(pred, targets, weights, feature_reduction="sum")


def _pushforward_loss(
    sim, params, normalizers, fields, carry, structure, weights, step, prescribed, first, depth
):
    """The one-step loss of call `depth` + 1, made from the state the first `depth`
    calls reached with frozen parameters.

    The warm-up scan (always k − 1 calls, `depth` picks among their states) is outside
    differentiation altogether (no residuals, no backward pass), so a k-step
    pushforward costs k − 1 forward passes more than a one-step loss. The scored call
    is exactly a one-step example whose input is the pushed state and whose targets
    are the true frames after it (for a bundle, the K slice targets of
    `Simulator.bundle_targets`): the model learns to bring its own drifted state back
    to the truth, with the one-step loss's conditioning. `depth` 0 is the one-step
    example itself (the noisy input and its noise-corrected target); `first` [N, d] is
    the true frame the scored call must reach first (that target at depth 0).
    """
    calls, bundle = prescribed.shape[0], sim.bundle_steps
    frozen = jax.lax.stop_gradient(params)

    def warm(carry, prescribed_t):
        new, _ = step(
            sim, frozen, normalizers, fields=carry, structure=structure, prescribed=prescribed_t
        )
        return new, new

    _, pushed = jax.lax.scan(warm, carry, prescribed[: calls - 1])  # [k − 1, ...] each
    starts = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), carry, pushed)
    inputs = jax.lax.stop_gradient(jax.tree_util.tree_map(lambda x: x[depth], starts))
    offset = depth * bundle  # frames the warm-up advanced
    window = dict(inputs)
    for name, value in fields.items():
        if name.startswith("future|"):
            window[name] = jax.lax.dynamic_slice_in_dim(value, offset, bundle, axis=1)
    window[f"target|{sim.task.state_field}"] = first
    structure = sim.graph_for(window, structure)  # the pushed state's own edges
    features, targets, _ = sim.prepare(window, structure, None, current=True)
    pred = sim.apply(params, normalizers, structure.with_features(features))
    return output_loss(sim, normalizers, pred, targets, weights)
