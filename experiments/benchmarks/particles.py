"""Particles benchmark: meshsim's neighbour search and GNS training step against PyG.

    .venv/bin/python experiments/benchmarks/particles.py                 # 10k and 100k
    .venv/bin/python experiments/benchmarks/particles.py --smoke --out /tmp/pb   # seconds

Uniform random particles in the unit box (not periodic: torch_cluster has no periodic
search), the radius chosen so that a particle has `--neighbours` others within it on
average (WaterDrop-like density). Two comparisons, each on CPU, interleaved
round-robin with a dense matmul whose rate is the machine reference:

* **Neighbour search**: `meshsim.graph.radius_graph` under `jit` (capacity from
  `suggest_capacity`) against `torch_cluster.radius_graph` (`max_num_neighbors`
  128; scipy's cKDTree when torch_cluster is not installed, and the tables say
  so), 2D and 3D. Both must find the same directed pairs before timing, or the run
  stops.
* **One GNS training step** (forward + backward + Adam, noise off, batch of 1):
  meshsim's `ParticleTask` + `MeshGraphNet` through `make_train_step` (edges rebuilt
  inside the jitted step, online normalizer statistics updated) against
  `peer_gns.GNS` (radius graph rebuilt inside the step with torch_cluster, the same
  inputs, fixed statistics), started from meshsim's weights and statistics. Their
  forward outputs must agree (max|Δ| / max|meshsim| ≤ 1e-4) before timing. The PyG
  variants (plain concatenation, PhysicsNeMo's concat trick, the trick under
  `torch.compile`) are all timed at the smallest size; the fastest is the peer row
  and the only one run at larger sizes. A size is skipped, and the table says so,
  when a run is predicted (from the smaller size's peak memory) not to fit.

Writes `<out>/particles.json` and `<out>/particles.md`.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import sys
import time
from pathlib import Path

# torch's OpenMP threads spin-wait by default, which is slow on a shared machine (run.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `experiments.benchmarks` importable
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from experiments.benchmarks import flops, particles_report, timing  # noqa: E402
from experiments.benchmarks.neighbors import _radius  # noqa: E402
from meshsim import normalization as norm  # noqa: E402
from meshsim.graph import PaddingBudget, radius_graph, suggest_capacity  # noqa: E402
from meshsim.graph.window import pad_window, stack_windows  # noqa: E402
from meshsim.models import get_model  # noqa: E402
from meshsim.simulator import Simulator  # noqa: E402
from meshsim.tasks import PARTICLES, particle_task  # noqa: E402
from meshsim.tasks.particles import NUM_PARTICLE_TYPES  # noqa: E402
from meshsim.training.step import init_train_state, make_train_step  # noqa: E402

SIZES = (10_000, 100_000)
SMOKE_SIZES = (300,)
MODEL = {"latent_size": 64, "num_message_passing_steps": 5, "mlp_hidden_layers": 2}
SMOKE_MODEL = {"latent_size": 16, "num_message_passing_steps": 2, "mlp_hidden_layers": 2}
HISTORY = 5  # C, GNS's input velocities
LEARNING_RATE = 1e-4
AGREEMENT_RTOL = 1e-4
MATMUL = "__matmul__"
PEERS = ("pyg", "pyg+trick", "pyg+trick+compile")
# A run may be predicted to use at most this share of MemAvailable and MAX_PEAK_GIB (run.py).
MEMORY_FRACTION = 0.75
MAX_PEAK_GIB = 12.0
RESULTS = Path(__file__).resolve().parent / "results"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {timing.load()[0]:.1f}] {msg}", flush=True)


def _edge_keys(senders, receivers, n: int) -> np.ndarray:
    """[E] int64 sorted keys sender · n + receiver of directed pairs (order-free compare)."""
    return np.sort(np.asarray(senders, np.int64) * n + np.asarray(receivers, np.int64))


def _reset_peak() -> None:
    """Returns freed heap to the OS (glibc) and resets VmHWM to the current RSS (Linux ≥
    4.0), so that the next peak is one implementation's own; ignored elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    timing.reset_peak_rss()


def _rounds(fns: dict, repeats: int, budget_s: float, estimates: dict) -> dict:
    """round_robin with fewer repeats for implementations whose calls are slow."""
    reps = {k: timing.choose_repeats(repeats, estimates.get(k, 0.0), budget_s) for k in fns}
    return timing.round_robin(fns, reps)


