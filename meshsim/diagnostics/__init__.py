"""Physical diagnostics of a rollout, model against truth, after the fact.

RMSE says how far a rollout is from the truth; these say whether it is still
physical: the kinetic energy ½∫|u|² dA and mean |∇·u| of an incompressible flow,
the vortex-shedding Strouhal number at a probe behind the obstacle, and the edge
strain of a cloth. All are host-side numpy functions of whole trajectories (not
jit-safe; never needed inside jit). `rollout_diagnostics` runs the set that
belongs to a task and returns JSON-ready values.

Arrays: trajectories are `[T, N, F]` (any real dtype; the maths is float64);
`mesh_pos` is `[N, 2]` float, `cells` `[C, 3]` int (either orientation, none
degenerate), `node_type` `[N]` int (MeshGraphNets enum). Static fields may also
come in the trajectory layout with a leading axis of 1 (`[1, N, 2]`, `[1, C, 3]`,
`[1, N, 1]`). Non-finite values in a trajectory are not errors — a blown-up model
must be diagnosed, not rejected: they give NaN/inf results, which
`rollout_diagnostics` reports as None. The mesh itself must be finite.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from meshsim.diagnostics._checks import MissingFlowParameter, _mesh
from meshsim.diagnostics.cloth import edge_strain, mean_abs_strain, strain_error
from meshsim.diagnostics.flow import (
    FlowParameters,
    Probe,
    default_probe,
    divergence,
    flow_parameters,
    inflow_mean_speed,
    kinetic_energy,
    mean_abs_divergence,
    nodal_areas,
    shedding_frequency,
    strouhal_number,
)

logger = logging.getLogger(__name__)

logger = logging.getLogger(__name__)

__all__ = [
    "DIAGNOSED_TASKS",
    "FlowParameters",
    "MissingFlowParameter",
    "Probe",
    "default_probe",
    "divergence",
    "edge_strain",
    "flow_parameters",
    "inflow_mean_speed",
    "kinetic_energy",
    "mean_abs_divergence",
    "mean_abs_strain",
    "nodal_areas",
    "rollout_diagnostics",
    "shedding_frequency",
    "strain_error",
    "strouhal_number",
]

# Cells with |area| <= this fraction of the squared bounding-box diagonal are

# ----------------------------------------------------------------------------- one entry point


def _json(x: Any) -> Any:
    """Plain floats (lists of them for arrays); None for non-finite values."""
    if x is None:
        return None
    if np.ndim(x):
        return [_json(v) for v in np.asarray(x, dtype=np.float64).ravel()]
    return float(x) if math.isfinite(float(x)) else None


def _cfd_diagnostics(pred, truth, static, meta, options) -> dict[str, Any]:
    pos, cells = static["mesh_pos"], static["cells"]
    out: dict[str, Any] = {}
    for name, u in (("model", pred), ("truth", truth)):
        out[f"kinetic_energy_{name}"] = kinetic_energy(u, pos, cells)
        out[f"mean_abs_divergence_{name}"] = mean_abs_divergence(u, pos, cells)
    skip = options.pop("skip", 0)
    try:
        params = flow_parameters({**static, "velocity": truth}, meta, **options)
    except MissingFlowParameter as e:  # e.g. a channel without an obstacle: no shedding
        logger.warning("no Strouhal number: %s", e)
        params = None
    for name, u in (("model", pred), ("truth", truth)):
        f = None
        if params is not None:
            f = shedding_frequency(u, pos, probe=params.probe, dt=params.dt, skip=skip)
        out[f"shedding_frequency_{name}"] = f
        out[f"strouhal_{name}"] = f * params.diameter / params.velocity_scale if params else None
    out["probe_x"], out["probe_y"] = _mesh(pos)[0][params.probe] if params else (None, None)
    for key in ("dt", "diameter", "velocity_scale"):
        out[key] = getattr(params, key) if params else None
    return out


def _cloth_diagnostics(pred, truth, static, meta, options) -> dict[str, Any]:
    pos, cells = static["mesh_pos"], static["cells"]
    return {
        "strain_error": strain_error(pred, truth, pos, cells),
        "mean_abs_strain_model": mean_abs_strain(pred, pos, cells),
        "mean_abs_strain_truth": mean_abs_strain(truth, pos, cells),
    }


# task name -> (state field, diagnostics, the options it accepts)
_TASKS: dict[str, tuple[str, Callable[..., dict[str, Any]], tuple[str, ...]]] = {
    "cfd": ("velocity", _cfd_diagnostics, ("dt", "diameter", "velocity_scale", "probe", "skip")),
    "cloth": ("world_pos", _cloth_diagnostics, ()),
}
DIAGNOSED_TASKS = tuple(_TASKS)  # the task names `rollout_diagnostics` knows


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

    cfd: per-frame lists `kinetic_energy_{model,truth}` (all nodes) and
    `mean_abs_divergence_{model,truth}`; `shedding_frequency_{model,truth}`,
    `strouhal_{model,truth}` and the `dt`, `diameter`, `velocity_scale`, `probe_x`,
    `probe_y` used (measured on the truth by `flow_parameters` unless given; None,
    logged, without an obstacle, inlet or dt). cloth: per-frame lists
    `strain_error` and `mean_abs_strain_{model,truth}`. Values are plain floats,
    None where not finite, so `json.dumps(..., allow_nan=False)` accepts them.

    Args:
      task_name: "cfd" or "cloth" (a `MeshTask.name`).
      pred, truth: `[T, N, F]` float states (velocity / world_pos) of equal shape, or
        trajectory dicts holding them.
      static: `mesh_pos [1, N, 2]` float, `cells [1, C, 3]` int and, for cfd,
        `node_type [1, N, 1]` int (leading axes optional); None: from `truth`.
      meta: the dataset's meta.json dict (cfd reads `dt`), or None.
      **options: cfd only: `dt`, `diameter`, `velocity_scale`, `probe` (see
        `strouhal_number`), `skip` (frames left out of the frequency).
    """
    if task_name not in _TASKS:
        raise ValueError(f"task_name: expected one of {sorted(_TASKS)}, got {task_name!r}")
    field, diagnose, valid = _TASKS[task_name]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"options: {task_name!r} accepts {list(valid)}, got unknown {unknown}")
    if static is None:
        if not isinstance(truth, Mapping):
            raise ValueError("static: expected the mesh fields when truth is an array, got None")
        static = truth
    missing = sorted({"mesh_pos", "cells"} - set(static))
    if missing:
        raise ValueError(f"static: expected fields mesh_pos and cells, missing {missing}")
    for name, x in (("pred", pred), ("truth", truth)):
        if isinstance(x, Mapping) and field not in x:
            raise ValueError(f"{name}: expected a {field!r} field, got {sorted(x)}")
    states = [np.asarray(x[field] if isinstance(x, Mapping) else x) for x in (pred, truth)]
    if states[0].shape != states[1].shape:
        raise ValueError(
            f"pred, truth: expected equal shapes, got {states[0].shape}, {states[1].shape}"
        )
    result = diagnose(*states, static, meta, dict(options))
    return {key: _json(value) for key, value in result.items()}
