"""GraphCast (Lam et al., Science 2023) as a configuration of EncodeProcessDecode.

The typed graph has node sets `grid` (lat-lon points, many channels) and `mesh`
(multimesh vertices, structural features) and edge sets `grid2mesh`, `mesh`
(the multimesh, both directions) and `mesh2grid`. The network runs the
grid→mesh block once (updating mesh nodes), the multimesh block K times with
unshared weights (16 in the paper), and the mesh→grid block once (updating grid
nodes), then decodes on `grid`. Every MLP has one hidden layer, swish and
LayerNorm (none on the decoder); latent 512. The graph structure is an input
like any other: built once by the caller and passed (or closed over), never
copied per example.
"""

from __future__ import annotations

from meshsim.models.encode_process_decode import EncodeProcessDecode, Stage

GRID, MESH = "grid", "mesh"
GRID2MESH, MESH2GRID = "grid2mesh", "mesh2grid"


def graphcast_stages(mesh_steps: int = 16) -> tuple[Stage, ...]:
    """grid2mesh ×1 → mesh ×`mesh_steps` (unshared) → mesh2grid ×1."""
    return (
        Stage((GRID2MESH,), steps=1, name="grid2mesh"),
        Stage((MESH,), steps=mesh_steps, name="processor"),
        Stage((MESH2GRID,), steps=1, name="mesh2grid"),
    )


class GraphCast(EncodeProcessDecode):
    """GraphCast's encoder-processor-decoder; `num_message_passing_steps` is the mesh depth.

    Paper configuration: `GraphCast(output_size=C)` (latent 512, 16 mesh steps, one
    hidden layer per MLP, swish). Small ones override keywords:
    `GraphCast(output_size=C, latent_size=32, num_message_passing_steps=2)`.
    """

    output_node_set: str = GRID
    latent_size: int = 512
    num_message_passing_steps: int = 16
    mlp_hidden_layers: int = 1
    activation: str = "swish"

    def default_stages(self) -> tuple[Stage, ...]:
        return graphcast_stages(self.num_message_passing_steps)
