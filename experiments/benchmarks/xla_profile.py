"""Where a compiled JAX step spends its time on CPU, by kind of operation.

Runs the step once under `jax.profiler.trace` (Perfetto JSON), sums the
duration of every XLA:CPU kernel event, and names each kernel by its HLO
instruction in the compiled module: the instruction's name says what it is
(`ynn_fusion` = a matmul, `gather`, `scatter`, `dynamic-update-slice` = writing
a scan's stacked residuals, `broadcast` = zero-filling a buffer) and its
`op_name` metadata says where it came from (`layer_norm`, forward or
`transpose(...)` = backward). Kernel times include the page faults of the
first touch of freshly allocated memory, which land on whichever kernel writes
a buffer first (often a broadcast).
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import re
import tempfile
import time
from collections.abc import Callable

import jax


def _op_names(hlo_text: str) -> dict[str, str]:
    """{instruction name: op_name metadata} from compiled HLO text."""
    out = {}
    for line in hlo_text.splitlines():
        m = re.match(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=", line)
        if not m:
            continue
        op = re.search(r'op_name="([^"]*)"', line)
        out[m.group(1)] = op.group(1) if op else ""
    return out


def _category(kernel: str, op_name: str) -> str:
    base = kernel.split(".")[0].lower()
    if "ynn" in base or "xnn" in base or "dot" in base or "onednn" in base:
        kind = "matmul"
    elif "scatter" in base:
        kind = "scatter"
    elif "gather" in base:
        kind = "gather"
    elif "dynamic-update-slice" in base or "dynamic-slice" in base:
        kind = "scan stacking (dynamic-(update-)slice)"
    elif base in ("wrapped_broadcast", "broadcast"):
        kind = "broadcast (zero fill)"
    elif "layer_norm" in op_name:
        kind = "layer_norm (elementwise)"
    else:
        kind = "other elementwise"
    direction = "backward" if "transpose(" in op_name else "forward"
    return f"{kind} [{direction}]" if kind != "broadcast (zero fill)" else kind


def profile_step(fn: Callable[[], object], compiled) -> dict:
    """Profiles one call of `fn` (which runs `compiled`); returns time per category (ms).

    Args:
      fn: blocking call of the step, already warm.
      compiled: the `jax.stages.Compiled` that fn runs (its HLO names the kernels).

    Returns:
      {"wall_ms", "kernel_ms", "categories": {category: ms}, "top": [[kernel, ms, op_name]]};
      kernel times are summed over threads, so kernel_ms may exceed wall_ms.
    """
    names = _op_names(compiled.as_text())
    with tempfile.TemporaryDirectory(prefix="meshsim-profile-") as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            t0 = time.perf_counter()
            fn()
            wall = time.perf_counter() - t0
        files = glob.glob(f"{d}/**/*.trace.json.gz", recursive=True)
        if not files:
            return {"error": "no trace written"}
        with gzip.open(files[0]) as f:
            trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    per_kernel = collections.Counter()
    for e in events:
        name = e.get("name", "")
        if e.get("ph") == "X" and name in names:
            per_kernel[name] += e.get("dur", 0) / 1e3
    cats = collections.Counter()
    for kernel, ms in per_kernel.items():
        cats[_category(kernel, names[kernel])] += ms
    return {
        "wall_ms": round(wall * 1e3, 1),
        "kernel_ms": round(sum(per_kernel.values()), 1),
        "categories": {k: round(v, 1) for k, v in cats.most_common()},
        "top": [[k, round(v, 1), names[k][-90:]] for k, v in per_kernel.most_common(8)],
    }