# --------------------------------------------------------------------------- search


def search_case(n: int, dim: int, neighbours: float, repeats: int, seed: int) -> dict:
    """Times meshsim's and the peer's (`peer_gns.radius_graph`) radius graphs of n
    uniform particles in the unit box, after checking they find the same pairs."""
    import torch

    from experiments.benchmarks import peer_gns

    rng = np.random.default_rng(seed)
    x = rng.random((n, dim), dtype=np.float32)  # [N, D] float32 in the unit box
    radius = _radius(n, dim, neighbours)
    box = [[0.0, 1.0]] * dim
    xj = jax.device_put(x)
    capacity = suggest_capacity(int(radius_graph(xj, radius, capacity=1, box=box).count))
    fn = jax.jit(lambda p: radius_graph(p, radius, capacity=capacity, box=box))
    graph = jax.block_until_ready(fn(xj))
    if bool(graph.overflow):
        raise SystemExit(f"meshsim radius_graph overflowed at n={n}, dim={dim}")
    mask = np.asarray(graph.mask)
    ours = _edge_keys(np.asarray(graph.senders)[mask], np.asarray(graph.receivers)[mask], n)
    xt = torch.from_numpy(x)
    edge_index = peer_gns.radius_graph(xt, radius)
    theirs = _edge_keys(edge_index[0].numpy(), edge_index[1].numpy(), n)
    if not np.array_equal(ours, theirs):
        raise SystemExit(
            f"AGREEMENT FAILED: {peer_gns.search_backend()} finds {theirs.size} directed "
            f"pairs, meshsim {ours.size} (n={n}, dim={dim}); refusing to time them."
        )
    matmul, _ = timing.jax_matmul_fn(1024, 1024, 1024)
    fns = {
        "meshsim": lambda: jax.block_until_ready(fn(xj)),
        "peer": lambda: peer_gns.radius_graph(xt, radius),
        MATMUL: matmul,
    }
    times = timing.round_robin(fns, repeats)
    row = {
        "n": n,
        "dim": dim,
        "radius": radius,
        "pairs": int(ours.size),
        "pairs_per_particle": round(ours.size / n, 2),
        "capacity": capacity,
        "meshsim": times["meshsim"],
        "peer": times["peer"],
        "matmul_load_reference": times[MATMUL],
    }
    row["ratio_peer_over_meshsim"] = round(
        times["peer"]["median_s"] / times["meshsim"]["median_s"], 3
    )
    log(
        f"search n={n} D={dim}: {row['pairs_per_particle']} pairs/particle, meshsim "
        f"{1e3 * times['meshsim']['median_s']:.1f} ms, {peer_gns.search_backend()} "
        f"{1e3 * times['peer']['median_s']:.1f} ms"
    )
    return row


# --------------------------------------------------------------------------- training


def make_trajectory(n: int, radius: float, seed: int) -> tuple[dict, dict]:
    """(trajectory, meta): n fluid particles drifting in the unit box, HISTORY + 2 frames.

    Positions [T, N, 2] float32: uniform start, small random velocities and gravity
    (every quantity GNS reads is non-trivial); all particles type 0, no kinematic ones.
    """
    rng = np.random.default_rng(seed)
    frames = HISTORY + 2
    x0 = rng.uniform(0.0, 1.0, (n, 2))
    v0 = rng.normal(0.0, 0.05 * radius, (n, 2))
    t = np.arange(frames)[:, None, None]
    position = x0 + v0 * t + 0.5 * np.array([0.0, -0.01 * radius]) * t * (t - 1)
    meta = {
        "particles": {
            "dim": 2,
            "bounds": [[0.0, 1.0], [0.0, 1.0]],
            "periodic": [False, False],
            "radius": radius,
            "kinematic_types": [],
        }
    }
    kind = np.zeros((1, n, 1), np.int32)
    return {"position": position.astype(np.float32), "particle_type": kind}, meta


