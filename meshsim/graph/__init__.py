"""Typed graphs: node sets, edge sets naming their ends, padding, batching, conversions.

`typed` holds the pytrees (`NodeSet`, `EdgeSet`, `MultiGraph`) and validation;
`padding` the static-shape machinery (`PaddingBudget`, `pad`, `batch`,
`unbatch`); `convert` mesh cells → edges, jraph interop and shape templates; `window` one
example (a structure plus per-node fields) and its padding and stacking. Cutting a
graph into parts lives in `meshsim.parallel`.
"""

from meshsim.graph.convert import (
    edges_from_cells,
    from_jraph,
    placeholder_graph,
    to_jraph,
    unique_edges,
)
from meshsim.graph.padding import PaddingBudget, batch, bucket_size, pad, unbatch
from meshsim.graph.typed import (
    DEFAULT_NODE_SET,
    EdgeSet,
    GraphFeatures,
    MultiGraph,
    NodeSet,
    edge_set,
    make_graph,
    node_set,
    validate,
)

__all__ = [
    "DEFAULT_NODE_SET",
    "EdgeSet",
    "GraphFeatures",
    "MultiGraph",
    "NodeSet",
    "PaddingBudget",
    "batch",
    "bucket_size",
    "edge_set",
    "edges_from_cells",
    "from_jraph",
    "make_graph",
    "node_set",
    "pad",
    "placeholder_graph",
    "to_jraph",
    "unbatch",
    "unique_edges",
    "validate",
]
