"""2-D meshes for the built-in data: channels with obstacles and cloth sheets.

numpy/scipy/triangle only; nothing here imports jax.
"""

from meshsim.meshes.channel import channel_mesh
from meshsim.meshes.cloth import cloth_mesh, cloth_world_pos
from meshsim.meshes.quality import MeshQuality, cell_angles, check_mesh, mesh_quality, signed_areas
from meshsim.meshes.types import Ellipse, TriangleMesh

__all__ = [
    "Ellipse",
    "MeshQuality",
    "TriangleMesh",
    "cell_angles",
    "channel_mesh",
    "check_mesh",
    "cloth_mesh",
    "cloth_world_pos",
    "mesh_quality",
    "signed_areas",
]
