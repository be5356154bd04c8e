"""Ensemble forecasts (issue 25): members rolled out through one compiled rollout, scored
by CRPS, spread/skill, rank histograms and spectra in `meshsim evaluate`, written with
WeatherBench2's `realization` dim by `meshsim forecast --members` and read back by
`meshsim evaluate --forecast`; an ensemble warm started from a deterministic run."""

import json
import os

import jax
import numpy as np
import pytest

import meshsim
from meshsim.config import OptimizerConfig
from meshsim.evaluation.ensemble import average_ensemble_scores, ensemble_scores
from meshsim.evaluation.forecast import ForecastReader, forecast_dataset, weighted_rmse
from meshsim.evaluation.forecast_table import ForecastTable
from meshsim.evaluation.spectra import grid_spectra, small_scale_ratio
from meshsim.models import MeshGraphNet
from meshsim.models.ensemble import Ensemble, member_keys
from meshsim.rollout_batch import forecast_key, iter_rollout_batch, member_rollout
from meshsim.runs.warm_start import graft_params
from meshsim.tasks import cfd_task
from meshsim.training.step import init_train_state, make_optimizer
from tests.conftest import synthetic_cfd_trajectory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cfd_ensemble(kind):
    task = cfd_task()
    ens = Ensemble(members=3, kind=kind, noise_size=4, initial_std=0.3)
    model = MeshGraphNet(
        output_size=2, latent_size=8, num_message_passing_steps=1, noise_size=ens.network_noise_size
    )
    sim = meshsim.Simulator(model, task, ensemble=ens)
    state = init_train_state(sim, make_optimizer(OptimizerConfig()), jax.random.key(0))
    # the noise maps away from zero, so FGN members differ
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.2 if "noise_" in str(p) else x, state.params
    )
    # an output std of 0.05: the one-step changes are visible (fresh statistics are empty)
    out = meshsim.normalization.fixed_normalizer(np.zeros(2), np.full(2, 0.05))
    return sim, params, state.normalizers.replace(output=out)


@pytest.mark.parametrize("kind", ["fgn", "initial", "fgn+initial"])
def test_ensemble_rollouts_are_the_members_rolled_out_one_by_one(kind):
    sim, params, normalizers = _cfd_ensemble(kind)
    traj = synthetic_cfd_trajectory(steps=10)
    starts = [1, 2, 4]
    rows = [
        np.concatenate(
            list(
                iter_rollout_batch(
                    sim, params, normalizers, traj, starts, steps=3, batch=b, members=3, seed=5
                )
            )
        )
        for b in (2, 3)
    ]
    assert rows[0].shape == (3, 3, 4, traj["velocity"].shape[1], 2)  # [S, M, steps + 1, N, d]
    # batching does not change a member (beyond float32 rounding)
    np.testing.assert_allclose(rows[0], rows[1], rtol=1e-5, atol=1e-6)
    spread = rows[0][:, :, 1:].std(axis=1)
    assert float(spread.max()) > 1e-3  # the members differ
    # member m of start s: its own key, rolled out alone
    task = sim.task
    graph = task.structure(traj)
    budget = meshsim.PaddingBudget.fit(graph)
    from meshsim.graph import pad
    from meshsim.graph.window import pad_window

    s, m = 2, 1
    window = pad_window(task.window(traj, s, graph), budget, task.node_set)
    fields = {k: v for k, v in window.fields.items() if not k.startswith("target|")}
    n = graph.num_nodes(task.node_set)
    frames = task.prescribed_frames(traj, s, 3)
    frames = np.pad(frames, ((0, 0), (0, budget.n_node[task.node_set] - n), (0, 0)))
    key = member_keys(forecast_key(5, s), 3)[m]
    alone = jax.jit(
        lambda f, p: member_rollout(
            sim, params, normalizers, fields=f, structure=pad(graph, budget), prescribed=p, key=key
        )
    )(fields, frames)
    np.testing.assert_allclose(rows[0][1, m, 1:], np.asarray(alone)[:, :n], rtol=1e-5, atol=1e-6)
    # the same starts without members: one deterministic rollout each
    det = np.concatenate(list(iter_rollout_batch(sim, params, normalizers, traj, starts, steps=3)))
    assert det.shape == (3, 4, n, 2)


