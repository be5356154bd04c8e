"""MeshGraphNet benchmark: meshsim against jraph and PyTorch Geometric on CPU.

    .venv/bin/python experiments/benchmarks/run.py                 # 2k, 16k, 128k + ablations
    .venv/bin/python experiments/benchmarks/run.py --sizes 2k,16k --repeats 20
    .venv/bin/python experiments/benchmarks/run.py --smoke --out /tmp/bench   # seconds

For each mesh size: build a cylinder-flow-shaped problem, initialise meshsim's
MeshGraphNet, copy its weights into the peers, check that every peer's forward
output agrees with meshsim's (fails loudly if not), then time a training step
and a rollout step of every implementation. Each implementation is timed in a
process of its own (`--worker`), as a user runs one framework, and the processes
alternate over `--rounds` rounds; within a process its calls alternate with the
reference matmul's. (With `--in-process`, every implementation is timed in this
process, interleaved round-robin: at 16k nodes that made meshsim's training step
15% slower than alone, the two frameworks' allocations sharing one heap.) Peak
memory and compile times are measured in fresh subprocesses too, so peaks do not
mix and caches are cold. The ablations time meshsim's options on one size.
Writes `<out>/latest.json` and `<out>/latest.md` (see report.py for the layout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# torch's OpenMP threads spin-wait by default; on a shared (oversubscribed) machine that
# makes 2-thread torch up to 10x slower at random (measured 0.5 s vs 4.8 s for the same
# 2k-node forward). Passive waiting gives the PyG peer its best times here. Must be set
# before torch loads libgomp; JAX does not use OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `experiments.benchmarks` importable
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from experiments.benchmarks import flops, impls, report, timing, xla_profile  # noqa: E402
from experiments.benchmarks.meshes import (  # noqa: E402
    EDGE_FEATURES,
    NODE_FEATURES,
    OUTPUT_SIZE,
    make_problem,
    parse_size,
)
from meshsim import hugepages  # noqa: E402

PAPER_MODEL = {"latent_size": 128, "num_message_passing_steps": 15, "mlp_hidden_layers": 2}
SMOKE_MODEL = {"latent_size": 16, "num_message_passing_steps": 2, "mlp_hidden_layers": 2}
# A run may be predicted to use at most this share of MemAvailable and at most MAX_PEAK_GIB
# (the 24 GiB machine is shared with other people's jobs; an OOM would hit them too).
MEMORY_FRACTION = 0.75
MAX_PEAK_GIB = 12.0
AGREEMENT_RTOL = 1e-4  # max |out - ref| / max |ref|; float32 sums in another order differ ~1e-6
MATMUL_KEY = "__matmul__"
# The PyG peers' timing processes keep the memory torch frees instead of handing it back to
# the kernel: no mmap for large blocks, no trimming of the heap. torch's CPU allocator frees
# every large tensor, and glibc returns each to the kernel, which maps and zeroes it again
# on the next call; PyTorch's CPU performance guide recommends a caching allocator
# (jemalloc or TCMalloc) for this, and these glibc tunables do the same without installing
# one. Measured at 16k nodes, torch's training step in its own process: 7.82 s with huge
# pages only, 5.95 s with neither, 5.01 s with huge pages and this (4 calls each). XLA
# keeps its buffers' memory already: the same setting did not change meshsim's step
# (3.77 s against 3.94 s at 16k, 0.453 against 0.424 s at 2k), so meshsim is timed as the
# `meshsim` command runs it (huge pages only, `meshsim.hugepages`).
PEER_ALLOCATOR = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
MODES = ("train", "rollout")
PEERS = report.PEERS  # jraph and the PyG peers (impls.PYG)
# Ablations: (name, meshsim options, extra build kwargs) against the defaults.
ABLATIONS = (
    ("default", {}, {}),
    ("concat_trick=False", {"concat_trick": False}, {}),
    ("remat=True", {"remat": True}, {}),
    ("remat=False", {"remat": False}, {}),
    ("scan_unroll=15", {"scan_unroll": 15}, {}),
    ("donate=False", {}, {"donate": False}),
    ("padded_to_bucket", {}, {"pad_to_bucket": True}),
)
RESULTS = Path(__file__).resolve().parent / "results"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {timing.load()[0]:.1f}] {msg}", flush=True)


# --------------------------------------------------------------------------- worker


def _worker(spec: dict) -> dict:
    """Runs in a fresh process: peak memory of one (impl, mode) or compile time."""
    if spec.get("cache_dir"):
        jax.config.update("jax_compilation_cache_dir", spec["cache_dir"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    problem = make_problem(spec["nodes"])
    params = impls.init_params(problem, spec["model"])
    if spec["impl"] in impls.PYG:
        import torch  # noqa: F401  (imported before the baseline so it is not counted)
    base = timing.rss_mb()
    t0 = time.perf_counter()
    impl = impls.build(spec["impl"], problem, params, spec["model"], options=spec.get("options"))
    trace_s = time.perf_counter() - t0  # tracing + lowering (JAX), model construction (torch)
    compile_s = impls.compile_impl(impl)
    out = {
        "rss_base_mb": round(base, 1),
        "trace_and_lower_s": round(trace_s, 3),
        "compile_s": {k: round(v, 3) for k, v in compile_s.items()},
    }
    if spec["task"] == "time":
        out.update(_time_in_worker(impl, spec))
    if spec["task"] == "memory":
        fn = impl.train if spec["mode"] == "train" else impl.rollout
        walls = [timing.timed_call(fn)[0] for _ in range(spec.get("calls", 2))]
        out.update(peak_rss_mb=round(timing.peak_rss_mb(), 1), walls_s=[round(w, 3) for w in walls])
        out["delta_mb"] = round(out["peak_rss_mb"] - base, 1)
    out["total_s"] = round(time.perf_counter() - t0, 3)
    return out


def _time_in_worker(impl, spec: dict) -> dict:
    """One implementation's timed calls in its own process: per mode two warm-up calls,
    then up to `spec["repeats"]` calls (fewer past `spec["budget_s"]`) alternating with
    the reference matmul's. Raw calls, merged by the caller over rounds."""
    if spec["impl"] in impls.PYG:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)  # as the in-process run sets it
    mm_fn, _ = timing.jax_matmul_fn(*spec["matmul_shape"])
    out = {"calls": {}, "matmul_calls": {}, "first_call_s": {}}
    for mode in spec["modes"]:
        fn = getattr(impl, mode)
        w0, _ = timing.timed_call(fn)  # first call (allocations), second as estimate
        w1, _ = timing.timed_call(fn)
        out["first_call_s"][mode] = round(w0, 3)
        reps = timing.choose_repeats(spec["repeats"], w1, spec["budget_s"], minimum=1)
        calls = timing.round_robin_calls({mode: fn, MATMUL_KEY: mm_fn}, reps)
        out["calls"][mode], out["matmul_calls"][mode] = calls[mode], calls[MATMUL_KEY]
    return out