class Problem:
    """One training example of n particles, on meshsim's side and torch's.

    Fields: n, radius (R); trajectory ({"position": [T, N, 2] float32, "particle_type":
    [1, N, 1] int32}); task, sim (Simulator); window (the padded window at t = C: one
    padding particle, the task's edge capacity) and batch (it stacked, a batch of 1);
    capacity (edge slots: the task's 1.25 × the most pairs in the data).
    """

    def __init__(self, n: int, model_cfg: dict, neighbours: float, seed: int):
        self.n, self.radius = n, _radius(n, 2, neighbours)
        trajectory, meta = make_trajectory(n, self.radius, seed)
        self.trajectory = trajectory
        self.task = particle_task(meta=meta, noise_std=0.0, history_size=HISTORY)
        model = get_model(
            "meshgraphnet",
            output_size=2,
            output_node_set=PARTICLES,
            latent_size=model_cfg["latent_size"],
            num_message_passing_steps=model_cfg["num_message_passing_steps"],
            mlp_hidden_layers=model_cfg["mlp_hidden_layers"],
        )
        self.sim = Simulator(model=model, task=self.task)
        graph = self.task.structure(trajectory)
        capacity = graph.edge_sets[PARTICLES].num_edges  # the task's own (1.25 × pairs)
        budget = PaddingBudget(n_node={PARTICLES: n + 1}, n_edge={PARTICLES: capacity}, n_graph=2)
        window = self.task.window(trajectory, HISTORY, graph)
        self.window = pad_window(window, budget, PARTICLES)
        self.batch = stack_windows([self.window])
        self.capacity = capacity


def meshsim_impl(problem: Problem, seed: int, limit_mb: float) -> dict:
    """{"train": () -> loss, "forward": [N, 2], "edges", "params", "normalizers",
    "xla_mb"}, or {"skipped": why} when XLA's buffers for the step exceed `limit_mb`.

    The step is compiled ahead (its memory analysis is exact, so nothing is run that
    cannot fit). One training step is then taken (it gives the online normalizers
    non-trivial statistics); the forward output and the host copies of the parameters
    and statistics that the peers start from are those after it.
    """
    sim, tx = problem.sim, optax.adam(LEARNING_RATE)
    batch = jax.device_put(problem.batch)
    box = {"state": init_train_state(sim, tx, jax.random.key(seed)), "k": 0}
    step = make_train_step(sim, tx).lower(box["state"], batch, jax.random.key(0)).compile()
    mem = step.memory_analysis()
    xla_mb = (
        mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
    ) / 2**20
    if xla_mb > limit_mb:
        return {
            "skipped": f"not run: XLA needs {xla_mb / 1024:.1f} GiB for the step > limit "
            f"{limit_mb / 1024:.1f} GiB"
        }

    def train():
        box["k"] += 1
        box["state"], metrics = step(box["state"], batch, jax.random.key(box["k"]))
        if int(metrics["overflow"]):
            raise SystemExit("meshsim train step overflowed its edge capacity")
        return float(metrics["loss"])

    train()
    state = box["state"]
    params = jax.tree_util.tree_map(np.asarray, state.params)
    normalizers = jax.tree_util.tree_map(np.asarray, state.normalizers)

    @jax.jit
    def apply(params, normalizers, fields, structure):
        structure, needed = sim.task.dynamic_structure(fields, structure)
        graph = sim.task.build_graph(fields, structure)
        return sim.apply(params, normalizers, graph), needed[PARTICLES]

    fields, structure = jax.device_put((problem.window.fields, problem.window.graph))
    out, needed = apply(state.params, state.normalizers, fields, structure)
    return {
        "train": train,
        "forward": np.asarray(out)[: problem.n],
        "edges": int(needed),
        "params": params,
        "normalizers": normalizers,
        "xla_mb": round(xla_mb, 1),
    }


def torch_impl(name: str, problem: Problem, params, normalizers, model_cfg: dict) -> dict:
    """{"train": () -> loss, "forward": [N, 2], "edges"} of one PyG variant (see PEERS)."""
    import torch

    from experiments.benchmarks import peer_gns

    task, fields = problem.task, problem.window.fields
    model = peer_gns.GNS(
        task.node_feature_sizes[PARTICLES],
        task.edge_types[PARTICLES][2],
        2,
        latent=model_cfg["latent_size"],
        hidden_layers=model_cfg["mlp_hidden_layers"],
        steps=model_cfg["num_message_passing_steps"],
        concat_trick="trick" in name,
    )
    peer_gns.load_meshsim_params(model, params, node_set=PARTICLES, edge_set=PARTICLES)
    n = problem.n
    history = np.concatenate(
        [fields["history|position"][:n], fields["prev|position"][:n, None]]
        + [fields["position"][:n, None]],
        axis=1,
    )
    one_hot = np.eye(NUM_PARTICLE_TYPES, dtype=np.float32)
    stats = {}
    for key, normalizer in (
        ("nodes", normalizers.nodes[PARTICLES]),
        ("edges", normalizers.edges[PARTICLES]),
        ("output", normalizers.output),
    ):
        mean, std = norm.mean_and_std(normalizer)
        stats[key] = (torch.tensor(np.asarray(mean)), torch.tensor(np.asarray(std)))
    inputs = peer_gns.Inputs(
        history=torch.from_numpy(np.ascontiguousarray(history)),
        target_position=torch.from_numpy(np.ascontiguousarray(fields["target|position"][:n])),
        one_hot=torch.from_numpy(one_hot[fields["particle_type"][:n]]),
        lo=torch.zeros(2),
        hi=torch.ones(2),
        radius=problem.radius,
        stats=stats,
    )
    net = torch.compile(model) if name.endswith("+compile") else model
    out, edges = peer_gns.forward(net, inputs)
    return {
        "train": peer_gns.make_train_step(net, inputs, LEARNING_RATE),
        "forward": out,
        "edges": edges,
    }


