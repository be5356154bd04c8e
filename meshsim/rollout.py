"""Rollouts: a learned simulator applied to its own predictions with `lax.scan`.

`rollout` scans a pure step over time inside one compiled function. Long
trajectories go through `rollout_trajectory`, which runs fixed-length chunks
of that scan (one compiled function whatever the length; the last chunk is
padded), copies each chunk to the host and keeps only the carry on device, so
device memory stays flat however long the rollout.

Boundary enforcement: after every step the nodes the task does not simulate
(inflow, walls, handles...) take their prescribed values, i.e. the ground truth
of the next frame (constant in the built-in datasets).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.graph import MultiGraph, PaddingBudget
from meshsim.normalization import Normalizers
from meshsim.simulator import Simulator
from meshsim.window import pad_window


def rollout_step(
    sim: Simulator,
    params: Any,
    normalizers: Normalizers,
    *,
    fields: dict,
    structure: MultiGraph,
    prescribed: jax.Array,
) -> tuple[dict, jax.Array]:
    """One step: (fields_t, prescribed state_{t+1} [N, d]) -> (fields_{t+1}, state_{t+1})."""
    predicted = sim.predict(params, normalizers, fields, structure)
    new_fields = sim.task.advance(fields, predicted, prescribed)
    return new_fields, new_fields[sim.task.state_field]


def rollout(
    sim: Simulator,
    params: Any,
    normalizers: Normalizers,
    *,
    fields: dict,
    structure: MultiGraph,
    prescribed: jax.Array,
) -> tuple[dict, jax.Array]:
    """Scanned rollout. Jit-safe.

    Args:
      fields: the window at the initial time (target fields are ignored).
      structure: the graph structure (zero-width features).
      prescribed: [T, N, d] the states of frames t+1..t+T (used on prescribed nodes).

    Returns:
      (fields after T steps, predicted states [T, N, d]).
    """

    def body(carry, prescribed_t):
        return rollout_step(
            sim, params, normalizers, fields=carry, structure=structure, prescribed=prescribed_t
        )

    carry = {k: v for k, v in fields.items() if not k.startswith("target|")}
    return jax.lax.scan(body, carry, prescribed)


@functools.lru_cache(maxsize=16)
def _chunk_fn(sim: Simulator):
    """One jitted chunk function per simulator, reused across calls."""

    def chunk(params, normalizers, fields, structure, prescribed):
        return rollout(
            sim, params, normalizers, fields=fields, structure=structure, prescribed=prescribed
        )

    return jax.jit(chunk)


def rollout_trajectory(
    sim: Simulator,
    params: Any,
    normalizers: Normalizers,
    trajectory: Mapping[str, np.ndarray],
    *,
    steps: int | None = None,
    start: int | None = None,
    chunk: int = 50,
    budget: PaddingBudget | None = None,
) -> np.ndarray:
    """Rolls a model out from a ground-truth trajectory's initial frame(s). Host driven.

    Args:
      trajectory: CONVENTIONS.md layout; provides the structure, the initial state and
        the prescribed values of non-simulated nodes.
      steps: predicted steps (default: to the end of the trajectory).
      start: initial frame (default: the first frame with enough history, order − 1).
      chunk: steps per compiled scan; memory on device is O(chunk · N).
      budget: padding for the graph (default: its own bucket); pass the training
        budget to reuse one compiled function across meshes.

    Returns:
      [steps + 1, N, d] float32 states on the host: frame 0 is the initial state,
      frame k the prediction k steps later.
    """
    task = sim.task
    state = np.asarray(trajectory[task.state_field])
    start = task.order - 1 if start is None else start
    max_steps = state.shape[0] - 1 - start
    steps = max_steps if steps is None else steps
    if not 1 <= steps <= max_steps:
        raise ValueError(f"steps: expected 1..{max_steps} from frame {start}, got {steps}")
    if chunk < 1:
        raise ValueError(f"chunk: expected ≥ 1, got {chunk}")
    graph = task.structure(trajectory)
    num_nodes = graph.num_nodes(task.node_set)
    budget = budget or PaddingBudget.fit(graph)
    window = pad_window(task.window(trajectory, start, graph), budget, task.node_set)
    fields = jax.device_put({k: v for k, v in window.fields.items() if not k.startswith("target|")})
    structure = jax.device_put(window.graph)
    fn = _chunk_fn(sim)
    pad_nodes = budget.n_node[task.node_set] - num_nodes
    outputs = [state[start]]
    for begin in range(0, steps, chunk):
        n = min(chunk, steps - begin)
        frames = state[start + 1 + begin : start + 1 + begin + n]
        frames = np.concatenate([frames, np.repeat(frames[-1:], chunk - n, axis=0)])
        frames = np.pad(frames, ((0, 0), (0, pad_nodes), (0, 0)))
        fields_next, states = fn(params, normalizers, fields, structure, jnp.asarray(frames))
        if n < chunk:
            states = states[:n]
        fields = fields_next
        outputs.append(np.asarray(jax.device_get(states))[:, :num_nodes])
    return np.concatenate([outputs[0][None], *outputs[1:]]).astype(np.float32)
