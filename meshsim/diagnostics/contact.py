"""Contact diagnostics: nodes inside an obstacle, and RMSE per part of the state.

MeshGraphNets' contact domains put the obstacle in the mesh: OBSTACLE nodes (a
sphere's surface triangles, an actuator's tetrahedra) whose motion is prescribed. A
simulated node *penetrates* when it lies behind the obstacle's nearest surface
triangle by more than a tolerance (1% of the obstacle's mean edge length): the
signed distance along that triangle's outward normal is negative. Outward is away
from the obstacle's centroid for surface triangles, and away from the opposite
vertex for the boundary faces of tetrahedra; exact for convex obstacles (spheres,
boxes, cylinders), an approximation for others.

`ContactDiagnostics` (cloth: `world_pos`) and `PlateDiagnostics` (`world_pos+stress`)
count penetrations per frame for the model and the truth, and report the RMSE of each
part of the state (position, stress) over the simulated nodes at 1, 10, 50 steps and
over all steps, against persistence (the initial state held: for a plate, the
kinematic baseline in which only the prescribed nodes move). Host-side numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from meshsim.diagnostics.rollout import RolloutDiagnostics, Row, _mean
from meshsim.node_types import NodeType

HORIZONS = (1, 10, 50)
_NODE_BLOCK = 256  # nodes tested against all faces at once (memory O(block · faces))


def obstacle_faces(cells: np.ndarray, obstacle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(faces [F, 3] int, opposite [F] int) of the obstacle's surface.

    Triangles whose three nodes are obstacle nodes are its surface (opposite −1: orient
    away from the centroid); for tetrahedra, the faces of obstacle tetrahedra that no
    other obstacle tetrahedron shares (opposite: the tetrahedron's fourth node).

    Args:
      cells: [C, 3] or [C, 4] int.
      obstacle: [N] bool, the obstacle's nodes.
    """
    cells = np.asarray(cells, np.int64)
    mine = cells[np.all(obstacle[cells], axis=1)]
    if cells.shape[1] == 3:
        return mine.astype(np.int64), np.full(len(mine), -1, np.int64)
    return surface_faces(mine)


