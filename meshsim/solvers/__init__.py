"""Reference numerical simulators that generate training data."""

from meshsim.solvers.cloth import (
    ClothParams,
    ClothSystem,
    build_cloth_system,
    cloth_trajectory,
    max_angular_frequency,
    sample_cloth_params,
    simulate_cloth,
    spring_energy,
    stable_substeps,
    total_energy,
)

__all__ = [
    "ClothParams",
    "ClothSystem",
    "build_cloth_system",
    "cloth_trajectory",
    "max_angular_frequency",
    "sample_cloth_params",
    "simulate_cloth",
    "spring_energy",
    "stable_substeps",
    "total_energy",
]

# cylinder flow exports below
from meshsim.solvers.cylinder_dataset import (  # noqa: E402
    cylinder_flow_trajectory,
    meta_for_cylinder_flow,
    random_cylinder_config,
)
from meshsim.solvers.cylinder_flow import (  # noqa: E402
    CylinderFlowConfig,
    Lattice,
    force_coefficients,
    lattice_setup,
    simulate_cylinder_flow,
    strouhal_number,
)

__all__ += [
    "CylinderFlowConfig",
    "Lattice",
    "cylinder_flow_trajectory",
    "force_coefficients",
    "lattice_setup",
    "meta_for_cylinder_flow",
    "random_cylinder_config",
    "simulate_cylinder_flow",
    "strouhal_number",
]
