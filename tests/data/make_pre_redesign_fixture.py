# Generated once at commit 1c83cda (before the typed-graph redesign); kept for the record,
# it uses the pre-redesign API and is not run by the suite.
"""Stores pre-redesign MeshGraphNet inputs, parameters and outputs (run once, before the typed-graph redesign)."""
import sys
sys.path.insert(0, "tests")
import jax, numpy as np, meshsim
from flax.traverse_util import flatten_dict
from conftest import mesh_graph

out = {}
for tag, sets, osize in (("one", ("mesh",), 2), ("two", ("mesh", "world"), 3)):
    g = mesh_graph(5, 4, node_features=11, seed=3)
    es = g.edge_sets["mesh"]
    rng = np.random.default_rng(5)
    edge_sets = {}
    for name in sets:
        f = np.asarray(es.features) if name == "mesh" else rng.normal(size=(es.features.shape[0], 4)).astype(np.float32)
        edge_sets[name] = (f, es.senders, es.receivers)
    g = meshsim.make_graph(np.asarray(g.nodes), edge_sets)
    model = meshsim.MeshGraphNet(output_size=osize, latent_size=16, num_message_passing_steps=3, remat=False)
    params = model.init(jax.random.key(7), g)
    y = model.apply(params, g)
    out[f"{tag}/nodes"] = np.asarray(g.nodes)
    for name in sets:
        out[f"{tag}/edges/{name}/features"] = np.asarray(g.edge_sets[name].features)
        out[f"{tag}/edges/{name}/senders"] = np.asarray(g.edge_sets[name].senders)
        out[f"{tag}/edges/{name}/receivers"] = np.asarray(g.edge_sets[name].receivers)
    for k, v in flatten_dict(params["params"], sep="/").items():
        out[f"{tag}/params/{k}"] = np.asarray(v)
    out[f"{tag}/output"] = np.asarray(y)
np.savez_compressed("tests/data/pre_redesign_mgn.npz", **out)
for k, v in out.items(): print(k, v.shape)
