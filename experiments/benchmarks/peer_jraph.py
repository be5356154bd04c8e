"""Peer: the same MeshGraphNet written the straightforward jraph way.

`jraph.GraphMapFeatures` encodes; the processor is `num_message_passing_steps`
separate `jraph.GraphNetwork` layers applied in an unrolled Python loop, each
with update functions that run a flax MLP on concatenated inputs (edge:
[e, v_s, v_r] gives the message m, node: [v, Σ m] plus the residual), then the edge
residual e + m (MeshGraphNets' rule; LayerNorm epsilon 1e-5); the decoder is a flax MLP.
No concat trick, no scan, jraph's default unsorted segment_sum. Parameter shapes
mirror meshsim's, so `from_meshsim_params` copies a meshsim checkpoint in.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from meshsim.graph import MultiGraph


class MLP(nn.Module):
    """Dense layers of widths `sizes` with ReLU between them and optional LayerNorm."""

    sizes: Sequence[int]
    layer_norm: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, size in enumerate(self.sizes):
            if i:
                x = nn.relu(x)
            x = nn.Dense(size, name=f"dense_{i}")(x)
        if self.layer_norm:
            x = nn.LayerNorm(epsilon=1e-5, name="layer_norm")(x)
        return x


class JraphMeshGraphNet(nn.Module):
    """Encode-process-decode over a `jraph.GraphsTuple` (nodes [N, F], edges [E, Fe])."""

    output_size: int
    latent_size: int = 128
    num_message_passing_steps: int = 15
    mlp_hidden_layers: int = 2

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple) -> jax.Array:
        lat = self.latent_size
        hidden = [lat] * self.mlp_hidden_layers
        graph = jraph.GraphMapFeatures(
            embed_edge_fn=MLP(hidden + [lat], name="encoder_edge"),
            embed_node_fn=MLP(hidden + [lat], name="encoder_node"),
        )(graph)
        for k in range(self.num_message_passing_steps):
            edge_mlp = MLP(hidden + [lat], name=f"processor_{k}_edge")
            node_mlp = MLP(hidden + [lat], name=f"processor_{k}_node")

            def update_edge_fn(edges, sent, received, globals_, mlp=edge_mlp):
                del globals_
                return mlp(jnp.concatenate([edges, sent, received], axis=-1))  # the message

            def update_node_fn(nodes, sent, received, globals_, mlp=node_mlp):
                del sent, globals_
                return nodes + mlp(jnp.concatenate([nodes, received], axis=-1))

            new = jraph.GraphNetwork(update_edge_fn, update_node_fn)(graph)
            graph = new._replace(edges=graph.edges + new.edges)  # the edge residual
        return MLP(hidden + [self.output_size], layer_norm=False, name="decoder")(graph.nodes)


def graphs_tuple(graph: MultiGraph, edge_set: str = "mesh") -> jraph.GraphsTuple:
    """The jraph view of one edge set of a meshsim graph, as device arrays."""
    es = graph.edge_sets[edge_set]
    return jraph.GraphsTuple(
        nodes=jnp.asarray(graph.node_sets["mesh"].features),
        edges=jnp.asarray(es.features),
        senders=jnp.asarray(es.senders),
        receivers=jnp.asarray(es.receivers),
        n_node=jnp.asarray(graph.node_sets["mesh"].n_node),
        n_edge=jnp.asarray(es.n_edge),
        globals=None,
    )


def _mlp_params(p: dict, index: int | None = None) -> dict:
    """meshsim MLP params (optionally slice `index` of a scanned stack) -> MLP above."""
    take = (lambda a: np.asarray(a)[index]) if index is not None else np.asarray
    out = {"dense_0": {"kernel": take(p["linear_0_kernel"]), "bias": take(p["linear_0_bias"])}}
    i = 1
    while f"linear_{i}" in p:
        out[f"dense_{i}"] = {k: take(v) for k, v in p[f"linear_{i}"].items()}
        i += 1
    if "layer_norm" in p:
        out["layer_norm"] = {k: take(v) for k, v in p["layer_norm"].items()}
    return out


def from_meshsim_params(params: dict, *, edge_set: str = "mesh") -> dict:
    """Copies a meshsim MeshGraphNet parameter tree into JraphMeshGraphNet's layout."""
    p = params["params"]
    steps = int(np.asarray(p["processor"]["node_mesh"]["linear_0_bias"]).shape[0])
    out = {
        "encoder_node": _mlp_params(p["encoder_node_mesh"]),
        "encoder_edge": _mlp_params(p[f"encoder_edge_{edge_set}"]),
        "decoder": _mlp_params(p["decoder_mesh"]),
    }
    for k in range(steps):
        out[f"processor_{k}_edge"] = _mlp_params(p["processor"][f"edge_{edge_set}"], k)
        out[f"processor_{k}_node"] = _mlp_params(p["processor"]["node_mesh"], k)
    return {"params": jax.tree_util.tree_map(jnp.asarray, out)}
