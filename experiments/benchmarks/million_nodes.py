"""Training steps on million-node graphs, graph-parallel over simulated devices.

    .venv/bin/python experiments/benchmarks/million_nodes.py graphcast --compare   # 0.25° GraphCast
    .venv/bin/python experiments/benchmarks/million_nodes.py channel --nodes 1M    # MeshGraphNet

`graphcast`: the graph is GraphCast's at full resolution: a 721 × 1440 lat-lon grid (1,038,240 grid
nodes), the 6-split icosahedral multimesh (40,962 nodes, 327,660 edges), 1,618,824
grid2mesh and 3,114,720 mesh2grid edges (`meshsim.meshes.build_weather_mesh`). The
network is GraphCast's staged encoder-processor-decoder at a small latent size, so the
step fits a 2-core, 24 GiB CPU machine; the inputs are the graph's structural node
features plus `--channels` random channels, the target random too (the step's cost
does not depend on the values).

The grid and the mesh are cut into `--parts` parts by recursive coordinate bisection
of their 3-D positions (`meshsim.parallel.make_graph_partition`), one part per
simulated CPU device (`XLA_FLAGS=--xla_force_host_platform_device_count`, set here
before jax is imported). One step is the value and gradient of the area-weighted MSE
and an Adam update, jitted; the script reports the partition's halo, compile and step
seconds and the peak RSS of the process. With `--compare` the same loss and gradient
are computed by the unpartitioned network on one device and the largest differences
are printed (the equality figure at a million nodes).

Simulated devices share this machine's cores: the times measure that the step runs
and what it costs here, not a speed-up.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path


def _devices_flag(parts: int) -> None:
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={parts}"
        ).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def graphcast_problem(args):
    """GraphCast at `args.resolution` degrees: (graph, positions, target [Ng, C] float32,
    weights [Ng] float32 area weights with mean 1, model, a small graph to initialise on)."""
    import numpy as np

    from meshsim.graph import GraphFeatures
    from meshsim.meshes import build_weather_mesh, latlon_grid
    from meshsim.meshes.sphere import cell_area_weights
    from meshsim.models import GraphCast

    lat, lon = latlon_grid(args.resolution)
    wmesh = build_weather_mesh(lat, lon, splits=args.splits)
    structure = wmesh.graph()
    rng = np.random.default_rng(0)
    c = args.channels

    def with_channels(graph, dynamic):  # grid features: structural [Ng, 3] + dynamic [Ng, C]
        features = graph.features()
        grid = np.concatenate([np.asarray(features.nodes["grid"]), dynamic], 1)
        return graph.with_features(GraphFeatures(dict(features.nodes, grid=grid), features.edges))

    n_grid = structure.num_nodes("grid")
    graph = with_channels(structure, rng.normal(size=(n_grid, c)).astype(np.float32))
    target = (0.1 * rng.normal(size=(n_grid, c))).astype(np.float32)
    weights = np.repeat(cell_area_weights(lat), len(lon)).astype(np.float32)
    model = GraphCast(
        output_size=c, latent_size=args.latent, num_message_passing_steps=args.mesh_steps
    )
    small = build_weather_mesh(*latlon_grid(30.0), splits=1).graph()
    small = with_channels(small, np.zeros((small.num_nodes("grid"), c), np.float32))
    positions = {"grid": wmesh.grid_xyz, "mesh": wmesh.mesh.vertices}
    return graph, positions, target, weights / weights.mean(), model, small


def channel_problem(args):
    """MeshGraphNet on a channel mesh of about `args.nodes` nodes: as `graphcast_problem`,
    the weights the 0/1 loss mask."""
    import numpy as np

    from experiments.benchmarks.meshes import channel_problem as channel
    from experiments.benchmarks.meshes import parse_size
    from meshsim.models import MeshGraphNet

    graph, points, target, mask = channel(parse_size(args.nodes))
    small, _, _, _ = channel(1000)
    model = MeshGraphNet(
        output_size=target.shape[1],
        latent_size=args.latent,
        num_message_passing_steps=args.mesh_steps,
        remat=True,
    )
    return graph, {"mesh": points}, target, mask.astype(np.float32), model, small


PROBLEMS = {"graphcast": graphcast_problem, "channel": channel_problem}


def blocked_example(graph, positions, fields, parts: int, node_set: str):
    """`graph` cut into `parts` parts, one per device of a (1, parts) device mesh, in the
    blocked layout that `parallel.graph` trains on (`meshsim.parallel.blocked`).

    Args:
      graph: the unpadded graph with its features.
      positions: {node set: [N_s, D] float} positions to cut by.
      fields: {name: [N_out, ...]} per-node arrays of `node_set` (targets, weights).
      parts: graph devices K (≤ jax.device_count()).
      node_set: the node set `fields` live on (the model's output node set).

    Returns:
      (the `BlockedPartition`, whose `structure` carries the graph's features on the
      mesh; `fields` in the blocked layout [K·R, ...], split over the graph axis).
    """
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    from meshsim.parallel import sharding as sh
    from meshsim.parallel.blocked import make_blocked_partition

    mesh = sh.make_mesh(data=1, graph=parts)
    part = make_blocked_partition(graph, positions, mesh, node_set=node_set)
    split = NamedSharding(mesh, PartitionSpec(sh.GRAPH_AXIS))
    return part, jax.device_put(part.block_fields(fields), split)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("problem", choices=sorted(PROBLEMS))
    parser.add_argument("--resolution", type=float, default=0.25, help="graphcast: degrees")
    parser.add_argument("--splits", type=int, default=6, help="graphcast: icosahedral splits")
    parser.add_argument("--channels", type=int, default=4, help="graphcast: dynamic channels")
    parser.add_argument("--nodes", default="1M", help="channel: mesh size (e.g. 128k, 1M)")
    parser.add_argument("--parts", type=int, default=8, help="graph parts = simulated devices")
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--mesh-steps", type=int, default=None, help="processor steps")
    parser.add_argument("--steps", type=int, default=2, help="training steps timed")
    parser.add_argument("--compare", action="store_true", help="also one device, unpartitioned")
    args = parser.parse_args(argv)
    if args.mesh_steps is None:
        args.mesh_steps = 2 if args.problem == "graphcast" else 15
    _devices_flag(args.parts)

    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from meshsim.parallel import sharding as sh

    t0 = time.perf_counter()
    graph, positions, target, weights, model, small = PROBLEMS[args.problem](args)
    out_set = model.output_node_set
    nodes = {s: graph.num_nodes(s) for s in graph.node_sets}
    edges = {e: int(es.senders.shape[0]) for e, es in graph.edge_sets.items()}
    print(f"graph: nodes {nodes}, edges {edges}, built in {time.perf_counter() - t0:.1f} s")
    params = model.init(jax.random.key(0), small)  # parameters do not depend on the size
    count = sum(x.size for x in jax.tree_util.tree_leaves(params))
    tx = optax.adam(1e-3)

    # The example in the blocked layout, split over the graph devices (what
    # `parallel.graph` trains on): the partition's blocked structure carries the
    # graph's features, renumbered; targets and weights follow the output node set.
    t0 = time.perf_counter()
    part, blocked = blocked_example(
        graph, positions, {"t": target, "w": weights}, args.parts, out_set
    )
    partition_s = time.perf_counter() - t0
    stats = part.pgraph.stats()
    print(
        f"{args.parts} parts in {partition_s:.1f} s: halo/owned {stats.halo_fraction():.2%}, "
        f"local nodes per part {dict((s, part.pgraph.num_local(s)) for s in nodes)}"
    )

    def loss_fn(params, graph, target, weights, apply):
        out = apply(params, graph)[: target.shape[0]]  # [N_out, C]
        return jnp.sum(weights[:, None] * (out - target) ** 2) / (weights.sum() * out.shape[1])

    def partitioned(params, graph):
        return part.apply(model, params, graph)

    def step(params, opt_state, graph, tw):
        loss, grads = jax.value_and_grad(loss_fn)(params, graph, tw["t"], tw["w"], partitioned)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, grads

    replicated = sh.replicated(part.mesh)
    example = part.structure  # on the mesh, node and edge axes split over GRAPH_AXIS
    params0 = jax.device_put(params, replicated)
    opt_state = jax.device_put(tx.init(params), replicated)
    t0 = time.perf_counter()
    compiled = jax.jit(step).lower(params0, opt_state, example, blocked).compile()
    compile_s = time.perf_counter() - t0
    print(f"compiled in {compile_s:.1f} s; {count:,} parameters, latent {args.latent}")

    p, s, times, losses = params0, opt_state, [], []
    first_grads = None
    for i in range(args.steps):
        t0 = time.perf_counter()
        p, s, loss, grads = jax.block_until_ready(compiled(p, s, example, blocked))
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
        if i == 0:
            first_grads = grads
        rss = _peak_rss_gib()
        print(f"step {i}: loss {float(loss):.5f}, {times[-1]:.1f} s, peak RSS {rss:.2f} GiB")

    if args.compare:
        one = jax.devices()[0]
        single = jax.jit(jax.value_and_grad(loss_fn), static_argnums=4)
        t0 = time.perf_counter()
        ref_loss, ref_grads = jax.block_until_ready(
            single(
                jax.device_put(params, one),
                jax.device_put(graph, one),
                target,
                weights,
                model.apply,
            )
        )
        print(f"one device, unpartitioned: {time.perf_counter() - t0:.1f} s (with compile)")
        diffs = jax.tree_util.tree_map(
            lambda a, b: float(jnp.max(jnp.abs(np.asarray(a) - np.asarray(b)))),
            first_grads,
            ref_grads,
        )
        scale = max(float(jnp.max(jnp.abs(np.asarray(g)))) for g in jax.tree.leaves(ref_grads))
        print(
            f"equality: loss {abs(losses[0] - float(ref_loss)):.2e} "
            f"(of {float(ref_loss):.5f}), gradients max abs diff "
            f"{max(jax.tree.leaves(diffs)):.2e} (largest gradient {scale:.2e}, relative "
            f"{max(jax.tree.leaves(diffs)) / scale:.1e})"
        )
    print(f"peak RSS {_peak_rss_gib():.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
