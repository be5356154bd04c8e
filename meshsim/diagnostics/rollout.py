"""The diagnostics of a task's rollout, model against truth: one call, or chunk by chunk.

`RolloutDiagnostics` takes the truth and the mesh once and the predicted frames
as they come off the device (`meshsim.rollout.iter_rollout` chunks), keeping only
per-frame numbers and, for a flow, one probe node's velocity: host memory stays
O(T) however long the rollout, which `meshsim.evaluation` streams to disk.
`rollout_diagnostics` is the same on whole arrays. `summarize_diagnostics`
reduces the per-trajectory results of an evaluation to a few numbers.
Host-side numpy; not jit-safe.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from meshsim.diagnostics._checks import MissingFlowParameter, _mesh, _trajectory
from meshsim.diagnostics.cloth import mean_abs_strain, strain_error
from meshsim.diagnostics.flow import (
    FlowParameters,
    kinetic_energy,
    mean_abs_divergence,
    shedding_frequency,
)
from meshsim.diagnostics.flow import flow_parameters as _flow_parameters

logger = logging.getLogger(__name__)

# task name -> (state field, the options it accepts)
_TASKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "cfd": ("velocity", ("dt", "diameter", "velocity_scale", "probe", "skip")),
    "cloth": ("world_pos", ()),
}
DIAGNOSED_TASKS = tuple(_TASKS)  # the task names the diagnostics know


def _json(x: Any) -> Any:
    """Plain floats (lists of them for arrays); None for non-finite values."""
    if x is None:
        return None
    if np.ndim(x):
        return [_json(v) for v in np.asarray(x, dtype=np.float64).ravel()]
    return float(x) if math.isfinite(float(x)) else None


def _check_task(task_name: str, options: Mapping[str, Any]) -> str:
    """The task's state field; raises ValueError on an unknown task or option."""
    if task_name not in _TASKS:
        raise ValueError(f"task_name: expected one of {sorted(_TASKS)}, got {task_name!r}")
    field, valid = _TASKS[task_name]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"options: {task_name!r} accepts {list(valid)}, got unknown {unknown}")
    return field


def _state(x: Any, name: str, field: str) -> np.ndarray:
    if isinstance(x, Mapping):
        if field not in x:
            raise ValueError(f"{name}: expected a {field!r} field, got {sorted(x)}")
        x = x[field]
    return np.asarray(x)


