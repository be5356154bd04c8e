"""Simulated CPU devices for a benchmark script: call before jax is imported."""

from __future__ import annotations

import os


def simulate_cpu_devices(count: int = 8) -> None:
    """Makes the CPU look like `count` devices (`XLA_FLAGS`), unless the caller already
    set a device count, and defaults `JAX_PLATFORMS` to cpu. Must run before jax is
    imported (a process's device count is fixed when jax starts)."""
    flag = "xla_force_host_platform_device_count"
    if flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --{flag}={count}".strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
