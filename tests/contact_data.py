"""Small contact datasets in MeshGraphNets' published layouts (deforming_plate,
sphere_simple, airfoil): meta.json as published (fields, shapes, dtypes, with a tiny
trajectory_length) and smooth synthetic motions. Shared by the contact tests."""

from __future__ import annotations

import numpy as np


def box_tets(nx: int, ny: int, nz: int, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """A box split into tetrahedra (6 per cube): ([N, 3] float32, [C, 4] int32)."""
    axes = [np.linspace(lo[d], hi[d], n) for d, n in enumerate((nx, ny, nz))]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    pos = np.stack([x.ravel(), y.ravel(), z.ravel()], -1).astype(np.float32)
    idx = np.arange(nx * ny * nz).reshape(nx, ny, nz)
    cells = []
    for i in range(nx - 1):
        for j in range(ny - 1):
            for k in range(nz - 1):
                c = [idx[i + a, j + b, k + d] for a in (0, 1) for b in (0, 1) for d in (0, 1)]
                # Kuhn's six tetrahedra around the diagonal c[0] – c[7]
                for p in ((1, 3), (1, 5), (2, 3), (2, 6), (4, 5), (4, 6)):
                    mid = p[0] | p[1]
                    cells.append([c[0], c[p[0]], c[mid], c[7]])
    return pos, np.asarray(cells, np.int32)


def plate_meta(frames: int) -> dict:
    return {
        "simulator": "comsol",
        "dt": 0.0,
        "collision_radius": 0.03,
        "features": {
            "cells": {"type": "static", "shape": [1, -1, 4], "dtype": "int32"},
            "node_type": {"type": "static", "shape": [1, -1, 1], "dtype": "int32"},
            "mesh_pos": {"type": "static", "shape": [1, -1, 3], "dtype": "float32"},
            "world_pos": {"type": "dynamic", "shape": [frames, -1, 3], "dtype": "float32"},
            "stress": {"type": "dynamic", "shape": [frames, -1, 1], "dtype": "float32"},
        },
        "field_names": ["cells", "node_type", "mesh_pos", "world_pos", "stress"],
        "trajectory_length": frames,
    }


def plate_trajectory(seed: int, frames: int) -> dict:
    """A 5×3×2 plate clamped at x = 0 (HANDLE), a 2×2×2 actuator box pressing down on it
    from above (OBSTACLE); the plate bends under it, the stress follows the bending."""
    rng = np.random.default_rng(seed)
    plate, plate_cells = box_tets(5, 3, 2, (0, 0, 0), (0.2, 0.08, 0.02))
    cx = rng.uniform(0.12, 0.16)
    actuator, act_cells = box_tets(2, 2, 2, (cx, 0.03, 0.03), (cx + 0.02, 0.05, 0.05))
    pos = np.concatenate([plate, actuator])
    cells = np.concatenate([plate_cells, act_cells + len(plate)])
    kind = np.zeros(len(pos), np.int32)
    kind[len(plate) :] = 1
    kind[: len(plate)][plate[:, 0] == 0] = 3
    t = np.linspace(0, 1, frames)[:, None]
    push = 0.03 * t * rng.uniform(0.8, 1.2)  # [T, 1] the actuator's descent
    world = np.repeat(pos[None], frames, axis=0).astype(np.float32)
    world[:, len(plate) :, 2] -= push
    bend = (plate[:, 0] / 0.2) ** 2  # [N_plate] cantilever-like shape
    world[:, : len(plate), 2] -= np.maximum(push - 0.01, 0) * bend
    stress = np.zeros((frames, len(pos), 1), np.float32)
    stress[:, : len(plate), 0] = 1e3 * np.maximum(push - 0.01, 0) * (1 - plate[:, 0] / 0.2)
    return {
        "cells": cells[None],
        "node_type": kind[None, :, None],
        "mesh_pos": pos[None],
        "world_pos": world,
        "stress": stress,
    }


def sphere_meta(frames: int) -> dict:
    return {
        "simulator": "arcsim",
        "dt": 0.01,
        "collision_radius": None,
        "features": {
            "cells": {"type": "static", "shape": [1, -1, 3], "dtype": "int32"},
            "mesh_pos": {"type": "static", "shape": [1, -1, 2], "dtype": "float32"},
            "node_type": {"type": "static", "shape": [1, -1, 1], "dtype": "int32"},
            "world_pos": {"type": "dynamic", "shape": [frames, -1, 3], "dtype": "float32"},
        },
        "field_names": ["cells", "mesh_pos", "node_type", "world_pos"],
        "trajectory_length": frames,
    }


def icosahedron(radius: float, center) -> tuple[np.ndarray, np.ndarray]:
    """([12, 3] float, [20, 3] int) a regular icosahedron, outward-oriented."""
    g = (1 + 5**0.5) / 2
    v = np.array(
        [
            [-1, g, 0],
            [1, g, 0],
            [-1, -g, 0],
            [1, -g, 0],
            [0, -1, g],
            [0, 1, g],
            [0, -1, -g],
            [0, 1, -g],
            [g, 0, -1],
            [g, 0, 1],
            [-g, 0, -1],
            [-g, 0, 1],
        ],
        float,
    )
    v = radius * v / np.linalg.norm(v, axis=1, keepdims=True) + np.asarray(center)
    f = np.array(
        [
            [0, 11, 5],
            [0, 5, 1],
            [0, 1, 7],
            [0, 7, 10],
            [0, 10, 11],
            [1, 5, 9],
            [5, 11, 4],
            [11, 10, 2],
            [10, 7, 6],
            [7, 1, 8],
            [3, 9, 4],
            [3, 4, 2],
            [3, 2, 6],
            [3, 6, 8],
            [3, 8, 9],
            [4, 9, 5],
            [2, 4, 11],
            [6, 2, 10],
            [8, 6, 7],
            [9, 8, 1],
        ],
        np.int32,
    )
    return v, f


def sphere_trajectory(seed: int, frames: int) -> dict:
    """A 6×6 cloth falling onto an icosahedral 'sphere' and stopping on it."""
    rng = np.random.default_rng(seed)
    n = 6
    u, v = np.meshgrid(np.linspace(0, 0.4, n), np.linspace(0, 0.4, n), indexing="ij")
    uv = np.stack([u.ravel(), v.ravel()], -1)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[:-1, 1:], idx[1:, 1:]
    cloth_cells = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).reshape(-1, 3)
    radius = 0.1
    verts, faces = icosahedron(radius, (0.2, 0.2, 0.0))
    height = rng.uniform(0.2, 0.25)
    t = np.arange(frames)[:, None] * 0.04
    cloth0 = np.concatenate([uv, np.full((n * n, 1), height)], axis=1)
    z = height - 0.5 * 9.81 * t**2  # [T, 1]
    r_xy = np.linalg.norm(uv - 0.2, axis=1)
    floor = np.sqrt(np.maximum(radius**2 - r_xy**2, 0)) + 0.005  # rests on the sphere
    cloth = np.repeat(cloth0[None], frames, axis=0)
    cloth[..., 2] = np.maximum(z, np.where(r_xy < radius, floor, -np.inf))
    world = np.concatenate([cloth, np.repeat(verts[None], frames, axis=0)], axis=1)
    mesh_pos = np.concatenate([uv, verts[:, :2]])
    kind = np.zeros(len(world[0]), np.int32)
    kind[n * n :] = 1
    return {
        "cells": np.concatenate([cloth_cells, faces + n * n]).astype(np.int32)[None],
        "mesh_pos": mesh_pos.astype(np.float32)[None],
        "node_type": kind[None, :, None],
        "world_pos": world.astype(np.float32),
    }


