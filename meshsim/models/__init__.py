"""Graph network models: the encode-process-decode machinery and its configurations."""

from meshsim.models.encode_process_decode import EncodeProcessDecode, count_params
from meshsim.models.meshgraphnet import MeshGraphNet, meshgraphnet_param_count

__all__ = ["EncodeProcessDecode", "MeshGraphNet", "count_params", "meshgraphnet_param_count"]
