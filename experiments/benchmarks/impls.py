"""The implementations under test behind one interface, all on the same weights.

`build(name, problem, params, model_cfg)` returns an `Impl` whose `train()` runs
one training step and `rollout()` one rollout step, each blocking until done,
and whose `forward()` returns the network output as numpy (for the agreement
check). `params` are meshsim's; the peers receive copies in their own layouts.

Names: "meshsim" (MeshGraphNet with the given options), "jraph", "pyg" (the
strongest PyG peer: PhysicsNeMo's concat trick under `torch.compile`), "pyg-eager"
(the same network written plainly, `cat` + MLP, eager), and "meshsim-transformer"
(the same network with `meshsim.TransformerBlock` as its processor block: another
function, on its own weights, timed beside the interaction block).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import meshsim
from experiments.benchmarks import steps
from experiments.benchmarks.meshes import OUTPUT_SIZE, Problem

TRANSFORMER = "meshsim-transformer"
IMPLS = ("meshsim", "jraph", "pyg", "pyg-eager", TRANSFORMER)
# Rows that compute another function than meshsim's MeshGraphNet: no agreement check,
# no paper-form FLOP count.
OTHER_NETWORKS = (TRANSFORMER,)
# The PyG peers: name -> (concat_trick, torch.compile mode or None for eager).
PYG = {"pyg": (True, "default"), "pyg-eager": (False, None)}
# meshsim with remat forced on / off, whatever the library default (None: on for CPU).
REMAT = "meshsim+remat"
NO_REMAT = "meshsim-remat"
VARIANTS = {REMAT: {"remat": True}, NO_REMAT: {"remat": False}}


@dataclasses.dataclass
class Impl:
    """One implementation on one problem.

    Fields:
      name: implementation name.
      train: () -> float loss of the step (blocks).
      rollout: () -> None, one rollout step (blocks).
      forward: () -> [N, 2] float32 numpy output of the current parameters.
      lowered: {"train": jax Lowered, "rollout": ...} for JAX implementations; empty for torch.
      compiled: the same, compiled by `compile_impl` (memory_analysis, cost_analysis).
    """

    name: str
    train: Callable[[], float]
    rollout: Callable[[], None]
    forward: Callable[[], np.ndarray]
    lowered: dict = dataclasses.field(default_factory=dict)
    compiled: dict = dataclasses.field(default_factory=dict)


def meshsim_model(model_cfg: dict, **options) -> meshsim.MeshGraphNet:
    return meshsim.MeshGraphNet(output_size=OUTPUT_SIZE, **model_cfg, **options)


def transformer_model(model_cfg: dict, **options) -> meshsim.MeshGraphNet:
    """The MeshGraphNet with `meshsim.TransformerBlock` (its defaults: 4 heads of L / 4,
    LayerNorm, a gated MLP of twice L) as the processor block."""
    return meshsim_model(model_cfg, block=meshsim.TransformerBlock, **options)


def init_params(problem: Problem, model_cfg: dict, seed: int = 0) -> dict:
    """meshsim MeshGraphNet parameters (host numpy copies, reusable by every impl)."""
    model = meshsim_model(model_cfg)
    params = jax.jit(model.init)(jax.random.key(seed), problem.graph)
    return jax.tree_util.tree_map(np.asarray, params)


def _mesh_nodes(graph: meshsim.MultiGraph):
    return graph.node_sets["mesh"].features


def _with_mesh_nodes(graph: meshsim.MultiGraph, nodes) -> meshsim.MultiGraph:
    mesh = graph.node_sets["mesh"].replace(features=nodes)
    return graph.replace(node_sets={**graph.node_sets, "mesh": mesh})


# How each JAX implementation reads and replaces its graph's node features.
_NODE_ACCESS = {
    "meshsim": (_mesh_nodes, _with_mesh_nodes),
    "jraph": (lambda g: g.nodes, lambda g, nodes: g._replace(nodes=nodes)),
}


def _device_copy(tree):
    return jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), tree)


def _jax_impl(name, apply, params, graph, problem, *, donate=True, loss_mask=None) -> Impl:
    """Shared plumbing for the two JAX implementations (params donated each step)."""
    target = jnp.asarray(problem.target)
    mask = jnp.asarray(problem.loss_mask if loss_mask is None else loss_mask)
    train_step = steps.make_train_step(apply, donate=donate)
    rollout_step = steps.make_rollout_step(apply, *_NODE_ACCESS[name])
    state = {"params": _device_copy(params)}
    state["opt"] = steps.optimizer().init(state["params"])
    lowered_train = train_step.lower(state["params"], state["opt"], graph, target, mask)
    lowered_rollout = rollout_step.lower(state["params"], graph)
    fwd = jax.jit(apply)

    def train():
        state["params"], state["opt"], loss = compiled["train"](
            state["params"], state["opt"], graph, target, mask
        )
        return float(loss)  # blocks

    def rollout():
        jax.block_until_ready(compiled["rollout"](state["params"], graph))

    def forward():
        return np.asarray(fwd(state["params"], graph))

    compiled = {}
    lowered = {"train": lowered_train, "rollout": lowered_rollout}
    return Impl(name, train, rollout, forward, lowered, compiled)


def compile_impl(impl: Impl) -> dict[str, float]:
    """Compiles a JAX impl's lowered steps; returns {"train": s, "rollout": s} compile times."""
    import time

    times = {}
    for key, lowered in impl.lowered.items():
        t0 = time.perf_counter()
        impl.compiled[key] = lowered.compile()
        times[key] = time.perf_counter() - t0
    return times


