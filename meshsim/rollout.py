"""Rollouts: a learned simulator applied to its own predictions with `lax.scan`.

`rollout` scans a pure step over time inside one compiled function. Long
trajectories go through `iter_rollout`, which runs fixed-length chunks of that
scan (one compiled function whatever the length; the last chunk is padded) and
yields each chunk on the host as it comes off the device, keeping only the carry
on device: device memory stays flat however long the rollout, and so does host
memory when the caller streams the chunks to disk (`meshsim.evaluation`).
`rollout_trajectory` gathers them into one array.

Boundary enforcement: after every step the nodes the task does not simulate
(inflow, walls, handles...) take their prescribed values, i.e. the ground truth
of the next frame (constant in the built-in datasets). Past the end of the
data they keep the last frame's values, which `iter_rollout` allows only when
those values are constant in time.

Temporal bundling (`Simulator.bundle_steps` K > 1): each network call advances K
frames (`bundle_step`), prescribed nodes taking the truth of every frame, and
every frame is returned; a rollout whose length is not a multiple of K
truncates its last call. Chunks of `iter_rollout` are rounded up to a multiple
of K, so calls never straddle two chunks.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.graph import MultiGraph, PaddingBudget, pad
from meshsim.graph.padding import grow_edges
from meshsim.graph.window import pad_window
from meshsim.models.ensemble import network_noise
from meshsim.normalization import Normalizers
from meshsim.simulator import Simulator
from meshsim.validation import check_int

logger = logging.getLogger(__name__)


def rollout_step(
    sim: Simulator,
    params: Any,
    normalizers: Normalizers,
    *,
    fields: dict,
    structure: MultiGraph,
    prescribed: jax.Array,
    current: bool = False,
    noise: jax.Array | None = None,
) -> tuple[dict, jax.Array]:
    """One step: (fields_t, prescribed state_{t+1} [N, d]) -> (fields_{t+1}, state_{t+1}).
    `current`: `structure` holds the dynamic edge sets of `fields` already; `noise`: an
    ensemble member's FGN noise [noise_size] for this call (`Simulator.apply`)."""
    predicted = sim.predict(params, normalizers, fields, structure, current=current, noise=noise)
    new_fields = sim.task.advance(fields, predicted, prescribed)
    return new_fields, new_fields[sim.task.state_field]


def bundle_step(
    sim: Simulator,
    params: Any,
    normalizers: Normalizers,
    *,
    fields: dict,
    structure: MultiGraph,
    prescribed: jax.Array,
    active: jax.Array | None = None,
    current: bool = False,
    noise: jax.Array | None = None,
) -> tuple[dict, jax.Array]:
    """One network call of a bundled simulator (any K, 1 included): (fields_t,
    prescribed [K, N, P] of frames t+1..t+K) -> (fields_{t+K}, states [K, N, d]).

    `active` [K] bool (optional) stops the fields at the last active frame (a
    truncated last call); `current` and `noise` as in `rollout_step`. Jit-safe.
    """
    return sim.predict_bundle(
        params, normalizers, fields, structure, prescribed, active, current=current, noise=noise
    )


