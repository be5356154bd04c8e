"""Staged encode-process-decode graph network over a typed `MultiGraph`.

Encoder: one MLP per node set and one per edge set, to the latent width.
Processor: a sequence of **stages**; a stage runs a block over some edge sets
for some steps, with shared or unshared weights (more than one step is an
`nn.scan`, so the compiled program does not grow with the depth; optional
remat). Decoder: one MLP (no LayerNorm) on the output node set. Pure functions:

    model = EncodeProcessDecode(output_size=2)
    params = model.init(rng, graph)
    out = model.apply(params, graph)   # [num_nodes of output set, output_size] float32

With `bundle_steps` K > 1 (temporal bundling) the decoder is K times wider and
`out` is `[num_nodes, K · output_size]`, frame-major: columns j·d..(j+1)·d are
frame j's (`meshsim.simulator.Simulator` reads them as slices `[N, K, d]`).

MeshGraphNet is one stage of 15 unshared steps over every edge set; GraphCast
is grid2mesh ×1 → mesh ×16 → mesh2grid ×1, decoded on "grid". Padded nodes
produce finite garbage; mask them in losses.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from meshsim import ops
from meshsim.graph import DEFAULT_NODE_SET, GraphFeatures, MultiGraph
from meshsim.nn import MLP, InteractionBlock, get_activation
from meshsim.validation import check_int


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of the processor.

    Attributes:
      edge_sets: names of the edge sets its block runs (the node sets they touch are
        updated: receivers from their messages, sets that only send from themselves).
      steps: message-passing steps.
      shared: one set of weights for every step (True) or one per step (False).
      name: parameter scope of the stage.
    """

    edge_sets: tuple[str, ...]
    steps: int = 1
    shared: bool = False
    name: str = "processor"

    def __post_init__(self):
        if isinstance(self.edge_sets, str) or not self.edge_sets:
            raise ValueError(
                f"Stage.edge_sets: expected a non-empty tuple of names, got {self.edge_sets!r}"
            )
        object.__setattr__(self, "edge_sets", tuple(self.edge_sets))
        if len(set(self.edge_sets)) != len(self.edge_sets):
            raise ValueError(f"Stage.edge_sets: names must be unique, got {self.edge_sets}")
        check_int("Stage.steps", self.steps, minimum=1, expected="a positive int")


# The keywords every processor block gets from the network (`EncodeProcessDecode._stage`).
_BLOCK_KEYWORDS = (
    "edge_types",
    "latent_size",
    "num_hidden_layers",
    "activation",
    "layer_norm",
    "aggregation",
    "concat_trick",
    "dtype",
    "halo_exchange",
    "noise_size",
)