class RolloutDiagnostics:
    """Accumulates a task's diagnostics over a rollout that arrives chunk by chunk.

    Per-frame series cover every predicted frame for the model (past the data
    too: a long rollout's energy is diagnosed where there is no truth) and the
    truth's frames for the truth; frequencies and strain errors use the frames
    that have both. Non-finite predictions give None entries, never errors.

    Usage: `d = RolloutDiagnostics("cfd", truth, static, meta=meta)`, then
    `d.add(frames)` for each chunk `[n, N, F]` in order (frame 0 the initial
    state), then `d.result()`.

    Args:
      task_name: "cfd" or "cloth" (a `MeshTask.name`).
      truth: `[K, N, F]` float ground truth (velocity / world_pos) of frames 0..K-1,
        or a trajectory dict holding it.
      static: `mesh_pos [1, N, 2]` float, `cells [1, C, 3]` int and, for cfd,
        `node_type [1, N, 1]` int (leading axes optional); None: from `truth`.
      meta: the dataset's meta.json dict (cfd reads `dt`), or None.
      **options: cfd only: `dt`, `diameter`, `velocity_scale`, `probe` (see
        `meshsim.diagnostics.strouhal_number`), `skip` (frames left out of the
        frequency).

    Raises:
      ValueError, TypeError: an unknown task or option, missing or malformed mesh
        fields, a bad option value.
    """

    def __init__(
        self,
        task_name: str,
        truth: Mapping[str, np.ndarray] | np.ndarray,
        static: Mapping[str, np.ndarray] | None = None,
        *,
        meta: Mapping[str, Any] | None = None,
        **options: Any,
    ):
        self.task_name = task_name
        self._field = _check_task(task_name, options)
        if static is None:
            if not isinstance(truth, Mapping):
                raise ValueError(
                    "static: expected the mesh fields when truth is an array, got None"
                )
            static = truth
        missing = sorted({"mesh_pos", "cells"} - set(static))
        if missing:
            raise ValueError(f"static: expected fields mesh_pos and cells, missing {missing}")
        self._pos, self._cells = _mesh(static["mesh_pos"], static["cells"])
        self._truth = _trajectory(_state(truth, "truth", self._field), "truth", len(self._pos))
        self._frames = 0
        self._series: dict[str, list[np.ndarray]] = {}
        self._params: FlowParameters | None = None
        self._skip = 0
        # The truth's series now: they check the mesh (degenerate cells, zero-length
        # edges) before any frame is predicted.
        pos, cells, truth = self._pos, self._cells, self._truth
        if task_name == "cfd":
            self._truth_series = {
                "kinetic_energy_truth": kinetic_energy(truth, pos, cells),
                "mean_abs_divergence_truth": mean_abs_divergence(truth, pos, cells),
            }
            self._init_flow(static, meta, dict(options))
        else:
            self._truth_series = {"mean_abs_strain_truth": mean_abs_strain(truth, pos, cells)}

    def _init_flow(self, static, meta, options) -> None:
        self._skip = options.pop("skip", 0)
        trajectory = {**static, "velocity": self._truth}
        try:
            self._params = _flow_parameters(trajectory, meta, **options)
        except MissingFlowParameter as e:  # e.g. a channel without an obstacle: no shedding
            logger.warning("no Strouhal number: %s", e)

    @property
    def frames(self) -> int:
        """Predicted frames added so far (the initial state included)."""
        return self._frames

    def _append(self, key: str, values: np.ndarray) -> None:
        self._series.setdefault(key, []).append(np.asarray(values))

    def add(self, frames: Mapping[str, np.ndarray] | np.ndarray) -> None:
        """Adds the next predicted frames `[n, N, F]` float (or a dict holding them).

        Cost: O(n (N + C)) for a flow, O(n E) for a cloth (E edges)."""
        x = _trajectory(_state(frames, "frames", self._field), "frames", len(self._pos))
        if x.shape[2] != self._truth.shape[2]:
            raise ValueError(
                f"frames: expected {self._truth.shape[2]} components like the truth, got {x.shape}"
            )
        start, self._frames = self._frames, self._frames + len(x)
        known = self._truth[start : self._frames]  # [<= n, N, F]
        pos, cells = self._pos, self._cells
        if self.task_name == "cfd":
            self._append("kinetic_energy_model", kinetic_energy(x, pos, cells))
            self._append("mean_abs_divergence_model", mean_abs_divergence(x, pos, cells))
            if self._params is not None:
                self._append("probe", x[: len(known), self._params.probe])
        else:
            self._append("mean_abs_strain_model", mean_abs_strain(x, pos, cells))
            if len(known):
                self._append("strain_error", strain_error(x[: len(known)], known, pos, cells))

    def _joined(self, key: str, width: tuple[int, ...] = ()) -> np.ndarray:
        parts = self._series.get(key)
        return np.concatenate(parts) if parts else np.zeros((0, *width))

    def result(self) -> dict[str, list[float | None] | float | None]:
        """JSON-ready values (plain floats, None where not finite).

        cfd: per-frame lists `kinetic_energy_{model,truth}` (½∫|u|² dA over all
        nodes) and `mean_abs_divergence_{model,truth}`; `shedding_frequency_*`,
        `strouhal_{model,truth}` over the frames that have both, and the `dt`,
        `diameter`, `velocity_scale`, `probe_x`, `probe_y` used (None, logged,
        without an obstacle, inlet or dt). cloth: per-frame `strain_error` (frames
        with truth) and `mean_abs_strain_{model,truth}`.

        Raises:
          ValueError: if no frame was added.
        """
        if self._frames == 0:
            raise ValueError("frames: expected at least one add() before result(), got none")
        truth = self._truth[: self._frames]  # the frames that have a prediction
        known = {key: value[: self._frames] for key, value in self._truth_series.items()}
        pos = self._pos
        if self.task_name == "cloth":
            out = {
                "strain_error": self._joined("strain_error"),
                "mean_abs_strain_model": self._joined("mean_abs_strain_model"),
                **known,
            }
            return {key: _json(value) for key, value in out.items()}
        out: dict[str, Any] = {
            "kinetic_energy_model": self._joined("kinetic_energy_model"),
            "kinetic_energy_truth": known["kinetic_energy_truth"],
            "mean_abs_divergence_model": self._joined("mean_abs_divergence_model"),
            "mean_abs_divergence_truth": known["mean_abs_divergence_truth"],
        }
        p = self._params
        signals = {}
        if p is not None:
            model = self._joined("probe", (truth.shape[2],))
            signals = {"model": model, "truth": truth[: len(model), p.probe]}
        for name in ("model", "truth"):
            f = None
            if p is not None:
                signal = signals[name][:, None, :]  # [T, 1, F]: the probe node alone
                f = (
                    shedding_frequency(
                        signal, pos[p.probe][None], probe=0, dt=p.dt, skip=self._skip
                    )
                    if len(signal) > self._skip
                    else float("nan")
                )
            out[f"shedding_frequency_{name}"] = f
            out[f"strouhal_{name}"] = f * p.diameter / p.velocity_scale if p else None
        out["probe_x"], out["probe_y"] = pos[p.probe] if p else (None, None)
        for key in ("dt", "diameter", "velocity_scale"):
            out[key] = getattr(p, key) if p else None
        return {key: _json(value) for key, value in out.items()}


