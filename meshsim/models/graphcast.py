"""GraphCast (Lam et al., Science 2023) as a configuration of EncodeProcessDecode.

The typed graph has node sets `grid` (lat-lon points, many channels) and `mesh`
(multimesh vertices: zeros of the grid's input width, then structural features, as
DeepMind's code builds them; `meshsim.tasks.WeatherTask`) and edge sets
`grid2mesh`, `mesh` (the multimesh, both directions) and `mesh2grid`. The network
runs the grid→mesh block once (updating mesh nodes from their messages and grid
nodes from themselves), the multimesh block K times with unshared weights (16 in
the paper), and the mesh→grid block once (updating grid nodes from their messages;
its mesh-node MLP, as in DeepMind's code, feeds nothing after it), then decodes on
`grid`. Every MLP has one hidden layer, swish and LayerNorm (none on the decoder);
latent 512. The graph structure is an input like any other: built once by the
caller and passed (or closed over), never copied per example.
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


def graphcast_param_count(
    *,
    grid_inputs: int,
    mesh_inputs: int,
    edge_inputs: int = 4,
    output_size: int,
    latent: int = 512,
    hidden_layers: int = 1,
    mesh_steps: int = 16,
) -> int:
    """Closed-form parameter count of `GraphCast` (weights + biases + LayerNorm), equal
    to DeepMind's implementation for the same widths.

    With M(i, o, ln) the parameters of an MLP i → L (×`hidden_layers`) → o (plus 2o
    for LayerNorm): embedders M(grid_inputs, L) + M(mesh_inputs, L) + 3·M(edge_inputs,
    L); grid2mesh and mesh2grid each M(3L, L) + M(2L, L) + M(L, L) (edges, the
    receiving node set, the node set that only sends); each mesh step M(3L, L) +
    M(2L, L); decoder M(L, output_size) without LayerNorm.
    """

    def mlp(n_in: int, n_out: int, layer_norm: bool = True) -> int:
        widths = [n_in] + [latent] * hidden_layers + [n_out]
        dense = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
        return dense + (2 * n_out if layer_norm else 0)

    embed = mlp(grid_inputs, latent) + mlp(mesh_inputs, latent) + 3 * mlp(edge_inputs, latent)
    step = mlp(3 * latent, latent) + mlp(2 * latent, latent)
    bipartite = step + mlp(latent, latent)
    return embed + 2 * bipartite + mesh_steps * step + mlp(latent, output_size, False)
