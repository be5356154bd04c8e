"""Timing helpers: interleaved repeats, CPU time beside wall time, machine load, matmul rate.

The benchmark machine is shared, so wall times drift with other people's load.
Two defences: (1) the implementations being compared are timed round-robin
(A B C A B C ...), so a burst of load hits all of them alike and ratios stay
fair; (2) each call's process CPU time (all threads) is recorded beside its wall
time — CPU time barely moves with load, wall time does.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np


def load() -> list[float]:
    """1, 5 and 15 minute load averages (runnable processes; > cores means contention)."""
    return [round(x, 2) for x in os.getloadavg()]


def peak_rss_mb() -> float:
    """Peak resident set size of this process image so far (VmHWM), MiB.

    Not `getrusage().ru_maxrss`: Linux carries that across fork/exec, so a subprocess
    would report its parent's peak when that is higher.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Resets the kernel's RSS high-water mark (VmHWM, `peak_rss_mb`) of this process to
    its current RSS; False where Linux does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_mb() -> float:
    """Current resident set size of this process, MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def mem_available_mb() -> float:
    """MemAvailable from /proc/meminfo, MiB (what can be allocated without swapping)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed_call(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of `fn()`; fn must block until its result is ready."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _usage() -> tuple[float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def measured_call(fn: Callable[[], object]) -> dict[str, float]:
    """Wall, user and system CPU seconds (all threads) and minor page faults of `fn()`.

    System time is mostly the kernel zeroing and mapping fresh pages (minor faults):
    large, short-lived buffers cost that on every call when the allocator returns them
    to the OS between calls.
    """
    u0, s0, f0 = _usage()
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    u1, s1, f1 = _usage()
    return {"wall": wall, "user": u1 - u0, "sys": s1 - s0, "minflt": f1 - f0}


def summarize(calls: list[dict[str, float]]) -> dict:
    """Median/min/max wall time and medians of CPU time and page faults, for the JSON."""
    med = lambda key: statistics.median(c[key] for c in calls)  # noqa: E731
    walls = [c["wall"] for c in calls]
    return {
        "repeats": len(calls),
        "median_s": round(statistics.median(walls), 5),
        "min_s": round(min(walls), 5),
        "max_s": round(max(walls), 5),
        "cpu_median_s": round(statistics.median(c["user"] + c["sys"] for c in calls), 5),
        "user_median_s": round(med("user"), 5),
        "sys_median_s": round(med("sys"), 5),
        "minor_faults_median": int(med("minflt")),
    }


def round_robin(
    fns: Mapping[str, Callable[[], object]], repeats: int | Mapping[str, int]
) -> dict[str, dict]:
    """Times each fn interleaved (A B C A B C ...); returns {name: summarize(...) + load}.

    `repeats` is one count for all or a count per name; a fn with fewer repeats drops
    out of the later rounds.
    """
    calls = round_robin_calls(fns, repeats)
    return {k: summarize_with_load(c) for k, c in calls.items() if c}


def round_robin_calls(
    fns: Mapping[str, Callable[[], object]], repeats: int | Mapping[str, int]
) -> dict[str, list[dict]]:
    """`round_robin`'s raw calls: {name: [`measured_call` + "load1"]} (to merge the calls
    of several processes before summarizing)."""
    reps = repeats if isinstance(repeats, Mapping) else {k: repeats for k in fns}
    calls = {k: [] for k in fns}
    for r in range(max(reps.values(), default=0)):
        for name, fn in fns.items():
            if r < reps[name]:
                load1 = os.getloadavg()[0]
                calls[name].append({**measured_call(fn), "load1": load1})
    return calls


def summarize_with_load(calls: list[dict]) -> dict:
    """`summarize` of calls from `round_robin_calls`, with their mean 1-minute load."""
    return {
        **summarize(calls),
        "load1_mean": round(float(np.mean([c["load1"] for c in calls])), 2),
    }


def choose_repeats(requested: int, estimate_s: float, budget_s: float, minimum: int = 3) -> int:
    """At most `requested` repeats, fewer when `requested * estimate_s` exceeds `budget_s`."""
    if estimate_s <= 0:
        return requested
    return int(max(min(minimum, requested), min(requested, budget_s // estimate_s)))


def jax_matmul_fn(m: int, k: int, n: int) -> tuple[Callable[[], object], int]:
    """(blocking call of a jitted f32 [m,k] @ [k,n], its FLOPs), already compiled and warm."""
    a = jax.random.normal(jax.random.key(0), (m, k), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (k, n), jnp.float32)
    f = jax.jit(jnp.dot)
    f(a, b).block_until_ready()
    return (lambda: f(a, b).block_until_ready()), 2 * m * k * n


def jax_matmul_rate(m: int, k: int, n: int, repeats: int = 10) -> dict:
    """Median time and GFLOP/s of a jitted f32 [m,k] @ [k,n] on the default JAX device."""
    a = jax.random.normal(jax.random.key(0), (m, k), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (k, n), jnp.float32)
    f = jax.jit(jnp.dot)
    f(a, b).block_until_ready()
    f(a, b).block_until_ready()
    ts = [timed_call(lambda: f(a, b).block_until_ready())[0] for _ in range(repeats)]
    return _rate(ts, 2 * m * k * n, [m, k, n])


def _rate(ts: list[float], flop: int, shape: list[int]) -> dict:
    med = statistics.median(ts)
    return {
        "shape": shape,
        "median_s": round(med, 6),
        "gflops": round(flop / med / 1e9, 2),
        "best_gflops": round(flop / min(ts) / 1e9, 2),
    }


def torch_matmul_rate(m: int, k: int, n: int, repeats: int = 10) -> dict:
    """Median time and GFLOP/s of an f32 torch.mm on CPU (for reference; torch optional)."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.mm(a, b)
    torch.mm(a, b)
    ts = [timed_call(lambda: torch.mm(a, b))[0] for _ in range(repeats)]
    return _rate(ts, 2 * m * k * n, [m, k, n])
