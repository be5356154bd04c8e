"""A stretched-grid model against a uniform coarse one, on the same built-in data.

    python experiments/stretched_grid.py --workdir runs/stretched          # ~17 min here
    python experiments/stretched_grid.py --workdir /tmp/st --quick         # a smoke run

Generates the shallow-water data of `weather_stretched.py` (a 15° global store and a
3° cut-out of the same simulations over 20°N–70°N, 30°W–50°E), then trains two
models with the same network and schedule:

* **stretched**: `weather_stretched.py`, data nodes = global points outside the region
  + the fine regional points, mesh refined over the region;
* **uniform**: its `uniform_config`, the same on the global store alone.

Both forecast from the same validation initial times. Scores are area-weighted RMSE
against the truth at the stretched grid's points: inside the region the fine points
(the uniform forecast bilinearly interpolated to them,
`meshsim.evaluation.interpolate`), outside the global points both models hold. The
issue's bars: inside, the stretched model's 24 h RMSE ≥ 15% below the uniform one's;
outside, no worse than +10%. Writes `<workdir>/stretched_grid.json` and `.md` (and
with `--results`, copies them to `experiments/results/`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
STRETCHED = os.path.join(HERE, "weather_stretched.py")
LEADS_H = (24, 72)
INSIDE_GAIN, OUTSIDE_LOSS = 0.15, 0.10  # the bars


def _configs(data: str, quick: bool):
    """{"stretched": the preset with `data` (and --quick's sizes), "uniform": its
    `uniform_config`}."""
    import importlib.util

    from meshsim.config import apply_overrides

    spec = importlib.util.spec_from_file_location("weather_stretched", STRETCHED)
    preset = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(preset)
    overrides = [f"data.path={data}"] + (list(preset.QUICK_OVERRIDES) if quick else [])
    stretched = apply_overrides(preset.get_config(), overrides)
    return {"stretched": stretched, "uniform": preset.uniform_config(stretched)}


def _forecasts(run, dataset, starts_by_traj, steps):
    """{(trajectory, start): [steps + 1, N, C]} forecasts of `run` on `dataset`."""
    from meshsim.rollout_batch import iter_rollout_batch

    out = {}
    for i, starts in starts_by_traj.items():
        rows = iter_rollout_batch(
            run.sim, run.state.params, run.state.normalizers, dataset[i], starts, steps=steps
        )
        for start, pred in zip(starts, (p for batch in rows for p in batch)):
            out[(i, start)] = pred
    return out


def _mse(pred, truth, weights):
    """[L, C] weighted mean squared error over the points."""
    w = weights / weights.sum()
    return np.einsum("lnc,n->lc", (pred - truth) ** 2, w)


def compare(workdir: str, *, quick: bool = False, stride: int = 2) -> dict:
    from meshsim.atomic import write_json, write_text
    from meshsim.evaluation.interpolate import interpolate_to_points
    from meshsim.runs import open_run
    from meshsim.runs.build import open_split
    from meshsim.runs.demo import generate
    from meshsim.runs.train import run_training

    data = os.path.join(workdir, "data")
    configs = _configs(data, quick)
    timing = {}
    began = t0 = time.perf_counter()
    generate(configs["stretched"])
    timing["generate_s"] = round(time.perf_counter() - t0, 1)
    runs = {}
    for name, config in configs.items():
        run_dir = os.path.join(workdir, name)
        t0 = time.perf_counter()
        run_training(config, run_dir)  # resumes a run cut short; nothing to do when done
        timing[f"train_{name}_s"] = round(time.perf_counter() - t0, 1)
        runs[name] = open_run(run_dir)
    split = configs["stretched"].data.valid_split
    stretched = open_split(configs["stretched"], split)
    uniform = open_split(configs["uniform"], split)
    hours = stretched.meta["time_step_hours"]
    steps = min(
        int(max(LEADS_H) / hours),
        min(b - a for a, b in stretched.segments) - 1 - runs["stretched"].sim.task.history,
    )
    history = runs["stretched"].sim.task.history
    starts = {
        i: list(range(history, b - a - steps, stride))
        for i, (a, b) in enumerate(stretched.segments)
    }
    predictions = {
        "stretched": _forecasts(runs["stretched"], stretched, starts, steps),
        "uniform": _forecasts(runs["uniform"], uniform, starts, steps),
    }
    inside = np.asarray(stretched.region_mask)
    keep = stretched.keep
    fine_lat = stretched.point_latitudes[inside]
    fine_lon = stretched.point_longitudes[inside]
    weights = np.asarray(stretched.weights, np.float64)
    sums = {
        (model, part): 0.0
        for model in ("stretched", "uniform", "persistence")
        for part in ("inside", "outside")
    }
    count = 0
    for (i, start), pred in predictions["stretched"].items():
        truth = np.asarray(stretched[i]["state"][start : start + steps + 1], np.float64)[1:]
        coarse = predictions["uniform"][(i, start)][1:].astype(np.float64)  # [L, H·W, C]
        uniform_pred = np.concatenate(
            [
                coarse[:, keep],
                interpolate_to_points(
                    coarse, uniform.latitudes, uniform.longitudes, fine_lat, fine_lon
                ),
            ],
            axis=1,
        )
        persistence = np.broadcast_to(pred[:1].astype(np.float64), truth.shape)
        for model, p in (
            ("stretched", pred[1:].astype(np.float64)),
            ("uniform", uniform_pred),
            ("persistence", persistence),
        ):
            for part, where in (("inside", inside), ("outside", ~inside)):
                sums[(model, part)] = sums[(model, part)] + _mse(
                    p[:, where], truth[:, where], weights[where]
                )
        count += 1
    channels = list(stretched.meta["channels"])
    table = []
    for lead in LEADS_H:
        k = int(lead / hours) - 1
        if k >= steps:
            continue
        for c, channel in enumerate(channels):
            row = {"channel": channel, "lead_h": lead}
            for part in ("inside", "outside"):
                for model in ("stretched", "uniform", "persistence"):
                    row[f"{part}_{model}"] = float(np.sqrt(sums[(model, part)][k, c] / count))
                row[f"{part}_ratio"] = row[f"{part}_stretched"] / row[f"{part}_uniform"]
            table.append(row)
    at24 = [r for r in table if r["lead_h"] == 24]
    result = {
        "quick": quick,
        "forecasts": count,
        "points": {"total": int(weights.size), "regional": int(inside.sum())},
        "region": list(stretched.box),
        "table": table,
        "passes_inside": bool(at24) and all(r["inside_ratio"] <= 1 - INSIDE_GAIN for r in at24),
        "passes_outside": bool(at24) and all(r["outside_ratio"] <= 1 + OUTSIDE_LOSS for r in at24),
        "timing": {**timing, "total_s": round(time.perf_counter() - began, 1)},
    }
    write_json(os.path.join(workdir, "stretched_grid.json"), result)
    write_text(os.path.join(workdir, "stretched_grid.md"), markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = [
        "# Stretched grid against a uniform coarse model (built-in shallow water)",
        "",
        f"{result['forecasts']} validation forecasts; {result['points']['total']} points, "
        f"{result['points']['regional']} of them regional; region {result['region']}; "
        f"timing {result['timing']}. Area-weighted RMSE at the stretched grid's points "
        "(the uniform forecast bilinearly interpolated to the regional points).",
        "",
        "| channel | lead (h) | inside: stretched | uniform | ratio | persistence "
        "| outside: stretched | uniform | ratio | persistence |",
        "|" + "---|" * 10,
    ]
    for r in result["table"]:
        lines.append(
            f"| {r['channel']} | {r['lead_h']} | {r['inside_stretched']:.4g} "
            f"| {r['inside_uniform']:.4g} | {r['inside_ratio']:.3f} "
            f"| {r['inside_persistence']:.4g} | {r['outside_stretched']:.4g} "
            f"| {r['outside_uniform']:.4g} | {r['outside_ratio']:.3f} "
            f"| {r['outside_persistence']:.4g} |"
        )
    lines += [
        "",
        f"Inside ≥ {INSIDE_GAIN:.0%} below the uniform model at 24 h for every channel: "
        f"**{'yes' if result['passes_inside'] else 'no'}**; outside within "
        f"+{OUTSIDE_LOSS:.0%}: **{'yes' if result['passes_outside'] else 'no'}**.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/stretched")
    parser.add_argument("--quick", action="store_true", help="tiny data, network and schedule")
    parser.add_argument("--results", action="store_true", help="copy to experiments/results/")
    args = parser.parse_args()
    result = compare(args.workdir, quick=args.quick)
    print(markdown(result))
    if args.results:
        for ext in ("json", "md"):
            shutil.copy(
                os.path.join(args.workdir, f"stretched_grid.{ext}"),
                os.path.join(HERE, "results", f"stretched_grid.{ext}"),
            )


if __name__ == "__main__":
    main()
