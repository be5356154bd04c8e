"""Partitions of datasets whose trajectories lie on different meshes. Host side.

Graph parallelism (`meshsim.parallel.blocked`) and sequential partitions
(`meshsim.parallel.sequential`) cut a mesh into parts once, on the host, into
tables the compiled step reads. When every example shares one mesh, those tables
are constants of the step. When the trajectories have meshes of their own (the
built-in cylinder flow, MeshGraphNets' datasets), every distinct mesh is cut once
when the run starts (`MeshCatalog` finds them by `mesh_fingerprint`), and all of
their tables are padded to one common budget, so that every mesh's tables have the
same shapes. A batch then carries each example's tables in its structure's `parts`
field (`MultiGraph.parts`, `[B, ...]` like the rest of the stacked structure), and
the one compiled step reads them as inputs: no recompilation per mesh, and each
device holds only its own part's share of them.

Here: the fingerprint, the catalog, the common budgets and the padding of halo
exchange tables to them (`pad_halo_tables`, every ppermute round present, so that
the static round structure is the same for every mesh).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from meshsim.graph import MultiGraph, PaddingBudget
from meshsim.parallel.partition import HaloTables, Round


def mesh_fingerprint(graph: MultiGraph) -> bytes:
    """A digest of one example's mesh: per node set its real node count and real
    structure features; per edge set its ends and its real edges' senders, receivers
    and features (rows where the mask is False are left out, so a padded example and
    its unpadded structure give the same digest). Host side; O(N + E)."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(graph.node_sets):
        ns = graph.node_sets[name]
        mask = np.asarray(ns.mask, bool)
        digest.update(f"node:{name}:{int(mask.sum())}".encode())
        digest.update(np.ascontiguousarray(np.asarray(ns.features, np.float32)[mask]).tobytes())
    for name in sorted(graph.edge_sets):
        es = graph.edge_sets[name]
        mask = np.asarray(es.mask, bool)
        digest.update(f"edge:{name}:{es.sender}:{es.receiver}:{int(mask.sum())}".encode())
        for x, dtype in ((es.senders, np.int64), (es.receivers, np.int64)):
            digest.update(np.ascontiguousarray(np.asarray(x, dtype)[mask]).tobytes())
        digest.update(np.ascontiguousarray(np.asarray(es.features, np.float32)[mask]).tobytes())
    return digest.digest()


class MeshCatalog:
    """The distinct meshes of a dataset, each once, in order of first appearance.

    Attributes:
      meshes: [(structure, positions)] one unpadded structure and its cut positions
        ({node set: [N_s, D] float}) per distinct mesh.
      fingerprints: [bytes] their `mesh_fingerprint`s.
      index: {fingerprint: position in `meshes`}.
    """

    def __init__(self) -> None:
        self.meshes: list[tuple[MultiGraph, Any]] = []
        self.fingerprints: list[bytes] = []
        self.index: dict[bytes, int] = {}

    def add(self, structure: MultiGraph, positions: Callable[[], Any]) -> int:
        """The mesh number of `structure`; a new mesh is recorded with `positions()`
        (called only then)."""
        key = mesh_fingerprint(structure)
        if key not in self.index:
            self.index[key] = len(self.meshes)
            self.meshes.append((structure, positions()))
            self.fingerprints.append(key)
        return self.index[key]

    def __len__(self) -> int:
        return len(self.meshes)


def example_meshes(graph: MultiGraph, index: dict[bytes, int]) -> list[int]:
    """[B] the catalog number of each example's mesh in a stacked batch structure
    (leaves [B, ...]). Raises ValueError naming the first example whose mesh was not
    partitioned."""
    if graph.graph_mask.ndim != 2:
        raise ValueError("batch: expected a structure stacked per example ([B, ...] leaves)")
    out, host = [], jax.tree_util.tree_map(np.asarray, graph.replace(parts=None))
    for b in range(graph.graph_mask.shape[0]):
        example = jax.tree_util.tree_map(lambda x, b=b: x[b], host)
        key = mesh_fingerprint(example)
        if key not in index:
            raise ValueError(
                f"batch: example {b} lies on a mesh that was not partitioned (the parts are "
                f"cut once per mesh of the training trajectories; {len(index)} meshes known)"
            )
        out.append(index[key])
    return out


def stack(trees: Sequence[Any]) -> Any:
    """Pytrees of equal structure and shapes stacked on a new leading axis (numpy)."""
    return jax.tree_util.tree_map(lambda *xs: np.stack(xs), *trees)


def common_budget(budgets: Sequence[PaddingBudget]) -> PaddingBudget:
    """The smallest budget at least as large as each of `budgets` (same sets in all)."""
    return functools.reduce(PaddingBudget.at_least, budgets)


def full_rounds(k: int) -> tuple[Round, ...]:
    """Every ppermute round of K parts: round d (1 ≤ d < K) sends part q to (q + d) % K."""
    return tuple(tuple((q, (q + d) % k) for q in range(k)) for d in range(1, k))


def _round_distance(pairs: Round, k: int) -> int:
    source, destination = pairs[0]
    return (destination - source) % k


def table_widths(
    tables: Sequence[HaloTables], rounds: Sequence[tuple[Round, ...]], k: int
) -> tuple[int, int, list[int]]:
    """(H, B, [M_d for d = 1..K−1]): the largest halo, send buffer and round-d message
    over several meshes' tables of one node set (`rounds`: each mesh's pairs)."""
    halo = max(int(np.shape(t.rows)[1]) for t in tables)
    send = max(int(np.shape(t.send_rows)[1]) for t in tables)
    widths = [1] * max(k - 1, 0)
    for t, pairs in zip(tables, rounds):
        for round_pairs, (send_rows, _) in zip(pairs, t.rounds):
            d = _round_distance(round_pairs, k)
            widths[d - 1] = max(widths[d - 1], int(np.shape(send_rows)[1]))
    return halo, send, widths


def pad_halo_tables(
    t: HaloTables,
    pairs: tuple[Round, ...],
    *,
    k: int,
    n_local: int,
    halo: int,
    send: int,
    widths: Sequence[int],
) -> HaloTables:
    """One mesh's `HaloTables` of one node set padded to common widths (`table_widths`)
    with every round of `full_rounds(k)`: padding halo slots write to row `n_local`
    (dropped), padding sends read row 0 and are written nowhere. The exchange gives the
    same halo rows as the unpadded tables."""

    def wider(x, width, value):
        x = np.asarray(x)
        return np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=value)

    by_distance = {
        _round_distance(p, k): arrays for p, arrays in zip(pairs, t.rounds)
    }  # d -> (send [K, M], recv [K, M])
    rounds = []
    for d, width in enumerate(widths, start=1):
        send_rows, recv_rows = by_distance.get(
            d, (np.zeros((k, 0), np.int32), np.zeros((k, 0), np.int32))
        )
        rounds.append((wider(send_rows, width, 0), wider(recv_rows, width, n_local)))
    return HaloTables(
        rows=wider(t.rows, halo, n_local),
        owner=wider(t.owner, halo, -1),
        owner_row=wider(t.owner_row, halo, -1),
        send_rows=wider(t.send_rows, send, 0),
        send_slot=wider(t.send_slot, halo, 0),
        rounds=tuple(rounds),
    )


__all__ = [
    "MeshCatalog",
    "common_budget",
    "example_meshes",
    "full_rounds",
    "mesh_fingerprint",
    "pad_halo_tables",
    "stack",
    "table_widths",
]