def worker_env(name: str) -> dict:
    """Environment overrides of implementation `name`'s timing processes: the PyG peers'
    allocator setting (`PEER_ALLOCATOR`) added to this process's GLIBC_TUNABLES."""
    if name not in impls.PYG:
        return {}
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return {"GLIBC_TUNABLES": f"{tunables}:{PEER_ALLOCATOR}" if tunables else PEER_ALLOCATOR}


def _timed_in_workers(names_by_mode: dict, n: int, args, model_cfg: dict, shape) -> tuple:
    """({mode: {impl: raw calls}}, {mode: matmul calls}, {impl: first-call info},
    {impl: why its process failed}) of every implementation timed in processes of its
    own, the processes alternating over `args.rounds` rounds (each round a share of the
    repeats and of the time budget). An implementation whose process fails (out of
    memory, a crash) is left out of the later rounds and of the calls."""
    rounds = max(1, args.rounds)
    calls = {m: {k: [] for k in names} for m, names in names_by_mode.items()}
    mm_calls, first, failed = {m: [] for m in names_by_mode}, {}, {}
    for r in range(rounds):
        for name in dict.fromkeys(k for names in names_by_mode.values() for k in names):
            if name in failed:
                continue
            modes = [m for m, names in names_by_mode.items() if name in names]
            spec = {
                "task": "time",
                "impl": name,
                "nodes": n,
                "model": model_cfg,
                "modes": modes,
                "repeats": -(-args.repeats // rounds),
                "budget_s": args.budget_s / rounds,
                "matmul_shape": list(shape),
            }
            got = run_worker(spec, env=worker_env(name))
            if "error" in got:
                failed[name] = f"its timing process failed: {got['error']}"
                log(f"  round {r + 1}/{rounds} {name}: {failed[name]}")
                for m in modes:
                    calls[m].pop(name, None)
                continue
            for m in modes:
                calls[m][name] += got["calls"][m]
                mm_calls[m] += got["matmul_calls"][m]
            if r == 0:
                first[name] = {
                    "trace_and_lower_s": got["trace_and_lower_s"],
                    "compile_s": got["compile_s"],
                    **{f"{m}_first_call_s": v for m, v in got["first_call_s"].items()},
                }
            log(f"  round {r + 1}/{rounds} {name}: {len(got['calls'][modes[0]])} calls per mode")
    return calls, mm_calls, first, failed


def run_worker(spec: dict, env: dict | None = None, timeout: float = 1800) -> dict:
    """Runs `_worker(spec)` in a fresh interpreter; returns its JSON or {"error": ...}."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- main parts


def check_agreement(built: dict, rtol: float, ref_name: str = "meshsim") -> dict:
    """Forward outputs of every impl vs meshsim on the same weights; raises if they differ."""
    ref = built[ref_name].forward()
    scale = float(np.abs(ref).max())
    out = {}
    for name, impl in built.items():
        got = impl.forward()
        rel = float(np.abs(got - ref).max() / scale)
        out[name] = {"max_rel_err": rel, "ok": rel <= rtol}
        if rel > rtol:
            raise SystemExit(
                f"AGREEMENT FAILED: {name} forward output differs from meshsim's by "
                f"max|Δ|/max|ref| = {rel:.3g} > {rtol:g}; refusing to time it."
            )
    return out


def _timed_in_process(built: dict, names: list, mode: str, args, first: dict, shape):
    """({impl: summary}, the matmul's summary) of `names` timed in this process,
    interleaved round-robin with the reference matmul (`--in-process`)."""
    fns = {k: getattr(built[k], mode) for k in names}
    reps = {}
    for name, fn in fns.items():  # warm-up: first call (allocations), second as estimate
        w0, _ = timing.timed_call(fn)
        w1, _ = timing.timed_call(fn)
        first[name][f"{mode}_first_call_s"] = round(w0, 3)
        reps[name] = timing.choose_repeats(args.repeats, w1, args.budget_s)
    log(f"{mode}: interleaved repeats {reps}")
    # The matmul reference runs in the same rounds, so it sees the same machine load.
    mm_fn, _ = timing.jax_matmul_fn(*shape)
    reps[MATMUL_KEY] = max(reps.values())
    out = timing.round_robin({**fns, MATMUL_KEY: mm_fn}, reps)
    return out, out.pop(MATMUL_KEY)


def measure_size(
    label: str, args, model_cfg: dict, matmul_gflops: float, matmul_shape, mem_scale: dict
) -> dict:
    """Agreement, interleaved timings, FLOP/s and (subprocess) peak memory on one size."""
    n = parse_size(label)
    problem = make_problem(n)
    num_nodes = problem.graph.num_nodes("mesh")
    num_edges = int(problem.graph.edge_sets["mesh"].senders.shape[0])
    log(f"size {label}: N={num_nodes} E={num_edges}")
    arch = dict(
        node_in=NODE_FEATURES,
        edge_in=EDGE_FEATURES,
        output_size=OUTPUT_SIZE,
        latent=model_cfg["latent_size"],
        hidden_layers=model_cfg["mlp_hidden_layers"],
        steps=model_cfg["num_message_passing_steps"],
    )
    f_paper = flops.mgn_forward_flops(num_nodes, num_edges, **arch)
    f_trick = flops.mgn_forward_flops(num_nodes, num_edges, concat_trick=True, **arch)
    res = {
        "num_nodes": num_nodes,
        "num_edges": num_edges,
        "flops": {
            "forward_paper": f_paper,
            "forward_concat_trick": f_trick["total"],
            "train_paper": 3 * f_paper["total"],
            "train_concat_trick": 3 * f_trick["total"],
        },
        "train": {},
        "rollout": {},
        "skipped": {},
        "memory": {},
    }
    params = impls.init_params(problem, model_cfg)
    # Which (impl, mode) fit in memory: predicted from smaller sizes' peak RSS per node.
    budget_mb = min(MEMORY_FRACTION * timing.mem_available_mb(), MAX_PEAK_GIB * 1024)

    def fits(name, mode):
        """(fits, predicted MiB): base + the largest measured size's delta per node x N."""
        if (name, mode) not in mem_scale:
            return True, 0.0
        base, per_node = mem_scale[(name, mode)]
        predicted = base + per_node * num_nodes
        return predicted <= budget_mb, predicted

    # remat only changes the backward pass: it is timed for training only.
    wanted = {m: [k for k in args.impls if m == "train" or k not in impls.VARIANTS] for m in MODES}
    for mode in wanted:
        for name in list(wanted[mode]):
            ok, predicted = fits(name, mode)
            if not ok:
                wanted[mode].remove(name)
                res["skipped"][f"{name}/{mode}"] = (
                    f"predicted peak RSS {predicted / 1024:.1f} GiB (the per-node growth "
                    f"measured on the smaller sizes) > the {budget_mb / 1024:.1f} GiB allowed "
                    f"(min of {MEMORY_FRACTION:.0%} of available memory and {MAX_PEAK_GIB:g} GiB)"
                )
    # Built here: what is timed here (`--in-process`), else only what the agreement check
    # runs (its forward); the timing processes build and compile their own steps.
    built, first = {}, {}
    for name in dict.fromkeys(wanted["train"] + wanted["rollout"]):
        if not args.in_process and name in impls.OTHER_NETWORKS:
            continue
        t0 = time.perf_counter()
        built[name] = impls.build(name, problem, params, model_cfg)
        if args.in_process:
            compile_s = impls.compile_impl(built[name])
            first[name] = {
                "build_and_compile_s": round(time.perf_counter() - t0, 3),
                "compile_s": {k: round(v, 3) for k, v in compile_s.items()},
            }
    ref = next((k for k in ("meshsim", *impls.VARIANTS) if k in built), None)
    if ref in built:
        same = {k: v for k, v in built.items() if k not in impls.OTHER_NETWORKS}
        res["agreement"] = check_agreement(same, AGREEMENT_RTOL, ref)
        errs = {k: f"{v['max_rel_err']:.2e}" for k, v in res["agreement"].items()}
        log(f"agreement: {errs}")
    names_by_mode = {m: list(wanted[m]) for m in MODES if wanted[m]}
    isolated = None
    if not args.in_process:
        del built  # the timing processes build their own
        isolated = _timed_in_workers(names_by_mode, n, args, model_cfg, matmul_shape)
        first = isolated[2]
        for name, why in isolated[3].items():
            for mode, names in names_by_mode.items():
                if name in names:
                    res["skipped"][f"{name}/{mode}"] = why
    mm_flops = 2 * int(np.prod(matmul_shape[:2])) * int(matmul_shape[2])
    for mode in names_by_mode:
        if isolated is not None:
            calls, mm_calls = isolated[:2]
            if not calls[mode] or not mm_calls[mode]:
                continue  # every timing process of this mode failed
            res[mode] = {k: timing.summarize_with_load(c) for k, c in calls[mode].items()}
            mm = timing.summarize_with_load(mm_calls[mode])
        else:
            res[mode], mm = _timed_in_process(
                built, names_by_mode[mode], mode, args, first, matmul_shape
            )
        best = mm_flops / mm["min_s"] / 1e9
        cpu_rate = mm_flops / mm["cpu_median_s"] / 1e9  # per CPU-second (all threads)
        res[f"matmul_in_{mode}_rounds"] = {
            "shape": list(matmul_shape),
            **mm,
            "gflops": round(mm_flops / mm["median_s"] / 1e9, 2),
            "best_gflops": round(best, 2),
            "gflops_per_cpu_s": round(cpu_rate, 2),
        }
        # Reference: the best matmul rate seen in these rounds or at the start (conservative:
        # the steps are credited with their median, the matmul with its best).
        rate = max(best, matmul_gflops)
        paper = res["flops"]["train_paper"] if mode == "train" else f_paper["total"]
        for name, r in res[mode].items():
            r["first_call"] = first[name]
            r["matmul_reference_gflops"] = round(rate, 2)
            if name in impls.OTHER_NETWORKS:  # another network: the paper's count is not its
                r["model_gflops_per_s"] = None
                r["fraction_of_matmul"] = r["fraction_of_matmul_per_cpu_s"] = None
            else:
                r["model_gflops_per_s"] = round(paper / r["median_s"] / 1e9, 2)
                r["fraction_of_matmul"] = round(paper / r["median_s"] / 1e9 / rate, 3)
                # Load-insensitive variant: useful FLOPs per CPU-second vs the matmul's.
                r["fraction_of_matmul_per_cpu_s"] = round(
                    paper / r["cpu_median_s"] / 1e9 / cpu_rate, 3
                )
            log(
                f"  {mode} {name}: median {r['median_s']:.3f} s (cpu {r['cpu_median_s']:.3f} s), "
                f"{r['model_gflops_per_s']} model GFLOP/s"
            )
    if not args.no_memory:
        for name, mode in [(n, m) for m in MODES for n in wanted[m]]:
            spec = {
                "task": "memory",
                "impl": name,
                "mode": mode,
                "nodes": n,
                "model": model_cfg,
                "calls": 2,
            }
            r = run_worker(spec)
            res["memory"][f"{name}/{mode}"] = r
            if "delta_mb" in r:
                mem_scale[(name, mode)] = (r["rss_base_mb"], r["delta_mb"] / num_nodes)
            log(f"  memory {name}/{mode}: {r.get('peak_rss_mb', r.get('error'))} MiB peak")
    res["speedup"] = {}
    for mode in MODES:
        sp, r = {}, res[mode]
        for ours, prefix in (
            ("meshsim", "vs_"),
            (impls.REMAT, "remat_vs_"),
            (impls.NO_REMAT, "noremat_vs_"),
        ):
            for peer in PEERS:
                if ours in r and peer in r:
                    sp[prefix + peer] = round(r[peer]["median_s"] / r[ours]["median_s"], 3)
        if impls.TRANSFORMER in r and "meshsim" in r:  # the block's time over interaction's
            sp["transformer_time_over_interaction"] = round(
                r[impls.TRANSFORMER]["median_s"] / r["meshsim"]["median_s"], 3
            )
        timed_peers = [peer for peer in PEERS if peer in r]
        if timed_peers and "meshsim" in r:  # the fastest peer in this run's rounds
            best = min(timed_peers, key=lambda peer: r[peer]["median_s"])
            sp["strongest_peer"] = best
            sp["vs_strongest_peer"] = sp["vs_" + best]
        res["speedup"][mode] = sp
    return res


def measure_compile(label: str, model_cfg: dict) -> dict:
    """Cold compile (fresh process, no cache) and warm (persistent cache, second process)."""
    n = parse_size(label)
    out = {"size": label}
    out["cold"] = run_worker({"task": "compile", "impl": "meshsim", "nodes": n, "model": model_cfg})
    with tempfile.TemporaryDirectory(prefix="meshsim-jax-cache-") as cache:
        spec = {
            "task": "compile",
            "impl": "meshsim",
            "nodes": n,
            "model": model_cfg,
            "cache_dir": cache,
        }
        out["cache_populate"] = run_worker(spec)
        out["warm"] = run_worker(spec)
    log(
        f"compile train step: cold {out['cold'].get('compile_s')}, "
        f"warm {out['warm'].get('compile_s')}"
    )
    return out


def measure_ablations(label: str, args, model_cfg: dict) -> dict:
    """meshsim options on one size: interleaved train/rollout times, compile time, XLA memory."""
    problem = make_problem(parse_size(label))
    params = impls.init_params(problem, model_cfg)
    built, info = {}, {}
    for name, options, kwargs in ABLATIONS:
        impl = impls.build("meshsim", problem, params, model_cfg, options=options, **kwargs)
        compile_s = impls.compile_impl(impl)
        mem = impl.compiled["train"].memory_analysis()
        info[name] = {
            "options": {**options, **kwargs},
            "compile_s": {k: round(v, 3) for k, v in compile_s.items()},
            "xla_train_temp_mb": round(mem.temp_size_in_bytes / 2**20, 1),
            "xla_train_args_out_alias_mb": [
                round(x / 2**20, 1)
                for x in (
                    mem.argument_size_in_bytes,
                    mem.output_size_in_bytes,
                    mem.alias_size_in_bytes,
                )
            ],
        }
        built[name] = impl
        log(
            f"ablation {name}: compile {info[name]['compile_s']}, "
            f"XLA temp {info[name]['xla_train_temp_mb']} MiB"
        )
    out = {"size": label, "variants": info}
    for mode in ("train", "rollout"):
        fns = {
            k: getattr(v, mode)
            for k, v in built.items()
            if not (mode == "rollout" and k == "donate=False")
        }
        est = 0.0
        for fn in fns.values():
            fn()
            est += timing.timed_call(fn)[0]
        reps = timing.choose_repeats(args.ablation_repeats, est, args.budget_s)
        log(f"ablations {mode}: {reps} interleaved repeats (~{est:.1f} s per round)")
        for name, r in timing.round_robin(fns, reps).items():
            info[name][mode] = r
            log(
                f"  {mode} {name}: median {r['median_s']:.3f} s (user {r['user_median_s']:.2f}, "
                f"sys {r['sys_median_s']:.2f})"
            )
    out["profile"] = {}
    for name, mode in (("default", "train"), ("remat=True", "train"), ("default", "rollout")):
        if name in built:
            impl = built[name]
            prof = xla_profile.profile_step(getattr(impl, mode), impl.compiled[mode])
            out["profile"][f"{name}/{mode}"] = prof
            log(f"profile {name}/{mode}: {prof.get('categories')}")
    return out


def _resolved_remat():
    """What remat meshsim's default (`remat=None` or a bool, by version) means here."""
    default = impls.meshsim_model(SMOKE_MODEL).remat
    if default is None:
        return f"None -> {jax.default_backend() == 'cpu'} on the {jax.default_backend()} backend"
    return default


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "flax", "optax", "jraph", "numpy", "torch", "torch-geometric"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="2k,16k,128k", help="comma-separated mesh sizes (nodes)")
    ap.add_argument("--repeats", type=int, default=20, help="timed runs per implementation")
    ap.add_argument(
        "--budget-s",
        type=float,
        default=150.0,
        help="max seconds of timed runs per implementation, size and mode (fewer repeats past it)",
    )
    ap.add_argument(
        "--impls",
        default=",".join(impls.IMPLS[:1] + (impls.NO_REMAT,) + impls.IMPLS[1:]),
        help=f"comma-separated, from {impls.IMPLS + tuple(impls.VARIANTS)}",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="timing processes per implementation, alternating (each a share of the repeats)",
    )
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="time every implementation in this process, interleaved (the earlier method)",
    )
    ap.add_argument("--ablation-size", default="16k", help="'' to skip the ablations")
    ap.add_argument("--ablation-repeats", type=int, default=5)
    ap.add_argument("--compile-size", default="16k", help="'' to skip compile-time processes")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="seconds-long check: tiny mesh and model, 2 repeats, no subprocesses",
    )
    ap.add_argument("--out", default=str(RESULTS), help="directory for latest.json / latest.md")
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="recompute targets and rewrite <out>/latest.md from <out>/latest.json; no timing",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if argv is None and not args.render_only:
        # as the `meshsim` command runs (meshsim.hugepages), for every implementation of
        # this process and its workers; MESHSIM_HUGE_PAGES=0 measures without
        hugepages.reexec(sys.argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))), flush=True)
        return 0
    if args.render_only:
        out = Path(args.out)
        result = json.loads((out / "latest.json").read_text())
        result["targets"] = report.targets(result)
        (out / "latest.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
        (out / "latest.md").write_text(report.markdown(result))
        log(f"rewrote {out / 'latest.md'} from {out / 'latest.json'}")
        return 0
    model_cfg = dict(PAPER_MODEL)
    if args.smoke:
        model_cfg = dict(SMOKE_MODEL)
        args.sizes, args.repeats, args.ablation_repeats = "tiny", 2, 2
        args.no_memory, args.compile_size = True, ""
        args.ablation_size = ""  # compile-bound; `--smoke` stays seconds long
    args.impls = [s for s in args.impls.split(",") if s]
    use_torch = any(name in impls.PYG for name in args.impls)
    if use_torch:
        try:
            import torch

            torch.set_num_threads(os.cpu_count() or 1)
        except ImportError:
            log("torch not installed (the `bench` extra): skipping the PyG peers")
            args.impls = [name for name in args.impls if name not in impls.PYG]
            use_torch = False
    result = {
        "meta": {
            "command": shlex.join(
                [Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])
            ),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "versions": versions(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
            "torch_threads": __import__("torch").get_num_threads() if use_torch else None,
            # PyG peer -> {concat_trick, torch.compile mode (None: eager)}
            "pyg_peers": {
                k: {"concat_trick": trick, "torch_compile": mode}
                for k, (trick, mode) in impls.PYG.items()
                if k in args.impls
            },
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            # meshsim's remat default is None = on for the CPU backend (since aa5e62e).
            "meshsim_default_remat": _resolved_remat(),
            "load_start": timing.load(),
            "smoke": args.smoke,
            "budget_s": args.budget_s,
            # timing: each implementation in processes of its own over `rounds`, or all in one
            "timing_processes": "in-process" if args.in_process else f"own, {args.rounds} rounds",
            # GLIBC_TUNABLES of each implementation's timing processes (own processes only)
            "timing_tunables": None
            if args.in_process
            else {
                k: worker_env(k).get("GLIBC_TUNABLES", os.environ.get("GLIBC_TUNABLES", ""))
                for k in args.impls
            },
            "requested_repeats": args.repeats,
            "impls": args.impls,
        },
        "model": {
            **model_cfg,
            "activation": "relu",
            "aggregation": "sum",
            "optimizer": "adam(1e-4)",
            "node_in": NODE_FEATURES,
            "edge_in": EDGE_FEATURES,
            "output_size": OUTPUT_SIZE,
        },
    }
    log("matmul rates")
    sq = 256 if args.smoke else 2048
    result["matmul"] = {"jax_square": timing.jax_matmul_rate(sq, sq, sq)}
    ref_e = make_problem(parse_size(args.sizes.split(",")[0] if args.smoke else "16k"))
    e = int(ref_e.graph.edge_sets["mesh"].senders.shape[0])
    lat = model_cfg["latent_size"]
    result["matmul"]["jax_edge_first_layer"] = timing.jax_matmul_rate(e, 3 * lat, lat)
    result["matmul"]["jax_edge_hidden_layer"] = timing.jax_matmul_rate(e, lat, lat)
    if use_torch:
        result["matmul"]["torch_square"] = timing.torch_matmul_rate(sq, sq, sq)
    matmul_rate = max(v["best_gflops"] for k, v in result["matmul"].items() if k.startswith("jax"))
    result["matmul"]["reference_gflops"] = matmul_rate
    log(f"matmul: { {k: v['gflops'] for k, v in result['matmul'].items() if isinstance(v, dict)} }")
    result["sizes"] = {}
    mem_scale: dict = {}
    for label in [s for s in args.sizes.split(",") if s]:
        result["sizes"][label] = measure_size(
            label, args, model_cfg, matmul_rate, (sq, sq, sq), mem_scale
        )
    if args.compile_size:
        result["compile"] = measure_compile(args.compile_size, model_cfg)
    if args.ablation_size:
        result["ablations"] = measure_ablations(args.ablation_size, args, model_cfg)
    result["meta"]["load_end"] = timing.load()
    result["targets"] = report.targets(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    (out / "latest.md").write_text(report.markdown(result))
    log(f"wrote {out / 'latest.json'} and {out / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
