"""Network building blocks: MLPs and the interaction (message-passing) block.

The edge update of an interaction block is an MLP on `[e, v_sender, v_receiver]`.
Its first layer is linear, so `concat([e, v_s, v_r]) @ W` equals
`e @ W_e + (v @ W_s)[senders] + (v @ W_r)[receivers]`: the node parts can be
multiplied once per node and then gathered ("concat trick"). With about six
directed edges per node on a triangle mesh this cuts the first layer's cost from
3·E·L² to (E + 2N)·L² multiply-adds. Both forms share one kernel parameter, so a
checkpoint works with either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from meshsim import ops

ACTIVATIONS = {
    "relu": nn.relu,
    "swish": nn.swish,
    "silu": nn.silu,
    "gelu": nn.gelu,
    "tanh": jnp.tanh,
}

# One MLP input: (features [M, F], optional gather index [K] int32 -> rows taken after
# the first linear layer, so the part contributes [K, H]).
InputPart = tuple[jax.Array, jax.Array | None]


def get_activation(name: str):
    """Activation function by name; raises ValueError listing the valid names."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Multi-layer perceptron whose input may be given in parts.

    `num_hidden_layers` hidden layers of width `hidden_size`, an output layer of
    width `output_size`, an activation after each hidden layer, and an optional
    LayerNorm on the output (MeshGraphNets puts it on every MLP but the decoder's).

    Call with an array `[M, F]`, or with a sequence of `InputPart`s whose first-layer
    results are summed; parts with an index are gathered after the first layer when
    `gather_after_first_layer` is True (the concat trick), before it otherwise.

    Attributes:
      hidden_size, num_hidden_layers, output_size: layer widths and depth.
      activation: a name from ACTIVATIONS.
      layer_norm: LayerNorm on the output.
      gather_after_first_layer: the concat trick (identical result, fewer FLOPs).
      dtype: matmul dtype (e.g. bfloat16 on GPU); params, sums and LayerNorm stay f32.
    """

    hidden_size: int
    num_hidden_layers: int
    output_size: int
    activation: str = "relu"
    layer_norm: bool = True
    gather_after_first_layer: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, inputs: jax.Array | Sequence[InputPart]) -> jax.Array:
        act = get_activation(self.activation)
        parts: Sequence[InputPart] = [(inputs, None)] if hasattr(inputs, "shape") else inputs
        widths = [p.shape[-1] for p, _ in parts]
        sizes = [self.hidden_size] * self.num_hidden_layers + [self.output_size]
        kernel = self.param(
            "linear_0_kernel", nn.initializers.lecun_normal(), (sum(widths), sizes[0])
        )
        bias = self.param("linear_0_bias", nn.initializers.zeros, (sizes[0],))
        x = None
        offset = 0
        for (part, index), width in zip(parts, widths):
            k = kernel[offset : offset + width].astype(self.dtype)
            offset += width
            part = part.astype(self.dtype)
            if index is None:
                y = part @ k
            elif self.gather_after_first_layer:
                y = (part @ k)[index]
            else:
                y = part[index] @ k
            x = y if x is None else x + y
        x = x + bias.astype(self.dtype)
        for i, size in enumerate(sizes[1:], start=1):
            x = act(x)
            x = nn.Dense(size, dtype=self.dtype, name=f"linear_{i}")(x)
        if self.layer_norm:
            x = nn.LayerNorm(dtype=jnp.float32, name="layer_norm")(x.astype(jnp.float32))
        return x.astype(jnp.float32)


class InteractionBlock(nn.Module):
    """One message-passing step over several edge sets (Battaglia et al. 2018).

    For each edge set k (names sorted): e_k' = e_k + MLP_k([e_k, v_s, v_r]).
    Then v' = v + MLP_v([v, agg_k(e_k') for every k]), aggregating over receivers.
    Written as `(carry, structure) -> (carry, None)` so `nn.scan` can stack steps.

    Attributes:
      latent_size, num_hidden_layers, activation, layer_norm, dtype: MLP settings.
      aggregation: "sum" (MeshGraphNets), "mean" or "max".
      edge_set_names: the edge sets this block updates (None: all in the carry).
      concat_trick: gather node projections after the first edge-MLP layer.
      receivers_sorted: receivers are sorted (faster scatter on some backends).
    """

    latent_size: int
    num_hidden_layers: int = 2
    activation: str = "relu"
    layer_norm: bool = True
    aggregation: str = "sum"
    edge_set_names: tuple[str, ...] | None = None
    concat_trick: bool = True
    receivers_sorted: bool = False
    dtype: Any = jnp.float32

    def _mlp(self, name: str) -> MLP:
        return MLP(
            hidden_size=self.latent_size,
            num_hidden_layers=self.num_hidden_layers,
            output_size=self.latent_size,
            activation=self.activation,
            layer_norm=self.layer_norm,
            gather_after_first_layer=self.concat_trick,
            dtype=self.dtype,
            name=name,
        )

    @nn.compact
    def __call__(
        self,
        carry: tuple[jax.Array, Mapping[str, jax.Array]],
        structure: Mapping[str, tuple[jax.Array, jax.Array]],
    ):
        """One step.

        Args:
          carry: (nodes [N, L], {name: edges [E_k, L]}).
          structure: {name: (senders [E_k] int32, receivers [E_k] int32)}.
        """
        nodes, edges = carry
        names = self.edge_set_names or tuple(sorted(edges))
        num_nodes = nodes.shape[0]
        new_edges = dict(edges)
        aggregated = []
        for name in names:
            senders, receivers = structure[name]
            update = self._mlp(f"edge_{name}")(
                [(edges[name], None), (nodes, senders), (nodes, receivers)]
            )
            new_edges[name] = edges[name] + update
            aggregated.append(
                ops.aggregate(
                    self.aggregation,
                    new_edges[name],
                    receivers,
                    num_nodes,
                    indices_are_sorted=self.receivers_sorted,
                )
            )
        update = self._mlp("node")([(nodes, None)] + [(a, None) for a in aggregated])
        return (nodes + update, new_edges), None
