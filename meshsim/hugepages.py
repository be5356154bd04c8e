"""Transparent huge pages for XLA:CPU's buffers, through glibc's malloc tunable.

XLA:CPU allocates the temporary buffers of a compiled step anew on every call: one
large block (hundreds of MiB to GiB for a training step) that glibc's malloc maps
fresh from the kernel and hands back after the call. Every first touch of each
4 KiB page of it is then a page fault, in which the kernel also zeroes the page.
glibc ≥ 2.35 can ask the kernel for transparent huge pages (2 MiB) on the memory it
maps (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`), so a step takes 512 times fewer
faults. Measured on the paper MeshGraphNet's training step on a 2-core CPU, one
process per measurement: 1.18x faster at 2k nodes and 1.15x at 16k (3.93 s against
3.41 s; experiments/benchmarks/results/huge_pages.md); an earlier run gave 1.08x and
1.10x.

glibc reads its tunables only when a process starts, so the `meshsim` command
starts itself again with the tunable set (`reexec`) before a command that computes.
Nothing changes where it does not apply: other systems or C libraries, glibc
older than 2.35, huge pages switched off in the kernel
(`/sys/kernel/mm/transparent_hugepage/enabled` reads `[never]`), the tunable
already set, or `MESHSIM_HUGE_PAGES=0`. In a notebook or another Python program, set
the variable before starting Python:

    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 jupyter lab

Core layer: standard library only.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, Sequence

TUNABLE = "glibc.malloc.hugetlb"
VALUE = f"{TUNABLE}=1"
# Set to "0" to keep the process as it is; set by `reexec` in the process it starts.
SWITCH = "MESHSIM_HUGE_PAGES"
REEXECUTED = "MESHSIM_HUGE_PAGES_REEXECUTED"
THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"


def _glibc_version(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return ()


def supported(*, system: str | None = None, libc: tuple[str, str] | None = None) -> bool:
    """Whether this process's C library and kernel honour the tunable: Linux, glibc ≥
    2.35, transparent huge pages not switched off. `system` and `libc` (name,
    version) stand in for `platform.system()` and `platform.libc_ver()` in tests."""
    if (system or platform.system()) != "Linux":
        return False
    name, version = libc or platform.libc_ver()
    if name != "glibc" or _glibc_version(version) < (2, 35):
        return False
    try:
        with open(THP_MODE) as f:
            return "[never]" not in f.read()
    except OSError:
        return False


def environment(env: Mapping[str, str], *, supported_here: bool | None = None) -> dict | None:
    """A copy of `env` with the tunable added to GLIBC_TUNABLES, or None where there is
    nothing to do (switched off by MESHSIM_HUGE_PAGES=0, already set, not supported).
    `supported_here` stands in for `supported()` in tests."""
    if env.get(SWITCH, "1") == "0" or env.get(REEXECUTED):
        return None
    tunables = env.get("GLIBC_TUNABLES", "")
    if TUNABLE in tunables:
        return None
    if not (supported() if supported_here is None else supported_here):
        return None
    out = dict(env)
    out["GLIBC_TUNABLES"] = f"{tunables}:{VALUE}" if tunables else VALUE
    out[REEXECUTED] = "1"
    return out


def reexec(argv: Sequence[str]) -> None:
    """Starts this Python program again (`sys.executable argv...`, the same process id)
    with the tunable set, where `environment` says so; returns only where it does not.
    `argv` is the program's `sys.argv` (argv[0] a script path)."""
    if not argv or not os.path.isfile(argv[0]):
        return
    env = environment(os.environ)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *argv], env)
    except OSError:  # could not start: go on as we are
        return


def active(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process was started with the tunable set."""
    env = os.environ if env is None else env
    return TUNABLE in env.get("GLIBC_TUNABLES", "")


__all__ = ["active", "environment", "reexec", "supported"]
