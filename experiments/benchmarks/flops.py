"""Closed-form FLOP counts of MeshGraphNet, from the architecture alone.

A dense layer `[rows, n_in] @ [n_in, n_out]` costs 2·n_in·n_out FLOPs per row
(one multiply and one add per weight). Edge MLPs run on E rows, node MLPs on N
rows. Only matmuls are counted: biases, ReLU, LayerNorm, gathers and the sum
aggregation are O(rows·L), a few percent of the O(rows·L²) matmuls at L = 128,
and are reported separately as `elementwise` (an estimate, not added in).

Two counts:
  * "paper" (model FLOPs, the useful work): the edge MLP's first layer multiplies
    the concatenation [e, v_s, v_r] of width 3L on every edge, as written in the
    paper and as PyG/jraph implementations execute it.
  * "executed" with the concat trick (what meshsim runs by default): the node
    parts are multiplied once per node, then gathered, so the first layer costs
    2·L·L per edge plus 2·(2L)·L per node instead of 2·(3L)·L per edge.
FLOP/s reported as "model FLOP/s" always divide the paper count by the time, so
a faster algorithm (the trick) shows up as more useful work per second, not as
fewer FLOPs. Training (forward + backward) is counted as 3x the forward: the
backward of each dense layer is two matmuls of the forward's size (input and
weight gradients). The Adam update is O(params) and is ignored.
"""

from __future__ import annotations


def _mlp(rows: int, n_in: int, hidden: int, layers: int, n_out: int) -> int:
    widths = [n_in] + [hidden] * layers + [n_out]
    return sum(2 * rows * a * b for a, b in zip(widths[:-1], widths[1:]))


def mgn_forward_flops(
    num_nodes: int,
    num_edges: int,
    *,
    node_in: int = 11,
    edge_in: int = 3,
    output_size: int = 2,
    latent: int = 128,
    hidden_layers: int = 2,
    steps: int = 15,
    concat_trick: bool = False,
) -> dict[str, int]:
    """Matmul FLOPs of one MeshGraphNet forward pass, by part.

    Args:
      num_nodes, num_edges: N and E (directed edges) of the graph.
      node_in, edge_in, output_size, latent, hidden_layers, steps: the architecture.
      concat_trick: count the first edge-MLP layer as split (see module docstring).

    Returns:
      {"encoder", "processor_edge", "processor_node", "decoder", "total",
       "elementwise"} in FLOPs (ints).
    """
    n, e, lat = num_nodes, num_edges, latent
    encoder = _mlp(n, node_in, lat, hidden_layers, lat) + _mlp(e, edge_in, lat, hidden_layers, lat)
    if concat_trick:
        # e @ W_e on E rows, then v @ W_s and v @ W_r on N rows; later layers as usual.
        first = 2 * e * lat * lat + 2 * 2 * n * lat * lat
        rest = _mlp(e, lat, lat, hidden_layers - 1, lat) if hidden_layers >= 1 else 0
        edge = first + rest
    else:
        edge = _mlp(e, 3 * lat, lat, hidden_layers, lat)
    node = _mlp(n, 2 * lat, lat, hidden_layers, lat)
    decoder = _mlp(n, lat, lat, hidden_layers, output_size)
    # Per step: bias+ReLU per hidden unit, LayerNorm (~8 ops/elt), residual, gathers
    # and the scatter-add: roughly 20 ops per latent element of each edge and node row.
    elementwise = steps * 20 * (e + n) * lat
    return {
        "encoder": encoder,
        "processor_edge": steps * edge,
        "processor_node": steps * node,
        "decoder": decoder,
        "total": encoder + steps * (edge + node) + decoder,
        "elementwise": elementwise,
    }


def mgn_train_flops(num_nodes: int, num_edges: int, **kwargs) -> int:
    """Forward + backward matmul FLOPs of one training step: 3x the forward total."""
    return 3 * mgn_forward_flops(num_nodes, num_edges, **kwargs)["total"]
