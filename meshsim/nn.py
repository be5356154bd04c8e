"""Network building blocks: MLPs and the typed interaction (message-passing) block.

Both compute the published networks' functions (MeshGraphNets' `core_model.py`,
GraphCast's `deep_typed_graph_net.py`): LayerNorm with epsilon 1e-5, weights drawn
as Sonnet's and Haiku's `Linear` draw them (a normal truncated at ±2 standard
deviations, standard deviation 1/√fan_in before truncation, biases 0), and the
message rule below.

The edge update of an interaction block is an MLP on `[e, v_sender, v_receiver]`.
Its first layer is linear, so `concat([e, v_s, v_r]) @ W` equals
`e @ W_e + (v @ W_s)[senders] + (v @ W_r)[receivers]`: the node parts can be
multiplied once per node and then gathered ("concat trick"). With about six
directed edges per node on a triangle mesh this cuts the first layer's cost from
3·E·L² to (E + 2N)·L² multiply-adds. Both forms share one kernel parameter, so a
checkpoint works with either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from meshsim import ops
from meshsim.graph import GraphFeatures

ACTIVATIONS = {
    "relu": nn.relu,
    "swish": nn.swish,
    "silu": nn.silu,
    "gelu": nn.gelu,
    "tanh": jnp.tanh,
}

# LayerNorm's epsilon in Sonnet and Haiku (flax's default is 1e-6).
LAYER_NORM_EPSILON = 1e-5
# Sonnet's and Haiku's `Linear` default: TruncatedNormal(stddev=1/√fan_in), truncated at
# ±2 stddev *without* rescaling, so the weights' std is 0.8796/√fan_in. flax's
# variance_scaling rescales its truncated normal by 1/0.8796; scale 0.8796² undoes it.
_TRUNCATION_STD = 0.87962566103423978
kernel_init = nn.initializers.variance_scaling(_TRUNCATION_STD**2, "fan_in", "truncated_normal")

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
      dtype: matmul dtype (e.g. bfloat16 on GPU); params, sums and LayerNorm stay f32
        (f64 when the matmuls are f64).
      noise_size: S > 0 makes the LayerNorm conditional on a noise vector z [S] (FGN-style
        functional perturbations, `meshsim.models.ensemble`): its output x becomes
        x · (1 + z W_scale) + z W_shift, both maps zero-initialised, so at init the MLP
        computes exactly its deterministic function. 0 (default): no extra parameters.
    """

    hidden_size: int
    num_hidden_layers: int
    output_size: int
    activation: str = "relu"
    layer_norm: bool = True
    gather_after_first_layer: bool = True
    dtype: Any = jnp.float32
    noise_size: int = 0

    @nn.compact
    def __call__(
        self, inputs: jax.Array | Sequence[InputPart], noise: jax.Array | None = None
    ) -> jax.Array:
        """[M, output_size] from `inputs` [M, F] (or parts); `noise` [noise_size] (None:
        zeros) conditions the LayerNorm when `noise_size` > 0."""
        act = get_activation(self.activation)
        parts: Sequence[InputPart] = [(inputs, None)] if hasattr(inputs, "shape") else inputs
        widths = [p.shape[-1] for p, _ in parts]
        sizes = [self.hidden_size] * self.num_hidden_layers + [self.output_size]
        kernel = self.param("linear_0_kernel", kernel_init, (sum(widths), sizes[0]))
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
            x = nn.Dense(size, dtype=self.dtype, kernel_init=kernel_init, name=f"linear_{i}")(x)
        acc = jnp.promote_types(self.dtype, jnp.float32)  # float64 stays float64
        if self.layer_norm:
            x = nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, dtype=acc, name="layer_norm")(
                x.astype(acc)
            )
            if self.noise_size > 0:
                x = conditional_scale_shift(x, noise, self.noise_size, acc)
        return x.astype(acc)


def conditional_scale_shift(x: jax.Array, noise: jax.Array | None, size: int, dtype) -> jax.Array:
    """x [M, L] · (1 + z W_scale) + z W_shift for the noise z [size] (None: zeros), shared by
    all M rows; W_scale and W_shift [size, L] start at zero (the identity). Called inside a
    module's compact method: the maps are its submodules `noise_scale` and `noise_shift`."""
    z = jnp.zeros((size,), dtype) if noise is None else jnp.asarray(noise, dtype)
    if z.shape != (size,):
        raise ValueError(f"noise: expected [{size}], got shape {z.shape}")
    width = x.shape[-1]
    zeros = nn.initializers.zeros
    scale = nn.Dense(width, dtype=dtype, kernel_init=zeros, use_bias=False, name="noise_scale")(z)
    shift = nn.Dense(width, dtype=dtype, kernel_init=zeros, use_bias=False, name="noise_shift")(z)
    return x * (1.0 + scale) + shift


