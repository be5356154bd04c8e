"""What a mesh dataset directory holds, without loading it (`meshsim inspect`): per
split the trajectory count, node, edge and cell counts, world edges and the edges the
receptive-field options add, and the field layout; weather and particle directories
are handed to `weather_inspect` and `particle_inspect`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from meshsim.data import hdf5, particle_inspect
from meshsim.data.datasets import list_splits, open_dataset, require_directory
from meshsim.data.meta import CELL_FIELDS, length_field, load_meta
from meshsim.data.weather import is_weather_directory
from meshsim.data.weather_inspect import format_weather_inspection, inspect_weather_dataset
from meshsim.graph import edges_from_cells, unique_edges
from meshsim.graph.hops import receptive_field_edge_counts
from meshsim.validation import check_int, check_number

__all__ = ["count_mesh_edges", "format_inspection", "inspect_dataset"]


def count_mesh_edges(cells: np.ndarray) -> int:
    """Unique undirected edges of a cell list `[C, k] int` (triangles k=3, tetrahedra k=4:
    every pair of a cell's vertices is an edge)."""
    cells = np.asarray(cells, dtype=np.int64)
    return int(unique_edges(cells.reshape(-1, cells.shape[-1])).shape[0])


def _node_count(
    meta: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], arrays: Mapping[str, np.ndarray]
) -> int | None:
    """N from the first per-node field: its -1 axis, or frame 0's row count if varlen."""
    for name, spec in meta["features"].items():
        if name in CELL_FIELDS or name not in shapes:
            continue
        if spec["type"] == "dynamic_varlen":
            return int(arrays[length_field(name)][0])
        if -1 in spec["shape"]:
            return int(shapes[name][spec["shape"].index(-1)])
    return None


def _first_frame_cells(trajectory: Mapping[str, np.ndarray], meta: Mapping[str, Any]):
    for name in CELL_FIELDS & set(meta["features"]):
        cells = trajectory[name]
        if meta["features"][name]["type"] == "dynamic_varlen":
            return cells[: int(trajectory[length_field(name)][0])]
        return cells[0] if cells.ndim == 3 else cells
    return None


