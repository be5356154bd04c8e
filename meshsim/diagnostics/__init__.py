"""Physical diagnostics of a rollout, model against truth, after the fact.

RMSE says how far a rollout is from the truth; these say whether it is still
physical: the kinetic energy ½∫|u|² dA and mean |∇·u| of an incompressible flow,
the vortex-shedding Strouhal number at a probe behind the obstacle, and the edge
strain of a cloth. All are host-side numpy functions of whole trajectories (not
jit-safe; never needed inside jit). `FlowDiagnostics` and `ClothDiagnostics`
accumulate a rollout's set chunk by chunk and summarize an evaluation
(`rollout.py`); a task names the one that fits it (`Task.diagnostics`), and
`rollout_diagnostics` runs one on whole arrays, JSON-ready.

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
from meshsim.diagnostics.contact import (
    ContactDiagnostics,
    PlateDiagnostics,
    obstacle_faces,
    penetrations,
    surface_faces,
)
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
from meshsim.diagnostics.particles import ParticleDiagnostics, sinkhorn_distance
from meshsim.diagnostics.rollout import (
    ClothDiagnostics,
    FlowDiagnostics,
    RolloutDiagnostics,
    rollout_diagnostics,
)

__all__ = [
    "ClothDiagnostics",
    "ContactDiagnostics",
    "PlateDiagnostics",
    "obstacle_faces",
    "penetrations",
    "surface_faces",
    "FlowDiagnostics",
    "FlowParameters",
    "MissingFlowParameter",
    "ParticleDiagnostics",
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
    "sinkhorn_distance",
    "strain_error",
    "strouhal_number",
]
