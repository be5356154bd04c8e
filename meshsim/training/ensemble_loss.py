"""The CRPS loss of an ensemble: M members per example, each its own prediction or rollout.

With `Simulator.ensemble` set (`model.ensemble.*`), the train step predicts M members
per example (a `vmap` over the members' inputs) and scores them with
`meshsim.training.crps.crps_loss` against the truth, weighted like the MSE loss
(`Task.loss_weights` per node, the task's `output_weights` per channel, normalised by
the output normalizer's std):

* horizon 1: member m's normalized output against the normalized target of its own
  input. Its error `pred − normalize(target)` is the error of its next state divided
  by the std (for `x + Δ` and for values alike), so the members are scored in state
  space even when kind "initial" moved their inputs (the CRPS is translation
  invariant: scoring the errors against 0 scores the states against the truth). A
  bundle (K > 1) is scored slice by slice, the mean over its K slices.
* horizon k > 1 (unrolled): each member rolls out its own trajectory for k network
  calls (`meshsim.rollout.rollout_step`, a fresh FGN noise per call) and every
  predicted state is scored, the mean over the k·K states.

The members' inputs are drawn before the members run, as arrays with explicit axes
`[B, M, ...]`: the noise `[B, M, k, S]` ("fgn"), the perturbed states `[B, M, N, d]`
("initial"), or both ("fgn+initial"), from `meshsim.models.ensemble.member_keys`
(keyed by the member's index).
`member_sharding` (a sharding of `[B, M, ...]` arrays, e.g. over the device-mesh axes
`data` and `ensemble`) constrains them and the members' errors, so under `jit` each
device computes its own members and the result is the one device's. Jit-safe.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from meshsim import normalization as norm
from meshsim.graph.window import Batch, graph_batch_axis
from meshsim.models.ensemble import member_keys, network_noise
from meshsim.rollout import bundle_step
from meshsim.simulator import Simulator
from meshsim.training.crps import crps_loss


def _constrain(tree, sharding):
    if sharding is None:
        return tree
    return jax.tree_util.tree_map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)


def member_inputs(
    sim: Simulator, normalizers, batch: Batch, fields: dict, keys: jax.Array, calls: int
) -> dict:
    """What makes the members differ: {"noise": [B, M, calls, S]} (FGN noise) and/or
    {"state": [B, M, N, d]} (perturbed initial states), as the ensemble's kind has them.
    `keys` [B]: one per example; `calls`: network calls each member makes."""
    ensemble = sim.ensemble
    members = sim.members
    keys = jax.vmap(lambda k: member_keys(k, members))(keys)  # [B, M]
    out = {}
    if ensemble.uses_noise:
        per_call = lambda k: jax.vmap(lambda c: network_noise(ensemble, k, c))(jnp.arange(calls))
        out["noise"] = jax.vmap(jax.vmap(per_call))(keys)
    if ensemble.perturbs_state:

        def states(f, structure, k):  # [M, N, d]
            return jax.vmap(
                lambda key: sim.member_fields(normalizers, f, structure, key)[sim.task.state_field]
            )(k)

        out["state"] = jax.vmap(states, in_axes=(0, graph_batch_axis(batch), 0))(
            fields, batch.graph, keys
        )
    return out


def _one_step_errors(sim, params, normalizers, fields, structure, inputs, current) -> jax.Array:
    """[K, N, d] one member's normalized errors of its next state(s) (K = 1 unbundled)."""
    if "state" in inputs:
        fields = {**fields, sim.task.state_field: inputs["state"]}
    noise = inputs["noise"][0] if "noise" in inputs else None
    features, targets, _ = sim.prepare(fields, structure, None, current=current)
    graph = (structure if current else sim.graph_for(fields, structure)).with_features(features)
    pred = sim.apply(params, normalizers, graph, noise)
    error = pred - norm.normalize(normalizers.output, targets)
    return error[None] if sim.bundle_steps == 1 else jnp.moveaxis(error, -2, 0)