class EncodeProcessDecode(nn.Module):
    """Generic staged encode-process-decode network; MeshGraphNet and GraphCast configure it.

    Attributes:
      output_size: width of the per-node output of one frame (d).
      output_node_set: the node set the decoder runs on.
      latent_size: width of every latent (128 in MeshGraphNets, 512 in GraphCast).
      num_message_passing_steps: depth of the default processor (see `stages`).
      stages: the processor; None means one stage of `num_message_passing_steps`
        unshared steps over every edge set of the graph (MeshGraphNets).
      mlp_hidden_layers: hidden layers per MLP (2 in MeshGraphNets, 1 in GraphCast).
      activation: "relu" (MeshGraphNets) or "swish" (GraphCast), see nn.ACTIVATIONS.
      layer_norm: LayerNorm after encoder and processor MLPs (never on the decoder).
      aggregation: "sum" (MeshGraphNets), "mean" or "max".
      concat_trick: split the first edge-MLP layer (same params, fewer FLOPs).
      remat: recompute each processor block in the backward pass (less memory). None
        (default) means on for the CPU backend: there, storing every block's activations
        costs more in page faults and zero-filling than recomputing them (measured at 16k
        nodes: train step 5.0 s with remat vs 7.9 s without, 2.6 vs 6.9 GiB peak;
        experiments/benchmarks/results/2026-11-21/latest.md). Off elsewhere.
      scan_unroll: processor steps unrolled per scan iteration (1 = fully rolled).
      dtype: matmul dtype; parameters, sums and LayerNorm stay float32.
      block: the block class (InteractionBlock's constructor keywords and call signature):
        `meshsim.nn.InteractionBlock` or `meshsim.attention.TransformerBlock`. A block
        whose class sets `uses_edge_masks = True` gets (senders, receivers, mask) per edge
        set in its `structure`, the others (senders, receivers).
      block_options: ((field, value), ...) more keywords of the block's constructor, e.g.
        `(("num_heads", 8),)` for TransformerBlock; checked against the block's fields.
      halo_exchange: None (default), or a `meshsim.nn.HaloExchange` handed to every
        processor block (which must have a `halo_exchange` field, as InteractionBlock
        does) to refresh halo latents after each step; set by `meshsim.parallel.graph_parallel`.
      bundle_steps: frames predicted per call (K, temporal bundling); the output is
        `[N, K·d]`, frame-major. 1: the unbundled network, parameters unchanged.
      noise_size: S > 0 makes the network stochastic in the style of FGN (functional
        perturbations, `meshsim.models.ensemble`): the call takes a noise vector [S],
        shared by every node, that conditions every LayerNorm of the encoder and the
        processor (`meshsim.nn.MLP.noise_size`; the block must have a `noise_size`
        field, as InteractionBlock does). The conditioning maps start at zero, so at
        init the network computes its deterministic function for any noise. 0
        (default): deterministic, parameters unchanged.
    """

    output_size: int
    output_node_set: str = DEFAULT_NODE_SET
    latent_size: int = 128
    num_message_passing_steps: int = 15
    stages: tuple[Stage, ...] | None = None
    mlp_hidden_layers: int = 2
    activation: str = "relu"
    layer_norm: bool = True
    aggregation: str = "sum"
    concat_trick: bool = True
    remat: bool | None = None
    scan_unroll: int = 1
    dtype: Any = jnp.float32
    block: Any = InteractionBlock
    block_options: tuple[tuple[str, Any], ...] = ()
    halo_exchange: Any = None
    bundle_steps: int = 1
    noise_size: int = 0

    def __post_init__(self):
        get_activation(self.activation)  # raises ValueError for unknown names
        if self.aggregation not in ops.AGGREGATIONS:
            raise ValueError(
                f"aggregation: expected one of {ops.AGGREGATIONS}, got {self.aggregation!r}"
            )
        positive = ("output_size", "bundle_steps", "latent_size", "num_message_passing_steps")
        for field in (*positive, "scan_unroll"):
            check_int(field, getattr(self, field), minimum=1, expected="a positive int")
        check_int("mlp_hidden_layers", self.mlp_hidden_layers, minimum=0)
        check_int("noise_size", self.noise_size, minimum=0, expected="an int ≥ 0")
        if self.stages is not None and not all(isinstance(s, Stage) for s in self.stages):
            raise TypeError(f"stages: expected a tuple of Stage, got {self.stages!r}")
        if not (isinstance(self.block, type) and issubclass(self.block, nn.Module)):
            raise TypeError(f"block: expected a flax Module class, got {self.block!r}")
        if self.halo_exchange is not None and not any(
            f.name == "halo_exchange" for f in dataclasses.fields(self.block)
        ):
            raise TypeError(
                f"halo_exchange: block {self.block.__name__} has no halo_exchange field"
            )
        if self.noise_size > 0 and not any(
            f.name == "noise_size" for f in dataclasses.fields(self.block)
        ):
            raise ValueError(
                f"noise_size: block {self.block.__name__} takes no noise (FGN conditioning "
                f"needs a block with a noise_size field, e.g. InteractionBlock), got "
                f"noise_size={self.noise_size}"
            )
        self._check_block_options()
        super().__post_init__()

    def _check_block_options(self) -> None:
        """`block_options` are (name, value) pairs naming fields of the block that the
        network does not set itself; the block checks their values when built."""
        options = self.block_options
        if not isinstance(options, tuple) or not all(
            isinstance(o, tuple) and len(o) == 2 and isinstance(o[0], str) for o in options
        ):
            raise TypeError(f"block_options: expected ((name, value), ...), got {options!r}")
        own = set(_BLOCK_KEYWORDS) | {"name", "parent"}
        valid = sorted({f.name for f in dataclasses.fields(self.block)} - own)
        for key, _ in options:
            if key not in valid:
                raise ValueError(
                    f"block_options: {key!r} is not a setting of {self.block.__name__}; "
                    f"valid: {valid}"
                )
        if options:  # build one unbound block so that bad values fail here, by name
            self.block(edge_types=(), latent_size=self.latent_size, parent=None, **dict(options))

    def default_stages(self) -> tuple[Stage, ...] | None:
        """Stages used when `stages` is None; None: every edge set of the graph."""
        return None

    def resolved_stages(self, graph: MultiGraph) -> tuple[Stage, ...]:
        """The stages this network runs on `graph`'s edge sets (validated)."""
        stages = self.stages if self.stages is not None else self.default_stages()
        if stages is None:
            edge_sets = tuple(sorted(graph.edge_sets))
            stages = (Stage(edge_sets, steps=self.num_message_passing_steps),)
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stages: names must be unique, got {names}")
        for stage in stages:
            missing = sorted(set(stage.edge_sets) - set(graph.edge_sets))
            if missing:
                raise ValueError(
                    f"stages[{stage.name!r}].edge_sets: {missing} not in the graph's edge sets "
                    f"{sorted(graph.edge_sets)}"
                )
        return tuple(stages)

    def _mlp(self, output_size: int, layer_norm: bool, name: str) -> MLP:
        return MLP(
            hidden_size=self.latent_size,
            num_hidden_layers=self.mlp_hidden_layers,
            output_size=output_size,
            activation=self.activation,
            layer_norm=layer_norm,
            gather_after_first_layer=self.concat_trick,
            dtype=self.dtype,
            noise_size=self.noise_size if layer_norm else 0,
            name=name,
        )

    def _stage(self, stage: Stage, graph: MultiGraph):
        """The module that runs `stage`: (latents, structure) -> (latents, None)."""
        block = self.block
        remat = self.remat if self.remat is not None else jax.default_backend() == "cpu"
        if remat:
            block = nn.remat(block, prevent_cse=False)
        if stage.steps > 1 or stage.shared:
            scan = dict(variable_axes={"params": 0}, split_rngs={"params": True})
            if stage.shared:
                scan = dict(variable_broadcast="params", split_rngs={"params": False})
            block = nn.scan(
                block,
                in_axes=nn.broadcast,
                length=stage.steps,
                unroll=min(self.scan_unroll, stage.steps),
                **scan,
            )
        edge_types = tuple(
            (k, graph.edge_sets[k].sender, graph.edge_sets[k].receiver) for k in stage.edge_sets
        )
        extra = dict(self.block_options)
        if self.halo_exchange is not None:
            extra["halo_exchange"] = self.halo_exchange
        if self.noise_size > 0:
            extra["noise_size"] = self.noise_size
        return block(
            edge_types=edge_types,
            latent_size=self.latent_size,
            num_hidden_layers=self.mlp_hidden_layers,
            activation=self.activation,
            layer_norm=self.layer_norm,
            aggregation=self.aggregation,
            concat_trick=self.concat_trick,
            dtype=self.dtype,
            name=stage.name,
            **extra,
        )

    @nn.compact
    def __call__(self, graph: MultiGraph, noise: jax.Array | None = None) -> jax.Array:
        """Returns outputs [num_nodes of `output_node_set`, output_size · bundle_steps]
        float32. `noise`: [noise_size] float32 (None: zeros), with `noise_size` > 0 only."""
        if noise is not None and self.noise_size == 0:
            raise ValueError("noise: this network is deterministic (noise_size 0), got a noise")
        if self.output_node_set not in graph.node_sets:
            raise ValueError(
                f"output_node_set: expected one of {sorted(graph.node_sets)}, "
                f"got {self.output_node_set!r}"
            )
        stages = self.resolved_stages(graph)
        latents = GraphFeatures(
            nodes={
                k: self._mlp(self.latent_size, self.layer_norm, f"encoder_node_{k}")(
                    ns.features, noise
                )
                for k, ns in sorted(graph.node_sets.items())
            },
            edges={
                k: self._mlp(self.latent_size, self.layer_norm, f"encoder_edge_{k}")(
                    es.features, noise
                )
                for k, es in sorted(graph.edge_sets.items())
            },
        )
        masks = getattr(self.block, "uses_edge_masks", False)
        structure = {
            k: (jnp.asarray(es.senders), jnp.asarray(es.receivers))
            + ((jnp.asarray(es.mask),) if masks else ())
            for k, es in graph.edge_sets.items()
        }
        extra = () if self.noise_size == 0 else (self._noise(noise),)
        for stage in stages:
            latents, _ = self._stage(stage, graph)(latents, structure, *extra)
        width = self.output_size * self.bundle_steps
        decoder = self._mlp(width, False, f"decoder_{self.output_node_set}")
        return decoder(latents.nodes[self.output_node_set])

    def _noise(self, noise: jax.Array | None) -> jax.Array:
        """[noise_size] the noise handed to the blocks (zeros for None)."""
        if noise is None:
            return jnp.zeros((self.noise_size,), jnp.float32)
        return jnp.asarray(noise, jnp.float32)


def count_params(params) -> int:
    """Total number of scalars in a parameter pytree."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
