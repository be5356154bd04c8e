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
* **pushforward** (Brandstetter et al., ICLR 2022, Sec. 2.3): the first k − 1
  steps run without gradient (`stop_gradient` on the carried state), and only
  the last step's loss trains, so the model learns to correct the inputs its
  own rollouts produce at the cost of one backward step.

Temporal bundling (`Simulator.bundle_steps` K > 1): each of the k steps is one
network call that advances K frames (`meshsim.rollout.bundle_step`), so the loss
needs k·K future frames (windows cut with `horizon=k·K`) and scores every one of
the k·K predicted states. The error of frame j of a call then carries the errors
of the slices before it (they are integrated in turn), so for K > 1 the k = 1
loss is not the one-step loss on the slices, which the trainer uses for k = 1.

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
from meshsim.graph import MultiGraph
from meshsim.metrics import masked_mse
from meshsim.rollout import bundle_step, rollout_step
from meshsim.simulator import Simulator

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

    Returns:
      [] float32 loss: the mean over steps (unrolled) or the last step's (pushforward);
      a bundled step's loss is the mean over its K frames.

    Raises:
      ValueError: a bad `mode` or `horizon`, or windows with too few future frames.
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if horizon < 1:
        raise ValueError(f"horizon: expected ≥ 1, got {horizon}")
    state_field = sim.task.state_field
    bundle = sim.bundle_steps
    frames = horizon * bundle
    future = sim.future_frames(fields, state_field, frames)  # [k·K, N, d]
    prescribed = sim.future_frames(fields, "prescribed", frames)  # [k·K, N, P]
    future = future.at[0].set(fields[f"target|{state_field}"])  # the noise-corrected target
    if bundle > 1:  # one row of K frames per network call
        future = future.reshape(horizon, bundle, *future.shape[1:])  # [k, K, N, d]
        prescribed = prescribed.reshape(horizon, bundle, *prescribed.shape[1:])  # [k, K, N, P]
    step = rollout_step if bundle == 1 else bundle_step
    scale = output_scale(sim, normalizers)
    carry = {k: v for k, v in fields.items() if not k.startswith(("target|", "future|"))}
    if mode == "pushforward":
        return _pushforward_loss(
            sim, params, normalizers, carry, structure, weights, scale, step, future, prescribed
        )

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


def _pushforward_loss(
    sim, params, normalizers, carry, structure, weights, scale, step, future, prescribed
):
    """The last step's loss after k − 1 steps run with frozen parameters: the warm-up
    scan is outside differentiation altogether (no residuals, no backward pass), so a
    k-step pushforward costs k − 1 forward passes more than a one-step loss."""
    last = future.shape[0] - 1
    frozen = jax.lax.stop_gradient(params)

    def warm(carry, prescribed_t):
        new, _ = step(
            sim, frozen, normalizers, fields=carry, structure=structure, prescribed=prescribed_t
        )
        return new, None

    carry, _ = jax.lax.scan(warm, carry, prescribed[:last])
    carry = jax.lax.stop_gradient(carry)
    _, state = step(
        sim, params, normalizers, fields=carry, structure=structure, prescribed=prescribed[last]
    )
    error = (state - future[last]) * scale
    return masked_mse(error, jnp.zeros_like(error), weights, feature_reduction="sum")
