"""Radius-graph search under `jit`: meshsim's cell list against jax-md's `partition`.

    .venv/bin/python experiments/benchmarks/neighbors.py                # 10k and 100k, 2D and 3D
    .venv/bin/python experiments/benchmarks/neighbors.py --smoke        # seconds
    PYTHONPATH=/path/to/jax_md .venv/bin/python experiments/benchmarks/neighbors.py

Uniform random particles in a periodic unit box at LagrangeBench-like density: the
radius is chosen so that a particle has `--neighbours` others within it on average.
Timed per size and dimension, on whatever backend jax picks (CPU here):

* meshsim: `meshsim.graph.radius_graph` under `jit`, capacity from
  `suggest_capacity` (1.25 × the pair count, rounded up to 256).
* jax-md: `partition.neighbor_list(..., format=Sparse)` (both directions, like
  meshsim), allocated on the host once (capacity multiplier 1.25), then the jitted
  `update`. jax-md skips the rebuild when no particle moved more than half of
  `dr_threshold`, so it gets `dr_threshold=0` and two position sets alternate: every
  timed call rebuilds. Skipped (and said so) when `jax_md` does not import.

Compilation is excluded (one warm-up call each); each time is the median of
`--repeats` calls, the two implementations interleaved. Before timing, both must
find the same directed pairs or the run stops. Writes `<out>/neighbors.json` when
`--out` is given.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `meshsim` importable
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from meshsim.graph import radius_graph, suggest_capacity  # noqa: E402

SIZES = (10_000, 100_000)
SMOKE_SIZES = (500,)
DIMS = (2, 3)
BALL = {2: math.pi, 3: 4 * math.pi / 3}  # unit-ball volume


def _radius(n: int, dim: int, neighbours: float) -> float:
    """Radius with `neighbours` others inside it on average, n particles in the unit box."""
    return (neighbours / (n * BALL[dim])) ** (1 / dim)


def _pairs(senders, receivers, valid) -> set[tuple[int, int]]:
    s, r, v = np.asarray(senders), np.asarray(receivers), np.asarray(valid)
    return set(zip(s[v].tolist(), r[v].tolist()))


def _meshsim(x0, radius: float):
    """(call(x) → blocked result, pair set of x0, edge capacity)."""
    dim = x0.shape[1]
    box = [[0.0, 1.0]] * dim
    probe = radius_graph(x0, radius, capacity=1, box=box, periodic=True)
    capacity = suggest_capacity(int(probe.count))
    fn = jax.jit(lambda x: radius_graph(x, radius, capacity=capacity, box=box, periodic=True))
    graph = fn(x0)
    assert not bool(graph.overflow)
    pairs = _pairs(graph.senders, graph.receivers, graph.mask)
    return lambda x: jax.block_until_ready(fn(x)), pairs, capacity


def _jax_md(x0, radius: float):
    """(call(x), pair set of x0, edge capacity), or None when jax-md does not import."""
    try:
        from jax_md import partition, space
    except Exception as error:  # noqa: BLE001 - any import failure means "not available"
        print(f"jax-md unavailable: {type(error).__name__}: {error}")
        return None
    displacement, _ = space.periodic(1.0)
    neighbor_fn = partition.neighbor_list(
        displacement, 1.0, radius, dr_threshold=0.0, format=partition.Sparse
    )
    nbrs = neighbor_fn.allocate(x0)
    update = jax.jit(lambda x, nbrs: nbrs.update(x))
    n = x0.shape[0]
    out = update(x0 + 0.0, nbrs)
    assert not bool(out.did_buffer_overflow)
    receivers, senders = np.asarray(out.idx[0]), np.asarray(out.idx[1])
    pairs = _pairs(senders, receivers, (receivers < n) & (senders < n))
    return lambda x: jax.block_until_ready(update(x, nbrs)), pairs, int(out.idx.shape[1])


def _case(n: int, dim: int, neighbours: float, repeats: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    radius = _radius(n, dim, neighbours)
    xs = [jax.device_put(rng.random((n, dim), dtype=np.float32)) for _ in range(2)]
    impls = {"meshsim": _meshsim(xs[0], radius)}
    md = _jax_md(xs[0], radius)
    if md is not None:
        impls["jax-md"] = md
    reference = impls["meshsim"][1]
    for name, (_, pairs, _) in impls.items():
        if pairs != reference:
            raise SystemExit(
                f"AGREEMENT FAILED: {name} finds {len(pairs)} pairs, meshsim "
                f"{len(reference)} (n={n}, dim={dim})"
            )
    for call, _, _ in impls.values():  # compile for the second position set too
        call(xs[1])
    times = {name: [] for name in impls}
    for k in range(repeats):
        for name, (call, _, _) in impls.items():
            t0 = time.perf_counter()
            call(xs[k % 2])
            times[name].append(time.perf_counter() - t0)
    row = {
        "n": n,
        "dim": dim,
        "radius": radius,
        "pairs_per_particle": len(reference) / n,
        "repeats": repeats,
    }
    for name, (_, _, capacity) in impls.items():
        row[name] = {"median_ms": 1e3 * statistics.median(times[name]), "capacity": capacity}
    return row


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table; `--smoke` for tiny sizes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 2 repeats")
    parser.add_argument("--sizes", default=None, help="comma-separated particle counts")
    parser.add_argument("--neighbours", type=float, default=15.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for neighbors.json")
    args = parser.parse_args(argv)
    sizes = SMOKE_SIZES if args.smoke else SIZES
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    repeats = 2 if args.smoke else args.repeats
    rows = [_case(n, d, args.neighbours, repeats, args.seed) for n in sizes for d in DIMS]
    print(
        f"backend {jax.default_backend()}, {platform.processor() or platform.machine()}, "
        f"median of {repeats}, compile excluded"
    )
    print("| N | D | pairs/particle | meshsim ms | jax-md ms |")
    print("|---|---|---|---|---|")
    for row in rows:
        md = f"{row['jax-md']['median_ms']:.1f}" if "jax-md" in row else "n/a"
        print(
            f"| {row['n']} | {row['dim']} | {row['pairs_per_particle']:.1f} | "
            f"{row['meshsim']['median_ms']:.1f} | {md} |"
        )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "neighbors.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
