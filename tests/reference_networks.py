"""DeepMind's MeshGraphNet and GraphCast written from their equations: the reference.

Written from the papers (Pfaff et al., ICLR 2021, Sec. 3 and App. A; Lam et al.,
Science 2023, Supplement 3–4) and the structure of the published code
(MeshGraphNets' `core_model.py`, GraphCast's `graphcast.py` and
`deep_typed_graph_net.py`), independently of meshsim's modules, in plain
array code (`jax.numpy`, so that gradients can be taken too):

* an MLP is Linear layers with the activation between them, then LayerNorm
  (epsilon 1e-5) except on the decoder;
* a processor step on edge sets k: messages m_k = MLP_k([e_k, v[senders],
  v[receivers]]); every node set n of the step: v_n' = MLP_n([v_n, Σ_k segment_sum(
  m_k into n)]); then the residuals e_k += m_k, v_n += v_n';
* MeshGraphNet: encoder MLPs, 15 unshared steps over all edge sets (mesh, world),
  decoder MLP without LayerNorm;
* GraphCast: grid and mesh embedders, the mesh embedder fed the grid's input width
  in zeros before the mesh's structural features; grid2mesh (updating mesh nodes
  from their messages and grid nodes from themselves); unshared mesh steps;
  mesh2grid (updating grid nodes; the mesh-node MLP whose output nothing reads);
  decoder MLP on the grid.

Parameters are plain nested dicts in the published code's organisation (one net per
step, named by role). `from_meshsim_*` copy a meshsim parameter tree into them,
which is the whole test: nothing of meshsim's computation is reused here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

EPSILON = 1e-5


# --------------------------------------------------------------------------- pieces


def mlp(p: dict, x, act):
    """p = {"linears": [(W, b), ...], "layer_norm": (scale, offset) or None}."""
    for i, (w, b) in enumerate(p["linears"]):
        if i:
            x = act(x)
        x = x @ w + b
    if p["layer_norm"] is not None:
        scale, offset = p["layer_norm"]
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        x = (x - mean) / jnp.sqrt(var + EPSILON) * scale + offset
    return x


def segment_sum(values, receivers, num):
    return jnp.zeros((num, values.shape[1]), values.dtype).at[receivers].add(values)


def step(p: dict, nodes: dict, edges: dict, edge_sets: dict, node_sets: tuple, act):
    """One processor step. edge_sets: {k: (sender set, receiver set, senders, receivers)};
    node_sets: the node sets this step updates (in DeepMind's order of the net)."""
    messages = {}
    for k, (s, r, senders, receivers) in edge_sets.items():
        x = jnp.concatenate([edges[k], nodes[s][senders], nodes[r][receivers]], axis=-1)
        messages[k] = mlp(p["edge"][k], x, act)
    updates = {}
    for n in node_sets:
        received = [
            segment_sum(messages[k], receivers, nodes[n].shape[0])
            for k, (_, r, _, receivers) in edge_sets.items()
            if r == n
        ]
        updates[n] = mlp(p["node"][n], jnp.concatenate([nodes[n], *received], axis=-1), act)
    nodes = {n: v + updates.get(n, 0.0) for n, v in nodes.items()}
    edges = {k: e + messages.get(k, 0.0) for k, e in edges.items()}
    return nodes, edges


# --------------------------------------------------------------------------- MeshGraphNet


def meshgraphnet(p: dict, node_features, edge_sets: dict, act=jax.nn.relu):
    """edge_sets: {k: (features [E_k, F_k], senders [E_k], receivers [E_k])}, in the order
    the published model lists them (mesh edges, then world edges)."""
    nodes = {"mesh": mlp(p["encoder"]["node"], node_features, act)}
    edges = {k: mlp(p["encoder"]["edge"][k], f, act) for k, (f, _, _) in edge_sets.items()}
    typed = {k: ("mesh", "mesh", s, r) for k, (_, s, r) in edge_sets.items()}
    for step_params in p["processor"]:
        nodes, edges = step(step_params, nodes, edges, typed, ("mesh",), act)
    return mlp(p["decoder"], nodes["mesh"], act)


# --------------------------------------------------------------------------- GraphCast


def graphcast(p: dict, grid_inputs, grid_structural, mesh_structural, edge_sets: dict):
    """grid_inputs [N_g, C_in] (both input times, forcings, static); grid_structural
    [N_g, 3], mesh_structural [N_m, 3]; edge_sets {grid2mesh | mesh | mesh2grid:
    (features [E, 4], senders, receivers)}. Returns [N_g, outputs]."""
    act = jax.nn.swish
    dummy = jnp.zeros((mesh_structural.shape[0], grid_inputs.shape[1]), grid_inputs.dtype)
    embed = p["embed_nodes"]
    nodes = {
        "grid": mlp(embed["grid"], jnp.concatenate([grid_inputs, grid_structural], -1), act),
        "mesh": mlp(embed["mesh"], jnp.concatenate([dummy, mesh_structural], -1), act),
    }
    edges = {k: mlp(p["embed_edges"][k], f, act) for k, (f, _, _) in edge_sets.items()}
    ends = {"grid2mesh": ("grid", "mesh"), "mesh": ("mesh", "mesh"), "mesh2grid": ("mesh", "grid")}
    typed = {k: (*ends[k], s, r) for k, (_, s, r) in edge_sets.items()}
    nodes, edges = step(
        p["grid2mesh"], nodes, edges, {"grid2mesh": typed["grid2mesh"]}, ("mesh", "grid"), act
    )
    for step_params in p["mesh_gnn"]:
        nodes, edges = step(step_params, nodes, edges, {"mesh": typed["mesh"]}, ("mesh",), act)
    nodes, edges = step(
        p["mesh2grid"], nodes, edges, {"mesh2grid": typed["mesh2grid"]}, ("grid", "mesh"), act
    )
    return mlp(p["decoder"], nodes["grid"], act)


# --------------------------------------------------------------------------- weights


def _mlp_from_meshsim(q: dict) -> dict:
    linears = [(q["linear_0_kernel"], q["linear_0_bias"])]
    i = 1
    while f"linear_{i}" in q:
        linears.append((q[f"linear_{i}"]["kernel"], q[f"linear_{i}"]["bias"]))
        i += 1
    norm = q.get("layer_norm")
    return {
        "linears": linears,
        "layer_norm": None if norm is None else (norm["scale"], norm["bias"]),
    }


def _steps(scope: dict, count: int) -> list[dict]:
    """A scanned stage's per-step nets (a leading step axis when count > 1)."""
    out = []
    for i in range(count):
        q = jax.tree_util.tree_map(lambda a, i=i: a[i], scope) if count > 1 else scope
        out.append(_step_from_meshsim(q))
    return out


def _step_from_meshsim(q: dict) -> dict:
    return {
        "edge": {
            k[len("edge_") :]: _mlp_from_meshsim(v) for k, v in q.items() if k.startswith("edge_")
        },
        "node": {
            k[len("node_") :]: _mlp_from_meshsim(v) for k, v in q.items() if k.startswith("node_")
        },
    }


def from_meshsim_meshgraphnet(params: dict, steps: int, edge_sets) -> dict:
    q = params["params"]
    return {
        "encoder": {
            "node": _mlp_from_meshsim(q["encoder_node_mesh"]),
            "edge": {k: _mlp_from_meshsim(q[f"encoder_edge_{k}"]) for k in edge_sets},
        },
        "processor": _steps(q["processor"], steps),
        "decoder": _mlp_from_meshsim(q["decoder_mesh"]),
    }


def from_meshsim_graphcast(params: dict, mesh_steps: int) -> dict:
    q = params["params"]
    return {
        "embed_nodes": {
            "grid": _mlp_from_meshsim(q["encoder_node_grid"]),
            "mesh": _mlp_from_meshsim(q["encoder_node_mesh"]),
        },
        "embed_edges": {
            k: _mlp_from_meshsim(q[f"encoder_edge_{k}"]) for k in ("grid2mesh", "mesh", "mesh2grid")
        },
        "grid2mesh": _step_from_meshsim(q["grid2mesh"]),
        "mesh_gnn": _steps(q["processor"], mesh_steps),
        "mesh2grid": _step_from_meshsim(q["mesh2grid"]),
        "decoder": _mlp_from_meshsim(q["decoder_grid"]),
    }
