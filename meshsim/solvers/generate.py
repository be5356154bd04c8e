"""Built-in datasets: reference simulations written in the native HDF5 format.

`generate_dataset("cylinder_flow", "data/cyl", trajectories=20, steps=300, seed=0)`
writes `data/cyl/train.h5` and `data/cyl/meta.json`. Each trajectory's seed is
derived from (seed, split, index), so splits never share a trajectory and the
same arguments always give the same file contents.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Callable

import numpy as np

logger = logging.getLogger(__name__)

DOMAINS = ("cylinder_flow", "flag")


def trajectory_seed(seed: int, split: str, index: int) -> int:
    """A 31-bit seed that depends on the run seed, the split name and the index."""
    seq = np.random.SeedSequence([seed, zlib.crc32(split.encode()), index])
    return int(seq.generate_state(1)[0] & 0x7FFFFFFF)


def _simulator(domain: str, steps: int, mesh_resolution: float) -> tuple[Callable, dict]:
    if domain == "cylinder_flow":
        from meshsim.solvers.cylinder_dataset import cylinder_flow_trajectory

        def simulate(seed):
            return cylinder_flow_trajectory(seed=seed, steps=steps, mesh_resolution=mesh_resolution)

        return simulate, {"simulator": "meshsim-lbm", "dt": 0.01}
    if domain == "flag":
        from meshsim.meshes import cloth_mesh
        from meshsim.solvers.cloth import cloth_trajectory

        nx = max(5, int(round(51 * mesh_resolution)))
        ny = max(4, int(round(31 * mesh_resolution)))
        mesh = cloth_mesh(nx=nx, ny=ny)

        def simulate(seed):
            return cloth_trajectory(mesh, steps=steps, seed=seed)

        return simulate, {"simulator": "meshsim-cloth", "dt": 0.02}
    raise ValueError(f"domain: expected one of {DOMAINS}, got {domain!r}")


def generate_dataset(
    domain: str,
    out: str | os.PathLike,
    *,
    trajectories: int,
    steps: int,
    seed: int = 0,
    split: str = "train",
    mesh_resolution: float = 1.0,
    compression: str | None = None,
    progress: bool = False,
) -> str:
    """Simulates `trajectories` runs of `steps` frames and writes `<out>/<split>.h5`.

    The file appears only when complete (written to a temporary name, then renamed).

    Returns:
      The path of the written file.
    """
    from meshsim.data import HDF5Writer, infer_meta

    if trajectories < 1:
        raise ValueError(f"trajectories: expected ≥ 1, got {trajectories}")
    if steps < 3:
        raise ValueError(f"steps: expected ≥ 3 frames, got {steps}")
    simulate, meta_extra = _simulator(domain, steps, mesh_resolution)
    os.makedirs(out, exist_ok=True)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=trajectories, desc=f"{domain}/{split}", unit="traj")
    writer = None
    t0 = time.perf_counter()
    try:
        for i in range(trajectories):
            traj = simulate(trajectory_seed(seed, split, i))
            if writer is None:
                meta = infer_meta(
                    traj,
                    **meta_extra,
                    generator={"domain": domain, "seed": seed, "mesh_resolution": mesh_resolution},
                )
                writer = HDF5Writer(out, split, meta, compression=compression).__enter__()
            writer.write(traj)
            if bar is not None:
                bar.update(1)
    except BaseException as e:
        if writer is not None:
            writer.__exit__(type(e), e, e.__traceback__)
        raise
    finally:
        if bar is not None:
            bar.close()
    writer.__exit__(None, None, None)
    logger.info(
        "%s/%s: %d trajectories in %.1f s", domain, split, trajectories, time.perf_counter() - t0
    )
    return os.path.join(os.fspath(out), f"{split}.h5")