def rollout_diagnostics(
    task_name: str,
    pred: Mapping[str, np.ndarray] | np.ndarray,
    truth: Mapping[str, np.ndarray] | np.ndarray,
    static: Mapping[str, np.ndarray] | None = None,
    *,
    meta: Mapping[str, Any] | None = None,
    **options: Any,
) -> dict[str, list[float | None] | float | None]:
    """The physical diagnostics of a task's rollout, model against truth, JSON-ready.

    Keys as `RolloutDiagnostics.result`. Values are plain floats, None where not
    finite, so `json.dumps(..., allow_nan=False)` accepts them.

    Args:
      task_name: "cfd" or "cloth" (a `MeshTask.name`).
      pred, truth: `[T, N, F]` float states (velocity / world_pos) of equal shape, or
        trajectory dicts holding them.
      static, meta, **options: as `RolloutDiagnostics`.
    """
    field = _check_task(task_name, options)
    states = [_state(x, name, field) for name, x in (("pred", pred), ("truth", truth))]
    if states[0].shape != states[1].shape:
        raise ValueError(
            f"pred, truth: expected equal shapes, got {states[0].shape}, {states[1].shape}"
        )
    if static is None and not isinstance(truth, Mapping):
        raise ValueError("static: expected the mesh fields when truth is an array, got None")
    diagnostics = RolloutDiagnostics(
        task_name, states[1], truth if static is None else static, meta=meta, **options
    )
    diagnostics.add(states[0])
    return diagnostics.result()


# ----------------------------------------------------------------------------- summary


def _mean(values: Sequence[float | None]) -> float | None:
    """Mean of the finite values; None if there are none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(finite)) if finite else None


def _time_mean(series: Sequence[float | None] | None, frames: int) -> float | None:
    """Mean over the first `frames` frames; None if any is missing (a blow-up)."""
    if not series:
        return None
    values = series[:frames]
    return None if any(v is None for v in values) else float(np.mean(values))


def summarize_diagnostics(
    task_name: str, trajectories: Sequence[Mapping[str, Any]]
) -> dict[str, float | int | None]:
    """A few numbers from the `RolloutDiagnostics.result` of each evaluated trajectory.

    Means over trajectories (None where no trajectory gives a finite value); time
    means over the frames that have truth, so model and truth cover the same frames.

    cfd: `strouhal_{model,truth}` and `strouhal_trajectories` (how many gave
    both); `mean_abs_divergence_{model,truth}` (time mean of the area-weighted
    mean |∇·u|; a blown-up model rollout gives None for that trajectory);
    `kinetic_energy_ratio_final` (KE_model / KE_truth at the last frame with truth).
    cloth: `strain_error` and `mean_abs_strain_{model,truth}` (time means).

    Raises:
      ValueError: on an unknown task.
    """
    _check_task(task_name, {})
    out: dict[str, float | int | None] = {}
    if task_name == "cloth":
        for key in ("strain_error", "mean_abs_strain_model", "mean_abs_strain_truth"):
            known = [len(t.get("strain_error") or []) for t in trajectories]
            out[key] = _mean([_time_mean(t.get(key), k) for t, k in zip(trajectories, known)])
        return out
    pairs = [(t.get("strouhal_model"), t.get("strouhal_truth")) for t in trajectories]
    out["strouhal_model"] = _mean([m for m, _ in pairs])
    out["strouhal_truth"] = _mean([t for _, t in pairs])
    out["strouhal_trajectories"] = sum(m is not None and t is not None for m, t in pairs)
    for name in ("model", "truth"):
        out[f"mean_abs_divergence_{name}"] = _mean(
            [
                _time_mean(t.get(f"mean_abs_divergence_{name}"), len(t["kinetic_energy_truth"]))
                for t in trajectories
            ]
        )
    ratios = []
    for t in trajectories:
        last = len(t["kinetic_energy_truth"]) - 1
        model, truth = t["kinetic_energy_model"][last], t["kinetic_energy_truth"][last]
        ratios.append(model / truth if model is not None and truth else None)
    out["kinetic_energy_ratio_final"] = _mean(ratios)
    return out
