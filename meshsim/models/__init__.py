"""Graph network models: the staged encode-process-decode machinery and its configurations."""

from meshsim.models.encode_process_decode import EncodeProcessDecode, Stage, count_params
from meshsim.models.graphcast import GraphCast, graphcast_param_count, graphcast_stages
from meshsim.models.meshgraphnet import MeshGraphNet, meshgraphnet_param_count

MODELS = {"meshgraphnet": MeshGraphNet, "graphcast": GraphCast}


def get_model(name: str, **kwargs) -> EncodeProcessDecode:
    """A model by registry name (see MODELS); raises ValueError listing the valid names."""
    if name not in MODELS:
        raise ValueError(f"model.name: expected one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name](**kwargs)


__all__ = [
    "MODELS",
    "EncodeProcessDecode",
    "GraphCast",
    "MeshGraphNet",
    "Stage",
    "count_params",
    "get_model",
    "graphcast_param_count",
    "graphcast_stages",
    "meshgraphnet_param_count",
]
