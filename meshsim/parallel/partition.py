"""Spatial partitions of a typed graph into K parts with halos (graph parallelism). Host side.

One graph too large for a device is split across K devices. Every node is *owned*
by exactly one part; an edge belongs to the part that owns its receiver, so every
message into an owned node is computed where that node lives. A part also holds
a *halo*: the nodes owned elsewhere that send an edge to one of its owned nodes.
Halo latents go stale after each message-passing step and are refreshed from
their owners (`meshsim.parallel.graph_parallel`); everything else is local.

Parts come from recursive coordinate bisection of node positions
(`meshsim.parallel.bisection.partition_nodes`, re-exported here).

Every part's local graph is padded to one common `PaddingBudget`, so the K local
graphs stack on a leading `[K]` axis that `shard_map` splits over devices.
Local node order per node set: owned nodes (ascending global index), then halo
nodes (ascending global index), then padding (≥ 1 row); local edges keep their
global order, so per-receiver sums add the same terms in the same order.
Moving per-node and per-edge arrays between the global and the partitioned layout
(`scatter_fields`, `gather_outputs`) lives in `meshsim.parallel.partition_fields`; its
names are re-exported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

import jax
import numpy as np

from meshsim.graph.padding import PaddingBudget, pad
from meshsim.graph.typed import DEFAULT_NODE_SET, Array, MultiGraph, NodeSet
from meshsim.parallel.bisection import partition_nodes  # noqa: F401 (re-exported)
from meshsim.parallel.partition_fields import (  # noqa: F401 (re-exported)
    gather_outputs,
    scatter_edge_fields,
    scatter_fields,
)
from meshsim.validation import check_int

# ppermute pairs of one exchange round: ((source part, destination part), ...).
Round = tuple[tuple[int, int], ...]


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-n // multiple) * multiple)


# --------------------------------------------------------------------------- partitioned graph


class HaloTables(NamedTuple):
    """How one node set's halo rows are refreshed; every leaf has a leading `[K]` part axis.

    H = largest halo of a part (may be 0), B = largest send buffer (≥ 1), M_r = largest
    message of round r. `N_local` (an out-of-range row) marks padding slots, so
    writes to them are dropped.

    Fields:
      rows:      [K, H] int32 — local row of each halo slot; N_local for padding.
      owner:     [K, H] int32 — part that owns the slot's node; -1 for padding.
      owner_row: [K, H] int32 — the node's row in its owner's local layout; -1 for padding.
      send_rows: [K, B] int32 — owned rows a part puts in the all_gather buffer (its
                 nodes in any other part's halo, ascending global index); 0 for padding.
      send_slot: [K, H] int32 — position of the slot's node in its owner's send buffer
                 (the all_gather exchange reads `buffer[owner, send_slot]`); 0 for padding.
      rounds:    per ppermute round r, (send [K, M_r] int32 — owned rows a part sends,
                 0 for padding; recv [K, M_r] int32 — rows where a part writes what it
                 receives, N_local for padding). Pairs are `PartitionedGraph.rounds`.
    """

    rows: Array
    owner: Array
    owner_row: Array
    send_rows: Array
    send_slot: Array
    rounds: tuple[tuple[Array, Array], ...]


@dataclasses.dataclass(frozen=True)
class PartitionStats:
    """Sizes of a partition, per part (tuples of length K).

    Fields:
      owned:     {node set: nodes owned by each part}.
      halo:      {node set: halo nodes of each part}.
      boundary:  {node set: owned nodes of each part that some other part needs}.
      edges:     {edge set: edges of each part (by receiver)}.
      cut_edges: {edge set: edges whose sender and receiver are owned by different parts}.
    """

    owned: Mapping[str, tuple[int, ...]]
    halo: Mapping[str, tuple[int, ...]]
    boundary: Mapping[str, tuple[int, ...]]
    edges: Mapping[str, tuple[int, ...]]
    cut_edges: Mapping[str, int]

    def _sets(self, node_sets) -> list[str]:
        return sorted(self.owned) if node_sets is None else list(node_sets)

    def halo_fraction(self, node_sets: tuple[str, ...] | None = None) -> float:
        """Halo nodes / owned nodes, summed over parts and over `node_sets` (default all)."""
        names = self._sets(node_sets)
        owned = sum(sum(self.owned[k]) for k in names)
        return sum(sum(self.halo[k]) for k in names) / max(owned, 1)

    def halo_bytes(
        self, latent_size: int, node_sets: tuple[str, ...] | None = None, bytes_per_value: int = 4
    ) -> int:
        """Bytes one exchange moves between devices when each halo latent is sent once
        (the ppermute exchange): Σ halo nodes · latent_size · bytes_per_value."""
        halo = sum(sum(self.halo[k]) for k in self._sets(node_sets))
        return halo * latent_size * bytes_per_value

    def all_gather_bytes(
        self, latent_size: int, node_sets: tuple[str, ...] | None = None, bytes_per_value: int = 4
    ) -> int:
        """Bytes one all_gather exchange moves: every part receives every other part's
        padded send buffer, K · (K − 1) · max boundary · latent_size · bytes_per_value."""
        k = len(next(iter(self.owned.values())))
        names = self._sets(node_sets)
        rows = sum(max(self.boundary[n]) for n in names)
        return k * (k - 1) * rows * latent_size * bytes_per_value


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PartitionedGraph:
    """A graph split into K padded local graphs stacked on a leading part axis.

    A pytree (arrays are leaves; `rounds` and `num_parts` are static), so it can be an
    argument of a jitted function: its tables then stay buffers, not constants.

    Fields:
      graph:        MultiGraph whose every leaf has a leading [K] axis: part p's local
                    graph (owned + halo nodes, the edges into its owned nodes), padded to
                    one budget (N_local rows per node set, E_local per edge set, 2 graphs).
      parts:        {node set: [N_s] int32} the part owning each global node.
      global_index: {node set: [K, N_local] int32} global index of each local row; -1 for
                    padding rows.
      owned:        {node set: [K, N_local] bool} rows a part owns (each node once overall).
      owner_flat:   {node set: [N_s] int32} owner · N_local + owner's local row: the row
                    of each global node in the flattened [K · N_local] layout.
      edge_index:   {edge set: [K, E_local] int32} global index of each local edge; -1 for
                    padding edges.
      halo:         {node set: HaloTables} the exchange tables.
      rounds:       ((node set, (Round, ...)), ...) static ppermute pairs of each round
                    (`dict(rounds)` for a mapping).
      num_parts:    K (static).
    """

    graph: MultiGraph
    parts: Mapping[str, Array]
    global_index: Mapping[str, Array]
    owned: Mapping[str, Array]
    owner_flat: Mapping[str, Array]
    edge_index: Mapping[str, Array]
    halo: Mapping[str, HaloTables]
    rounds: tuple[tuple[str, tuple[Round, ...]], ...] = dataclasses.field(
        metadata=dict(static=True)
    )
    num_parts: int = dataclasses.field(metadata=dict(static=True))

    def num_local(self, node_set: str = DEFAULT_NODE_SET) -> int:
        """N_local: rows of each part's `node_set` (padding included)."""
        return int(self.global_index[node_set].shape[1])

    def replace(self, **changes) -> PartitionedGraph:
        return dataclasses.replace(self, **changes)

    def owned_graph(self) -> MultiGraph:
        """`graph` with node masks True only on owned rows: statistics over it (normalizers,
        losses) count each node once when summed over parts."""
        return self.graph.replace(
            node_sets={k: ns.replace(mask=self.owned[k]) for k, ns in self.graph.node_sets.items()}
        )

    def stats(self) -> PartitionStats:
        """Owned, halo, boundary and edge counts per part. Host side."""
        per_part = lambda a: tuple(int(c) for c in np.asarray(a).sum(1))
        owned = {k: per_part(v) for k, v in self.owned.items()}
        rows = {k: per_part(np.asarray(v) >= 0) for k, v in self.global_index.items()}
        boundary = {}
        for k, t in self.halo.items():
            owner, slot = np.asarray(t.owner), np.asarray(t.send_slot)
            boundary[k] = tuple(
                int(np.unique(slot[owner == q]).size) for q in range(self.num_parts)
            )
        cut, parts = {}, {k: np.asarray(v) for k, v in self.parts.items()}
        for e, es in self.graph.edge_sets.items():
            at = np.arange(self.num_parts)[:, None]
            sender = np.asarray(self.global_index[es.sender])[at, np.asarray(es.senders)]
            real = np.asarray(self.edge_index[e]) >= 0
            cut[e] = int((real & (parts[es.sender][sender] != at)).sum())
        return PartitionStats(
            owned=owned,
            halo={k: tuple(r - o for r, o in zip(rows[k], owned[k])) for k in owned},
            boundary=boundary,
            edges={e: per_part(np.asarray(v) >= 0) for e, v in self.edge_index.items()},
            cut_edges=cut,
        )


# --------------------------------------------------------------------------- construction


def validate_parts(graph: MultiGraph, parts, num_parts: int) -> dict[str, np.ndarray]:
    """{node set: [N_s] int32 part} from `parts` ([N] for a one-node-set graph, or a
    mapping), after checking it against a one-graph, unpadded `graph` (validated too).
    Host side. Raises ValueError / TypeError naming what is malformed."""
    k = check_int("num_parts", num_parts, minimum=1, expected="a positive int")
    if not isinstance(graph, MultiGraph):
        raise TypeError(f"graph: expected MultiGraph, got {type(graph).__name__}")
    graph.validate()
    masks_real = all(bool(np.asarray(ns.mask).all()) for ns in graph.node_sets.values())
    if graph.num_graphs != 1 or not masks_real:
        raise ValueError(
            f"graph: expected one unpadded graph (partition before padding), got "
            f"{graph.num_graphs} graphs{'' if masks_real else ' with padding nodes'}"
        )
    if not isinstance(parts, Mapping):
        if len(graph.node_sets) != 1:
            raise ValueError(
                f"parts: the graph has node sets {sorted(graph.node_sets)}; give "
                "{node set: [N_s] parts}"
            )
        parts = {next(iter(graph.node_sets)): parts}
    if sorted(parts) != sorted(graph.node_sets):
        raise ValueError(
            f"parts: expected node sets {sorted(graph.node_sets)}, got {sorted(parts)}"
        )
    checked = {}
    for name, p in parts.items():
        p = np.asarray(p)
        n = graph.num_nodes(name)
        if p.shape != (n,) or not np.issubdtype(p.dtype, np.integer):
            raise ValueError(
                f"parts[{name!r}]: expected shape ({n},) of ints, got {p.shape} {p.dtype}"
            )
        if n and (p.min() < 0 or p.max() >= k):
            raise ValueError(
                f"parts[{name!r}]: expected values in [0, {k}), got {p.min()}..{p.max()}"
            )
        checked[name] = p.astype(np.int32)
    return checked


def _halo_tables(s, parts, owned, halo, rank, n_local, k):
    """HaloTables and ppermute rounds of node set `s`."""
    part_of, rank_of = parts[s], rank[s]
    h_max = max(len(h) for h in halo[s])
    rows = np.full((k, h_max), n_local, np.int32)
    owner = np.full((k, h_max), -1, np.int32)
    owner_row = np.full((k, h_max), -1, np.int32)
    send_slot = np.zeros((k, h_max), np.int32)
    every_halo = np.unique(np.concatenate(halo[s])) if h_max else np.zeros(0, np.int64)
    boundary = [every_halo[part_of[every_halo] == q] for q in range(k)]
    send_rows = np.zeros((k, max(1, max(len(b) for b in boundary))), np.int32)
    slot_of = np.full(part_of.shape[0], -1, np.int64)
    for q, nodes in enumerate(boundary):
        send_rows[q, : len(nodes)] = rank_of[nodes]
        slot_of[nodes] = np.arange(len(nodes))
    for p, nodes in enumerate(halo[s]):
        n = len(nodes)
        rows[p, :n] = len(owned[s][p]) + np.arange(n)
        owner[p, :n] = part_of[nodes]
        owner_row[p, :n] = rank_of[nodes]
        send_slot[p, :n] = slot_of[nodes]
    # ppermute: round d carries, for every part q, what part (q + d) % K needs from q.
    pairs_of_rounds, arrays = [], []
    for d in range(1, k):
        need = {}
        for q in range(k):
            p = (q + d) % k
            from_q = np.flatnonzero(owner[p] == q)  # halo slots of p owned by q, by global index
            if from_q.size:
                need[q, p] = from_q
        if not need:
            continue
        width = max(v.size for v in need.values())
        send = np.zeros((k, width), np.int32)
        recv = np.full((k, width), n_local, np.int32)
        for (q, p), slots in need.items():
            send[q, : slots.size] = owner_row[p, slots]
            recv[p, : slots.size] = rows[p, slots]
        pairs_of_rounds.append(tuple(sorted(need)))
        arrays.append((send, recv))
    tables = HaloTables(rows, owner, owner_row, send_rows, send_slot, tuple(arrays))
    return tables, tuple(pairs_of_rounds)


def subgraph(
    graph: MultiGraph, node_rows: Mapping[str, np.ndarray], edge_rows: Mapping[str, np.ndarray]
) -> MultiGraph:
    """`graph` restricted to the given nodes and edges, renumbered: node set s's rows are
    `node_rows[s]` ([n_s] int global indices, in that order), edge set e's are
    `edge_rows[e]` ([m_e] int), whose senders and receivers must be among the kept nodes.
    One unpadded graph, every mask True. Host side (a part's local graph)."""
    to_local, node_sets = {}, {}
    for s, rows in node_rows.items():
        to_local[s] = np.full(graph.num_nodes(s), -1, np.int64)
        to_local[s][rows] = np.arange(rows.size)
        node_sets[s] = NodeSet(
            features=np.asarray(graph.node_sets[s].features)[rows],
            n_node=np.array([rows.size], np.int32),
            mask=np.ones(rows.size, bool),
        )
    edge_sets = {}
    for e, es in graph.edge_sets.items():
        idx = edge_rows[e]
        edge_sets[e] = es.replace(
            features=np.asarray(es.features)[idx],
            senders=to_local[es.sender][np.asarray(es.senders)[idx]].astype(np.int32),
            receivers=to_local[es.receiver][np.asarray(es.receivers)[idx]].astype(np.int32),
            n_edge=np.array([idx.size], np.int32),
            mask=np.ones(idx.size, bool),
        )
    return MultiGraph(node_sets=node_sets, edge_sets=edge_sets, graph_mask=np.ones(1, bool))


class _HaloPlan(NamedTuple):
    """Which nodes and edges each of K parts holds (`partition_graph` before its local
    graphs are built)."""

    names: list  # sorted node set names
    owned: dict  # {set: [K arrays of global nodes]}
    edges: dict  # {edge set: [K arrays of edges, by receiver]}
    halo: dict  # {set: [K arrays of the other parts' nodes each part's edges read]}


def _halo_plan(graph: MultiGraph, parts: dict[str, np.ndarray], k: int) -> _HaloPlan:
    """The `_HaloPlan` of validated `parts` (`validate_parts`). O(K · (N + E))."""
    names = sorted(graph.node_sets)
    owned = {s: [np.flatnonzero(parts[s] == p) for p in range(k)] for s in names}
    ends = {
        e: (np.asarray(es.senders, np.int64), np.asarray(es.receivers, np.int64))
        for e, es in graph.edge_sets.items()
    }
    edges = {
        e: [np.flatnonzero(parts[es.receiver][ends[e][1]] == p) for p in range(k)]
        for e, es in graph.edge_sets.items()
    }
    halo = {s: [] for s in names}
    for p in range(k):
        needed = {s: [np.zeros(0, np.int64)] for s in names}
        for e, es in graph.edge_sets.items():
            needed[es.sender].append(ends[e][0][edges[e][p]])
        for s in names:
            candidates = np.unique(np.concatenate(needed[s]))
            halo[s].append(candidates[parts[s][candidates] != p])
    return _HaloPlan(names, owned, edges, halo)


def _local_budget(plan: _HaloPlan, multiple: int = 8) -> PaddingBudget:
    """The local budgets of a plan's parts: the largest part's rows (owned + halo + 1
    padding row) per node set and edges per edge set, rounded up to `multiple`."""
    n_local = {
        s: _round_up(
            max(o.size + h.size for o, h in zip(plan.owned[s], plan.halo[s])) + 1, multiple
        )
        for s in plan.names
    }
    n_edge = {e: _round_up(max(x.size for x in v), multiple) for e, v in plan.edges.items()}
    return PaddingBudget(n_node=n_local, n_edge=n_edge, n_graph=2)


def partition_budget(
    graph: MultiGraph, parts: Array | Mapping[str, Array], num_parts: int, *, multiple: int = 8
) -> PaddingBudget:
    """The local budgets `partition_graph` gives these parts (n_node: each node set's
    local rows, halo and a padding row included; n_edge: each edge set's local edges),
    without building the local graphs: the common budget of several meshes is their
    budgets' largest. Host side, O(K · (N + E))."""
    k = check_int("num_parts", num_parts, minimum=1, expected="a positive int")
    parts = validate_parts(graph, parts, k)
    return _local_budget(_halo_plan(graph, parts, k), multiple)


def partition_graph(
    graph: MultiGraph,
    parts: Array | Mapping[str, Array],
    num_parts: int,
    *,
    multiple: int = 8,
    budget: PaddingBudget | None = None,
) -> PartitionedGraph:
    """Splits a graph into `num_parts` padded local graphs with halos and exchange tables.

    Args:
      graph: one unpadded graph (validated here), any node and edge sets.
      parts: [N] int part of each node of a one-node-set graph, or {node set: [N_s] int}
        (e.g. from `partition_nodes`), values in [0, num_parts).
      num_parts: K.
      multiple: local node and edge budgets are rounded up to a multiple of this.
      budget: local budgets of at least these sizes (n_node per node set, n_edge per
        edge set): one budget shared by the partitions of several meshes.

    Returns:
      A `PartitionedGraph`. Host side, O(K · (N + E)) time and memory.

    Raises:
      ValueError / TypeError: naming the argument that is malformed.
    """
    k = check_int("num_parts", num_parts, minimum=1, expected="a positive int")
    parts = validate_parts(graph, parts, k)
    return _partition_graph(graph, parts, k, _halo_plan(graph, parts, k), multiple, budget)


def _partition_graph(
    graph: MultiGraph,
    parts: dict[str, np.ndarray],
    k: int,
    plan: _HaloPlan,
    multiple: int = 8,
    budget: PaddingBudget | None = None,
) -> PartitionedGraph:
    """`partition_graph` of validated `parts` (`validate_parts`) and their plan."""
    names, owned, edges, halo = plan
    rank = {}
    for s in names:
        rank[s] = np.zeros(graph.num_nodes(s), np.int64)
        for p in range(k):
            rank[s][owned[s][p]] = np.arange(owned[s][p].size)
    budget = _local_budget(plan, multiple).at_least(budget)
    n_local, n_edge = budget.n_node, budget.n_edge

    global_index = {s: np.full((k, n_local[s]), -1, np.int32) for s in names}
    owned_mask = {s: np.zeros((k, n_local[s]), bool) for s in names}
    edge_index = {e: np.full((k, n_edge[e]), -1, np.int32) for e in graph.edge_sets}
    local_graphs = []
    for p in range(k):
        rows = {s: np.concatenate([owned[s][p], halo[s][p]]) for s in names}
        for s in names:
            global_index[s][p, : rows[s].size] = rows[s]
            owned_mask[s][p, : owned[s][p].size] = True
        for e in graph.edge_sets:
            edge_index[e][p, : edges[e][p].size] = edges[e][p]
        local = subgraph(graph, rows, {e: edges[e][p] for e in graph.edge_sets})
        local_graphs.append(pad(local, budget))
    stacked = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *local_graphs)

    tables, rounds = {}, {}
    for s in names:
        tables[s], rounds[s] = _halo_tables(s, parts, owned, halo, rank, n_local[s], k)
    return PartitionedGraph(
        graph=stacked,
        parts=parts,
        global_index=global_index,
        owned=owned_mask,
        owner_flat={s: (parts[s] * n_local[s] + rank[s]).astype(np.int32) for s in names},
        edge_index=edge_index,
        halo=tables,
        rounds=tuple(sorted(rounds.items())),
        num_parts=k,
    )