def build(
    name: str,
    problem: Problem,
    params: dict,
    model_cfg: dict,
    *,
    options: dict | None = None,
    donate: bool = True,
    pad_to_bucket: bool = False,
) -> Impl:
    """Builds implementation `name` (JAX ones are lowered, not yet compiled: see compile_impl).

    Args:
      name: one of IMPLS.
      problem: graph, target and loss mask.
      params: meshsim parameters (numpy tree) to start from.
      model_cfg: latent_size, num_message_passing_steps, mlp_hidden_layers.
      options: meshsim model options (concat_trick, remat, scan_unroll).
      donate: donate params/opt state in the JAX train step.
      pad_to_bucket: meshsim only: pad the graph to `PaddingBudget.fit` and mask the loss.
    """
    if name in VARIANTS:
        name, options = "meshsim", {**(options or {}), **VARIANTS[name]}
    if name == TRANSFORMER:
        model = transformer_model(model_cfg, **(options or {}))
        own = jax.jit(model.init)(jax.random.key(0), problem.graph)  # its own weights
        graph = jax.device_put(problem.graph)
        impl = _jax_impl("meshsim", model.apply, own, graph, problem, donate=donate)
        return dataclasses.replace(impl, name=name)
    if name == "meshsim":
        model = meshsim_model(model_cfg, **(options or {}))
        graph, loss_mask = problem.graph, problem.loss_mask
        if pad_to_bucket:
            budget = meshsim.PaddingBudget.fit(graph)
            graph = meshsim.pad(graph, budget)
            extra = graph.num_nodes("mesh") - problem.graph.num_nodes("mesh")
            problem = problem._replace(
                target=np.concatenate([problem.target, np.zeros((extra, 2), np.float32)])
            )
            node_mask = graph.node_sets["mesh"].mask
            loss_mask = np.concatenate([loss_mask, np.zeros(extra, bool)]) & node_mask
        return _jax_impl(
            name,
            model.apply,
            params,
            jax.device_put(graph),
            problem,
            donate=donate,
            loss_mask=loss_mask,
        )
    if name == "jraph":
        from experiments.benchmarks import peer_jraph

        model = peer_jraph.JraphMeshGraphNet(
            output_size=OUTPUT_SIZE,
            latent_size=model_cfg["latent_size"],
            num_message_passing_steps=model_cfg["num_message_passing_steps"],
            mlp_hidden_layers=model_cfg["mlp_hidden_layers"],
        )
        jparams = peer_jraph.from_meshsim_params(params)
        return _jax_impl(
            name, model.apply, jparams, peer_jraph.graphs_tuple(problem.graph), problem
        )
    if name in PYG:
        import torch

        from experiments.benchmarks import peer_pyg

        concat_trick, compile_mode = PYG[name]
        model = peer_pyg.PyGMeshGraphNet(
            node_in=problem.graph.node_sets["mesh"].features.shape[1],
            edge_in=problem.graph.edge_sets["mesh"].features.shape[1],
            output_size=OUTPUT_SIZE,
            latent=model_cfg["latent_size"],
            hidden_layers=model_cfg["mlp_hidden_layers"],
            steps=model_cfg["num_message_passing_steps"],
            concat_trick=concat_trick,
        )
        peer_pyg.load_meshsim_params(model, params)
        net = peer_pyg.compiled(model, compile_mode)  # compiles on its first call
        graph = peer_pyg.to_pyg(problem.graph)
        target = torch.from_numpy(problem.target)
        mask = torch.from_numpy(problem.loss_mask.astype(np.float32))
        train_step = peer_pyg.make_train_step(model, lr=steps.LEARNING_RATE, net=net)
        rollout_step = peer_pyg.make_rollout_step(net)

        def forward():
            with torch.inference_mode():
                return net(graph).numpy().copy()

        return Impl(
            name,
            lambda: train_step(graph, target, mask),
            lambda: rollout_step(graph),
            forward,
        )
    raise ValueError(f"impl: expected one of {IMPLS}, got {name!r}")
