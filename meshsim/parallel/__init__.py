"""Running on several devices: device meshes, placement, graph partitions, processes.

`sharding` names the device-mesh axes and builds the shardings of batches and train
states; `placement` puts a run on one device, a data × graph mesh under `jit`, or
`pmap`; `bisection` assigns nodes to parts; `partition` cuts a graph into parts with
halos and `partition_fields` moves arrays between the global and the partitioned
layout; `partition_cache` keeps each mesh's parts on disk beside its dataset;
`graph_parallel` runs the staged network on the parts under `shard_map` with halo
exchange; `blocked` splits every example over the graph devices (the layout
`parallel.graph` trains in); `sequential` runs the network on parts with K-hop halos
one after another on one device (less activation memory); `distributed` starts
`jax.distributed` for several processes.
"""

from meshsim.parallel.partition import (
    HaloTables,
    PartitionedGraph,
    PartitionStats,
    partition_budget,
    partition_graph,
    partition_nodes,
    validate_parts,
)
from meshsim.parallel.partition_cache import PartitionCache
from meshsim.parallel.partition_fields import gather_outputs, scatter_edge_fields, scatter_fields
from meshsim.parallel.placement import Placement, make_placement

__all__ = [
    "HaloTables",
    "PartitionCache",
    "PartitionStats",
    "PartitionedGraph",
    "Placement",
    "gather_outputs",
    "make_placement",
    "partition_budget",
    "partition_graph",
    "partition_nodes",
    "scatter_edge_fields",
    "scatter_fields",
    "validate_parts",
]