def airfoil_meta(frames: int) -> dict:
    return {
        "simulator": "su2",
        "dt": 0.008,
        "collision_radius": None,
        "features": {
            "cells": {"type": "static", "shape": [1, -1, 3], "dtype": "int32"},
            "mesh_pos": {"type": "static", "shape": [1, -1, 2], "dtype": "float32"},
            "node_type": {"type": "static", "shape": [1, -1, 1], "dtype": "int32"},
            "velocity": {"type": "dynamic", "shape": [frames, -1, 2], "dtype": "float32"},
            "density": {"type": "dynamic", "shape": [frames, -1, 1], "dtype": "float32"},
            "pressure": {"type": "dynamic", "shape": [frames, -1, 1], "dtype": "float32"},
        },
        "field_names": ["cells", "mesh_pos", "node_type", "velocity", "density", "pressure"],
        "trajectory_length": frames,
    }


def airfoil_trajectory(seed: int, frames: int) -> dict:
    """A 7×5 grid with a travelling wave: velocity ~ 100, density ~ 1, pressure ~ 1e5."""
    rng = np.random.default_rng(seed)
    n, m = 7, 5
    x, y = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, m), indexing="ij")
    pos = np.stack([x.ravel(), y.ravel()], -1)
    idx = np.arange(n * m).reshape(n, m)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[:-1, 1:], idx[1:, 1:]
    cells = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).reshape(-1, 3)
    kind = np.zeros(n * m, np.int32)
    kind[pos[:, 0] == 0] = 4  # inflow
    kind[pos[:, 0] == 1] = 5  # outflow
    t = np.arange(frames)[:, None] * 0.1
    phase = 2 * np.pi * (pos[:, 0][None] - 0.3 * t) + rng.uniform(0, 6)
    velocity = np.stack([100 + 5 * np.sin(phase), 2 * np.cos(phase)], -1)
    density = (1 + 0.02 * np.sin(phase))[..., None]
    pressure = (1e5 * (1 + 0.05 * np.sin(phase)))[..., None]
    return {
        "cells": cells.astype(np.int32)[None],
        "mesh_pos": pos.astype(np.float32)[None],
        "node_type": kind[None, :, None],
        "velocity": velocity.astype(np.float32),
        "density": density.astype(np.float32),
        "pressure": pressure.astype(np.float32),
    }
