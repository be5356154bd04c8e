"""The weather commands end to end at tiny sizes: generate, the weather demo (train,
forecast scores, report), evaluate and forecast on its run, and their errors."""

import json
import os

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
pytest.importorskip("dinosaur")

from meshsim.cli import main  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wx") / "demo"
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code = main(
            [
                "demo",
                "--config",
                "experiments/weather_shallow_water.py",
                "--workdir",
                str(workdir),
                "--quick",
            ]
        )
    finally:
        os.chdir(cwd)
    return workdir, code


def test_demo_writes_the_metrics_format_and_report(demo):
    workdir, code = demo
    assert code in (0, 1)  # the quick run is too short to be held to the persistence gate
    with open(workdir / "metrics.json") as f:
        m = json.load(f)
    assert m["lead_hours"][:4] == [6.0, 12.0, 18.0, 24.0]
    assert m["variables"] == [
        "geopotential/500",
        "u_component_of_wind/500",
        "v_component_of_wind/500",
    ]
    for kind in ("model", "persistence", "climatology"):
        for v in m["variables"]:
            values = m["rmse"][kind][v]
            assert len(values) == len(m["lead_hours"]) and all(np.isfinite(values))
    assert set(m["acc"]) == {"model", "persistence"}
    # Persistence error grows with lead time on this flow.
    assert (
        m["rmse"]["persistence"]["geopotential/500"][-1]
        > m["rmse"]["persistence"]["geopotential/500"][0]
    )
    report = (workdir / "report.md").read_text()
    assert "| geopotential/500 | 24 |" in report and "forecast.gif" in report
    for name in ("forecast.gif", "maps.png", "rmse.png"):
        assert (workdir / name).stat().st_size > 1000


def test_forecast_writes_wb2_zarr_and_evaluate_scores(demo, capsys):
    workdir, _ = demo
    run = workdir / "run"
    valid = xr.open_zarr(workdir / "data" / "valid.zarr")
    init = str(valid["time"].values[2])[:19]
    out = workdir / "forecast.zarr"
    assert (
        main(
            [
                "forecast",
                "--workdir",
                str(run),
                "--init-time",
                init,
                "--steps",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    ds = xr.open_zarr(out)
    assert ds["geopotential"].dims == (
        "time",
        "prediction_timedelta",
        "level",
        "latitude",
        "longitude",
    )
    assert ds.sizes["prediction_timedelta"] == 3
    assert np.all(np.isfinite(ds["geopotential"].values))
    # The same store again: refused, one line, nothing changed.
    assert (
        main(
            [
                "forecast",
                "--workdir",
                str(run),
                "--init-time",
                init,
                "--steps",
                "3",
                "--out",
                str(out),
            ]
        )
        == 1
    )
    assert "exists" in capsys.readouterr().err
    assert (
        main(
            [
                "forecast",
                "--workdir",
                str(run),
                "--init-time",
                "1999-01-01T00",
                "--steps",
                "3",
                "--out",
                str(workdir / "x.zarr"),
            ]
        )
        == 1
    )
    assert "is not a time of split" in capsys.readouterr().err
    assert not (workdir / "x.zarr").exists()
    assert main(["evaluate", "--workdir", str(run), "--steps", "4"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["lead_hours"] == [6.0, 12.0, 18.0, 24.0]


def test_generate_shallow_water_cli(tmp_path, capsys):
    out = tmp_path / "sw"
    assert (
        main(
            [
                "generate",
                "shallow_water",
                "--out",
                str(out),
                "--trajectories",
                "1",
                "--steps",
                "5",
                "--mesh-resolution",
                "0.5",
            ]
        )
        == 0
    )
    ds = xr.open_zarr(out / "train.zarr")
    assert ds.sizes["time"] == 5 and ds.sizes["latitude"] == 17
    assert (
        main(
            [
                "generate",
                "shallow_water",
                "--out",
                str(out),
                "--trajectories",
                "1",
                "--steps",
                "5",
                "--mesh-resolution",
                "0.5",
            ]
        )
        == 1
    )  # no silent overwrite
    assert "exists" in capsys.readouterr().err


def test_forecast_on_a_full_disk_and_killed_then_retried(demo, capsys, monkeypatch, tmp_path):
    """ENOSPC in the zarr writer is one line and leaves nothing; a forecast killed (kill
    -9) while writing is retried with the same result (tests/test_fault_injection.py
    has the other commands)."""
    import errno
    import subprocess
    import sys

    from tests.test_fault_injection import KILL_AT, _env

    workdir, _ = demo
    valid = xr.open_zarr(workdir / "data" / "valid.zarr")
    init = str(valid["time"].values[2])[:19]
    argv = ["forecast", "--workdir", str(workdir / "run"), "--init-time", init, "--steps", "2"]
    reference = tmp_path / "ref.zarr"
    assert main([*argv, "--out", str(reference)]) == 0

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "full.zarr"))

    monkeypatch.setattr(xr.Dataset, "to_zarr", full)
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "full.zarr")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "full.zarr: no space left on device" in err[0], err
    assert sorted(os.listdir(tmp_path)) == ["ref.zarr"]
    monkeypatch.undo()

    out = subprocess.run(
        [sys.executable, "-c", KILL_AT, "xarray:Dataset.to_zarr", "1", *argv]
        + ["--out", str(tmp_path / "f.zarr")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == -9, out.stderr[-2000:]
    assert not (tmp_path / "f.zarr").exists()
    assert main([*argv, "--out", str(tmp_path / "f.zarr")]) == 0
    assert sorted(os.listdir(tmp_path)) == ["f.zarr", "ref.zarr"]  # the orphan went
    a, b = xr.open_zarr(reference), xr.open_zarr(tmp_path / "f.zarr")
    assert a.identical(b) or all(np.array_equal(a[v].values, b[v].values) for v in a.data_vars)
