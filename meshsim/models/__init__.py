"""Graph network models: the staged encode-process-decode machinery and its configurations."""

from meshsim.attention import TransformerBlock
from meshsim.models.encode_process_decode import EncodeProcessDecode, Stage, count_params
from meshsim.models.graphcast import GraphCast, graphcast_param_count, graphcast_stages
from meshsim.models.meshgraphnet import MeshGraphNet, meshgraphnet_param_count
from meshsim.nn import InteractionBlock

MODELS = {"meshgraphnet": MeshGraphNet, "graphcast": GraphCast}
# Processor blocks by the name a config gives (`model.block`).
BLOCKS = {"interaction": InteractionBlock, "transformer": TransformerBlock}


def get_block(name: str) -> type:
    """A processor block class by registry name (see BLOCKS); raises ValueError listing
    the valid names."""
    if name not in BLOCKS:
        raise ValueError(f"model.block: expected one of {sorted(BLOCKS)}, got {name!r}")
    return BLOCKS[name]


def get_model(name: str, **kwargs) -> EncodeProcessDecode:
    """A model by registry name (see MODELS); raises ValueError listing the valid names."""
    if name not in MODELS:
        raise ValueError(f"model.name: expected one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name](**kwargs)


__all__ = [
    "BLOCKS",
    "MODELS",
    "EncodeProcessDecode",
    "GraphCast",
    "MeshGraphNet",
    "Stage",
    "count_params",
    "get_block",
    "get_model",
    "graphcast_param_count",
    "graphcast_stages",
    "meshgraphnet_param_count",
]
