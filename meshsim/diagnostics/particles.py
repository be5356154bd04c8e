"""A particle rollout's metrics, model against constant-velocity extrapolation.

LagrangeBench (Toshev et al., NeurIPS 2023 Datasets and Benchmarks) scores particle
rollouts by the positional MSE averaged over the first 5 and 20 steps and over the
whole rollout, the kinetic-energy error and the Sinkhorn distance between the
predicted and the true particle clouds; the natural baseline is to keep every
particle's last velocity (x_{t+1} = 2x_t − x_{t−1}). Here:

* MSE at a frame: the mean over simulated particles (not walls) of the squared
  position error, averaged over the D components (the convention of
  `meshsim.evaluation.metrics.per_step_mse`);
* kinetic energy at a frame: ½ Σ |v|² over simulated particles, v the backward
  difference of positions over `dt` (unit mass); its error is the MSE over frames;
* wall penetrations: simulated particles that leave the box on a non-periodic axis,
  or whose move between two frames crosses a wall segment (counted per frame);
* Sinkhorn distance (optional, `ott-jax`): the entropic optimal-transport
  divergence between the predicted and the true clouds at the last frame with
  truth (ε = 1e-3 · box diagonal², uniform weights).

Host-side numpy, streaming like every `RolloutDiagnostics`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from meshsim.diagnostics.rollout import RolloutDiagnostics, Row, _mean

logger = logging.getLogger(__name__)

HORIZONS = (5, 20)  # LagrangeBench's MSE horizons


def crossings(before: np.ndarray, after: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """[N] bool: the straight move of each point from `before` to `after` ([N, 2] float)
    crosses one of the 2-D `segments` ([S, 2, 2]). Host side."""
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    segments = np.asarray(segments, np.float64)
    if segments.size == 0:
        return np.zeros(before.shape[0], bool)

    def side(o, p, q):  # sign of the cross product (p − o) × (q − o)
        return np.sign(
            (p[..., 0] - o[..., 0]) * (q[..., 1] - o[..., 1])
            - (p[..., 1] - o[..., 1]) * (q[..., 0] - o[..., 0])
        )

    p, q = before[:, None], after[:, None]  # [N, 1, 2]
    a, b = segments[None, :, 0], segments[None, :, 1]  # [1, S, 2]
    proper = (side(a, b, p) * side(a, b, q) < 0) & (side(p, q, a) * side(p, q, b) < 0)
    return np.any(proper, axis=1)


def sinkhorn_distance(x: np.ndarray, y: np.ndarray, *, epsilon: float) -> float | None:
    """Sinkhorn divergence between point clouds `x [N, D]` and `y [M, D]` (uniform
    weights), by ott-jax; None when ott-jax is not installed (`pip install
    meshsim[particles]`)."""
    try:
        from ott.geometry import pointcloud
        from ott.tools import sinkhorn_divergence
    except ImportError:
        return None
    geometry = pointcloud.PointCloud
    out = sinkhorn_divergence.sinkhorn_divergence(
        geometry, np.asarray(x, np.float32), np.asarray(y, np.float32), epsilon=epsilon
    )
    value = out[0] if isinstance(out, tuple) else out.divergence
    return float(value)


class ParticleDiagnostics(RolloutDiagnostics):
    """GNS / LagrangeBench metrics of a particle rollout (`position`), with the
    constant-velocity baseline computed from the same truth.

    `static` is the trajectory (`particle_type`, and `position` for the frame before
    the rollout's first, which the baseline needs); `meta["particles"]` gives `dt`,
    the box, periodicity, kinematic types and wall segments.
    """

    state_field = "position"
    static_fields = ("particle_type", "position")
    reference_label = "constant velocity"
    caption = (
        "Positional MSE over the first 5, 20 and all steps and the kinetic-energy MSE, "
        "against constant-velocity extrapolation (LagrangeBench's metrics); wall "
        "penetrations counted per particle and frame."
    )

    def _read_static(self, static: Mapping[str, np.ndarray], meta) -> int:
        info = dict((meta or {}).get("particles") or {})
        kind = np.asarray(static["particle_type"]).reshape(-1)
        kinematic = [int(k) for k in info.get("kinematic_types", ())]
        self._simulated = ~np.isin(kind, kinematic)  # [N] bool
        self._dt = float(info.get("dt") or 1.0)
        dim = int(info.get("dim") or np.asarray(static["position"]).shape[-1])
        bounds = np.asarray(info.get("bounds") or [[-np.inf, np.inf]] * dim, np.float64)
        periodic = np.asarray(info.get("periodic") or [False] * dim, bool)[:dim]
        self._lo = np.where(periodic, -np.inf, bounds[:, 0])
        self._hi = np.where(periodic, np.inf, bounds[:, 1])
        self._diagonal2 = float(np.sum((bounds[:, 1] - bounds[:, 0]) ** 2))
        walls = info.get("walls") or {}
        self._segments = np.asarray(walls.get("segments") or np.zeros((0, 2, dim)), np.float64)
        self._positions = np.asarray(static["position"])
        return int(kind.shape[0])

    def _before_start(self) -> np.ndarray:
        """[N, D] the frame before the truth's first (its index found in `position`)."""
        full, first = self._positions, self._truth[0]
        for t in range(full.shape[0]):
            if np.array_equal(full[t].astype(np.float64), first):
                return full[max(t - 1, 0)].astype(np.float64)
        raise ValueError("position: the truth's first frame is not a frame of the trajectory")

    def _energy(self, frames: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """[n] kinetic energy of frames [n, N, D] given the frame before them."""
        steps = np.diff(np.concatenate([previous[None], frames]), axis=0)[:, self._simulated]
        return 0.5 * np.sum((steps / self._dt) ** 2, axis=(1, 2))

    def _penetrations(self, frames: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """[n] simulated particles outside the box or through a wall, per frame."""
        inside = np.all((frames >= self._lo) & (frames <= self._hi), axis=-1)  # [n, N]
        count = np.sum(~inside & self._simulated, axis=1)
        if len(self._segments) and frames.shape[-1] == 2:
            before = np.concatenate([previous[None], frames[:-1]])
            for i in range(len(frames)):
                moved = crossings(before[i], frames[i], self._segments) & self._simulated
                count[i] += int(np.sum(moved & inside[i]))
        return count.astype(np.float64)

    def _mse(self, x: np.ndarray, truth: np.ndarray) -> np.ndarray:
        return np.mean((x - truth)[:, self._simulated] ** 2, axis=(1, 2))

    def _truth_diagnostics(self) -> dict[str, np.ndarray]:
        start = self._before_start()
        truth = self._truth
        velocity = truth[0] - start
        ahead = np.arange(len(truth))[:, None, None]
        self._baseline = truth[0][None] + ahead * velocity[None]  # [K, N, D]
        self._baseline[:, ~self._simulated] = truth[:, ~self._simulated]
        self._last = start
        return {
            "kinetic_energy_truth": self._energy(truth, start),
            "kinetic_energy_baseline": self._energy(self._baseline, start),
            "penetrations_truth": self._penetrations(truth, start),
            "penetrations_baseline": self._penetrations(self._baseline, start),
            "mse_baseline": self._mse(self._baseline, truth),
        }

    def _add(self, x: np.ndarray, known: np.ndarray) -> None:
        self._append("kinetic_energy_model", self._energy(x, self._last))
        self._append("penetrations_model", self._penetrations(x, self._last))
        self._last = x[-1]
        if len(known):
            self._append("mse_model", self._mse(x[: len(known)], known))
            self._final = (x[len(known) - 1], known[-1])

    def _result(self, truth: np.ndarray, known: dict[str, np.ndarray]) -> dict[str, Any]:
        model, reference = self._final
        keep = self._simulated
        epsilon = 1e-3 * self._diagonal2
        return {
            "mse_model": self._joined("mse_model"),
            "kinetic_energy_model": self._joined("kinetic_energy_model"),
            "penetrations_model": self._joined("penetrations_model"),
            "sinkhorn_model": sinkhorn_distance(model[keep], reference[keep], epsilon=epsilon),
            "sinkhorn_baseline": sinkhorn_distance(
                self._baseline[len(truth) - 1][keep], reference[keep], epsilon=epsilon
            ),
            **known,
        }

    @classmethod
    def summarize(cls, trajectories: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Means over trajectories of: `mse{5,20,all}_{model,baseline}` (MSE averaged
        over steps 1..h), `kinetic_energy_mse_{model,baseline}`, `penetrations_{model,
        baseline,truth}` (sums over frames) and `sinkhorn_{model,baseline}`."""

        def mse(series, h):
            values = (series or [])[1:]  # frame 0 is the initial state
            values = values if h is None else values[:h]
            if not values or any(v is None for v in values):
                return None
            return float(np.mean(values))

        def energy_mse(t, who):
            pred, true = t.get(f"kinetic_energy_{who}") or [], t.get("kinetic_energy_truth") or []
            n = min(len(pred), len(true))
            pairs = list(zip(pred[1:n], true[1:n]))
            if not pairs or any(a is None or b is None for a, b in pairs):
                return None
            return float(np.mean([(a - b) ** 2 for a, b in pairs]))

        def total(series):
            return None if series is None or any(v is None for v in series) else sum(series)

        out: dict[str, Any] = {}
        for who in ("model", "baseline"):
            for h in (*HORIZONS, None):
                key = f"mse{h or 'all'}_{who}"
                out[key] = _mean([mse(t.get(f"mse_{who}"), h) for t in trajectories])
            out[f"kinetic_energy_mse_{who}"] = _mean([energy_mse(t, who) for t in trajectories])
            out[f"sinkhorn_{who}"] = _mean([t.get(f"sinkhorn_{who}") for t in trajectories])
        for who in ("model", "baseline", "truth"):
            counts = [total(t.get(f"penetrations_{who}")) for t in trajectories]
            known = [c for c in counts if c is not None]
            out[f"penetrations_{who}"] = float(sum(known)) if known else None
        return out

    @classmethod
    def gate(cls, summary: Mapping[str, Any]) -> tuple[bool, str]:
        """Passes when the model is below constant velocity at MSE-5, MSE-20 and the
        kinetic-energy MSE, with no wall penetration."""
        checks = {
            name: (summary[f"{key}_model"], summary[f"{key}_baseline"])
            for name, key in (
                ("MSE-5", "mse5"),
                ("MSE-20", "mse20"),
                ("kinetic-energy MSE", "kinetic_energy_mse"),
            )
        }
        lost = [k for k, (m, b) in checks.items() if m is None or b is None or not m < b]
        walls = summary["penetrations_model"]
        ok = not lost and walls == 0
        beats = "beats" if not lost else f"does NOT beat (loses at {', '.join(lost)})"
        text = (
            f"The model {beats} constant-velocity extrapolation at MSE-5, MSE-20 and the "
            f"kinetic-energy MSE, with {f'{walls:g}' if walls is not None else 'n/a'} wall "
            "penetrations."
        )
        return ok, text

    @classmethod
    def report_rows(cls, summary: Mapping[str, Any]) -> list[Row]:
        s = summary
        rows = [(f"MSE-{h}", s[f"mse{h}_model"], s[f"mse{h}_baseline"]) for h in (*HORIZONS, "all")]
        rows.append(
            ("kinetic-energy MSE", s["kinetic_energy_mse_model"], s["kinetic_energy_mse_baseline"])
        )
        rows.append(("wall penetrations", s["penetrations_model"], s["penetrations_baseline"]))
        if s.get("sinkhorn_model") is not None:
            rows.append(("Sinkhorn distance", s["sinkhorn_model"], s["sinkhorn_baseline"]))
        return rows
