"""Flow diagnostics: kinetic energy, divergence and the vortex-shedding Strouhal number.

Host-side numpy on whole trajectories `[T, N, 2]` (see `meshsim.diagnostics`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
from scipy.integrate import simpson
from scipy.signal import detrend
from scipy.signal.windows import hann
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from meshsim.diagnostics._checks import (
    _FFT_PADDING,
    MissingFlowParameter,
    _areas,
    _mesh,
    _node_types,
    _positive,
    _trajectory,
)
from meshsim.node_types import NodeType

# ----------------------------------------------------------------------------- flow fields


def nodal_areas(mesh_pos: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Lumped areas `[N] float64` (summing to the mesh area): each node gets a third of
    the area of each of its cells. `mesh_pos [N, 2]` float, `cells [C, 3]` int. O(C)."""
    pos, cells = _mesh(mesh_pos, cells)
    third = np.abs(_areas(pos, cells)) / 3.0
    return np.bincount(cells.ravel(), weights=np.repeat(third, 3), minlength=len(pos))


def kinetic_energy(
    velocity: np.ndarray, mesh_pos: np.ndarray, cells: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Kinetic energy per unit density ½∫|u|² dA per frame, with lumped nodal areas.

    Covers every node by default: the whole fluid domain the mesh fills (boundary
    nodes carry their prescribed velocities, as in the truth); `mask` restricts it.

    Args:
      velocity: `[T, N, d]` float velocities (any d).
      mesh_pos: `[N, 2]` float node positions.
      cells: `[C, 3]` int triangles.
      mask: `[N]` bool (or 0/1 int) selecting nodes; None selects all.

    Returns:
      `[T] float64`. O(T N).
    """
    pos, cells = _mesh(mesh_pos, cells)
    u = _trajectory(velocity, "velocity", len(pos))
    weights = nodal_areas(pos, cells)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (len(pos),):
            raise ValueError(f"mask: expected shape [{len(pos)}], got {mask.shape}")
        if not (mask.dtype == bool or np.issubdtype(mask.dtype, np.integer)):
            raise TypeError(f"mask: expected a bool or integer array, got dtype {mask.dtype}")
        weights = np.where(mask != 0, weights, 0.0)
    speed2 = np.where(weights > 0, np.sum(u**2, axis=-1), 0.0)  # masked-off NaN stays out
    return 0.5 * speed2 @ weights


def divergence(velocity: np.ndarray, mesh_pos: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """∇·u per cell of the piecewise-linear (P1) interpolant of the nodal velocity.

    `velocity [T, N, 2]` float, `mesh_pos [N, 2]` float, `cells [C, 3]` int ->
    `[T, C] float64`, in velocity / length; exact for fields linear in x and y. O(T C).
    """
    pos, cells = _mesh(mesh_pos, cells)
    u = _trajectory(velocity, "velocity", len(pos), dims=2)
    x = pos[cells]  # [C, 3, 2]
    # Barycentric basis: ∇φ_k = perp(x_{k+2} − x_{k+1}) / 2A (any orientation: A is signed).
    opposite = np.roll(x, -2, axis=1) - np.roll(x, -1, axis=1)
    grad = np.stack([-opposite[..., 1], opposite[..., 0]], -1)
    grad /= 2.0 * _areas(pos, cells)[:, None, None]
    return np.einsum("tckd,ckd->tc", u[:, cells], grad)


def mean_abs_divergence(
    velocity: np.ndarray, mesh_pos: np.ndarray, cells: np.ndarray
) -> np.ndarray:
    """Area-weighted mean of |∇·u| over cells, `[T] float64` (arguments and P1
    gradients of `divergence`); 0 for an incompressible linear field."""
    div = divergence(velocity, mesh_pos, cells)
    area = np.abs(_areas(*_mesh(mesh_pos, cells)))
    return np.abs(div) @ area / area.sum()


# ----------------------------------------------------------------------------- vortex shedding


class Probe(NamedTuple):
    """A probe node behind an obstacle, and the obstacle it was placed from."""

    node: int  # index into the N mesh nodes
    position: tuple[float, float]  # the probe node's mesh_pos
    obstacle_center: tuple[float, float]  # centre of the obstacle's bounding box
    diameter: float  # obstacle height across the flow (y extent): the solver's D


def _obstacle_nodes(pos: np.ndarray, types: np.ndarray) -> np.ndarray:
    """Indices of the most upstream obstacle's nodes: OBSTACLE, else WALL_BOUNDARY off
    the top and bottom walls (cylinder_flow types its cylinder as a wall); obstacles
    are groups no further apart than 1.5x the largest nearest-neighbour spacing."""
    candidates = np.flatnonzero(types == NodeType.OBSTACLE)
    if candidates.size == 0:
        y = pos[:, 1]
        tol = 1e-4 * (y.max() - y.min())
        on_wall = (np.abs(y - y.min()) <= tol) | (np.abs(y - y.max()) <= tol)
        candidates = np.flatnonzero((types == NodeType.WALL_BOUNDARY) & ~on_wall)
    if candidates.size < 3:
        raise MissingFlowParameter(
            "node_type: expected an obstacle (>= 3 OBSTACLE nodes, or WALL_BOUNDARY nodes off "
            f"the top and bottom walls), found {candidates.size} such nodes"
        )
    points = pos[candidates]
    tree = cKDTree(points)
    pairs = tree.query_pairs(1.5 * tree.query(points, k=2)[0][:, 1].max(), output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), (len(points),) * 2)
    label = connected_components(graph, directed=False)[1]
    return candidates[label == label[np.argmin(points[:, 0])]]


def default_probe(mesh_pos: np.ndarray, node_type: np.ndarray, *, downstream: float = 2.0) -> Probe:
    """A probe on the obstacle's centre line, `downstream` diameters behind its centre.

    The flow runs along +x; the obstacle is the most upstream group of obstacle
    nodes, its diameter their y extent. The probe is the NORMAL node nearest to
    `(x_c + downstream D, y_c)`. `mesh_pos [N, 2]` float, `node_type [N]` int.

    Raises:
      MissingFlowParameter: if there is no obstacle.
    """
    pos, _ = _mesh(mesh_pos)
    types = _node_types(node_type, len(pos))
    downstream = _positive(downstream, "downstream")
    nodes = pos[_obstacle_nodes(pos, types)]
    lo, hi = nodes.min(0), nodes.max(0)
    center, diameter = 0.5 * (lo + hi), float(hi[1] - lo[1])
    target = center + np.array([downstream * diameter, 0.0])
    pool = np.flatnonzero(types == NodeType.NORMAL)
    pool = pool if pool.size else np.arange(len(pos))
    node = int(pool[np.argmin(np.linalg.norm(pos[pool] - target, axis=1))])
    return Probe(node, tuple(map(float, pos[node])), tuple(map(float, center)), diameter)


def inflow_mean_speed(velocity: np.ndarray, mesh_pos: np.ndarray, node_type: np.ndarray) -> float:
    """Mean inflow speed U = (1/H)∫u_x dy over the inlet in frame 0 (Re's and St's U).

    Composite Simpson rule (uneven spacing) over the INFLOW nodes and the channel
    height H (the mesh's y extent), u = 0 at no-slip corners that end the inlet:
    exact for the built-in parabolic inflow (the trapezoid rule is 0.7% low there).
    `velocity [T, N, 2]` float, `mesh_pos [N, 2]` float, `node_type [N]` int.

    Raises:
      MissingFlowParameter: if there are no INFLOW nodes.
    """
    pos, _ = _mesh(mesh_pos)
    u = _trajectory(velocity, "velocity", len(pos), dims=2)
    inlet = np.flatnonzero(_node_types(node_type, len(pos)) == NodeType.INFLOW)
    if inlet.size == 0:
        raise MissingFlowParameter("node_type: expected INFLOW nodes to measure U, found none")
    inlet = inlet[np.argsort(pos[inlet, 1])]
    y, ux = pos[inlet, 1], u[0, inlet, 0]
    y_lo, y_hi = pos[:, 1].min(), pos[:, 1].max()
    tol = 1e-9 * (y_hi - y_lo)
    if y[0] > y_lo + tol:  # a no-slip corner below the inlet
        y, ux = np.r_[y_lo, y], np.r_[0.0, ux]
    if y[-1] < y_hi - tol:
        y, ux = np.r_[y, y_hi], np.r_[ux, 0.0]
    return float(simpson(ux, x=y) / (y_hi - y_lo))


def _dominant_frequency(signal: np.ndarray, dt: float) -> float:
    """Frequency of the strongest oscillation in `signal [S]`; nan if none is measurable."""
    if len(signal) < 8 or not np.isfinite(signal).all():
        return float("nan")
    s = detrend(signal, type="linear")
    if np.sqrt(np.mean(s**2)) <= 1e-9 * max(np.max(np.abs(signal)), 1e-300):
        return float("nan")  # constant or linear: no oscillation
    n_fft = _FFT_PADDING * 2 ** math.ceil(math.log2(len(s)))
    magnitude = np.abs(np.fft.rfft(s * hann(len(s), sym=False), n_fft))
    k = int(np.argmax(magnitude[1:-1])) + 1
    a, b, c = np.log(np.maximum(magnitude[k - 1 : k + 2], 1e-300))
    shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
    frequency = (k + shift) / (n_fft * dt)
    # Under two periods in the record (a drift, not shedding): not measurable.
    return float(frequency) if frequency * len(s) * dt >= 2.0 else float("nan")


def _probe_index(probe: Any, pos: np.ndarray) -> int:
    if isinstance(probe, int | np.integer) and not isinstance(probe, bool):
        if not 0 <= probe < len(pos):
            raise ValueError(f"probe: expected a node index in 0..{len(pos) - 1}, got {probe}")
        return int(probe)
    point = None if isinstance(probe, str | bool) else np.asarray(probe, dtype=np.float64)
    if point is None or point.shape != (2,) or not np.isfinite(point).all():
        raise ValueError(f"probe: expected a node index or a finite (x, y), got {probe!r}")
    return int(np.argmin(np.linalg.norm(pos - point, axis=1)))


def shedding_frequency(
    velocity: np.ndarray,
    mesh_pos: np.ndarray,
    *,
    probe: int | tuple[float, float],
    dt: float,
    component: int = 1,
    skip: int = 0,
) -> float:
    """Dominant frequency (1 / time) of one velocity component at a probe node.

    The probe signal (frames `skip:`) is linearly detrended, Hann-windowed and
    Fourier transformed (zero-padded 8x); the log-magnitude peak is refined by
    parabolic interpolation (bias < 0.1% for a clean sine of >= 3 periods).

    Args:
      velocity: `[T, N, d]` float velocities.
      mesh_pos: `[N, 2]` float positions.
      probe: a node index, or an `(x, y)` position (its nearest node is used).
      dt: time between frames, > 0.
      component: 1 (v) oscillates at the shedding frequency on the wake's centre
        line (u at twice it).
      skip: initial frames left out (transients).

    Returns:
      The frequency; nan if the signal is not finite, does not oscillate, or holds
      fewer than two periods.
    """
    pos, _ = _mesh(mesh_pos)
    u = _trajectory(velocity, "velocity", len(pos))
    dt = _positive(dt, "dt")
    for name, value, end in (("component", component, u.shape[2]), ("skip", skip, len(u))):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
        if not 0 <= value < end:
            raise ValueError(f"{name}: expected 0..{end - 1}, got {value}")
    return _dominant_frequency(u[skip:, _probe_index(probe, pos), component], dt)


def strouhal_number(
    velocity: np.ndarray,
    mesh_pos: np.ndarray,
    *,
    probe: int | tuple[float, float],
    dt: float,
    diameter: float,
    velocity_scale: float,
    component: int = 1,
    skip: int = 0,
) -> float:
    """St = f D / U, f the shedding frequency at a probe (see `shedding_frequency`).

    Not `meshsim.solvers.strouhal_number`, which reads a solver's lift coefficient.
    `diameter` D > 0 is the obstacle size across the flow; `velocity_scale` U > 0 the
    mean inflow speed in the built-in data and the DFG benchmark (the free stream in
    the unconfined-cylinder literature). Returns nan where the frequency is.
    """
    diameter = _positive(diameter, "diameter")
    velocity_scale = _positive(velocity_scale, "velocity_scale")
    f = shedding_frequency(velocity, mesh_pos, probe=probe, dt=dt, component=component, skip=skip)
    return f * diameter / velocity_scale


class FlowParameters(NamedTuple):
    """What a Strouhal number needs, given or measured on the truth."""

    dt: float  # time between frames
    diameter: float  # obstacle height across the flow
    velocity_scale: float  # mean inflow speed
    probe: int  # probe node index


def flow_parameters(
    trajectory: Mapping[str, np.ndarray],
    meta: Mapping[str, Any] | None = None,
    *,
    dt: float | None = None,
    diameter: float | None = None,
    velocity_scale: float | None = None,
    probe: int | tuple[float, float] | None = None,
) -> FlowParameters:
    """dt, D, U and the probe for a cylinder-flow trajectory (the truth, not a rollout).

    Given values win. The built-in data (like MeshGraphNets' cylinder_flow) store
    neither D nor U: D and the probe come from `default_probe`, U from
    `inflow_mean_speed`; dt from `meta["dt"]` (0.01 for the built-in data).

    Args:
      trajectory: `mesh_pos [1, N, 2]` float, `velocity [T, N, 2]` float and, unless
        D, U and probe are all given, `node_type [1, N, 1]` int.
      meta: the dataset's meta.json dict, or None.
      dt: see `strouhal_number`.
      diameter: see `strouhal_number`.
      velocity_scale: see `strouhal_number`.
      probe: see `strouhal_number`.

    Raises:
      MissingFlowParameter: if dt, the obstacle or the inflow cannot be found.
    """
    if "mesh_pos" not in trajectory:
        raise ValueError(f"trajectory: expected a mesh_pos field, got {sorted(trajectory)}")
    pos, _ = _mesh(trajectory["mesh_pos"])
    if dt is None:
        dt = (meta or {}).get("dt")
        if dt is None:
            raise MissingFlowParameter("dt: expected an argument or meta['dt'], got neither")
        dt = float(np.asarray(dt).reshape(()))
    dt = _positive(dt, "dt")
    diameter = None if diameter is None else _positive(diameter, "diameter")
    velocity_scale = None if velocity_scale is None else _positive(velocity_scale, "velocity_scale")
    probe = None if probe is None else _probe_index(probe, pos)
    if None in (diameter, velocity_scale, probe):
        if trajectory.get("node_type") is None:
            raise MissingFlowParameter("node_type: needed to find the obstacle and inlet")
        types = trajectory["node_type"]
        if diameter is None or probe is None:
            found = default_probe(pos, types)
            diameter = found.diameter if diameter is None else diameter
            probe = found.node if probe is None else probe
        if velocity_scale is None:
            velocity_scale = inflow_mean_speed(trajectory["velocity"], pos, types)
    return FlowParameters(dt, diameter, velocity_scale, probe)
