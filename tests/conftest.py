"""Shared test fixtures: tiny meshes built by hand, and deterministic seeds."""

import os
import subprocess
import sys

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import meshsim  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_devices_env(devices: int) -> dict:
    """The environment of a subprocess that sees `devices` simulated CPU devices (the
    count must be set before jax is imported) and imports this checkout."""
    return dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=REPO,
    )


def run_on_cpu_devices(script: str, devices: int, *args: str, timeout: int = 600) -> str:
    """Runs `python -c script *args` with `devices` simulated CPU devices (the count must
    be set before jax is imported, hence a subprocess); asserts it exits 0, returns its
    stdout."""
    env = cpu_devices_env(devices)
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout


def grid_cells(nx: int, ny: int) -> tuple[np.ndarray, np.ndarray]:
    """A structured triangle mesh of the unit square: (points [N,2] f32, cells [C,3] i32)."""
    xs, ys = np.meshgrid(np.linspace(0, 1, nx), np.linspace(0, 1, ny), indexing="xy")
    points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    cells = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)]).astype(np.int32)
    return points, cells


def mesh_graph(nx: int, ny: int, node_features: int = 5, seed: int = 0) -> meshsim.MultiGraph:
    """A one-edge-set graph on a grid mesh with random node features and relative-position
    edge features ([dx, dy, |d|])."""
    rng = np.random.default_rng(seed)
    points, cells = grid_cells(nx, ny)
    senders, receivers = meshsim.edges_from_cells(cells)
    rel = points[senders] - points[receivers]
    edge_features = np.concatenate([rel, np.linalg.norm(rel, axis=1, keepdims=True)], 1)
    nodes = rng.normal(size=(points.shape[0], node_features)).astype(np.float32)
    return meshsim.make_graph(nodes, {"mesh": (edge_features, senders, receivers)})


def np_mlp(p, parts, layer_norm, act=lambda x: np.maximum(x, 0)):
    """Plain numpy MLP (float64) on the concatenation of its already gathered input parts:
    the slow reference for `meshsim.nn.MLP` (parameters named as there; LayerNorm with
    Sonnet's and Haiku's epsilon, 1e-5)."""
    x = np.concatenate(parts, axis=1).astype(np.float64) @ p["linear_0_kernel"] + p["linear_0_bias"]
    i = 1
    while f"linear_{i}" in p:
        x = act(x) @ p[f"linear_{i}"]["kernel"] + p[f"linear_{i}"]["bias"]
        i += 1
    if layer_norm:
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        x = (x - mu) / np.sqrt(var + 1e-5) * p["layer_norm"]["scale"] + p["layer_norm"]["bias"]
    else:
        assert "layer_norm" not in p, "an MLP without LayerNorm has no layer_norm parameters"
    return x


@pytest.fixture
def small_graph() -> meshsim.MultiGraph:
    return mesh_graph(4, 3)


def synthetic_cfd_trajectory(nx=6, ny=5, steps=12, seed=0) -> dict:
    """A travelling-wave velocity field on a grid mesh, in the cylinder_flow layout.

    Left column INFLOW, right OUTFLOW, top/bottom WALL_BOUNDARY (with zero velocity),
    the rest NORMAL. Small and smooth: a network can learn it in a few dozen steps.
    """
    rng = np.random.default_rng(seed)
    points, cells = grid_cells(nx, ny)
    n = points.shape[0]
    node_type = np.zeros(n, np.int32)
    x, y = points[:, 0], points[:, 1]
    node_type[x == 0] = meshsim.NodeType.INFLOW
    node_type[x == 1] = meshsim.NodeType.OUTFLOW
    node_type[(y == 0) | (y == 1)] = meshsim.NodeType.WALL_BOUNDARY
    phase = rng.uniform(0, 2 * np.pi)
    t = 0.05 * np.arange(steps)[:, None]
    u = np.sin(2 * np.pi * (x[None] - t) + phase)
    v = 0.5 * np.cos(2 * np.pi * (y[None] + t) + phase)
    velocity = np.stack([u, v], -1).astype(np.float32)
    velocity[:, node_type == meshsim.NodeType.WALL_BOUNDARY] = 0.0
    velocity[:, node_type == meshsim.NodeType.INFLOW] = velocity[0, node_type == 4]
    return {
        "cells": cells[None],
        "mesh_pos": points[None],
        "node_type": node_type[None, :, None],
        "velocity": velocity,
        "pressure": velocity[..., :1] * 0.1,
    }


def synthetic_cloth_trajectory(nx=5, ny=4, steps=10, seed=0) -> dict:
    """A sheet falling under gravity with its top row pinned (HANDLE), flag_simple layout."""
    rng = np.random.default_rng(seed)
    points, cells = grid_cells(nx, ny)
    n = points.shape[0]
    node_type = np.zeros(n, np.int32)
    handle = points[:, 1] == 1
    node_type[handle] = meshsim.NodeType.HANDLE
    t = 0.02 * np.arange(steps)[:, None]
    drop = -0.5 * 9.8 * t**2 * (1 - points[None, :, 1]) * rng.uniform(0.5, 1.5)
    world = np.stack(
        [
            np.broadcast_to(points[:, 0], (steps, n)),
            np.broadcast_to(points[:, 1], (steps, n)),
            drop,
        ],
        -1,
    ).astype(np.float32)
    return {
        "cells": cells[None],
        "mesh_pos": points[None],
        "node_type": node_type[None, :, None],
        "world_pos": world,
    }


TINY_CFD_CONFIG = """
from meshsim.config import (DataConfig, ExperimentConfig, ModelConfig, OptimizerConfig,
                            TrainConfig)


def get_config():
    return ExperimentConfig(
        name="tiny", task="cfd",
        data=DataConfig(path={data!r}, batch_size={batch_size}, pool_size=4, prefetch=1),
        model=ModelConfig(latent_size=16, num_message_passing_steps=2, mlp_hidden_layers=1),
        train=TrainConfig(steps={steps}, accumulate_steps=2, log_every=1, eval_every=0,
                          checkpoint_every={checkpoint_every},
                          optimizer=OptimizerConfig(learning_rate=1e-3)),
    )
"""


def tiny_cfd_run(root, *, batch_size: int, steps: int, checkpoint_every: int) -> str:
    """Writes a 4-trajectory cylinder-flow-layout train split on one 9×7 grid mesh (8
    frames each) under `root/data` and a config file `root/tiny.py` training a tiny
    MeshGraphNet on it; returns the config's path (for `meshsim train --config`)."""
    from meshsim.data import infer_meta, write_hdf5_split

    data = os.path.join(str(root), "data")
    train = [synthetic_cfd_trajectory(nx=9, ny=7, seed=i, steps=8) for i in range(4)]
    write_hdf5_split(data, "train", train, infer_meta(train[0], dt=0.01))
    config = os.path.join(str(root), "tiny.py")
    with open(config, "w") as f:
        f.write(
            TINY_CFD_CONFIG.format(
                data=data, batch_size=batch_size, steps=steps, checkpoint_every=checkpoint_every
            )
        )
    return config
