"""Lagrangian particles (GNS: Sanchez-Gonzalez et al., "Learning to Simulate Complex
Physics with Graph Networks", ICML 2020), with edges rebuilt from the state every step.

The state is the particle positions `position [N, D]`; the network predicts the
acceleration and a semi-implicit Euler step integrates it (v_{t+1} = v_t + a,
x_{t+1} = x_t + v_{t+1}, i.e. x_{t+1} = 2x_t − x_{t−1} + a, the base class's
second-order rule). Inputs (GNS Sec. 3 and App. C.1):

* node features: the C = `history_size` most recent velocities (finite differences
  of C + 1 positions), the distance to each side of the box clipped at the
  connectivity radius R (divided by R, per axis and side; 0 on periodic axes), the
  one-hot particle type (a one-hot through the encoder's first linear layer is
  GNS's learned type embedding), and with wall segments (`walls`) the distance to
  the nearest segment over R and the unit normal from it, both zero beyond R;
* `particles` edges: every pair within R, rebuilt inside the step from the current
  positions (`meshsim.graph.radius_graph`, minimum image across periodic axes);
  features: relative displacement over R and its norm.

Particle types whose motion is prescribed (walls made of particles, a moving lid:
`kinematic_types`) are inputs only: they take their true positions each step, sit
outside the loss and get no noise. Training noise is GNS's random walk: velocity
noise of std σ/√C per step accumulated over the C input velocities, the target
corrected so the network learns the true next position from the noisy history.

Window fields (on node set `particles`): `position [N, D]`, `prev|position [N, D]`,
`history|position [N, C − 1, D]` (times t−C .. t−2), `particle_type [N] int32`,
`target|position [N, D]`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.diagnostics import ParticleDiagnostics
from meshsim.graph import EdgeSet, MultiGraph, node_set, radius_graph
from meshsim.options import Validated, setting
from meshsim.tasks.base import Fields, Task
from meshsim.tasks.walls import closest_points, nearest_segment
from meshsim.tasks.world_edges import dynamic_edge_counts

PARTICLES = "particles"  # the node set and the dynamic edge set of a particle task
WALLS = "walls"  # wall segments: a node set, and the wall-contact edge set from it
NUM_PARTICLE_TYPES = 9  # one-hot width: LagrangeBench's ids and DeepMind's (≤ 8)
_CAPACITY_FRAMES = 16  # frames sampled per trajectory to size the edge capacity


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParticleOptions(Validated):
    """The particle task's own settings (`task.options.*` in a config).

    `history_size`: C, input velocities (5 in GNS); `radius`: connectivity radius
    (0: the dataset's `default_connectivity_radius`); `capacity_margin`: edge
    capacity over the most pairs seen in the data (the host grows it and recompiles
    when a step needs more, and says so in the log); `contain`: keep predicted
    positions inside the container (see `ParticleTask.container`).
    """

    _section = "task.options"

    history_size: int = setting(5, ge=1)
    radius: float = setting(0.0, ge=0)
    capacity_margin: float = setting(1.25, ge=1)
    contain: bool = True


def minimum_image(rel: jax.Array, box: jax.Array, periodic: Sequence[bool]) -> jax.Array:
    """[..., D] displacements wrapped to the nearest periodic image on periodic axes."""
    if not any(periodic):
        return rel
    wrapped = rel - box * jnp.round(rel / box)
    return jnp.where(jnp.asarray(periodic), wrapped, rel)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParticleTask(Task):
    """GNS on particles whose edges are rebuilt from the positions inside every step.

    Attributes:
      dim: D, 2 or 3.
      radius: R, the connectivity radius.
      bounds: ((lo, hi),) * D, the box.
      periodic: (bool,) * D, periodic axes.
      kinematic_types: particle types whose positions are prescribed.
      history_size: C, input velocities.
      walls: (((x, y), (x, y)), ...) wall segments [S, 2, D] (empty: the box only).
      capacity_margin: edge capacity over the most pairs seen in the data.
      contain: clip predicted positions to the container (`container`), as a solver's
        wall boundary condition would: no particle leaks through a wall, whatever
        the network predicts. Off, only the network keeps particles in.
    """

    diagnostics = ParticleDiagnostics

    dim: int = 2
    radius: float = 0.015
    bounds: tuple[tuple[float, float], ...] = ((0.0, 1.0), (0.0, 1.0))
    periodic: tuple[bool, ...] = (False, False)
    kinematic_types: tuple[int, ...] = (1, 2)
    history_size: int = 5
    walls: tuple = ()
    capacity_margin: float = 1.25
    contain: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.dim not in (2, 3):
            raise ValueError(f"dim: expected 2 or 3, got {self.dim}")
        if not (isinstance(self.radius, int | float) and math.isfinite(self.radius)) or (
            self.radius <= 0
        ):
            raise ValueError(f"radius: expected a finite number > 0, got {self.radius!r}")
        if len(self.bounds) != self.dim or any(lo >= hi for lo, hi in self.bounds):
            raise ValueError(f"bounds: expected {self.dim} pairs (lo < hi), got {self.bounds}")
        if len(self.periodic) != self.dim:
            raise ValueError(f"periodic: expected {self.dim} bools, got {self.periodic}")
        if self.history_size < 1:
            raise ValueError(f"history_size: expected ≥ 1, got {self.history_size}")
        if self.walls and np.shape(self.walls)[1:] != (2, self.dim):
            raise ValueError(
                f"walls: expected segments [S, 2, {self.dim}], got {np.shape(self.walls)}"
            )

    # ------------------------------------------------------------------ the graph

    @property
    def wall_features(self) -> int:
        """Width of the wall-segment node features (0 without segments)."""
        return 1 + self.dim if self.walls else 0

    @property
    def node_feature_sizes(self) -> dict[str, int]:
        width = self.history_size * self.dim + 2 * self.dim + self.wall_features
        sizes = {self.node_set: width + NUM_PARTICLE_TYPES}
        if self.walls:  # a segment: its vector over R and its length over R
            sizes[WALLS] = self.dim + 1
        return sizes

    @property
    def edge_types(self) -> dict[str, tuple[str, str, int]]:
        types = {PARTICLES: (self.node_set, self.node_set, self.dim + 1)}
        if self.walls:  # nearest point of the segment − particle, over R, and its norm
            types[WALLS] = (WALLS, self.node_set, self.dim + 1)
        return types

    @property
    def dynamic_edge_sets(self) -> tuple[str, ...]:
        return (PARTICLES, WALLS) if self.walls else (PARTICLES,)

    @property
    def structure_fields(self) -> tuple[str, ...]:
        return ("position", "particle_type")

    @property
    def history(self) -> int:
        return self.history_size

    def edge_capacity(self, positions: np.ndarray) -> int:
        """Directed edges to reserve for `positions [T, N, D]`: the most pairs within R
        on up to 16 evenly spaced frames, times `capacity_margin`. Host side (scipy)."""
        from scipy.spatial import cKDTree

        positions = np.asarray(positions, np.float64)
        frames = np.unique(np.linspace(0, positions.shape[0] - 1, _CAPACITY_FRAMES).astype(int))
        lo = np.array([b[0] for b in self.bounds])
        size = np.array([b[1] - b[0] for b in self.bounds])
        most = 0
        for t in frames:
            x = positions[t]
            if any(self.periodic):  # cKDTree wraps every axis of boxsize: open ones get room
                box = np.where(self.periodic, size, size + 4 * self.radius + np.ptp(x, axis=0))
                tree = cKDTree(np.mod(x - lo, box), boxsize=box)
            else:
                tree = cKDTree(x)
            most = max(most, 2 * len(tree.query_pairs(self.radius)))
        return max(1, int(math.ceil(most * self.capacity_margin)))

    def structure(self, trajectory: Mapping[str, np.ndarray]) -> MultiGraph:
        """N particles and a `particles` edge set of `edge_capacity` masked slots (the
        step fills them). Host side."""
        position = np.asarray(trajectory["position"])
        if position.ndim != 3 or position.shape[-1] != self.dim:
            raise ValueError(f"position: expected [T, N, {self.dim}], got {position.shape}")
        num = position.shape[1]
        capacity = self.edge_capacity(position)
        slots = np.full(capacity, num - 1, np.int32)
        edges = EdgeSet(
            features=np.zeros((capacity, 0), np.float32),
            senders=slots,
            receivers=slots.copy(),
            n_edge=np.array([capacity], np.int32),
            mask=np.zeros(capacity, bool),
            sender=self.node_set,
            receiver=self.node_set,
        )
        node_sets = {self.node_set: node_set(np.zeros((num, 0), np.float32))}
        edge_sets = {PARTICLES: edges}
        if self.walls:  # one wall-contact slot per particle: its nearest segment
            node_sets[WALLS] = node_set(np.zeros((len(self.walls), 0), np.float32))
            edge_sets[WALLS] = EdgeSet(
                features=np.zeros((num, 0), np.float32),
                senders=np.zeros(num, np.int32),
                receivers=np.arange(num, dtype=np.int32),
                n_edge=np.array([num], np.int32),
                mask=np.zeros(num, bool),
                sender=WALLS,
                receiver=self.node_set,
            )
        return MultiGraph(node_sets=node_sets, edge_sets=edge_sets, graph_mask=np.ones(1, bool))

    def partition_positions(self, trajectory, structure):
        raise ValueError(
            f"task {self.name!r}: graph parallelism cuts a fixed graph into parts once, but "
            "particle edges are rebuilt every step; use parallel.data instead of parallel.graph"
        )

    def dynamic_structure(
        self, fields: Fields, structure: MultiGraph
    ) -> tuple[MultiGraph, dict[str, jax.Array]]:
        """`structure` with the `particles` edges of the current positions (real edges
        counted in the first graph, the empty slots in the padding graph), and the
        directed pairs within R. Jit-safe."""
        edges = structure.edge_sets[PARTICLES]
        mask = structure.node_sets[self.node_set].mask
        found = radius_graph(
            fields[self.state_field],
            self.radius,
            capacity=edges.num_edges,
            box=self.bounds,
            periodic=self.periodic,
            node_mask=mask,
            fill=mask.shape[0] - 1,
        )
        real = jnp.sum(found.mask.astype(jnp.int32))
        rebuilt = edges.replace(
            senders=found.senders,
            receivers=found.receivers,
            mask=found.mask,
            n_edge=dynamic_edge_counts(edges, real),
        )
        needed = jnp.where(found.cell_overflow, edges.num_edges + 1, found.count)
        edge_sets = {**structure.edge_sets, PARTICLES: rebuilt}
        demand = {PARTICLES: needed.astype(jnp.int32)}
        if self.walls:
            edge_sets[WALLS] = self._wall_contacts(fields, structure)
            demand[WALLS] = edge_sets[WALLS].n_edge[0]
        return structure.replace(edge_sets=edge_sets), demand

    def _wall_contacts(self, fields: Fields, structure: MultiGraph) -> EdgeSet:
        """Slot k: particle k's nearest segment → particle k, real when closer than R
        (never more edges than particles, so never an overflow)."""
        edges = structure.edge_sets[WALLS]
        node_mask = structure.node_sets[self.node_set].mask
        particles, walls = node_mask.shape[0], structure.node_sets[WALLS].mask.shape[0]
        distance, _, nearest = nearest_segment(
            fields[self.state_field], jnp.asarray(self.walls, jnp.float32)
        )
        slot = jnp.arange(edges.num_edges)
        particle = jnp.minimum(slot, particles - 1)
        real = (slot < particles) & node_mask[particle] & (distance[particle] < self.radius)
        count = jnp.sum(real.astype(jnp.int32))
        n_edge = dynamic_edge_counts(edges, count)
        return edges.replace(
            senders=jnp.where(real, nearest[particle], walls - 1).astype(jnp.int32),
            receivers=jnp.where(real, particle, particles - 1).astype(jnp.int32),
            mask=real,
            n_edge=n_edge,
        )

    def positions_history(self, fields: Fields) -> jax.Array:
        """[N, C + 1, D] positions at t−C .. t."""
        parts = [fields[f"prev|{self.state_field}"][:, None], fields[self.state_field][:, None]]
        if self.history_size > 1:
            parts.insert(0, fields[f"history|{self.state_field}"])
        return jnp.concatenate(parts, axis=1)

    def _box(self) -> tuple[jax.Array, jax.Array]:
        lo = jnp.asarray([b[0] for b in self.bounds], jnp.float32)
        hi = jnp.asarray([b[1] for b in self.bounds], jnp.float32)
        return lo, hi

    def build_graph(self, fields: Fields, structure: MultiGraph) -> MultiGraph:
        history = self.positions_history(fields)  # [N, C + 1, D]
        lo, hi = self._box()
        velocities = minimum_image(jnp.diff(history, axis=1), hi - lo, self.periodic)
        x = fields[self.state_field]
        open_axes = jnp.asarray([not p for p in self.periodic], jnp.float32)
        to_walls = jnp.concatenate([x - lo, hi - x], axis=-1) / self.radius  # [N, 2D]
        parts = [
            velocities.reshape(x.shape[0], -1),
            jnp.clip(to_walls, -1.0, 1.0) * jnp.tile(open_axes, 2),
        ]
        if self.walls:
            distance, normal, _ = nearest_segment(x, jnp.asarray(self.walls, jnp.float32))
            near = (distance < self.radius)[:, None]
            parts.append(jnp.where(near, distance[:, None] / self.radius, 1.0))
            parts.append(jnp.where(near, normal, 0.0))
        kind = jax.nn.one_hot(fields["particle_type"], NUM_PARTICLE_TYPES, dtype=jnp.float32)
        nodes = jnp.concatenate([*parts, kind], axis=-1)
        edges = structure.edge_sets[PARTICLES]
        rel = minimum_image(x[edges.senders] - x[edges.receivers], hi - lo, self.periodic)
        rel = rel / self.radius
        zero = jnp.all(rel == 0, axis=-1, keepdims=True)  # padding: gradient 0, not NaN
        norm = jnp.linalg.norm(jnp.where(zero, 1.0, rel), axis=-1, keepdims=True)
        features = jnp.concatenate([rel, jnp.where(zero, 0.0, norm)], axis=-1)
        features = jnp.where(edges.mask[:, None], features, 0.0)
        node_sets = {
            **structure.node_sets,
            self.node_set: structure.node_sets[self.node_set].replace(features=nodes),
        }
        edge_sets = {**structure.edge_sets, PARTICLES: edges.replace(features=features)}
        if self.walls:
            node_sets[WALLS], edge_sets[WALLS] = self._wall_features(x, structure)
        return structure.replace(node_sets=node_sets, edge_sets=edge_sets)

    def _wall_features(self, x: jax.Array, structure: MultiGraph):
        """(wall node set, wall-contact edge set) with features (module doc)."""
        segments = jnp.asarray(self.walls, jnp.float32)  # [S, 2, D]
        walls = structure.node_sets[WALLS]
        vector = (segments[:, 1] - segments[:, 0]) / self.radius
        length = jnp.linalg.norm(vector, axis=-1, keepdims=True)
        own = jnp.concatenate([vector, length], axis=-1)  # [S, D + 1]
        pad = walls.mask.shape[0] - own.shape[0]
        nodes = jnp.concatenate([own, jnp.zeros((pad, own.shape[1]))]) * walls.mask[:, None]
        edges = structure.edge_sets[WALLS]
        closest, _ = closest_points(x[edges.receivers], segments)  # [E, S, D]
        nearest = jnp.take_along_axis(closest, edges.senders[:, None, None] % len(self.walls), 1)
        rel = (nearest[:, 0] - x[edges.receivers]) / self.radius
        features = jnp.concatenate([rel, jnp.linalg.norm(rel, axis=-1, keepdims=True)], -1)
        features = jnp.where(edges.mask[:, None], features, 0.0)
        return walls.replace(features=nodes), edges.replace(features=features)

    # ------------------------------------------------------------------ host side

    def static_fields(self, trajectory: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        kind = np.asarray(trajectory["particle_type"]).reshape(-1).astype(np.int32)
        if kind.size and (kind.min() < 0 or kind.max() >= NUM_PARTICLE_TYPES):
            raise ValueError(
                f"particle_type: expected ids in 0..{NUM_PARTICLE_TYPES - 1}, "
                f"got {kind.min()}..{kind.max()}"
            )
        return {"particle_type": kind}

    def input_fields(self, trajectory: Mapping[str, np.ndarray], t: int) -> dict[str, np.ndarray]:
        state = trajectory[self.state_field]
        fields = {
            self.state_field: np.asarray(state[t], np.float32),
            f"prev|{self.state_field}": np.asarray(state[t - 1], np.float32),
        }
        if self.history_size > 1:
            past = np.asarray(state[t - self.history_size : t - 1], np.float32)
            fields[f"history|{self.state_field}"] = past.swapaxes(0, 1)  # [N, C − 1, D]
        return fields

    # ------------------------------------------------------------------ jit side

    def simulated_mask(self, fields: Fields) -> jax.Array:
        kind = fields["particle_type"]
        mask = jnp.ones(kind.shape, bool)
        for t in self.kinematic_types:
            mask = mask & (kind != t)
        return mask

    def add_noise(self, fields: Fields, rng: jax.Array, node_mask: jax.Array) -> dict:
        """GNS's random-walk noise on the C input velocities (std σ/√C per step), the
        positions moved by its running sum (the oldest not at all); the target moves
        with the newest position, so the network learns the true next position."""
        if self.noise_std == 0.0:
            return dict(fields)
        history = self.positions_history(fields)  # [N, C + 1, D]
        num, steps, dim = history.shape[0], self.history_size, history.shape[-1]
        step_std = self.noise_std / math.sqrt(steps)
        walk = jnp.cumsum(step_std * jax.random.normal(rng, (num, steps, dim)), axis=1)
        noise = jnp.concatenate([jnp.zeros((num, 1, dim)), walk], axis=1)  # [N, C + 1, D]
        keep = (self.simulated_mask(fields) & node_mask)[:, None, None]
        noisy = history + jnp.where(keep, noise, 0.0)
        name = self.state_field
        out = dict(fields)
        out[name] = noisy[:, -1]
        out[f"prev|{name}"] = noisy[:, -2]
        if self.history_size > 1:
            out[f"history|{name}"] = noisy[:, :-2]
        out[f"target|{name}"] = fields[f"target|{name}"] + jnp.where(keep[:, 0], noise[:, -1], 0.0)
        return out

    def advance(self, fields: Fields, next_state: jax.Array, prescribed: jax.Array) -> dict:
        out = super().advance(fields, next_state, prescribed)
        if self.history_size > 1:
            history = fields[f"history|{self.state_field}"]
            previous = fields[f"prev|{self.state_field}"][:, None]
            out[f"history|{self.state_field}"] = jnp.concatenate([history[:, 1:], previous], 1)
        return out

    @property
    def container(self) -> tuple[np.ndarray, np.ndarray]:
        """([D] lower, [D] upper) corner of the region particles stay in: the extent of
        the wall segments (a container such as a tank), else the box; ±inf on periodic
        axes."""
        if self.walls:
            points = np.asarray(self.walls, np.float64).reshape(-1, self.dim)
            lo, hi = points.min(axis=0), points.max(axis=0)
        else:
            lo, hi = (np.array([b[i] for b in self.bounds], np.float64) for i in (0, 1))
        periodic = np.asarray(self.periodic)
        return np.where(periodic, -np.inf, lo), np.where(periodic, np.inf, hi)

    def integrate(self, fields: Fields, output: jax.Array) -> jax.Array:
        """Semi-implicit Euler, then (`contain`) the position clipped to the container."""
        position = super().integrate(fields, output)
        if not self.contain:
            return position
        lo, hi = self.container
        return jnp.clip(position, lo.astype(np.float32), hi.astype(np.float32))

    def plot_scalar(self, states: np.ndarray) -> tuple[np.ndarray, str]:
        return np.linalg.norm(states, axis=-1), "|position|"


def particle_task(
    *,
    meta: Mapping[str, Any] | None = None,
    noise_std: float = 3e-4,
    noise_gamma: float = 0.0,
    history_size: int = 5,
    radius: float = 0.0,
    capacity_margin: float = 1.25,
    contain: bool = True,
) -> ParticleTask:
    """The GNS task for a particle dataset, its geometry read from `meta["particles"]`
    (bounds, periodicity, radius, kinematic types, wall segments).

    Raises:
      ValueError: `meta` has no `particles` section (not a particle dataset).
    """
    info = (meta or {}).get("particles")
    if not isinstance(info, Mapping):
        raise ValueError(
            "task 'particles': the dataset's meta.json has no 'particles' section (bounds, "
            "radius, ...): expected a particle dataset (meshsim generate dam_break, or "
            "meshsim convert of a LagrangeBench / learning_to_simulate dataset)"
        )
    dim = int(info["dim"])
    walls = info.get("walls") or {}
    segments = walls.get("segments") if isinstance(walls, Mapping) else None
    return ParticleTask(
        name="particles",
        state_field="position",
        order=2,
        output_size=dim,
        node_set=PARTICLES,
        noise_std=noise_std,
        noise_gamma=noise_gamma,
        lagrangian=True,
        dim=dim,
        radius=float(radius or info["radius"]),
        bounds=tuple((float(lo), float(hi)) for lo, hi in info["bounds"]),
        periodic=tuple(bool(p) for p in info.get("periodic", [False] * dim))[:dim],
        kinematic_types=tuple(int(k) for k in info.get("kinematic_types", ())),
        history_size=history_size,
        walls=tuple(tuple(tuple(float(v) for v in p) for p in s) for s in segments or ()),
        capacity_margin=capacity_margin,
        contain=contain,
    )
