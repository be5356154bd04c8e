"""MeshGraphNets node-type enum, shared by meshes, tasks and data."""

import enum

NUM_NODE_TYPES = 9  # one-hot width used by the MeshGraphNets datasets


class NodeType(enum.IntEnum):
    """Node types as stored in the `node_type [1, N, 1] int32` field."""

    NORMAL = 0
    OBSTACLE = 1
    AIRFOIL = 2
    HANDLE = 3
    INFLOW = 4
    OUTFLOW = 5
    WALL_BOUNDARY = 6