def test_one_member_crps_is_the_mean_absolute_error_and_forecasts_average_as_wb2_does():
    rng = np.random.default_rng(0)
    lead, nodes, ch = 3, 12, 2
    weights = rng.uniform(0.5, 1.5, nodes)
    weights /= weights.mean()
    channels = ["a", "b"]
    clim = rng.normal(size=(nodes, ch))
    table = ForecastTable(channels, clim, weights)
    truths, preds = [], []
    for _ in range(2):
        truth = rng.normal(size=(lead + 1, nodes, ch))
        pred = truth + rng.normal(scale=0.5, size=truth.shape)
        pred[0] = truth[0]
        table.add(pred, truth)
        truths.append(truth)
        preds.append(pred)
    out = table.result()
    mae = np.mean(
        [
            np.einsum("lnc,n->lc", np.abs(p[1:] - t[1:]), weights) / weights.sum()
            for p, t in zip(preds, truths)
        ],
        axis=0,
    )
    for k, c in enumerate(channels):
        np.testing.assert_allclose(out["ensemble"]["crps"][c], mae[:, k], rtol=1e-6)
        np.testing.assert_allclose(out["ensemble"]["crps_fair"][c], mae[:, k], rtol=1e-6)
        assert out["ensemble"]["spread"][c] == [0.0] * lead
    mse = np.mean([weighted_rmse(p[1:], t[1:], weights) ** 2 for p, t in zip(preds, truths)], 0)
    np.testing.assert_allclose(out["ensemble"]["ensemble_mean_rmse"]["a"], np.sqrt(mse[:, 0]))
    np.testing.assert_allclose(out["rmse"]["model"]["a"], np.sqrt(mse[:, 0]))
    # rank counts are summed: every node of every forecast counted once per lead
    assert [sum(h) for h in out["ensemble"]["rank_histogram"]["b"]] == [2 * nodes] * lead
    assert out["ensemble"]["members"] == 1
    with pytest.raises(ValueError, match="members: expected"):
        table.add(preds[0][None, :2], truths[0])


def test_spread_skill_of_many_forecasts_is_recomputed_from_their_averages():
    rng = np.random.default_rng(1)
    m, lead, nodes = 5, 2, 30
    weights = np.ones(nodes)
    scores = []
    for scale in (0.5, 2.0):
        truth = rng.normal(size=(lead, nodes, 1))
        members = truth[None] + rng.normal(scale=scale, size=(m, lead, nodes, 1))
        scores.append(ensemble_scores(members, truth, None, weights, ["x"]))
    out = average_ensemble_scores(scores)
    spread = np.sqrt(np.mean([np.square(s["spread"]["x"]) for s in scores], 0))
    rmse = np.sqrt(np.mean([np.square(s["ensemble_mean_rmse"]["x"]) for s in scores], 0))
    np.testing.assert_allclose(out["spread_skill"]["x"], np.sqrt((m + 1) / m) * spread / rmse)
    np.testing.assert_allclose(
        out["crps"]["x"], np.mean([s["crps"]["x"] for s in scores], 0), rtol=1e-12
    )
    other = ensemble_scores(
        np.zeros((2, lead, nodes, 1)), np.zeros((lead, nodes, 1)), None, weights, ["x"]
    )
    with pytest.raises(ValueError, match="one member count"):
        average_ensemble_scores([scores[0], other])