def rollout(
    sim: Simulator,
    params: Any,
    normalizers: Normalizers,
    *,
    fields: dict,
    structure: MultiGraph,
    prescribed: jax.Array,
    demand: bool = False,
    noise: jax.Array | None = None,
) -> tuple:
    """Scanned rollout. Jit-safe.

    Args:
      fields: the window at the initial time (target fields are ignored).
      structure: the graph structure (zero-width features).
      prescribed: [T, N, d] the states of frames t+1..t+T (used on prescribed nodes).
      demand: also return the most edges each dynamic edge set needed (a task whose
        edges are rebuilt every step; more than the structure's slots means the graphs
        were cut short, and the caller must grow the budget and roll out again).
      noise: [⌈T / K⌉, S] an ensemble member's FGN noise per network call
        (`meshsim.models.ensemble.network_noise`), or None (a deterministic network).

    Returns:
      (fields after T steps, predicted states [T, N, d]), and with `demand` a third
      item {dynamic edge set: [] int32}. A bundled simulator makes ⌈T / K⌉ network
      calls; the last one's frames past T are dropped.
    """
    carry = {k: v for k, v in fields.items() if not k.startswith("target|")}
    k = sim.bundle_steps
    if k == 1:

        def body(carry, xs, graph, current):
            prescribed_t, noise_t = xs
            return rollout_step(
                sim,
                params,
                normalizers,
                fields=carry,
                structure=graph,
                prescribed=prescribed_t,
                current=current,
                noise=noise_t,
            )

        # noise None is an empty subtree of the scanned inputs: every call gets None
        return _scan(sim, body, carry, (prescribed, noise), structure, demand)

    steps = prescribed.shape[0]
    calls = -(-steps // k)
    extra = calls * k - steps  # frames of the last call past T: computed, never kept
    if extra:
        prescribed = jnp.concatenate([prescribed, jnp.repeat(prescribed[-1:], extra, axis=0)])
    bundles = prescribed.reshape(calls, k, *prescribed.shape[1:])  # [C, K, N, P]
    active = jnp.asarray((np.arange(calls * k) < steps).reshape(calls, k))  # [C, K]

    def bundle_body(carry, xs, graph, current):
        prescribed_c, active_c, noise_c = xs
        return bundle_step(
            sim,
            params,
            normalizers,
            fields=carry,
            structure=graph,
            prescribed=prescribed_c,
            active=active_c,
            current=current,
            noise=noise_c,
        )

    out = _scan(sim, bundle_body, carry, (bundles, active, noise), structure, demand)
    states = out[1].reshape(calls * k, *out[1].shape[2:])[:steps]  # [C, K, N, d] -> [T, N, d]
    return (out[0], states, *out[2:])


def _scan(sim: Simulator, body, carry: dict, xs, structure: MultiGraph, demand: bool):
    """`lax.scan` of `body(fields, x, structure, current)` over `xs`; with `demand`, the
    dynamic edge sets are built once per step here and the scan also returns
    {dynamic edge set: [] int32 the most edges a step's graph needed}."""
    if not demand:
        return jax.lax.scan(lambda c, x: body(c, x, structure, False), carry, xs)
    task = sim.task

    def tracked(state, x):
        fields, most = state
        graph, now = task.dynamic_structure(fields, structure)
        most = {name: jnp.maximum(most[name], now[name]) for name in most}
        new, out = body(fields, x, graph, True)
        return (new, most), out

    start = {name: jnp.zeros((), jnp.int32) for name in task.dynamic_edge_sets}
    (carry, most), states = jax.lax.scan(tracked, (carry, start), xs)
    return carry, states, most


@functools.lru_cache(maxsize=16)
def _chunk_fn(sim: Simulator):
    """One jitted chunk function per simulator, reused across calls."""

    demand = bool(sim.task.dynamic_edge_sets)

    def chunk(params, normalizers, fields, structure, prescribed, noise):
        return rollout(
            sim,
            params,
            normalizers,
            fields=fields,
            structure=structure,
            prescribed=prescribed,
            demand=demand,
            noise=noise,
        )

    return jax.jit(chunk)


def _prescribed_change(state: np.ndarray, prescribed: np.ndarray) -> float:
    """Largest change in time of the prescribed nodes' values: max |x_t − x_last|."""
    if not prescribed.any():
        return 0.0
    values = state[:, prescribed]
    return float(np.max(np.abs(values - values[-1:]))) if values.size else 0.0


def check_rollout_steps(
    sim: Simulator, state: np.ndarray, fields: dict, start: int, steps: int
) -> None:
    """`steps` within the data, or beyond it where the prescribed values are constant."""
    max_steps = state.shape[0] - 1 - start
    if 1 <= steps <= max_steps:
        return
    expected = f"steps: expected 1..{max_steps} from frame {start}, got {steps}"
    if steps < 1:
        raise ValueError(expected)
    # Past the data, prescribed nodes keep the last frame's values: only right if they
    # never change (inflow, walls, pinned handles in the built-in datasets).
    prescribed = ~np.asarray(sim.task.simulated_mask(fields))
    change = _prescribed_change(state, prescribed)
    scale = max(1.0, float(np.max(np.abs(state[:, prescribed])))) if prescribed.any() else 1.0
    if change > 1e-6 * scale:
        raise ValueError(
            f"{expected}: rolling out past the data needs the prescribed (non-simulated) "
            f"nodes' {sim.task.state_field} to be constant in time, but it changes by up to "
            f"{change:.3g} in this trajectory, so there is nothing to prescribe after frame "
            f"{state.shape[0] - 1}"
        )


def iter_rollout(
    sim: Simulator,
    params: Any,
    normalizers: Normalizers,
    trajectory: Mapping[str, np.ndarray],
    *,
    steps: int | None = None,
    start: int | None = None,
    chunk: int = 50,
    budget: PaddingBudget | None = None,
    member: jax.Array | None = None,
) -> Iterator[np.ndarray]:
    """Rolls a model out from a ground-truth trajectory's initial frame(s), chunk by chunk.

    Host driven: yields the initial state `[1, N, d]`, then each chunk's predicted
    states `[n, N, d]` (float32, host) as it comes off the device, so a caller can
    write them out and host memory stays flat however long the rollout. The next
    chunk is dispatched before the previous one is copied to the host, so the
    device keeps computing while the host writes.

    Args:
      trajectory: CONVENTIONS.md layout; provides the structure, the initial state and
        the prescribed values of non-simulated nodes.
      steps: predicted steps (default: to the end of the trajectory). More steps than
        the trajectory has are allowed when its prescribed nodes' values are
        constant in time: they keep the last frame's values.
      start: initial frame (default: the first frame with enough history, `task.history`).
      chunk: steps per compiled scan; memory on device is O(chunk · N). Rounded up to
        a multiple of `sim.bundle_steps`.
      budget: padding for the graph (default: its own bucket); pass the training
        budget to reuse one compiled function across meshes.
      member: an ensemble member's key (`meshsim.models.ensemble.member_keys`): its
        initial state perturbed (kind "initial") or its own FGN noise for each network
        call c, `network_noise(ensemble, member, c)` (kind "fgn"), as
        `meshsim.rollout_batch.member_rollout` draws them; None: the deterministic
        rollout (an FGN network with zero noise).

    Raises:
      ValueError: on a bad `steps` or `chunk`, naming why a longer rollout is refused.
    """
    task = sim.task
    state = np.asarray(task.state(trajectory))
    start = task.history if start is None else start
    steps = state.shape[0] - 1 - start if steps is None else steps
    chunk = check_int("chunk", chunk, minimum=1, expected="≥ 1")
    chunk = -(-chunk // sim.bundle_steps) * sim.bundle_steps  # whole network calls
    graph = task.structure(trajectory)
    num_nodes = graph.num_nodes(task.node_set)
    window = task.window(trajectory, start, graph)
    check_rollout_steps(sim, state, window.fields, start, steps)
    budget = _room_for(graph, budget or PaddingBudget.fit(graph), task.dynamic_edge_sets)
    window = pad_window(window, budget, task.node_set)
    fields = jax.device_put({k: v for k, v in window.fields.items() if not k.startswith("target|")})
    structure = jax.device_put(window.graph)
    ensemble = sim.ensemble if member is not None else None
    if ensemble is not None:
        fields = sim.member_fields(normalizers, fields, structure, member)
    fn = _chunk_fn(sim)
    pad_nodes = budget.n_node[task.node_set] - num_nodes
    yield state[start][None].astype(np.float32)
    pending = None  # (device states of the previous chunk, its real length)
    for begin in range(0, steps, chunk):
        n = min(chunk, steps - begin)
        # Frames past the data (rollouts beyond it, the padding of the last chunk)
        # repeat the last frame: only prescribed nodes read them.
        frames = task.prescribed_frames(trajectory, start + begin, chunk)
        frames = jnp.asarray(np.pad(frames, ((0, 0), (0, pad_nodes), (0, 0))))
        noise = member_noise(ensemble, member, begin // sim.bundle_steps, chunk // sim.bundle_steps)
        out = fn(params, normalizers, fields, structure, frames, noise)
        while task.dynamic_edge_sets and (grown := _grown(budget, out[2], begin)) is not None:
            budget = grown  # the chunk's graphs were cut short: roll it out again
            structure = jax.device_put(pad(graph, budget))
            out = fn(params, normalizers, fields, structure, frames, noise)
        fields, states = out[:2]
        if pending is not None:
            yield _to_host(*pending, num_nodes)
        pending = (states, n)
    if pending is not None:
        yield _to_host(*pending, num_nodes)


def member_noise(ensemble, member, first, calls: int) -> jax.Array | None:
    """[calls, S] a member's FGN noise for network calls first..first + calls − 1
    (`network_noise(ensemble, member, c)`), or None (no ensemble, or no FGN noise)."""
    if ensemble is None or not ensemble.uses_noise:
        return None
    return jax.vmap(lambda c: network_noise(ensemble, member, c))(first + jnp.arange(calls))


def _room_for(graph: MultiGraph, budget: PaddingBudget, dynamic: tuple[str, ...]) -> PaddingBudget:
    """`budget` with at least the slots the trajectory's own structure reserves for its
    dynamic edge sets (a training budget may have been sized on sparser data)."""
    short = {k: graph.edge_sets[k].num_edges for k in dynamic}
    short = {k: n for k, n in short.items() if n > budget.n_edge[k]}
    return dataclasses.replace(budget, n_edge={**budget.n_edge, **short}) if short else budget


def _grown(budget: PaddingBudget, needed: dict, begin: int) -> PaddingBudget | None:
    """A budget with room for `needed` edges ({edge set: [] int32}), or None if it
    has room already. Logs what it grows (the next call recompiles)."""
    needed = {name: int(count) for name, count in jax.device_get(needed).items()}
    budget, grown = grow_edges(budget, needed)
    for name, (old, new) in grown.items():
        logger.warning(
            "rollout steps %d+: edge set %r needed %d edges but has %d slots; growing "
            "the budget to %d and recompiling",
            begin,
            name,
            needed[name],
            old,
            new,
        )
    return budget if grown else None


def _to_host(states: jax.Array, n: int, num_nodes: int) -> np.ndarray:
    return np.asarray(jax.device_get(states))[:n, :num_nodes].astype(np.float32, copy=False)


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
    """`iter_rollout` gathered into one array (arguments as there).

    Returns:
      [steps + 1, N, d] float32 states on the host: frame 0 is the initial state,
      frame k the prediction k steps later. Host memory is O(steps · N); stream
      long rollouts to disk with `iter_rollout` instead.
    """
    if steps is None:
        first = sim.task.history if start is None else start
        steps = sim.task.num_frames(trajectory) - 1 - first
    out, t = None, 0
    for frames in iter_rollout(
        sim, params, normalizers, trajectory, steps=steps, start=start, chunk=chunk, budget=budget
    ):
        if out is None:  # filled in place: no list of chunks, no concatenation
            out = np.empty((steps + 1, *frames.shape[1:]), np.float32)
        out[t : t + frames.shape[0]] = frames
        t += frames.shape[0]
    return out
