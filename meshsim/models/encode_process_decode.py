"""Encode-process-decode graph network over a `MultiGraph` (Battaglia et al. 2018).

Encoder: an MLP per node and per edge set to the latent width. Processor: K
interaction blocks with unshared weights, stacked with `nn.scan` so the compiled
program (and compile time) does not grow with K. Decoder: an MLP from node
latents to `output_size` (no LayerNorm). Pure functions throughout:

    model = EncodeProcessDecode(output_size=2)
    params = model.init(rng, graph)
    out = model.apply(params, graph)       # [num_nodes, output_size] float32

Padded nodes produce finite garbage; mask them in losses (`graph.node_mask`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from meshsim import ops
from meshsim.graph import MultiGraph
from meshsim.nn import MLP, InteractionBlock, get_activation


class EncodeProcessDecode(nn.Module):
    """Generic encode-process-decode network; MeshGraphNet and GraphCast configure it.

    Attributes:
      output_size: width of the per-node output.
      latent_size: width of every latent (128 in MeshGraphNets).
      num_message_passing_steps: processor depth K (15 in MeshGraphNets).
      mlp_hidden_layers: hidden layers per MLP (2 in MeshGraphNets).
      activation: "relu" (MeshGraphNets) or "swish" (GraphCast), see nn.ACTIVATIONS.
      layer_norm: LayerNorm after encoder and processor MLPs (never on the decoder).
      aggregation: "sum" (MeshGraphNets), "mean" or "max".
      concat_trick: split the first edge-MLP layer (same params, fewer FLOPs).
      remat: recompute each processor block in the backward pass (less memory). None
        (default) means on for the CPU backend: there, storing every block's activations
        costs more in page faults and zero-filling than recomputing them (measured at 16k
        nodes: train step 5.0 s with remat vs 7.9 s without, 2.6 vs 6.9 GiB peak;
        experiments/benchmarks/results/latest.md). Off elsewhere.
      scan_unroll: processor steps unrolled per scan iteration (1 = fully rolled).
      receivers_sorted: every edge set's receivers are sorted (true for meshsim graphs).
      dtype: matmul dtype; parameters, sums and LayerNorm stay float32.
    """

    output_size: int
    latent_size: int = 128
    num_message_passing_steps: int = 15
    mlp_hidden_layers: int = 2
    activation: str = "relu"
    layer_norm: bool = True
    aggregation: str = "sum"
    concat_trick: bool = True
    remat: bool | None = None
    scan_unroll: int = 1
    receivers_sorted: bool = False
    dtype: Any = jnp.float32

    def __post_init__(self):
        get_activation(self.activation)  # raises ValueError for unknown names
        if self.aggregation not in ops.AGGREGATIONS:
            raise ValueError(
                f"aggregation: expected one of {ops.AGGREGATIONS}, got {self.aggregation!r}"
            )
        for field in ("output_size", "latent_size", "num_message_passing_steps"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{field}: expected a positive int, got {value!r}")
        if not isinstance(self.mlp_hidden_layers, int) or self.mlp_hidden_layers < 0:
            raise ValueError(
                f"mlp_hidden_layers: expected an int ≥ 0, got {self.mlp_hidden_layers!r}"
            )
        super().__post_init__()

    def _mlp(self, output_size: int, layer_norm: bool, name: str) -> MLP:
        return MLP(
            hidden_size=self.latent_size,
            num_hidden_layers=self.mlp_hidden_layers,
            output_size=output_size,
            activation=self.activation,
            layer_norm=layer_norm,
            gather_after_first_layer=self.concat_trick,
            dtype=self.dtype,
            name=name,
        )

    @nn.compact
    def __call__(self, graph: MultiGraph) -> jax.Array:
        """Returns per-node outputs [num_nodes, output_size] float32."""
        names = tuple(sorted(graph.edge_sets))
        nodes = self._mlp(self.latent_size, self.layer_norm, "encoder_node")(graph.nodes)
        edges = {
            name: self._mlp(self.latent_size, self.layer_norm, f"encoder_edge_{name}")(
                graph.edge_sets[name].features
            )
            for name in names
        }
        structure = {
            name: (
                jnp.asarray(graph.edge_sets[name].senders),
                jnp.asarray(graph.edge_sets[name].receivers),
            )
            for name in names
        }
        block = InteractionBlock
        remat = self.remat if self.remat is not None else jax.default_backend() == "cpu"
        if remat:
            block = nn.remat(block, prevent_cse=False)
        processor = nn.scan(
            block,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=nn.broadcast,
            length=self.num_message_passing_steps,
            unroll=self.scan_unroll,
        )(
            latent_size=self.latent_size,
            num_hidden_layers=self.mlp_hidden_layers,
            activation=self.activation,
            layer_norm=self.layer_norm,
            aggregation=self.aggregation,
            edge_set_names=names,
            concat_trick=self.concat_trick,
            receivers_sorted=self.receivers_sorted,
            dtype=self.dtype,
            name="processor",
        )
        (nodes, _), _ = processor((nodes, edges), structure)
        return self._mlp(self.output_size, False, "decoder")(nodes)


def count_params(params) -> int:
    """Total number of scalars in a parameter pytree."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