def test_a_blurred_forecast_keeps_less_small_scale_power():
    h, w = 17, 32
    lat = np.linspace(-90, 90, h)
    lon = np.deg2rad(np.arange(w) * 360 / w)
    rng = np.random.default_rng(2)
    c = np.cos(np.deg2rad(lat))[:, None]
    # sectoral harmonics of degree 2 and 6 (cos^m φ · cos mλ): one in each half of l ≤ 8
    field = c**2 * np.cos(2 * lon)[None] + 0.5 * c**6 * np.cos(6 * lon + rng.uniform())[None]
    truth = field.reshape(1, h * w, 1)
    smooth = (0.5 * field + 0.25 * (np.roll(field, 1, 1) + np.roll(field, -1, 1))).reshape(
        1, h * w, 1
    )
    p_truth, p_smooth = grid_spectra(truth, lat, w), grid_spectra(smooth, lat, w)
    assert p_truth.shape == (1, 1, 8 + 1)
    np.testing.assert_allclose(small_scale_ratio(p_truth, p_truth), 1.0)
    ratio = float(small_scale_ratio(p_smooth, p_truth)[0, 0])
    # the 1-2-1 filter damps zonal wavenumber 6 by (1 + cos(2π·6/32)) / 2 in amplitude
    assert ratio == pytest.approx(((1 + np.cos(2 * np.pi * 6 / 32)) / 2) ** 2, rel=1e-6)
    with pytest.raises(ValueError, match="fields: expected"):
        grid_spectra(truth[:, :-1], lat, w)


def test_ensemble_forecast_store_round_trips_in_the_sources_layout(tmp_path):
    pytest.importorskip("xarray")
    from meshsim.data.weather_store import StoreLayout

    lat, lon = np.array([-45.0, 0.0, 45.0]), np.array([0.0, 90.0, 180.0, 270.0])
    channels = ["geopotential/500", "geopotential/850", "2m_temperature"]
    rng = np.random.default_rng(3)
    pred = rng.normal(size=(2, 3, 4, 12, 3)).astype(np.float32)  # [I, M, L, H·W, C]
    layout = StoreLayout(
        horizontal=("longitude", "latitude"),
        latitude_descending=True,
        coordinate_dtypes={"latitude": np.float32, "longitude": np.float32, "level": np.int32},
        coordinate_attrs={},
        variable_attrs={"2m_temperature": {"units": "K"}},
    )
    init = np.array(["2020-01-01T00", "2020-01-01T12"], "datetime64[ns]")
    leads = np.arange(1, 5) * np.timedelta64(6, "h")
    ds = forecast_dataset(
        pred,
        init_times=init,
        lead_times=leads,
        channels=channels,
        latitudes=lat,
        longitudes=lon,
        layout=layout,
    )
    assert ds["geopotential"].dims == (
        "time",
        "realization",
        "prediction_timedelta",
        "level",
        "longitude",
        "latitude",
    )
    assert list(ds["realization"].values) == [0, 1, 2]
    assert float(ds["latitude"][0]) == 45.0  # descending, as the source
    path = tmp_path / "f.zarr"
    ds.to_zarr(path, zarr_format=2, consolidated=True)
    reader = ForecastReader(path, channels, lat, lon, batch=1)
    assert reader.members == 3 and list(reader.lead_times) == list(leads.astype("m8[ns]"))
    batches = list(reader)
    assert [len(t) for t, _ in batches] == [1, 1]
    np.testing.assert_array_equal(np.concatenate([f for _, f in batches]), pred)
    with pytest.raises(ValueError, match="no variable 'u_component_of_wind'"):
        ForecastReader(path, ["u_component_of_wind/500"], lat, lon)
    with pytest.raises(ValueError, match="longitude: expected"):
        ForecastReader(path, channels, lat, lon[:3])


def test_graft_takes_every_shared_parameter_and_names_a_mismatch():
    f32 = np.float32
    fresh = {
        "a": {"w": np.zeros((2, 3), f32), "noise_scale": np.ones(4, f32)},
        "b": np.zeros(2, f32),
    }
    source = {"a": {"w": np.full((2, 3), 7.0, f32)}, "b": np.full(2, 3.0, f32)}
    params, new_only = graft_params(fresh, source)
    np.testing.assert_array_equal(params["a"]["w"], source["a"]["w"])
    np.testing.assert_array_equal(params["a"]["noise_scale"], np.ones(4))
    assert new_only == ["a/noise_scale"]
    with pytest.raises(ValueError, match="parameter 'a/w' has shape"):
        graft_params(fresh, {"a": {"w": np.zeros((3, 3))}, "b": np.zeros(2)})
    with pytest.raises(ValueError, match="no place in the new network"):
        graft_params(fresh, {**source, "c": np.zeros(1)})


