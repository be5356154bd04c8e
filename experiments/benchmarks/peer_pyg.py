"""Peer: the same MeshGraphNet in PyTorch Geometric on CPU torch.

Written the way PhysicsNeMo's PyG path writes MeshGraphNet, with MeshGraphNets'
message rule: an edge block runs an MLP on `cat([e, x[src], x[dst]])` (the
message); a node block sums the messages over receivers with PyG's
`scatter(..., reduce="sum")` (a `scatter_add_`/`index_add_` underneath, no
torch_scatter), runs an MLP on `cat([x, agg])` and adds the residual; then the edge
residual; MLPs are Linear/ReLU with a final LayerNorm (eps 1e-5, MeshGraphNets',
as meshsim's); the graph is a
`torch_geometric.data.Data`. Optimizer: `torch.optim.Adam(lr=1e-4)`.

`concat_trick=True` is the network as PhysicsNeMo's best users write it: the edge
MLP's first Linear on `cat[e, x_src, x_dst]` split into its three column blocks,
the two node ones applied to the N node latents before the gather,
`e W_e + (x W_s)[src] + (x W_d)[dst] + b`, and the node MLP's first Linear on
`cat[x, agg]` split the same way, `x W_x + agg W_a + b`. The weights are the
unsplit Linears' (split at call time), so the function is the same; only the
arithmetic is reordered (fewer FLOPs, no [E, 3L] concatenation). `compile_mode`
runs the model under `torch.compile` (static shapes; the training step's
backward is compiled with it by AOTAutograd, Adam stays eager).

torch and torch_geometric are imported by this module only; they live in the
optional `bench` extra.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from meshsim.graph import MultiGraph

LAYER_NORM_EPS = 1e-5  # MeshGraphNets' (Sonnet's) LayerNorm, as meshsim.nn


class MLP(nn.Module):
    def __init__(self, n_in: int, hidden: int, hidden_layers: int, n_out: int, layer_norm: bool):
        super().__init__()
        widths = [n_in] + [hidden] * hidden_layers + [n_out]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(a, b))
        if layer_norm:
            layers.append(nn.LayerNorm(n_out, eps=LAYER_NORM_EPS))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MeshEdgeBlock(nn.Module):
    """The message m = MLP(cat[e, x_src, x_dst]) (the residual comes after the node block)."""

    def __init__(self, latent: int, hidden_layers: int):
        super().__init__()
        self.mlp = MLP(3 * latent, latent, hidden_layers, latent, True)

    def forward(self, efeat: torch.Tensor, nfeat: torch.Tensor, graph: Data) -> torch.Tensor:
        src, dst = graph.edge_index
        return self.mlp(torch.cat([efeat, nfeat[src], nfeat[dst]], dim=1))


def split_first_layer(
    first: nn.Linear, efeat: torch.Tensor, nfeat: torch.Tensor, src: torch.Tensor, dst: torch.Tensor
) -> torch.Tensor:
    """`first(cat[efeat, nfeat[src], nfeat[dst]])` computed as PhysicsNeMo's concat trick.

    first: Linear(3L, L), weight [L, 3L] = [W_e | W_s | W_d]. efeat [E, L] and nfeat
    [N, L] float32, src/dst [E] int64. Returns [E, L] float32: the node products are
    taken on the N nodes, then gathered (one [N, 2L] product for both ends).
    """
    latent = nfeat.shape[1]
    w_e, w_s, w_d = first.weight.split(latent, dim=1)
    nodes = nfeat @ torch.cat([w_s, w_d], dim=0).T  # [N, 2L]
    return efeat @ w_e.T + nodes[src, :latent] + nodes[dst, latent:] + first.bias


class TrickEdgeBlock(MeshEdgeBlock):
    """MeshEdgeBlock's message with the first layer split (`split_first_layer`)."""

    def forward(self, efeat: torch.Tensor, nfeat: torch.Tensor, graph: Data) -> torch.Tensor:
        src, dst = graph.edge_index
        return self.mlp.net[1:](split_first_layer(self.mlp.net[0], efeat, nfeat, src, dst))


class MeshNodeBlock(nn.Module):
    """x' = x + MLP(cat[x, Σ_{edges into x} m]), summing the edge MLP's messages."""

    def __init__(self, latent: int, hidden_layers: int):
        super().__init__()
        self.mlp = MLP(2 * latent, latent, hidden_layers, latent, True)

    def forward(self, efeat: torch.Tensor, nfeat: torch.Tensor, graph: Data) -> torch.Tensor:
        _, dst = graph.edge_index
        agg = scatter(efeat, dst, dim=0, dim_size=nfeat.shape[0], reduce="sum")
        return nfeat + self.update(nfeat, agg)

    def update(self, nfeat: torch.Tensor, agg: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([nfeat, agg], dim=1))


class TrickNodeBlock(MeshNodeBlock):
    """MeshNodeBlock with the first layer split: `x W_x + agg W_a + b`, no [N, 2L] concatenation."""

    def update(self, nfeat: torch.Tensor, agg: torch.Tensor) -> torch.Tensor:
        first = self.mlp.net[0]  # Linear(2L, L): weight [L, 2L] = [W_x | W_a]
        w_x, w_a = first.weight.split(nfeat.shape[1], dim=1)
        return self.mlp.net[1:](nfeat @ w_x.T + agg @ w_a.T + first.bias)