def _rollout_errors(sim, params, normalizers, fields, structure, inputs, horizon) -> jax.Array:
    """[k·K, N, d] one member's normalized state errors along its own k-call rollout."""
    state_field, bundle = sim.task.state_field, sim.bundle_steps
    frames = horizon * bundle
    future = sim.future_frames(fields, state_field, frames)  # [k·K, N, d]
    future = future.at[0].set(fields[f"target|{state_field}"])  # the noise-corrected target
    prescribed = sim.future_frames(fields, "prescribed", frames)
    prescribed = prescribed.reshape(horizon, bundle, *prescribed.shape[1:])  # [k, K, N, P]
    carry = {k: v for k, v in fields.items() if not k.startswith(("target|", "future|"))}
    if "state" in inputs:
        carry[state_field] = inputs["state"]
    noise = inputs.get("noise")  # [k, S] or None
    _, std = norm.mean_and_std(normalizers.output)

    def body(carry, xs):
        prescribed_t, noise_t = xs
        new, states = bundle_step(
            sim,
            params,
            normalizers,
            fields=carry,
            structure=structure,
            prescribed=prescribed_t,
            noise=noise_t,
        )
        return new, states  # [K, N, d]

    # noise None is an empty subtree of the scanned inputs: every call gets None
    _, states = jax.lax.scan(jax.checkpoint(body), carry, (prescribed, noise))  # [k, K, N, d]
    states = states.reshape(frames, *states.shape[2:])
    return (states - future) / std


def ensemble_loss(
    sim: Simulator,
    params: Any,
    normalizers: norm.Normalizers,
    batch: Batch,
    fields: dict,
    weights: jax.Array,
    keys: jax.Array,
    *,
    horizon: int = 1,
    current: bool = False,
    member_sharding: Any = None,
) -> jax.Array:
    """[] float32 the weighted CRPS of the batch's ensembles (see the module doc).

    Args:
      batch: the batch (its graph: stacked per example or shared).
      fields: the batch's fields `[B, ...]` with the task's training noise (shared by an
        example's members), `future|…` frames for `horizon` > 1.
      weights: [B, N] loss weight per node.
      keys: [B] one key per example, from which its members draw.
      horizon: network calls per member (1: the one-step loss).
      current: the batch's graph holds the dynamic edge sets of `fields` already.
      member_sharding: a sharding of `[B, M, ...]` arrays, or None.

    Returns:
      Σ_b CRPS_b · W_b / Σ_b W_b with W_b = Σ_n weights[b, n]: the weighted mean over
      every node of the batch, as the MSE loss reduces.
    """
    ensemble = sim.ensemble
    if ensemble is None:
        raise ValueError("ensemble_loss: the simulator has no ensemble (model.ensemble.kind)")
    calls = horizon
    inputs = _constrain(
        member_inputs(sim, normalizers, batch, fields, keys, calls), member_sharding
    )
    if horizon == 1:
        member = lambda f, s, i: _one_step_errors(sim, params, normalizers, f, s, i, current)
    else:
        member = lambda f, s, i: _rollout_errors(sim, params, normalizers, f, s, i, horizon)

    def example(f, structure, example_inputs):  # [M, T, N, d]
        return jax.vmap(lambda i: member(f, structure, i))(example_inputs)

    errors = jax.vmap(example, in_axes=(0, graph_batch_axis(batch), 0))(fields, batch.graph, inputs)
    errors = _constrain(errors, member_sharding)  # [B, M, T, N, d]
    channel = sim.task.output_weights
    channel = jnp.ones(errors.shape[-1:], jnp.float32) if channel is None else channel
    channel = jnp.asarray(channel, jnp.float32)

    def score(e, w):  # e [M, T, N, d], w [N] -> [] mean over T
        per_time = jax.vmap(
            lambda x: crps_loss(
                x,
                jnp.zeros(x.shape[1:], x.dtype),
                w,
                channel,
                kind=ensemble.loss,
                alpha=ensemble.alpha,
            ),
            in_axes=1,
        )(e)
        return jnp.mean(per_time)

    per_example = jax.vmap(score)(errors, weights)  # [B]
    w = jnp.sum(jnp.where(weights > 0, weights.astype(jnp.float32), 0.0), axis=-1)  # [B]
    total = jnp.sum(w)
    return jnp.sum(per_example * w) / jnp.where(total > 0, total, 1.0)