def test_ensemble_demo_forecasts_written_with_members_and_scored_back(tmp_path, capsys):
    pytest.importorskip("xarray")
    import importlib.util

    import xarray as xr

    from meshsim.cli import main
    from meshsim.runs import open_run
    from meshsim.runs.build import open_split
    from meshsim.runs.warm_start import warm_start

    # `make demo-ensemble` at --quick's sizes: the deterministic preset, then the
    # ensemble fine-tuned from it, both scored, the bars checked, the figures drawn
    spec = importlib.util.spec_from_file_location(
        "ensemble_demo", os.path.join(ROOT, "experiments", "ensemble_demo.py")
    )
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    workdir = tmp_path / "demo"
    os.makedirs(workdir)
    result = demo.compare(str(workdir), quick=True)
    assert result["members"] == 2 and result["forecasts"] >= 1
    assert set(result["bars"]) == {
        "crps_below_deterministic_mae",
        "spread_skill_in_range",
        "more_small_scale_power",
    }
    for row in result["table"]:
        assert row["det_mae"] > 0 and row["ens_crps"] > 0 and row["spread_skill"] >= 0, row
    for name in ("spectra.png", "scores.png", "members.png"):
        assert (workdir / name).stat().st_size > 5000, name
    assert "| lead (h) | channel | det. MAE | ens. CRPS |" in (workdir / "ensemble.md").read_text()
    det, ens = workdir / "deterministic", workdir / "ensemble"
    config = json.loads((ens / "config.json").read_text())
    assert config["train"]["init_from"] == str(det)
    m_det = json.loads((det / "metrics.json").read_text())
    assert m_det["ensemble"]["members"] == 1  # a deterministic run: one member, no spread
    assert max(m_det["ensemble"]["spread"]["geopotential/500"]) == 0.0
    m_ens = json.loads((ens / "metrics.json").read_text())
    assert m_ens["ensemble"]["members"] == 2
    assert min(m_ens["ensemble"]["spread"]["geopotential/500"]) > 0

    # warm started, the FGN ensemble computes the deterministic model's function: each
    # member's forecast is the deterministic one until CRPS training moves the noise maps
    source, target = open_run(str(det)), open_run(str(ens))
    fresh = init_train_state(target.sim, make_optimizer(OptimizerConfig()), jax.random.key(9))
    started = warm_start(fresh, str(det))
    valid = open_split(source.config, "valid")
    traj = valid[0]
    sn, tn = source.state.normalizers, started.normalizers
    steps = len(m_ens["lead_hours"])  # the evaluated shapes: their compiled rollouts again
    want = next(iter_rollout_batch(source.sim, source.state.params, sn, traj, [1], steps=steps))
    got = next(
        iter_rollout_batch(target.sim, started.params, tn, traj, [1], steps=steps, members=2)
    )
    for m in range(2):
        np.testing.assert_allclose(got[:, m], want, rtol=1e-5, atol=1e-4)

    # the evaluated initial times written with members and read back: the same scores
    first = valid.segments[0][0]
    inits = ",".join(
        str(valid.times[first + s])[:13] for s in range(1, 1 + 4 * m_ens["num_forecasts"], 4)
    )
    out = tmp_path / "f.zarr"
    fc = ["forecast", "--init-times", inits, "--steps", str(steps), "--out", str(out)]
    assert main([*fc, "--workdir", str(ens), "--members", "2"]) == 0
    store = xr.open_zarr(out)
    assert store.sizes["realization"] == 2 and store.sizes["time"] == m_ens["num_forecasts"]
    capsys.readouterr()
    assert main(["evaluate", "--workdir", str(ens), "--forecast", str(out)]) == 0
    shown = json.loads(capsys.readouterr().out)  # the terminal: no spectra
    assert "spectra" not in shown and "rank_histogram" not in shown["ensemble"]
    m_store = json.loads((ens / "metrics.json").read_text())
    assert m_store["members"] == 2 and m_store["num_forecasts"] == m_ens["num_forecasts"]
    for name in ("crps", "crps_fair", "spread", "ensemble_mean_rmse"):
        for c in m_ens["variables"]:
            np.testing.assert_allclose(
                m_store["ensemble"][name][c], m_ens["ensemble"][name][c], rtol=1e-5, atol=1e-7
            )
    np.testing.assert_allclose(
        m_store["spectra"]["model"]["geopotential/500"],
        m_ens["spectra"]["model"]["geopotential/500"],
        rtol=1e-4,
    )
    # refusals: members of a deterministic run; --steps with a store
    assert main([*fc[:-1], str(tmp_path / "g.zarr"), "--workdir", str(det), "--members", "2"]) == 1
    assert "is deterministic" in capsys.readouterr().err
    assert not (tmp_path / "g.zarr").exists()
    assert main(["evaluate", "--workdir", str(ens), "--forecast", str(out), "--steps", "2"]) == 1
    assert "drop --num/--steps" in capsys.readouterr().err