class PyGMeshGraphNet(nn.Module):
    """Encoder, `steps` (edge block, node block) pairs with unshared weights, decoder."""

    def __init__(
        self,
        node_in: int,
        edge_in: int,
        output_size: int,
        *,
        latent: int = 128,
        hidden_layers: int = 2,
        steps: int = 15,
        concat_trick: bool = False,
    ):
        super().__init__()
        edge_block, node_block = (
            (TrickEdgeBlock, TrickNodeBlock) if concat_trick else (MeshEdgeBlock, MeshNodeBlock)
        )
        self.encoder_node = MLP(node_in, latent, hidden_layers, latent, True)
        self.encoder_edge = MLP(edge_in, latent, hidden_layers, latent, True)
        self.edge_blocks = nn.ModuleList(edge_block(latent, hidden_layers) for _ in range(steps))
        self.node_blocks = nn.ModuleList(node_block(latent, hidden_layers) for _ in range(steps))
        self.decoder = MLP(latent, latent, hidden_layers, output_size, False)

    def forward(self, graph: Data) -> torch.Tensor:
        x = self.encoder_node(graph.x)
        e = self.encoder_edge(graph.edge_attr)
        for edge_block, node_block in zip(self.edge_blocks, self.node_blocks):
            m = edge_block(e, x, graph)
            x = node_block(m, x, graph)
            e = e + m
        return self.decoder(x)


def to_pyg(graph: MultiGraph, edge_set: str = "mesh") -> Data:
    """A `Data(x, edge_attr, edge_index)` view of one edge set (int64 indices, as PyG wants)."""
    es = graph.edge_sets[edge_set]
    edge_index = np.stack([np.asarray(es.senders), np.asarray(es.receivers)]).astype(np.int64)
    return Data(
        x=torch.from_numpy(np.asarray(graph.node_sets["mesh"].features, np.float32).copy()),
        edge_attr=torch.from_numpy(np.asarray(es.features, np.float32).copy()),
        edge_index=torch.from_numpy(edge_index),
    )


def _load_mlp(mlp: MLP, p: dict, index: int | None = None) -> None:
    take = (lambda a: np.asarray(a)[index]) if index is not None else np.asarray
    kernels = [take(p["linear_0_kernel"])]
    biases = [take(p["linear_0_bias"])]
    i = 1
    while f"linear_{i}" in p:
        kernels.append(take(p[f"linear_{i}"]["kernel"]))
        biases.append(take(p[f"linear_{i}"]["bias"]))
        i += 1
    linears = [m for m in mlp.net if isinstance(m, nn.Linear)]
    norms = [m for m in mlp.net if isinstance(m, nn.LayerNorm)]
    if len(linears) != len(kernels):
        raise ValueError(f"params: expected {len(linears)} dense layers, got {len(kernels)}")
    with torch.no_grad():
        for lin, k, b in zip(linears, kernels, biases):
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(k.T, np.float32)))
            lin.bias.copy_(torch.tensor(np.asarray(b, np.float32)))
        if norms:
            norms[0].weight.copy_(torch.tensor(take(p["layer_norm"]["scale"]).astype(np.float32)))
            norms[0].bias.copy_(torch.tensor(take(p["layer_norm"]["bias"]).astype(np.float32)))


def load_meshsim_params(model: PyGMeshGraphNet, params: dict, *, edge_set: str = "mesh") -> None:
    """Copies a meshsim MeshGraphNet parameter tree into `model` in place."""
    p = params["params"]
    _load_mlp(model.encoder_node, p["encoder_node_mesh"])
    _load_mlp(model.encoder_edge, p[f"encoder_edge_{edge_set}"])
    _load_mlp(model.decoder, p["decoder_mesh"])
    for k, (eb, nb) in enumerate(zip(model.edge_blocks, model.node_blocks)):
        _load_mlp(eb.mlp, p["processor"][f"edge_{edge_set}"], k)
        _load_mlp(nb.mlp, p["processor"]["node_mesh"], k)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    err = ((pred - target) ** 2).sum(dim=-1)
    return (err * mask).sum() / mask.sum().clamp(min=1.0)


def compiled(model: PyGMeshGraphNet, mode: str | None):
    """`model` itself (mode None: eager) or `torch.compile(model, mode=mode, dynamic=False)`.

    mode: None, "default" or another `torch.compile` mode ("max-autotune-no-cudagraphs").
    Static shapes (`dynamic=False`): each graph size gets its own specialised kernels,
    as a user training on one mesh gets. The module keeps its parameters (the compiled
    wrapper shares them), so `load_meshsim_params` and the optimizer act on `model`.
    """
    if mode is None:
        return model
    return torch.compile(model, mode=None if mode == "default" else mode, dynamic=False)


def make_train_step(model: PyGMeshGraphNet, lr: float = 1e-4, net=None):
    """train_step(graph, target, mask) -> loss (float): forward, loss, backward, Adam.

    net: what runs the forward (`compiled(model, mode)`); `model` when None.
    """
    net = model if net is None else net
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def train_step(graph: Data, target: torch.Tensor, mask: torch.Tensor) -> float:
        opt.zero_grad(set_to_none=True)
        loss = masked_mse(net(graph), target, mask)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return train_step


def make_rollout_step(net):
    """rollout_step(graph) -> graph with velocity advanced by the predicted Δ (no grad).

    net: the model or `compiled(model, mode)`.
    """

    def rollout_step(graph: Data) -> Data:
        with torch.inference_mode():
            delta = net(graph)
            x = torch.cat([graph.x[:, :2] + delta, graph.x[:, 2:]], dim=1)
        return Data(x=x, edge_attr=graph.edge_attr, edge_index=graph.edge_index)

    return rollout_step
