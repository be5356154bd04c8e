"""Meshes: channels with obstacles and cloth sheets (2-D), and the sphere (lat-lon grids,
the icosahedral multimesh, grid↔mesh edges, regional refinement).

numpy/scipy/triangle only; nothing here imports jax (`WeatherMesh.graph` imports
meshsim.graph when it is called).
"""

from meshsim.meshes.channel import channel_mesh
from meshsim.meshes.cloth import cloth_mesh, cloth_world_pos
from meshsim.meshes.icosahedral_mesh import (
    IcosahedralMesh,
    icosahedral_hierarchy,
    icosahedron,
    multimesh_edges,
)
from meshsim.meshes.quality import MeshQuality, cell_angles, check_mesh, mesh_quality, signed_areas
from meshsim.meshes.regional import Refinement
from meshsim.meshes.sphere import (
    WeatherMesh,
    build_weather_mesh,
    cell_area_weights,
    containing_faces,
    gaussian_grid,
    grid2mesh_edges,
    grid_points,
    latlon_grid,
    latlon_to_xyz,
    mesh2grid_edges,
    weather_graph,
    xyz_to_latlon,
)
from meshsim.meshes.types import Ellipse, TriangleMesh

__all__ = [
    "Ellipse",
    "IcosahedralMesh",
    "MeshQuality",
    "Refinement",
    "TriangleMesh",
    "WeatherMesh",
    "build_weather_mesh",
    "cell_angles",
    "cell_area_weights",
    "channel_mesh",
    "check_mesh",
    "cloth_mesh",
    "cloth_world_pos",
    "containing_faces",
    "gaussian_grid",
    "grid2mesh_edges",
    "grid_points",
    "icosahedral_hierarchy",
    "icosahedron",
    "latlon_grid",
    "latlon_to_xyz",
    "mesh2grid_edges",
    "mesh_quality",
    "multimesh_edges",
    "signed_areas",
    "weather_graph",
    "xyz_to_latlon",
]