def test_probe_line_samples_a_linear_field_exactly_and_skips_holes():
    from meshsim.evaluation.mesh_ensemble import probe_line
    from tests.conftest import grid_cells

    points, cells = grid_cells(9, 5)  # the unit square
    line, length = probe_line(points, cells, samples=16)
    assert length == pytest.approx(1.0)
    values = line(3.0 * points[:, 0] - points[:, 1])
    np.testing.assert_allclose(values, 3.0 * np.linspace(0, 1, 16) - 0.5, atol=1e-12)
    # a hole across the middle line: the longer stretch, right of it
    centre = points[cells].mean(axis=1)  # [C, 2]
    keep = ~((centre[:, 0] > 0.2) & (centre[:, 0] < 0.4))
    line, length = probe_line(points, cells[keep], samples=16)
    assert 0.55 < length <= 0.625 + 1e-9
    assert probe_line(points, cells[:, :2]) is None  # not triangles


def test_mesh_ensembles_are_scored_by_step_with_spectra_along_a_probe_line():
    from meshsim.evaluation import evaluate_trajectories, format_summary
    from meshsim.evaluation.mesh_ensemble import score_mesh_ensemble

    sim, params, normalizers = _cfd_ensemble("fgn")
    state = init_train_state(sim, make_optimizer(OptimizerConfig()), jax.random.key(0))
    state = state.replace(params=params, normalizers=normalizers)
    trajs = [synthetic_cfd_trajectory(nx=9, ny=7, steps=8, seed=i) for i in range(2)]
    out = evaluate_trajectories(sim, state, iter(trajs), steps=None, diagnose=False)
    ens = out["ensemble"]
    assert ens["members"] == 3
    assert len(ens["crps"]["velocity[0]"]) == 7  # every step with truth (8 frames - 1)
    assert min(ens["spread"]["velocity[0]"]) > 0
    assert sum(ens["rank_histogram"]["velocity[1]"][0]) == 2 * 7 * 63  # trajectories·steps·nodes
    assert "ensemble of 3: CRPS" in format_summary(out)  # the terminal's line
    spectra = out["spectra"]
    assert len(spectra["model"]["velocity[0]"]) == 64 // 2 + 1
    assert spectra["small_scale_ratio"]["velocity[0]"] > 0
    # a member rolled out by the streaming path is the batched path's member
    one = score_mesh_ensemble(sim, state, trajs[0], steps=3, seed=0)
    task = sim.task
    batched = next(
        iter_rollout_batch(
            sim, params, normalizers, trajs[0], [task.history], steps=3, members=3, seed=0
        )
    )[0]  # [M, 4, N, d]
    truth = task.state(trajs[0], slice(task.history, task.history + 4))
    want = ensemble_scores(
        batched[:, 1:], truth[1:], None, np.ones(truth.shape[1]), ["velocity[0]", "velocity[1]"]
    )
    np.testing.assert_allclose(
        one["scores"]["crps"]["velocity[0]"], want["crps"]["velocity[0]"], rtol=1e-5
    )