def _stats(values: list[int]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": int(min(values)), "mean": float(np.mean(values)), "max": int(max(values))}


def inspect_dataset(
    directory: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    max_trajectories: int | None = None,
    world_radius: float | None = None,
    receptive_field: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Summarizes a dataset directory: per split, counts, mesh sizes and field layout.

    With a world-edge radius (`world_radius`, else the meta's `world_edge_radius`) and
    `world_pos` data, also MeshGraphNets' world edges: the directed pairs of nodes
    closer than the radius that no mesh edge joins, most over 8 frames per trajectory
    (`"world_edges"`).

    With `receptive_field` (the mesh tasks' options `k_hop`, `dilation`,
    `dilation_levels`, `global_nodes`, `meshsim.tasks.MeshOptions`), also the edges
    those options add to each mesh (`"receptive_field": {"khop", "dilated", "global":
    {"min", "mean", "max"}}`), from the first frame's cells.

    Weather directories (WeatherBench2-layout `<split>.zarr` / `.nc` stores) get
    `meshsim.data.weather_inspect.inspect_weather_dataset`'s report (`"kind":
    "weather"`): variables, levels, times, trajectories, grid.

    Particle datasets (native with a `"particles"` meta section, LagrangeBench or
    learning_to_simulate) get `meshsim.data.particle_inspect.inspect_particle_dataset`'s
    report instead (`"kind": "particles"`).

    Node counts come from the per-node fields, edge counts are the unique undirected
    edges of `cells` (first frame for remeshed data). TFRecord splits are read (and
    CRC-checked) in full; HDF5 splits read only `cells` and array headers.

    Returns:
      `{"directory", "meta": top-level meta keys except the schema, "splits": {split:
      {"format", "path", "num_trajectories", "inspected", "nodes", "edges", "cells":
      {"min", "mean", "max"} or None, "world_edges": the same or None, "fields": {name:
      {"type", "shape", "dtype"}}}}}`;
      a `shape` entry is -1 where it varies between trajectories.
    """
    directory = require_directory(directory)
    check_int("max_trajectories", max_trajectories, minimum=0, optional=True)
    if is_weather_directory(directory):
        return inspect_weather_dataset(directory, splits=splits)
    if particle_inspect.is_particle_dataset(directory):
        return particle_inspect.inspect_particle_dataset(
            directory, splits=splits, max_trajectories=max_trajectories
        )
    meta = load_meta(directory)
    check_number("world_radius", world_radius, greater_than=0, optional=True)
    radius = world_radius or meta.get("world_edge_radius")
    radius = float(radius) if radius and "world_pos" in meta["features"] else None
    report: dict[str, Any] = {
        "directory": directory,
        "meta": {k: v for k, v in meta.items() if k not in ("features", "field_names")},
        "world_radius": radius,
        "splits": {},
    }
    for split in list_splits(directory) if splits is None else splits:
        dataset = open_dataset(directory, split, meta=meta)
        nodes, edges, cells, shapes, dtypes, world = [], [], [], {}, {}, []
        extra: dict[str, list[int]] = {}
        inspected = 0
        if dataset.format == "hdf5":  # read only connectivity and row counts
            needed = [n for n in meta["features"] if n in CELL_FIELDS]
            needed += [
                length_field(n)
                for n, spec in meta["features"].items()
                if spec["type"] == "dynamic_varlen"
            ]
            infos = hdf5.iter_hdf5_field_info(directory, split)
            trajectories = dataset.iter(fields=needed + (["world_pos"] if radius else []))
        else:
            infos, trajectories = None, iter(dataset)
        for count, arrays in enumerate(trajectories):
            if max_trajectories is not None and count >= max_trajectories:
                break
            inspected += 1
            if infos is not None:
                info = next(infos)
            else:
                info = {k: (v.shape, v.dtype) for k, v in arrays.items()}
            for name, (shape, dtype) in info.items():
                dtypes[name] = np.dtype(dtype).name
                old = shapes.get(name)
                shapes[name] = list(shape) if old is None else _merge_shape(old, shape)
            n = _node_count(meta, {k: shape for k, (shape, _) in info.items()}, arrays)
            if n is not None:
                nodes.append(n)
            first = _first_frame_cells(arrays, meta)
            if first is not None:
                cells.append(len(first))
                try:
                    edges.append(count_mesh_edges(first))
                except ValueError as e:  # e.g. a degenerate cell
                    raise ValueError(f"{dataset.path}: trajectory {count}: {e}") from e
                if radius is not None:
                    world.append(_count_world_edges(arrays["world_pos"], first, radius))
                if receptive_field and n is not None:
                    s, r = edges_from_cells(first)
                    counts = receptive_field_edge_counts(s, r, n, **receptive_field)
                    for key, value in counts.items():
                        extra.setdefault(key, []).append(value)
        report["splits"][split] = {
            "format": dataset.format,
            "path": dataset.path,
            "num_trajectories": len(dataset),
            "inspected": inspected,
            "nodes": _stats(nodes),
            "edges": _stats(edges),
            "cells": _stats(cells),
            "world_edges": _stats(world),
            "receptive_field": {k: _stats(v) for k, v in extra.items()} or None,
            "fields": {
                name: {
                    "type": _field_type(meta, name),
                    "shape": shapes[name],
                    "dtype": dtypes[name],
                }
                for name in shapes
            },
        }
    return report


def _count_world_edges(world_pos: np.ndarray, cells: np.ndarray, radius: float) -> int:
    """The most directed world edges (pairs closer than `radius` that no mesh edge of
    `cells` joins) on 8 evenly spaced frames of `world_pos [T, N, D]`."""
    from scipy.spatial import cKDTree

    pairs = unique_edges(np.asarray(cells))
    mesh = set(map(tuple, np.sort(pairs, axis=1).tolist()))
    world_pos = np.asarray(world_pos, np.float64)
    most = 0
    for t in np.unique(np.linspace(0, len(world_pos) - 1, 8).astype(int)):
        close = cKDTree(world_pos[t]).query_pairs(radius)
        most = max(most, 2 * sum(1 for pair in close if pair not in mesh))
    return most


def _merge_shape(old: list[int], new: Sequence[int]) -> list[int]:
    if len(old) != len(new):
        return [-1] * max(len(old), len(new))
    return [a if a == b else -1 for a, b in zip(old, new, strict=True)]


def _field_type(meta: Mapping[str, Any], name: str) -> str:
    if name in meta["features"]:
        return meta["features"][name]["type"]
    return "length" if name.startswith("length_") else "extra"


_FORMATTERS = {
    "particles": particle_inspect.format_particle_inspection,
    "weather": format_weather_inspection,
}


def format_inspection(report: Mapping[str, Any]) -> str:
    """Renders `inspect_dataset`'s report as plain text for the CLI."""
    formatter = _FORMATTERS.get(report.get("kind"))
    if formatter is not None:  # particle and weather directories have their own reports
        return formatter(report)
    extras = ", ".join(f"{k}={v}" for k, v in report["meta"].items() if k != "converted_from")
    lines = [f"dataset {report['directory']} ({extras})"]

    def fmt(stats):
        if stats is None:
            return "-"
        return f"{stats['min']}/{stats['mean']:.1f}/{stats['max']}"

    header = f"  {'split':<10} {'format':<9} {'trajectories':>12}  {'nodes min/mean/max':>24}"
    header += f"  {'edges min/mean/max':>24}"
    lines.append(header)
    for split, info in report["splits"].items():
        count = str(info["num_trajectories"])
        if info["inspected"] != info["num_trajectories"]:
            count += f" ({info['inspected']} read)"
        lines.append(
            f"  {split:<10} {info['format']:<9} {count:>12}  {fmt(info['nodes']):>24}"
            f"  {fmt(info['edges']):>24}"
        )
        if info.get("world_edges") is not None:
            lines.append(
                f"  {'':<10} world edges (directed, most per frame) {fmt(info['world_edges'])}"
            )
        for kind, stats in (info.get("receptive_field") or {}).items():
            lines.append(f"  {'':<10} {kind} edges (directed) {fmt(stats)}")
    for split, info in report["splits"].items():
        lines.append(f"fields ({split}):")
        for name, field in info["fields"].items():
            shape = "[" + ", ".join(str(d) for d in field["shape"]) + "]"
            lines.append(f"  {name:<22} {field['type']:<15} {shape:<18} {field['dtype']}")
    return "\n".join(lines)
