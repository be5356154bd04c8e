"""Typed graphs: node sets, edge sets naming their ends, padding, batching, conversions.

`typed` holds the pytrees (`NodeSet`, `EdgeSet`, `MultiGraph`) and validation;
`padding` the static-shape machinery (`PaddingBudget`, `pad`, `batch`,
`unbatch`); `convert` mesh cells → edges, jraph interop and shape templates;
`partition` spatial parts with halos for graph parallelism (`PartitionedGraph`) and
`partition_fields` arrays between the global and the partitioned layout.
"""

from meshsim.graph.convert import (
    edges_from_cells,
    from_jraph,
    placeholder_graph,
    to_jraph,
    unique_edges,
)
from meshsim.graph.padding import PaddingBudget, batch, bucket_size, pad, unbatch
from meshsim.graph.partition import (
    HaloTables,
    PartitionedGraph,
    PartitionStats,
    partition_graph,
    partition_nodes,
    validate_parts,
)
from meshsim.graph.partition_fields import gather_outputs, scatter_edge_fields, scatter_fields
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
    "HaloTables",
    "MultiGraph",
    "NodeSet",
    "PaddingBudget",
    "PartitionStats",
    "PartitionedGraph",
    "batch",
    "bucket_size",
    "edge_set",
    "edges_from_cells",
    "from_jraph",
    "gather_outputs",
    "make_graph",
    "node_set",
    "pad",
    "partition_graph",
    "partition_nodes",
    "placeholder_graph",
    "scatter_edge_fields",
    "scatter_fields",
    "to_jraph",
    "unbatch",
    "unique_edges",
    "validate",
    "validate_parts",
]
