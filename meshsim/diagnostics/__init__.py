"""Physical diagnostics of a rollout, model against truth, after the fact.

RMSE says how far a rollout is from the truth; these say whether it is still
physical: the kinetic energy ½∫|u|² dA and mean |∇·u| of an incompressible flow,
the vortex-shedding Strouhal number at a probe behind the obstacle, and the edge
strain of a cloth. All are host-side numpy functions of whole trajectories (not
jit-safe; never needed inside jit). `rollout_diagnostics` runs the set that
belongs to a task and returns JSON-ready values; `RolloutDiagnostics` does the
same on a rollout that arrives chunk by chunk, and `summarize_diagnostics`
reduces an evaluation's trajectories to a few numbers (`rollout.py`).

Arrays: trajectories are `[T, N, F]` (any real dtype; the maths is float64);
`mesh_pos` is `[N, 2]` float, `cells` `[C, 3]` int (either orientation, none
degenerate), `node_type` `[N]` int (MeshGraphNets enum). Static fields may also
come in the trajectory layout with a leading axis of 1 (`[1, N, 2]`, `[1, C, 3]`,
`[1, N, 1]`). Non-finite values in a trajectory are not errors — a blown-up model
must be diagnosed, not rejected: they give NaN/inf results, which
`rollout_diagnostics` reports as None. The mesh itself must be finite.
"""

from __future__ import annotations

from meshsim.diagnostics._checks import MissingFlowParameter
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
from meshsim.diagnostics.rollout import (
    DIAGNOSED_TASKS,
    RolloutDiagnostics,
    rollout_diagnostics,
    summarize_diagnostics,
)

__all__ = [
    "DIAGNOSED_TASKS",
    "FlowParameters",
    "MissingFlowParameter",
    "Probe",
    "RolloutDiagnostics",
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
    "summarize_diagnostics",
]
