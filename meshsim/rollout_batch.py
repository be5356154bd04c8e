"""Many rollouts at once: forecasts from many initial frames of one trajectory through one
compiled, vmapped scan, each with M ensemble members if asked.

`iter_rollout_batch` stacks `batch` initial frames (and M members each) into one call
of `rollout` vmapped over them, so scoring a season of forecasts compiles once.
Member m of the forecast from frame s draws from
`member_keys(forecast_key(seed, s), M)[m]` (`member_rollout`): the same members
however the forecasts are batched, and the same as `meshsim.rollout.iter_rollout`
rolls out one member at a time with that key.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.graph import MultiGraph, PaddingBudget, pad
from meshsim.graph.window import pad_window
from meshsim.models.ensemble import member_keys
from meshsim.normalization import Normalizers
from meshsim.rollout import check_rollout_steps, member_noise, rollout
from meshsim.simulator import Simulator
from meshsim.validation import check_int


def member_rollout(
    sim: Simulator,
    params: Any,
    normalizers: Normalizers,
    *,
    fields: dict,
    structure: MultiGraph,
    prescribed: jax.Array,
    key: jax.Array,
) -> jax.Array:
    """[T, N, d] one ensemble member's rollout (`rollout`'s arguments): its initial state
    perturbed (kind "initial", `Simulator.member_fields`) or a fresh FGN noise for each
    network call c, `network_noise(ensemble, key, c)` (kind "fgn"). `key`: the member's
    key (`meshsim.models.ensemble.member_keys`). A simulator without an ensemble rolls
    out deterministically. Jit-safe."""
    # `member_fields` leaves the fields of a deterministic or FGN simulator as they are
    fields = sim.member_fields(normalizers, fields, structure, key)
    calls = -(-prescribed.shape[0] // sim.bundle_steps)
    noise = member_noise(sim.ensemble, key, 0, calls)
    return rollout(
        sim,
        params,
        normalizers,
        fields=fields,
        structure=structure,
        prescribed=prescribed,
        noise=noise,
    )[1]


def forecast_key(seed: int, start: int) -> jax.Array:
    """The key of the ensemble forecast from frame `start` (its members draw from
    `member_keys(forecast_key(seed, start), M)`): the same members however the
    forecasts are batched."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), start)


@functools.lru_cache(maxsize=16)
def _batch_fn(sim: Simulator, members: int | None):
    """`rollout` vmapped over initial fields and prescribed frames (and over `members`
    ensemble members), the structure shared: one jitted function per simulator (and
    per batch shape)."""

    def batch(params, normalizers, fields, structure, prescribed, keys):
        def one(f, p, key):
            if members is None:
                args = dict(fields=f, structure=structure, prescribed=p)
                return rollout(sim, params, normalizers, **args)[1]
            return jax.vmap(
                lambda k: member_rollout(
                    sim, params, normalizers, fields=f, structure=structure, prescribed=p, key=k
                )
            )(member_keys(key, members))

        return jax.vmap(one)(fields, prescribed, keys)

    return jax.jit(batch)


def iter_rollout_batch(
    sim: Simulator,
    params: Any,
    normalizers: Normalizers,
    trajectory: Mapping[str, np.ndarray],
    starts,
    *,
    steps: int,
    batch: int = 8,
    members: int | None = None,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Rollouts of `steps` steps from many initial frames of one trajectory, `batch` at a
    time through one compiled, vmapped scan (many forecasts from one dataset).

    Args:
      starts: [S] initial frame indices (each with `task.history` frames before it).
      steps: predicted steps of every rollout (within the trajectory, or past it where
        `iter_rollout` allows that).
      batch: rollouts per call; the last call is padded with copies of its last start,
        so every call has the same shape and the function compiles once.
      members: None: one deterministic rollout per start (an FGN network with zero
        noise); M ≥ 1: M ensemble members per start (`member_rollout`), member m of
        start s drawing from `member_keys(forecast_key(seed, s), M)[m]`.
      seed: the ensemble's seed.

    Yields:
      [b, steps + 1, N, d] float32 on the host per call (frame 0 the initial state),
      b = `batch` except for the last call; S rows in all, in the order of `starts`.
      With `members`: [b, M, steps + 1, N, d], frame 0 the unperturbed initial state.

    Raises:
      ValueError: a task whose edges are rebuilt every step (their budget may grow
        during a rollout: use `iter_rollout`), a bad `batch`, or a start without its
        history or steps.
    """
    task = sim.task
    if task.dynamic_edge_sets:
        raise ValueError(
            f"task {task.name!r}: batched rollouts need a fixed graph, but edge sets "
            f"{list(task.dynamic_edge_sets)} are rebuilt every step; use iter_rollout"
        )
    batch = check_int("batch", batch, minimum=1, expected="≥ 1")
    check_int("members", members, minimum=1, optional=True, expected="≥ 1 or None")
    starts = [int(s) for s in np.asarray(starts).reshape(-1)]
    length = task.num_frames(trajectory)
    graph = task.structure(trajectory)
    num_nodes = graph.num_nodes(task.node_set)
    budget = PaddingBudget.fit(graph)
    structure = jax.device_put(pad(graph, budget))
    pad_nodes = budget.n_node[task.node_set] - num_nodes
    fn = _batch_fn(sim, members)
    for begin in range(0, len(starts), batch):
        chosen = starts[begin : begin + batch]
        real = len(chosen)
        chosen += [chosen[-1]] * (batch - real)
        fields, frames = [], []
        for start in chosen:
            if start < task.history:
                raise ValueError(f"starts: {start} has no {task.history} earlier frame(s)")
            window = pad_window(task.window(trajectory, start, graph), budget, task.node_set)
            if not 1 <= steps <= length - 1 - start:  # past the data: read it all to check
                check_rollout_steps(
                    sim, np.asarray(task.state(trajectory)), window.fields, start, steps
                )
            fields.append({k: v for k, v in window.fields.items() if not k.startswith("target|")})
            prescribed = task.prescribed_frames(trajectory, start, steps)
            frames.append(np.pad(prescribed, ((0, 0), (0, pad_nodes), (0, 0))))
        stacked = jax.tree.map(lambda *xs: np.stack(xs), *fields)
        keys = jnp.stack([forecast_key(seed, s) for s in chosen])
        states = fn(params, normalizers, stacked, structure, np.stack(frames), keys)
        states = np.asarray(jax.device_get(states))[:real, ..., :num_nodes, :]
        initial = np.stack([task.state(trajectory, s) for s in chosen[:real]])[:, None]
        if members is not None:  # [b, 1, N, d] -> [b, M, 1, N, d]
            initial = np.repeat(initial[:, None], members, axis=1)
        out = np.concatenate([initial, states], axis=-3)
        yield out.astype(np.float32, copy=False)
