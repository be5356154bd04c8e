"""Ensemble rollouts on meshes scored: CRPS, spread/skill and rank histograms by step, and
the wavenumber spectrum along a probe line.

An ensemble run on a mesh task (`model.ensemble.*`) rolls M members out from each
held-out trajectory's first frame: member m of the trajectory draws from
`member_keys(forecast_key(seed, start), M)[m]`, as weather forecasts do
(`meshsim.rollout`). The members stream in lockstep, chunk by chunk
(`iter_rollout(member=...)`), so host memory holds one chunk of every member. Each
step is scored over all nodes and the state's components, as the rollout RMSE is
(`meshsim.evaluation.ensemble.ensemble_scores` with equal node weights).

Meshes have no global harmonic basis: their spectrum is taken along a probe line
(`probe_line`), the horizontal line through the middle of the mesh's bounding box,
its longest stretch inside the mesh (for the cylinder channel, the wake behind the
cylinder or the flow beside it), sampled at `PROBE_SAMPLES` equally spaced points
by linear interpolation on the mesh's triangles, at the last frame with ground
truth (`meshsim.evaluation.spectra.line_spectrum`; wavenumbers counted in cycles per
line, comparable between meshes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from meshsim.evaluation.ensemble import average_ensemble_scores, ensemble_scores
from meshsim.evaluation.spectra import line_spectrum, small_scale_ratio
from meshsim.models.ensemble import member_keys
from meshsim.rollout import iter_rollout
from meshsim.rollout_batch import forecast_key
from meshsim.simulator import Simulator

PROBE_SAMPLES = 64


def probe_line(mesh_pos, cells, samples: int = PROBE_SAMPLES):
    """(interpolate, length) of a 2-D triangle mesh's probe line (see the module doc), or
    None where there is none (no triangles, not 2-D, or no stretch of two samples).

    `interpolate(values [N]) -> [K]` samples a nodal field along the line; `length` is
    the stretch's length in mesh units.
    """
    mesh_pos = np.asarray(mesh_pos, np.float64)
    cells = np.asarray(cells)
    if mesh_pos.ndim != 2 or mesh_pos.shape[1] != 2 or cells.ndim != 2 or cells.shape[1] != 3:
        return None
    from matplotlib.tri import LinearTriInterpolator, Triangulation

    tri = Triangulation(mesh_pos[:, 0], mesh_pos[:, 1], cells)
    lo, hi = mesh_pos.min(0), mesh_pos.max(0)
    x = np.linspace(lo[0], hi[0], 8 * samples)
    y = np.full_like(x, 0.5 * (lo[1] + hi[1]))
    inside = tri.get_trifinder()(x, y) >= 0
    # the longest run of consecutive samples inside the mesh
    best, start = (0, 0), None
    for i, flag in enumerate([*inside, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            best = max(best, (i - start, start))
            start = None
    count, first = best
    if count < 2:
        return None
    xs = np.linspace(x[first], x[first + count - 1], samples)
    ys = np.full_like(xs, y[0])

    def interpolate(values) -> np.ndarray:
        field = LinearTriInterpolator(tri, np.asarray(values, np.float64))(xs, ys)
        return np.ma.filled(field, np.nan)

    return interpolate, float(xs[-1] - xs[0])


def _line_power(line, frames) -> np.ndarray:
    """[..., C, K // 2 + 1] line power of frames [..., N, C] (NaN samples at the edges of
    the stretch dropped)."""
    interpolate, length = line
    lead = frames.shape[:-2]
    out = []
    for frame in frames.reshape(-1, *frames.shape[-2:]):
        per_channel = []
        for c in range(frame.shape[-1]):
            values = interpolate(frame[:, c])
            values = np.where(np.isfinite(values), values, np.nanmean(values))
            per_channel.append(line_spectrum(values, length / (len(values) - 1))[1])
        out.append(per_channel)
    return np.asarray(out).reshape(*lead, frames.shape[-1], -1)


def score_mesh_ensemble(
    sim: Simulator, state, trajectory: Mapping, *, steps: int | None, seed: int = 0, budget=None
) -> dict:
    """One trajectory's M member rollouts scored (see the module doc).

    Returns:
      {"scores": `ensemble_scores` over the known steps (per-step lists), "spectra":
      {"model": [C, K // 2 + 1] the members' mean power, "truth": [C, K // 2 + 1]} at the
      last known frame, or None without a probe line}.
    """
    task = sim.task
    members = sim.members
    truth = np.asarray(task.state(trajectory, slice(task.history, None)))  # [K, N, d]
    steps = truth.shape[0] - 1 if steps is None else steps
    keys = member_keys(forecast_key(seed, task.history), members)
    streams = [
        iter_rollout(
            sim, state.params, state.normalizers, trajectory, steps=steps, budget=budget, member=k
        )
        for k in keys
    ]
    channels = [f"{task.state_field}[{i}]" for i in range(truth.shape[-1])]
    weights = np.ones(truth.shape[1])
    chunks, t, last = [], 0, None
    known_steps = min(steps, truth.shape[0] - 1)
    for frames in zip(*streams):  # one chunk of every member, in lockstep
        ensemble = np.stack(frames)  # [M, n, N, d]
        n = ensemble.shape[1]
        lo, hi = max(t, 1), min(t + n, known_steps + 1)  # steps 1..known with truth
        if hi > lo:
            part = ensemble[:, lo - t : hi - t]
            chunks.append(ensemble_scores(part, truth[lo:hi], None, weights, channels))
            if hi == known_steps + 1:
                last = part[:, -1]  # [M, N, d] at the last known frame
        t += n
    scores = _concatenate(chunks)
    line = None
    if last is not None and "mesh_pos" in trajectory and "cells" in trajectory:
        line = probe_line(_static(trajectory["mesh_pos"]), _static(trajectory["cells"]))
    spectra = None
    if line is not None:
        spectra = {
            "model": _line_power(line, last).mean(0),
            "truth": _line_power(line, truth[known_steps][None])[0],
        }
    return {"scores": scores, "spectra": spectra}


def _static(array) -> np.ndarray:
    """The first frame of a per-frame field, or the field itself."""
    array = np.asarray(array)
    return array[0] if array.ndim == 3 else array


def _concatenate(chunks: Sequence[dict]) -> dict:
    """Per-step `ensemble_scores` of consecutive chunks joined along the steps; rank
    counts summed over every step."""
    out: dict = {"members": chunks[0]["members"]}
    for name, table in chunks[0].items():
        if name in ("members", "rank_histogram"):
            continue
        out[name] = {ch: [v for c in chunks for v in c[name][ch]] for ch in table}
    out["rank_histogram"] = {
        ch: [np.sum([np.sum(c["rank_histogram"][ch], axis=0) for c in chunks], axis=0).tolist()]
        for ch in chunks[0]["rank_histogram"]
    }
    return out


def summarize_mesh_ensembles(results: Sequence[dict]) -> dict:
    """The trajectories' `score_mesh_ensemble` results averaged (as forecasts are:
    CRPS means, RMSE and spread as root mean squares, spread/skill recomputed, rank
    counts summed; trajectories of different lengths: their common steps), with the
    spectra's mean and small-scale share."""
    shortest = min(len(next(iter(r["scores"]["crps"].values()))) for r in results)

    def cut(scores):
        return {
            name: (
                table
                if name in ("members", "rank_histogram")
                else {ch: v[:shortest] for ch, v in table.items()}
            )
            for name, table in scores.items()
        }

    out = {"ensemble": average_ensemble_scores([cut(r["scores"]) for r in results])}
    spectra = [r["spectra"] for r in results if r["spectra"] is not None]
    if spectra:
        model = np.mean([s["model"] for s in spectra], axis=0)  # [C, K // 2 + 1]
        truth = np.mean([s["truth"] for s in spectra], axis=0)
        channels = list(results[0]["scores"]["crps"])
        out["spectra"] = {
            "cycles_per_line": list(range(model.shape[-1])),
            "model": {ch: model[c].tolist() for c, ch in enumerate(channels)},
            "truth": {ch: truth[c].tolist() for c, ch in enumerate(channels)},
            "small_scale_ratio": {
                ch: float(small_scale_ratio(model[c], truth[c])) for c, ch in enumerate(channels)
            },
        }
    return out