def train_case(n: int, model_cfg: dict, names: tuple[str, ...], args, estimates: dict) -> dict:
    """Builds, checks and times the training step of meshsim and the PyG variants `names`."""
    t0 = time.perf_counter()
    problem = Problem(n, model_cfg, args.neighbours, args.seed)
    row = {"n": n, "radius": problem.radius, "capacity": problem.capacity, "skipped": {}}
    log(f"train n={n}: problem built in {time.perf_counter() - t0:.1f} s")
    impls, first_call, peak = {}, {}, {}
    limit_mb = min(args.max_peak_gib * 1024, MEMORY_FRACTION * timing.mem_available_mb())
    for name in ("meshsim", *names):
        # torch: linear in n from the largest warm-step peak of any variant so far
        predicted = estimates.get("torch_mb_per_particle", 0.0) * n
        if name != "meshsim" and predicted > limit_mb:
            row["skipped"][name] = (
                f"not run: predicted peak {predicted / 1024:.1f} GiB (the smaller size's, "
                f"scaled by N) > limit {limit_mb / 1024:.1f} GiB"
            )
            log(f"train n={n} {name}: {row['skipped'][name]}")
            continue
        if name != "meshsim" and "meshsim" not in impls:
            row["skipped"][name] = "not run: no meshsim reference at this size"
            continue
        _reset_peak()
        base = timing.rss_mb()
        t0 = time.perf_counter()
        try:  # a variant that cannot run (torch.compile's toolchain, memory) is reported
            if name == "meshsim":
                built = meshsim_impl(problem, args.seed, limit_mb)
                if "skipped" in built:
                    row["skipped"][name] = built["skipped"]
                    log(f"train n={n} {name}: {built['skipped']}")
                    continue
                impls[name] = ref = built
            else:
                impls[name] = torch_impl(
                    name, problem, ref["params"], ref["normalizers"], model_cfg
                )
                impls[name]["train"]()  # compiles (torch.compile) and warms up
        except MemoryError as error:
            impls.pop(name, None)
            row["skipped"][name] = f"failed: MemoryError: {error}"
            continue
        except Exception as error:  # noqa: BLE001
            if name == "meshsim":
                raise
            impls.pop(name, None)
            row["skipped"][name] = f"failed: {type(error).__name__}: {str(error)[:200]}"
            log(f"train n={n} {name}: {row['skipped'][name]}")
            continue
        first_call[name] = round(time.perf_counter() - t0, 3)
        _reset_peak()  # the peak of a warm step, without compilation's
        impls[name]["train"]()
        peak[name] = round(timing.peak_rss_mb() - base, 1)
        log(
            f"train n={n} {name}: built + first step {first_call[name]} s, warm step peak "
            f"+{peak[name]} MB"
        )
        if name != "meshsim":
            estimates["torch_mb_per_particle"] = max(
                estimates.get("torch_mb_per_particle", 0.0), peak[name] / n
            )
    if "meshsim" not in impls:
        return row
    ref_out = impls["meshsim"]["forward"]
    scale = float(np.abs(ref_out).max())
    agreement = {}
    for name, impl in impls.items():
        rel = float(np.abs(impl["forward"] - ref_out).max() / scale)
        agreement[name] = {"max_rel_err": rel, "edges": impl["edges"]}
        if rel > AGREEMENT_RTOL or impl["edges"] != impls["meshsim"]["edges"]:
            raise SystemExit(
                f"AGREEMENT FAILED: {name} forward output differs from meshsim's by "
                f"max|Δ|/max|ref| = {rel:.3g} (≤ {AGREEMENT_RTOL:g} expected), edges "
                f"{impl['edges']} vs {impls['meshsim']['edges']}; refusing to time it."
            )
    matmul, matmul_flop = timing.jax_matmul_fn(1024, 1024, 1024)
    fns = {name: impl["train"] for name, impl in impls.items()}
    fns[MATMUL] = matmul
    est = {name: first_call[name] / 3 for name in impls}
    times = _rounds(fns, args.repeats, args.budget_s, est)
    edges = impls["meshsim"]["edges"]
    task = problem.task
    flop = flops.mgn_train_flops(
        n,
        edges,
        node_in=task.node_feature_sizes[PARTICLES],
        edge_in=task.edge_types[PARTICLES][2],
        output_size=2,
        latent=model_cfg["latent_size"],
        hidden_layers=model_cfg["mlp_hidden_layers"],
        steps=model_cfg["num_message_passing_steps"],
    )
    matmul_gflops = matmul_flop / times[MATMUL]["median_s"] / 1e9
    row.update(
        edges=edges,
        model_train_gflop=round(flop / 1e9, 3),
        matmul_gflops=round(matmul_gflops, 2),
        agreement=agreement,
        first_call_s=first_call,
        peak_delta_mb=peak,
        xla_mb=impls["meshsim"]["xla_mb"],
    )
    for name in impls:
        gflops = flop / times[name]["median_s"] / 1e9
        row[name] = {
            **times[name],
            "model_gflops_per_s": round(gflops, 2),
            "fraction_of_matmul": round(gflops / matmul_gflops, 4),
        }
        log(f"train n={n} {name}: {1e3 * times[name]['median_s']:.1f} ms/step")
    return row


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark, writes particles.json and particles.md; `--smoke` for seconds."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes and model, 2 repeats")
    ap.add_argument("--sizes", default=None, help="comma-separated particle counts")
    ap.add_argument("--neighbours", type=float, default=20.0, help="mean neighbours within R")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--budget-s", type=float, default=90.0, help="timed seconds per impl/size")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"PyG variants from {PEERS}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--latent", type=int, default=None, help="latent size (default 64)")
    ap.add_argument("--skip-search", action="store_true", help="training rows only")
    ap.add_argument("--max-peak-gib", type=float, default=MAX_PEAK_GIB, help="memory limit")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    sizes = SMOKE_SIZES if args.smoke else SIZES
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    model_cfg = SMOKE_MODEL if args.smoke else MODEL
    if args.latent is not None:
        model_cfg = {**model_cfg, "latent_size": args.latent}
    if args.smoke:
        args.repeats = 2
        args.peers = ",".join(p for p in args.peers.split(",") if "compile" not in p)
    peers = tuple(p for p in args.peers.split(",") if p)
    unknown = set(peers) - set(PEERS)
    if unknown:
        raise SystemExit(f"--peers: expected names from {PEERS}, got {sorted(unknown)}")
    import torch

    from experiments.benchmarks import peer_gns

    torch.set_num_threads(os.cpu_count() or 1)
    result = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "backend": jax.default_backend(),
            "jax": jax.__version__,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "peer_search": peer_gns.search_backend(),
            "load_start": timing.load(),
            "neighbours": args.neighbours,
            "smoke": args.smoke,
        },
        "model": {**model_cfg, "history_size": HISTORY},
        "search": [],
        "train": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)

    def write() -> None:  # after every row: a later failure keeps what was measured
        (args.out / "particles.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "particles.md").write_text(particles_report.render(result, PEERS))

    for n in () if args.skip_search else sizes:
        for dim in (2,) if args.smoke else (2, 3):
            result["search"].append(search_case(n, dim, args.neighbours, args.repeats, args.seed))
            write()
    estimates: dict = {}
    names = peers
    for n in sizes:
        row = train_case(n, model_cfg, names, args, estimates)
        result["train"].append(row)
        timed = [p for p in names if p in row]
        if timed:  # the fastest variant is the peer row from here on
            best = min(timed, key=lambda p: row[p]["median_s"])
            row["peer"] = best
            names = (best,)
        result["meta"]["load_end"] = timing.load()
        write()
    log(f"wrote {args.out / 'particles.json'} and particles.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
