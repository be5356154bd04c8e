"""Pairs of nodes by hop distance on a mesh graph: K-hop and dilated edges. Host side.

A wider receptive field without more message-passing steps (Garnier et al., "Training
Transformers for Mesh-Based Simulations", 2025, whose attention is masked by the mesh
adjacency widened by K-hop neighbourhoods and dilated sliding windows): join every
pair of nodes within K hops of each other (`k_hop_pairs`), or at hop distances d, 2d,
…, L·d only (`dilated_pairs`, the dilated window of a sequence carried over to a
mesh graph: the rings at multiples of d). Hop distance is the length of the
shortest path on the undirected graph of the given edges.

Breadth-first search from every node at once, as sparse boolean matrix products
(`scipy.sparse`): hop h's frontier is the previous frontier times the adjacency,
minus every node reached before. The cost is about the number of pairs found, so no
N × N matrix is ever formed (on a 2-D triangle mesh a node has about 3h(h + 1) nodes
within h hops).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from meshsim.validation import check_int


def _adjacency(senders: np.ndarray, receivers: np.ndarray, num_nodes: int):
    """[N, N] csr float32 symmetric 0/1 adjacency without self-loops."""
    from scipy import sparse

    s = np.asarray(senders, np.int64)
    r = np.asarray(receivers, np.int64)
    keep = s != r
    rows, cols = np.concatenate([r[keep], s[keep]]), np.concatenate([s[keep], r[keep]])
    a = sparse.csr_matrix(
        (np.ones(rows.size, np.float32), (rows, cols)), shape=(num_nodes, num_nodes)
    )
    a.data[:] = 1.0  # duplicates were summed
    return a


def hop_pairs(
    senders: np.ndarray, receivers: np.ndarray, num_nodes: int, hops: Iterable[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Ordered pairs of nodes whose hop distance lies in `hops`.

    Args:
      senders, receivers: [E] int edges of the graph (taken as undirected).
      num_nodes: N; indices lie in [0, N).
      hops: hop distances to keep, each ≥ 1 (1 gives the graph's own edges).

    Returns:
      (senders [P] int32, receivers [P] int32): both directions of every pair, sorted
      by receiver then sender, no self-pairs. Host side; O(pairs) time and memory.

    Raises:
      ValueError: a hop distance < 1, or an index out of range.
    """
    from scipy import sparse

    n = check_int("num_nodes", num_nodes, minimum=0)
    wanted = sorted({check_int("hops[]", h, minimum=1) for h in hops})
    senders, receivers = np.asarray(senders), np.asarray(receivers)
    for name, idx in (("senders", senders), ("receivers", receivers)):
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(
                f"{name}: expected indices in [0, {n}), got [{idx.min()}, {idx.max()}]"
            )
    if not wanted or n == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    adjacency = _adjacency(senders, receivers, n)
    frontier = sparse.identity(n, np.float32, format="csr")
    visited = frontier.copy()
    found_r, found_s = [], []
    for h in range(1, wanted[-1] + 1):
        reached = frontier @ adjacency
        reached.data[:] = 1.0
        reached = (reached - reached.multiply(visited)).tocsr()
        reached.eliminate_zeros()
        if reached.nnz == 0:
            break
        if h in wanted:
            r, s = reached.nonzero()  # row: where the search started (receiver)
            found_r.append(r)
            found_s.append(s)
        visited = visited + reached
        frontier = reached
    if not found_r:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    r, s = np.concatenate(found_r), np.concatenate(found_s)
    order = np.lexsort((s, r))
    return s[order].astype(np.int32), r[order].astype(np.int32)


def k_hop_pairs(
    senders: np.ndarray, receivers: np.ndarray, num_nodes: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs 2 to `k` hops apart (within K hops, not joined by an edge of the graph);
    empty for k = 1. See `hop_pairs`."""
    k = check_int("k_hop", k, minimum=1)
    return hop_pairs(senders, receivers, num_nodes, range(2, k + 1))


def dilated_pairs(
    senders: np.ndarray, receivers: np.ndarray, num_nodes: int, dilation: int, levels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs exactly d, 2d, …, levels·d hops apart (d = `dilation` ≥ 2). See `hop_pairs`."""
    d = check_int("dilation", dilation, minimum=2)
    levels = check_int("dilation_levels", levels, minimum=1)
    return hop_pairs(senders, receivers, num_nodes, [d * i for i in range(1, levels + 1)])


def global_pairs(num_nodes: int, num_global: int) -> tuple[np.ndarray, np.ndarray]:
    """(senders [N·G] int32, receivers [N·G] int32) from every node to every one of G
    global nodes (the reverse direction swaps them), sorted by receiver then sender."""
    n = check_int("num_nodes", num_nodes, minimum=0)
    g = check_int("global_nodes", num_global, minimum=0)
    receivers = np.repeat(np.arange(g, dtype=np.int32), n)
    senders = np.tile(np.arange(n, dtype=np.int32), g)
    return senders, receivers


def receptive_field_edge_counts(
    senders: np.ndarray,
    receivers: np.ndarray,
    num_nodes: int,
    *,
    k_hop: int = 1,
    dilation: int = 0,
    dilation_levels: int = 2,
    global_nodes: int = 0,
) -> dict[str, int]:
    """{"khop", "dilated", "global": directed edges} a mesh task's receptive-field
    options (`meshsim.tasks.MeshOptions`) add to a mesh with these edges; the global
    count is both directions (2·N·G). Host side, as `hop_pairs`."""
    k_hop = check_int("k_hop", k_hop, minimum=1)
    dilation = check_int("dilation", dilation, minimum=0)
    global_nodes = check_int("global_nodes", global_nodes, minimum=0)
    khop = k_hop_pairs(senders, receivers, num_nodes, k_hop)[0].size if k_hop > 1 else 0
    dilated = 0
    if dilation:
        dilated = dilated_pairs(senders, receivers, num_nodes, dilation, dilation_levels)[0].size
    return {"khop": int(khop), "dilated": int(dilated), "global": 2 * num_nodes * global_nodes}
