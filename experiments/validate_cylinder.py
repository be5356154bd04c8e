"""Validates the cylinder-flow simulator against the DFG benchmark (Schäfer & Turek 1996).

Runs the 2D-1 (Re = 20, steady) and 2D-2 (Re = 100, periodic) cases of "Benchmark
computations of laminar flow around a cylinder" on the 2.2 x 0.41 channel with a
cylinder of diameter 0.1 at (0.2, 0.2) at several lattice resolutions (cells per
diameter), prints ours against the published reference intervals, and writes
``experiments/results/cylinder_validation.{md,json}``.

    python experiments/validate_cylinder.py                      # resolutions 10 20
    python experiments/validate_cylinder.py --resolutions 10 20 30 --lattice-u-max 0.05

Measured cost on a shared 2-core CPU (float32, both cases): ~12 s at resolution 10,
~30 s at 20, ~85 s at 30.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time

import numpy as np

from meshsim.meshes import Ellipse
from meshsim.solvers.cylinder_flow import (
    CylinderFlowConfig,
    lattice_setup,
    simulate_cylinder_flow,
    strouhal_number,
)

# Reference intervals from Schäfer & Turek (1996), Tables 3 and 4 ("lower/upper bound").
REFERENCE = {
    "2D-1": {
        "drag": (5.57, 5.59),
        "lift": (0.0104, 0.0110),
        "recirculation_length": (0.0842, 0.0852),
        "pressure_difference": (0.1172, 0.1176),
    },
    "2D-2": {
        "drag_max": (3.22, 3.24),
        "lift_max": (0.99, 1.01),
        "strouhal": (0.295, 0.305),
        "pressure_difference": (2.46, 2.50),
    },
}
FRONT, BACK = (0.15, 0.2), (0.25, 0.2)  # Δp = p(FRONT) - p(BACK), cylinder front/back


@dataclasses.dataclass(frozen=True, kw_only=True)
class ValidationConfig:
    resolutions: tuple[float, ...] = (10.0, 20.0)  # lattice cells per diameter
    lattice_u_max: float = 0.1  # inflow maximum in lattice units (Mach ~ 0.17)
    dtype: str = "float32"
    steady_time: float = 20.0  # 2D-1: time to steady state (sound waves ring until ~16)
    periodic_spinup: float = 6.0  # 2D-2: time before measuring (periodic from ~5)
    periodic_window: float = 1.0  # 2D-2: measured time (~3 shedding periods)
    force_dt: float = 0.002  # sampling interval of forces (0.6% of a shedding period)
    output: str = "experiments/results/cylinder_validation"


def get_config() -> ValidationConfig:
    return ValidationConfig()


def _dfg(resolution: float, u_mean: float, cfg: ValidationConfig, **kw) -> CylinderFlowConfig:
    return CylinderFlowConfig(
        length=2.2,
        height=0.41,
        obstacles=(Ellipse(center=(0.2, 0.2), radii=(0.05, 0.05)),),
        reynolds=u_mean * 0.1 / 1e-3,  # nu = 0.001
        u_mean=u_mean,
        resolution=resolution,
        lattice_u_max=cfg.lattice_u_max,
        dtype=cfg.dtype,
        frame_dt=cfg.force_dt,
        **kw,
    )


def _line_points() -> np.ndarray:
    x = np.linspace(0.2505, 0.45, 800)  # just behind the cylinder
    return np.stack([x, np.full_like(x, 0.2)], -1)


def run_steady(resolution: float, cfg: ValidationConfig) -> dict:
    """2D-1: U_max = 0.3, Re = 20; values at the end of ``steady_time``."""
    config = _dfg(resolution, 0.2, cfg, spinup_time=cfg.steady_time - 0.5, perturbation=0.0)
    points = np.concatenate([[FRONT, BACK], _line_points()])
    steps = round(0.5 / cfg.force_dt)
    start = time.perf_counter()
    out = simulate_cylinder_flow(
        config, query_points=points, steps=steps, seed=0, return_coefficients=True
    )
    seconds = time.perf_counter() - start
    ux = out["velocity"][-1, 2:, 0]
    x = _line_points()[:, 0]
    # End of the recirculation bubble: first point behind the cylinder with u_x >= 0.
    pos = np.nonzero(ux >= 0)[0]
    la = float("nan")
    if ux[0] < 0 and len(pos):
        k = pos[0]
        la = float(x[k - 1] + (x[k] - x[k - 1]) * -ux[k - 1] / (ux[k] - ux[k - 1]) - 0.25)
    drag, lift = out["drag"][:, 0], out["lift"][:, 0]
    return {
        "drag": float(drag[-1]),
        "lift": float(lift[-1]),
        "recirculation_length": la,
        "pressure_difference": float(out["pressure"][-1, 0, 0] - out["pressure"][-1, 1, 0]),
        "drag_change_last_0.5": float(abs(drag[-1] - drag[0])),
        "seconds": seconds,
    }


def run_periodic(resolution: float, cfg: ValidationConfig) -> dict:
    """2D-2: U_max = 1.5, Re = 100; extrema and period over ``periodic_window``."""
    config = _dfg(resolution, 1.0, cfg, spinup_time=cfg.periodic_spinup)
    steps = round(cfg.periodic_window / cfg.force_dt)
    start = time.perf_counter()
    out = simulate_cylinder_flow(
        config, query_points=np.array([FRONT, BACK]), steps=steps, seed=0, return_coefficients=True
    )
    seconds = time.perf_counter() - start
    t, drag, lift = out["time"], out["drag"][:, 0], out["lift"][:, 0]
    strouhal = strouhal_number(t, lift, reference_length=0.1, u_mean=1.0)
    # DFG: Δp at t0 + 1/(2f), t0 the time of a lift maximum (use the first full period).
    dp = out["pressure"][:, 0, 0] - out["pressure"][:, 1, 0]
    half = 0.5 * 0.1 / strouhal if np.isfinite(strouhal) else 0.0
    first = t < t[0] + 2 * half
    t0 = t[np.argmax(np.where(first, lift, -np.inf))]
    return {
        "drag_max": float(drag.max()),
        "lift_max": float(lift.max()),
        "strouhal": strouhal,
        "pressure_difference": float(np.interp(t0 + half, t, dp)),
        "drag_min": float(drag.min()),
        "lift_min": float(lift.min()),
        "seconds": seconds,
    }


def _row(case: str, name: str, results: dict) -> str:
    lo, hi = REFERENCE[case][name]
    cells = []
    for res in sorted(results):
        value = results[res][case][name]
        err = 100 * (value - 0.5 * (lo + hi)) / (0.5 * (lo + hi))
        mark = "in range" if lo <= value <= hi else f"{err:+.1f}%"
        cells.append(f"{value:.4f} ({mark})")
    return f"| {case} | {name} | {lo} – {hi} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> dict:
    cfg = get_config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=float, nargs="+", default=list(cfg.resolutions))
    parser.add_argument("--lattice-u-max", type=float, default=cfg.lattice_u_max)
    parser.add_argument("--dtype", default=cfg.dtype, choices=["float32", "float64"])
    parser.add_argument("--output", default=cfg.output)
    args = parser.parse_args(argv)
    cfg = dataclasses.replace(
        cfg,
        resolutions=tuple(args.resolutions),
        lattice_u_max=args.lattice_u_max,
        dtype=args.dtype,
        output=args.output,
    )
    results = {}
    for res in cfg.resolutions:
        lat = lattice_setup(_dfg(res, 1.0, cfg))
        results[res] = {
            "grid": [lat.nx, lat.ny],
            "2D-1": run_steady(res, cfg),
            "2D-2": run_periodic(res, cfg),
        }
        print(f"resolution {res:g}: grid {lat.nx}x{lat.ny}: {json.dumps(results[res])}")
    header = "| case | quantity | reference | " + " | ".join(
        f"D = {r:g} cells ({results[r]['grid'][0]}x{results[r]['grid'][1]})"
        for r in sorted(results)
    )
    lines = [
        "# Cylinder flow validation (DFG benchmark, Schäfer & Turek 1996)",
        "",
        f"D2Q9 MRT lattice Boltzmann, Bouzidi bounce-back, {cfg.dtype}, lattice u_max = "
        f"{cfg.lattice_u_max}. 2D-1 values after t = {cfg.steady_time}; 2D-2 extrema over "
        f"t in [{cfg.periodic_spinup}, {cfg.periodic_spinup + cfg.periodic_window}], forces "
        f"every {cfg.force_dt}. Percentages: deviation from the middle of the reference "
        "interval. Runtimes: wall clock of the machine that ran this.",
        "",
        header + " |",
        "|---|---|---|" + "---|" * len(results),
    ]
    for case, names in REFERENCE.items():
        lines += [_row(case, name, results) for name in names]
    seconds = " | ".join(
        f"{results[r]['2D-1']['seconds']:.0f} s + {results[r]['2D-2']['seconds']:.0f} s"
        for r in sorted(results)
    )
    lines += [f"| | runtime (2D-1 + 2D-2) | | {seconds} |", ""]
    table = "\n".join(lines)
    print(table)
    out = pathlib.Path(cfg.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table)
    payload = {
        "config": dataclasses.asdict(cfg),
        "reference": REFERENCE,
        "results": {f"{r:g}": v for r, v in results.items()},
    }
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2))
    return payload


if __name__ == "__main__":
    main()