# (edge set, sender node set, receiver node set) — the static typing a block needs.
EdgeType = tuple[str, str, str]

# Graph parallelism: (node latents {set: [N_s, L]}, names of the node sets this step
# updated) -> node latents with the halo rows of those sets refreshed from their owners
# (see meshsim.parallel.graph_parallel). Runs inside shard_map.
HaloExchange = Callable[[dict[str, jax.Array], tuple[str, ...]], dict[str, jax.Array]]


class InteractionBlock(nn.Module):
    """One message-passing step over the edge sets of a stage (Battaglia et al. 2018),
    as MeshGraphNets and GraphCast compute it.

    For each edge set k of `edge_types` (sorted by name), from node set s(k) to r(k):
    e_k' = MLP_k([e_k, v_s(k)[senders], v_r(k)[receivers]]). Then every node set n
    that these edge sets touch: v_n' = MLP_n([v_n, agg(e_k') for each k into n]),
    aggregating the edge MLPs' outputs over receivers (a set that only sends, such as
    the grid in GraphCast's grid2mesh, gets v_n' = MLP_n(v_n)). Then the residuals:
    e_k ← e_k + e_k', v_n ← v_n + v_n'. Edge sets outside `edge_types` and node sets
    they do not touch are returned unchanged. Separate MLPs per edge set (`edge_<k>`)
    and per node set (`node_<n>`).

    Any block with these constructor keywords and this call signature can replace it
    in `EncodeProcessDecode(block=...)` (e.g. `meshsim.attention.TransformerBlock`).

    Attributes:
      edge_types: ((edge set, sender set, receiver set), ...) this block runs.
      latent_size, num_hidden_layers, activation, layer_norm, dtype: MLP settings.
      aggregation: "sum" (MeshGraphNets), "mean" or "max".
      concat_trick: gather node projections after the first edge-MLP layer.
      halo_exchange: None (default, a no-op), or a `HaloExchange` applied to the node
        latents after the node update of every step (graph parallelism).
      noise_size: S > 0: every MLP's LayerNorm is conditioned on the noise vector [S]
        passed to the call (see `MLP.noise_size`); 0: no noise input, no extra parameters.
    """

    edge_types: tuple[EdgeType, ...]
    latent_size: int
    num_hidden_layers: int = 2
    activation: str = "relu"
    layer_norm: bool = True
    aggregation: str = "sum"
    concat_trick: bool = True
    dtype: Any = jnp.float32
    halo_exchange: HaloExchange | None = None
    noise_size: int = 0

    def _mlp(self, name: str) -> MLP:
        return MLP(
            hidden_size=self.latent_size,
            num_hidden_layers=self.num_hidden_layers,
            output_size=self.latent_size,
            activation=self.activation,
            layer_norm=self.layer_norm,
            gather_after_first_layer=self.concat_trick,
            dtype=self.dtype,
            noise_size=self.noise_size,
            name=name,
        )

    @nn.compact
    def __call__(
        self,
        latents: GraphFeatures,
        structure: Mapping[str, tuple[jax.Array, jax.Array]],
        noise: jax.Array | None = None,
    ):
        """One step.

        Args:
          latents: GraphFeatures — nodes {set: [N_s, L]}, edges {set: [E_k, L]}.
          structure: {edge set: (senders [E_k] int32, receivers [E_k] int32)}.
          noise: [noise_size] float32 or None (zeros), with `noise_size` > 0 only.

        Returns:
          (new latents, None), the shape `nn.scan` stacks.
        """
        nodes, edges = dict(latents.nodes), dict(latents.edges)
        incoming: dict[str, list[jax.Array]] = {}
        touched: set[str] = set()
        edge_updates = {}
        for name, sender, receiver in sorted(self.edge_types):
            senders, receivers = structure[name]
            update = self._mlp(f"edge_{name}")(
                [(edges[name], None), (nodes[sender], senders), (nodes[receiver], receivers)],
                noise,
            )
            edge_updates[name] = update
            touched |= {sender, receiver}
            incoming.setdefault(receiver, []).append(
                ops.aggregate(self.aggregation, update, receivers, nodes[receiver].shape[0])
            )
        node_updates = {
            n: self._mlp(f"node_{n}")(
                [(nodes[n], None)] + [(m, None) for m in incoming.get(n, [])], noise
            )
            for n in sorted(touched)
        }
        edges.update({k: edges[k] + u for k, u in edge_updates.items()})
        nodes.update({n: nodes[n] + u for n, u in node_updates.items()})
        if self.halo_exchange is not None:
            # A set that only sends is updated from its own rows, which its halo copies
            # hold too: only the sets that received messages need their halos refreshed.
            nodes = self.halo_exchange(nodes, tuple(sorted(incoming)))
        return GraphFeatures(nodes=nodes, edges=edges), None
