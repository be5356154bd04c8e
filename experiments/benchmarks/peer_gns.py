"""Peer: GNS (Sanchez-Gonzalez et al. 2020) in PyTorch Geometric on CPU torch.

Written as PyG users write GNS: the radius graph is rebuilt every step with
`torch_cluster.radius_graph` (both directions, no self loops), node inputs are the
C most recent velocities, the clipped distances to the box walls over R and the
one-hot particle type; edge inputs are the relative displacement over R and its
norm; features are standardised with fixed statistics (GNS and LagrangeBench use
dataset statistics). The network is peer_pyg's MeshGraphNet blocks (an edge MLP on
`cat[e, x_src, x_dst]`, PyG's `scatter(reduce="sum")` into receivers, a node MLP on
`cat[x, agg]`, LayerNorm eps 1e-5, residuals on nodes and edges), or with
`concat_trick=True` PhysicsNeMo's split first edge layer (`e W_e + (x W_s)[src] +
(x W_d)[dst]`, the same weights, fewer FLOPs). Loss: mean over particles of the
squared error of the normalised acceleration, summed over axes; Adam.

torch and torch_geometric are imported by this module only; they live in the optional
`bench` extra. torch_cluster is not in it (a source build, ~25 min on 2 cores, that
needs `pip install --no-build-isolation torch-cluster` after torch): without it the
search falls back to scipy's k-d tree (`search_backend()` says which ran).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from experiments.benchmarks.peer_pyg import MLP, MeshNodeBlock, _load_mlp, split_first_layer

# torch_cluster's default `max_num_neighbors` is 32, which silently drops pairs at
# GNS densities; GNS ports raise it. The benchmark checks nothing was dropped.
MAX_NUM_NEIGHBORS = 128


class TrickEdgeBlock(nn.Module):
    """m = MLP(cat[e, x_src, x_dst]) with the first layer split (PhysicsNeMo's concat trick)."""

    def __init__(self, latent: int, hidden_layers: int):
        super().__init__()
        self.latent = latent
        self.mlp = MLP(3 * latent, latent, hidden_layers, latent, True)

    def forward(self, efeat: torch.Tensor, nfeat: torch.Tensor, edge_index) -> torch.Tensor:
        src, dst = edge_index
        return self.mlp.net[1:](split_first_layer(self.mlp.net[0], efeat, nfeat, src, dst))


class CatEdgeBlock(nn.Module):
    """m = MLP(cat[e, x_src, x_dst]), the concatenation materialised per edge."""

    def __init__(self, latent: int, hidden_layers: int):
        super().__init__()
        self.mlp = MLP(3 * latent, latent, hidden_layers, latent, True)

    def forward(self, efeat: torch.Tensor, nfeat: torch.Tensor, edge_index) -> torch.Tensor:
        src, dst = edge_index
        return self.mlp(torch.cat([efeat, nfeat[src], nfeat[dst]], dim=1))


class _Graph:
    """The one attribute peer_pyg's node block reads (`edge_index`)."""

    def __init__(self, edge_index: torch.Tensor):
        self.edge_index = edge_index  # [2, E] int64: (senders, receivers)


class GNS(nn.Module):
    """Encoder, `steps` (edge block, node block) pairs with unshared weights, decoder."""

    def __init__(
        self,
        node_in: int,
        edge_in: int,
        output_size: int,
        *,
        latent: int,
        hidden_layers: int,
        steps: int,
        concat_trick: bool = False,
    ):
        super().__init__()
        block = TrickEdgeBlock if concat_trick else CatEdgeBlock
        self.encoder_node = MLP(node_in, latent, hidden_layers, latent, True)
        self.encoder_edge = MLP(edge_in, latent, hidden_layers, latent, True)
        self.edge_blocks = nn.ModuleList(block(latent, hidden_layers) for _ in range(steps))
        self.node_blocks = nn.ModuleList(MeshNodeBlock(latent, hidden_layers) for _ in range(steps))
        self.decoder = MLP(latent, latent, hidden_layers, output_size, False)

    def forward(
        self, nodes: torch.Tensor, edges: torch.Tensor, edge_index: torch.Tensor
    ) -> torch.Tensor:
        """nodes [N, node_in], edges [E, edge_in] float32, edge_index [2, E] int64 -> [N, out]."""
        x = self.encoder_node(nodes)
        e = self.encoder_edge(edges)
        graph = _Graph(edge_index)
        for edge_block, node_block in zip(self.edge_blocks, self.node_blocks):
            m = edge_block(e, x, edge_index)
            x = node_block(m, x, graph)
            e = e + m
        return self.decoder(x)


def load_meshsim_params(model: GNS, params: dict, *, node_set: str, edge_set: str) -> None:
    """Copies a meshsim MeshGraphNet parameter tree (one node set, one edge set) into `model`."""
    p = params["params"]
    _load_mlp(model.encoder_node, p[f"encoder_node_{node_set}"])
    _load_mlp(model.encoder_edge, p[f"encoder_edge_{edge_set}"])
    _load_mlp(model.decoder, p[f"decoder_{node_set}"])
    for k, (eb, nb) in enumerate(zip(model.edge_blocks, model.node_blocks)):
        _load_mlp(eb.mlp, p["processor"][f"edge_{edge_set}"], k)
        _load_mlp(nb.mlp, p["processor"][f"node_{node_set}"], k)


def search_backend() -> str:
    """ "torch_cluster" when it imports, else "scipy cKDTree" (the fallback below)."""
    try:
        import torch_cluster  # noqa: F401
    except ImportError:
        return "scipy cKDTree"
    return "torch_cluster"


def radius_graph(x: torch.Tensor, radius: float) -> torch.Tensor:
    """[2, E] int64 (senders, receivers): every ordered pair within `radius`, no self loops.

    `torch_cluster.radius_graph` when installed. Without it (its PyPI release is a
    source build; PyG 2.8's own `radius_graph` needs pyg-lib, which is not on PyPI),
    what GNS code without torch_cluster does: scipy's k-d tree on the CPU.
    """
    try:
        import torch_cluster
    except ImportError:
        from scipy.spatial import cKDTree

        pairs = cKDTree(x.detach().numpy()).query_pairs(radius, output_type="ndarray")
        both = np.concatenate([pairs, pairs[:, ::-1]]).T  # [2, E]
        return torch.from_numpy(np.ascontiguousarray(both, dtype=np.int64))
    return torch_cluster.radius_graph(
        x, r=radius, loop=False, max_num_neighbors=MAX_NUM_NEIGHBORS, flow="source_to_target"
    )


class Inputs:
    """GNS inputs of one frame, computed inside the step as GNS code does.

    Fields:
      history: [N, C + 1, D] float32 positions at t−C .. t.
      target_position: [N, D] float32 position at t + 1.
      one_hot: [N, T] float32 particle types.
      lo, hi: [D] float32 box bounds; radius: R.
      stats: {"nodes", "edges", "output"} -> (mean [F], std [F]) float32 tensors.
    """

    def __init__(self, history, target_position, one_hot, lo, hi, radius, stats):
        self.history, self.target_position, self.one_hot = history, target_position, one_hot
        self.lo, self.hi, self.radius, self.stats = lo, hi, radius, stats

    def build(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(normalised nodes [N, F], normalised edges [E, D + 1], edge_index [2, E],
        normalised target acceleration [N, D])."""
        x = self.history[:, -1]
        velocities = torch.diff(self.history, dim=1).flatten(1)  # [N, C·D]
        walls = torch.cat([x - self.lo, self.hi - x], dim=1) / self.radius
        nodes = torch.cat([velocities, walls.clamp(-1.0, 1.0), self.one_hot], dim=1)
        edge_index = radius_graph(x, self.radius)
        rel = (x[edge_index[0]] - x[edge_index[1]]) / self.radius
        edges = torch.cat([rel, rel.norm(dim=1, keepdim=True)], dim=1)
        accel = self.target_position - 2 * x + self.history[:, -2]
        (nm, ns), (em, es), (om, os_) = (self.stats[k] for k in ("nodes", "edges", "output"))
        return (nodes - nm) / ns, (edges - em) / es, edge_index, (accel - om) / os_


def make_train_step(model: nn.Module, inputs: Inputs, lr: float):
    """train_step() -> loss: radius graph + features, forward, loss, backward, Adam."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def train_step() -> float:
        opt.zero_grad(set_to_none=True)
        nodes, edges, edge_index, target = inputs.build()
        loss = ((model(nodes, edges, edge_index) - target) ** 2).sum(dim=1).mean()
        loss.backward()
        opt.step()
        return float(loss.detach())

    return train_step


def forward(model: nn.Module, inputs: Inputs) -> tuple[np.ndarray, int]:
    """([N, D] normalised network output, number of edges) without gradients."""
    with torch.inference_mode():
        nodes, edges, edge_index, _ = inputs.build()
        return model(nodes, edges, edge_index).numpy().copy(), int(edge_index.shape[1])
