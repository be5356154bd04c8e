"""Every figure, animation and export of meshsim (matplotlib, imported lazily).

`mesh`: fields on triangle meshes, prediction|truth|error comparisons and
animations, cloth, training curves; `rollout`: RMSE and kinetic energy against the
step; `weather`: maps (anomalies against a climatology where it dominates, `anomaly`),
forecast animations, score curves, the multimesh on the globe (`globe`);
`point_maps`: maps of fields on arbitrary points (stretched grids), zoomable;
`ensemble`: spectra, CRPS and spread/skill by lead time, maps of members; `graph`:
graph partitions; `paraview`: XDMF/VTU files of rollouts for ParaView.
"""

from meshsim.plotting.ensemble import plot_ensemble_scores, plot_member_maps, plot_spectra
from meshsim.plotting.graph import plot_partition
from meshsim.plotting.mesh import (
    animate_cloth,
    animate_rollout,
    plot_cloth,
    plot_comparison,
    plot_field,
    plot_loss_curve,
)
from meshsim.plotting.paraview import export_vtk_frames, export_xdmf
from meshsim.plotting.particles import animate_particles, plot_particles
from meshsim.plotting.point_maps import plot_point_maps
from meshsim.plotting.rollout import plot_kinetic_energy, plot_rollout_rmse
from meshsim.plotting.weather import (
    animate_forecast,
    plot_forecast_maps,
    plot_multimesh,
    plot_score_curves,
)

__all__ = [
    "plot_ensemble_scores",
    "plot_member_maps",
    "plot_spectra",
    "animate_particles",
    "plot_particles",
    "animate_cloth",
    "animate_forecast",
    "animate_rollout",
    "export_vtk_frames",
    "export_xdmf",
    "plot_cloth",
    "plot_comparison",
    "plot_field",
    "plot_forecast_maps",
    "plot_kinetic_energy",
    "plot_loss_curve",
    "plot_multimesh",
    "plot_partition",
    "plot_point_maps",
    "plot_rollout_rmse",
    "plot_score_curves",
]
