"""Typed graphs: node sets, edge sets naming their ends, padding, batching, conversions.

`typed` holds the pytrees (`NodeSet`, `EdgeSet`, `MultiGraph`) and validation;
`padding` the static-shape machinery (`PaddingBudget`, `pad`, `batch`,
`unbatch`); `convert` mesh cells → edges, jraph interop and shape templates; `window` one
example (a structure plus per-node fields) and its padding and stacking; `radius`
particles within a radius under `jit` (`radius_graph`). Cutting a
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
from meshsim.graph.radius import RadiusGraph, radius_graph, suggest_capacity
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
    "RadiusGraph",
    "batch",
    "bucket_size",
    "edge_set",
    "edges_from_cells",
    "from_jraph",
    "make_graph",
    "node_set",
    "pad",
    "placeholder_graph",
    "radius_graph",
    "suggest_capacity",
    "to_jraph",
    "unbatch",
    "unique_edges",
    "validate",
]