def surface_faces(tets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(faces [F, 3] int, opposite [F] int): the faces of tetrahedra `tets [C, 4]` that
    no other tetrahedron shares (the surface of the solid), with each face's fourth node."""
    tets = np.asarray(tets, np.int64).reshape(-1, 4)
    local = ((0, 1, 2, 3), (0, 1, 3, 2), (0, 2, 3, 1), (1, 2, 3, 0))
    faces = np.concatenate([tets[:, list(f[:3])] for f in local])  # [4C, 3]
    opposite = np.concatenate([tets[:, f[3]] for f in local])
    if not len(faces):
        return faces, opposite
    key = np.sort(faces, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    once = counts[inverse.reshape(-1)] == 1
    return faces[once], opposite[once]


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray):
    """[P, F, 3] the closest point of each triangle (a, b, c: [F, 3]) to each point
    p [P, 1, 3], by the triangle's Voronoi regions (vertices, edges, face)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.sum(ab * ap, -1), np.sum(ac * ap, -1)
    bp = p - b
    d3, d4 = np.sum(ab * bp, -1), np.sum(ac * bp, -1)
    cp = p - c
    d5, d6 = np.sum(ab * cp, -1), np.sum(ac * cp, -1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v_face, w_face = vb / denom, vc / denom
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    out = a + v_face[..., None] * ab + w_face[..., None] * ac  # inside the face
    regions = [  # later entries win: vertices last
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), b + t_bc[..., None] * (c - b)),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + t_ac[..., None] * ac),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + t_ab[..., None] * ab),
        ((d6 >= 0) & (d5 <= d6), np.broadcast_to(c, out.shape)),
        ((d3 >= 0) & (d4 <= d3), np.broadcast_to(b, out.shape)),
        ((d1 <= 0) & (d2 <= 0), np.broadcast_to(a, out.shape)),
    ]
    for where, point in regions:
        out = np.where(where[..., None], point, out)
    return out


def penetrations(
    positions: np.ndarray,
    faces: np.ndarray,
    opposite: np.ndarray,
    obstacle: np.ndarray,
    simulated: np.ndarray,
    tolerance: float,
) -> np.ndarray:
    """[T] int: simulated nodes behind the obstacle's nearest surface triangle by more
    than `tolerance`, per frame of `positions [T, N, 3]` (non-finite frames: −1)."""
    x_all = np.asarray(positions, np.float64)
    out = np.zeros(len(x_all), np.int64)
    if not len(faces) or not simulated.any():
        return out
    for t, x in enumerate(x_all):
        if not np.isfinite(x).all():
            out[t] = -1
            continue
        a, b, c = x[faces[:, 0]], x[faces[:, 1]], x[faces[:, 2]]
        normal = np.cross(b - a, c - a)
        inward = np.where((opposite >= 0)[:, None], x[np.maximum(opposite, 0)], 0.0)
        centroid = x[obstacle].mean(axis=0)
        inward = np.where((opposite >= 0)[:, None], inward, centroid)
        flip = np.sum(normal * (inward - a), -1) > 0
        normal = np.where(flip[:, None], -normal, normal)
        normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-300)
        nodes = x[simulated]
        count = 0
        for start in range(0, len(nodes), _NODE_BLOCK):
            p = nodes[start : start + _NODE_BLOCK, None]  # [P, 1, 3]
            closest = _closest_on_triangles(p, a, b, c)  # [P, F, 3]
            gap = p - closest
            nearest = np.argmin(np.sum(gap**2, -1), axis=1)  # [P]
            rows = np.arange(len(nearest))
            signed = np.sum(gap[rows, nearest] * normal[nearest], -1)
            count += int(np.sum(signed < -tolerance))
        out[t] = count
    return out


class ContactDiagnostics(RolloutDiagnostics):
    """A contact rollout's penetrations and per-part RMSE (module doc); cloth states.

    Per frame: `penetrations_{model,truth}` (simulated nodes inside the obstacle) and,
    for each part of the state, `rmse_<part>_{model,persistence}` over the NORMAL nodes
    (frames with truth). `static` needs `cells` and `node_type`.
    """

    state_field = "world_pos"
    parts: ClassVar[tuple[tuple[str, int, int], ...]] = (("position", 0, 3),)
    static_fields = ("cells", "node_type")
    caption = (
        "Nodes inside the obstacle per frame (model against truth), and RMSE over the "
        "simulated nodes at 1, 10, 50 and all steps (model against persistence)."
    )
    reference_label = "truth / persistence"

    def _read_static(self, static: Mapping[str, np.ndarray], meta) -> int:
        cells = np.asarray(static["cells"])
        cells = cells[0] if cells.ndim == 3 else cells
        kind = np.asarray(static["node_type"]).reshape(-1)
        if cells.ndim != 2 or cells.shape[1] not in (3, 4):
            raise ValueError(f"cells: expected [C, 3] or [C, 4], got {cells.shape}")
        self._obstacle = kind == int(NodeType.OBSTACLE)
        self._simulated = kind == int(NodeType.NORMAL)
        self._faces, self._opposite = obstacle_faces(cells, self._obstacle)
        return len(kind)

    def _tolerance(self, x0: np.ndarray) -> float:
        if not len(self._faces):
            return 0.0
        f = self._faces
        edges = np.concatenate([x0[f[:, 1]] - x0[f[:, 0]], x0[f[:, 2]] - x0[f[:, 1]]])
        return 0.01 * float(np.mean(np.linalg.norm(edges, axis=-1)))

    def _count(self, x: np.ndarray) -> np.ndarray:
        return penetrations(
            x[..., :3], self._faces, self._opposite, self._obstacle, self._simulated, self._tol
        )

    def _truth_diagnostics(self) -> dict[str, np.ndarray]:
        self._tol = self._tolerance(np.asarray(self._truth[0, :, :3], np.float64))
        return {"penetrations_truth": self._count(self._truth)}

    def _rmse(self, x: np.ndarray, truth: np.ndarray, lo: int, hi: int) -> np.ndarray:
        err = (
            np.asarray(x[:, self._simulated, lo:hi], np.float64) - truth[:, self._simulated, lo:hi]
        )
        return np.sqrt(np.mean(err**2, axis=(1, 2))) if self._simulated.any() else np.zeros(len(x))

    def _add(self, x: np.ndarray, known: np.ndarray) -> None:
        self._append("penetrations_model", self._count(x))
        if len(known):
            held = np.broadcast_to(self._truth[:1], known.shape)
            for part, lo, hi in self.parts:
                self._append(f"rmse_{part}_model", self._rmse(x[: len(known)], known, lo, hi))
                self._append(f"rmse_{part}_persistence", self._rmse(held, known, lo, hi))

    def _result(self, truth: np.ndarray, known: dict[str, np.ndarray]) -> dict[str, Any]:
        out = {"penetrations_model": self._joined("penetrations_model"), **known}
        for part, _, _ in self.parts:
            for who in ("model", "persistence"):
                out[f"rmse_{part}_{who}"] = self._joined(f"rmse_{part}_{who}")
        return out

    @classmethod
    def summarize(cls, trajectories: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Penetrating nodes per frame (mean and most, model and truth) and each part's
        RMSE at 1, 10, 50 and all steps (model and persistence), means over trajectories."""
        out: dict[str, Any] = {}
        for who in ("model", "truth"):
            series = [
                [v for v in t.get(f"penetrations_{who}") or [] if v is not None and v >= 0]
                for t in trajectories
            ]
            out[f"penetrations_per_frame_{who}"] = _mean(
                [np.mean(s) if s else None for s in series]
            )
            out[f"penetrations_max_{who}"] = max((max(s) for s in series if s), default=None)
        for part, _, _ in cls.parts:
            for who in ("model", "persistence"):
                curves = [t.get(f"rmse_{part}_{who}") or [] for t in trajectories]
                for h in HORIZONS:
                    out[f"rmse_{part}_{h}_{who}"] = _mean(
                        [c[h] if len(c) > h else None for c in curves]
                    )
                out[f"rmse_{part}_all_{who}"] = _mean(
                    [
                        None if any(v is None for v in c[1:]) or len(c) < 2 else np.mean(c[1:])
                        for c in curves
                    ]
                )
        return out

    @classmethod
    def report_rows(cls, summary: Mapping[str, Any]) -> list[Row]:
        s = summary
        rows: list[Row] = [
            (
                "penetrating nodes per frame",
                s["penetrations_per_frame_model"],
                s["penetrations_per_frame_truth"],
            ),
        ]
        for part, _, _ in cls.parts:
            for h in (*HORIZONS, "all"):
                label = f"{part} RMSE, {h} step{'s' if h != 1 else ''}"
                rows.append((label, s[f"rmse_{part}_{h}_model"], s[f"rmse_{part}_{h}_persistence"]))
        return rows

    @classmethod
    def gate(cls, summary: Mapping[str, Any]) -> tuple[bool, str] | None:
        """Passes when every part's all-step RMSE is below persistence's and the model
        puts no more nodes inside the obstacle per frame than the truth plus one."""
        worse = [
            part
            for part, _, _ in cls.parts
            if not (
                summary[f"rmse_{part}_all_model"] is not None
                and summary[f"rmse_{part}_all_persistence"] is not None
                and summary[f"rmse_{part}_all_model"] < summary[f"rmse_{part}_all_persistence"]
            )
        ]
        inside, truth = (
            summary["penetrations_per_frame_model"],
            summary["penetrations_per_frame_truth"],
        )
        deep = inside is None or inside > (truth or 0.0) + 1.0
        if worse or deep:
            why = [f"{', '.join(worse)} RMSE over all steps not below persistence"] if worse else []
            why += [f"{inside} nodes per frame inside the obstacle (truth {truth})"] if deep else []
            return False, "; ".join(why)
        return (
            True,
            "every part beats persistence over all steps, and nothing sinks into the obstacle",
        )


class PlateDiagnostics(ContactDiagnostics):
    """`ContactDiagnostics` of a plate: states `world_pos+stress`, RMSE of the position
    and of the von Mises stress."""

    state_field = "world_pos+stress"
    parts = (("position", 0, 3), ("stress", 3, 4))
