"""meshsim: learned physics simulation on meshes and weather-style grids, in JAX."""

from importlib.metadata import PackageNotFoundError, version

from meshsim.attention import TransformerBlock
from meshsim.graph import (
    EdgeSet,
    MultiGraph,
    NodeSet,
    PaddingBudget,
    batch,
    edges_from_cells,
    from_jraph,
    make_graph,
    pad,
    to_jraph,
    unbatch,
)
from meshsim.models import (
    EncodeProcessDecode,
    GraphCast,
    MeshGraphNet,
    Stage,
    count_params,
    get_model,
)
from meshsim.nn import InteractionBlock
from meshsim.node_types import NUM_NODE_TYPES, NodeType
from meshsim.simulator import Simulator

try:
    __version__ = version("meshsim")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "NUM_NODE_TYPES",
    "EdgeSet",
    "EncodeProcessDecode",
    "GraphCast",
    "InteractionBlock",
    "MeshGraphNet",
    "MultiGraph",
    "NodeSet",
    "NodeType",
    "PaddingBudget",
    "Simulator",
    "Stage",
    "TransformerBlock",
    "__version__",
    "batch",
    "count_params",
    "edges_from_cells",
    "from_jraph",
    "get_model",
    "make_graph",
    "pad",
    "to_jraph",
    "unbatch",
]
