"""The research notebooks (notebooks/*.ipynb) run end to end, and are committed clean.

Each notebook is executed with nbclient in the venv's own `python3` kernel (ipykernel
installed in the venv; jupyter_client launches kernelspec argv "python" as this
interpreter) at its tiny size (`MESHSIM_NOTEBOOK_SIZE=tiny`), in a temporary work
directory. Its last cell writes a JSON summary of what it computed to
`MESHSIM_NOTEBOOK_SUMMARY`; the checks below read it. The weather notebook needs the
`weather` extra and is skipped without it.
"""

import json
import math
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds per cell; a tiny notebook takes well under a minute in all
SIZE_VARIABLE = "MESHSIM_NOTEBOOK_SIZE"


def execute(name: str, tmp_path: Path, monkeypatch) -> dict:
    """Runs notebooks/`name` at the tiny size; returns its summary (plus "seconds")."""
    summary = tmp_path / "summary.json"
    monkeypatch.setenv(SIZE_VARIABLE, "tiny")
    monkeypatch.setenv("MESHSIM_NOTEBOOK_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("MESHSIM_NOTEBOOK_SUMMARY", str(summary))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    (tmp_path / "work").mkdir()
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},  # the kernel's cwd, as in Jupyter
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    print(f"{name}: {seconds:.1f} s")
    result = json.loads(summary.read_text())
    assert result["python"] == sys.executable, "the notebook ran in another interpreter"
    return {**result, "seconds": seconds}


def finite(*values) -> bool:
    return all(math.isfinite(float(v)) for v in values)


def finite_scores(rmse: dict) -> bool:
    """Every value of a {name: {horizon: float}} or {kind: {channel: [floats]}} dict."""
    out = []
    for per in rmse.values():
        for v in per.values():
            out.extend(v if isinstance(v, list) else [v])
    return bool(out) and finite(*out)


def test_the_notebooks_are_the_expected_ones():
    assert ALL == [
        "01_quickstart.ipynb",
        "02_custom_task.ipynb",
        "03_weather.ipynb",
        "04_scaling.ipynb",
        "05_mgn_datasets.ipynb",
        "06_particles.ipynb",
    ]


def test_quickstart(tmp_path, monkeypatch):
    s = execute("01_quickstart.ipynb", tmp_path, monkeypatch)
    assert s["rollout_shape"][0] == 20 and s["rollout_shape"][2] == 2  # 20 frames of (u, v)
    assert set(s["rmse_model"]) == {"1", "10", "all"} == set(s["rmse_persistence"])
    assert finite_scores({"m": s["rmse_model"], "p": s["rmse_persistence"]})
    assert finite(s["kinetic_energy_rel_error_last"])
    assert s["last_loss"] < s["first_loss"]  # 30 steps already learn something


def test_custom_task(tmp_path, monkeypatch):
    s = execute("02_custom_task.ipynb", tmp_path, monkeypatch)
    assert set(s["rmse"]) == {"MeshGraphNet", "edge attention", "persistence"}
    assert finite_scores(s["rmse"])
    assert finite(*s["final_loss"].values())
    assert s["attention_params"] > 0


def test_weather(tmp_path, monkeypatch):
    for module in ("xarray", "zarr", "dinosaur"):  # the `weather` extra
        pytest.importorskip(module)
    s = execute("03_weather.ipynb", tmp_path, monkeypatch)
    assert s["lead_hours"] == [6.0, 12.0, 18.0, 24.0]
    assert set(s["rmse"]) == {"model", "persistence", "climatology"}
    assert all(len(v) == 4 for per in s["rmse"].values() for v in per.values())
    assert finite_scores(s["rmse"]) and s["num_forecasts"] >= 1
    assert set(s["nodes"]) == {"grid", "mesh"} and s["nodes"]["mesh"] == 42  # 1 split
    assert set(s["edges"]) == {"grid2mesh", "mesh", "mesh2grid"}
    assert s["edges"]["mesh2grid"] == 3 * s["nodes"]["grid"]  # 3 corners per grid point
    # the ensemble section: 4 members fine-tuned from the model, scored like it
    assert s["members"] == 4 and set(s["crps"]) == {"deterministic", "ensemble"}
    assert all(len(v) == 4 and min(v) > 0 for v in s["crps"]["ensemble"].values())
    assert all(min(v) > 0 for v in s["spread_skill"].values())  # the members differ


def test_scaling(tmp_path, monkeypatch):
    s = execute("04_scaling.ipynb", tmp_path, monkeypatch)
    assert s["devices"] == 8
    # The partitioned network equals the one-device one to float rounding.
    assert len(s["graph_parallel"]) >= 3
    assert s["graph_parallel_max_abs_diff"] <= 1e-5 * max(1.0, s["output_scale"])
    for k, halo in s["halo"].items():
        assert len(halo["owned"]) == int(k) and max(halo["owned"]) - min(halo["owned"]) <= 1
        assert min(halo["halo"]) > 0 and halo["cut_edges"] > 0
    # Data parallel: one step on 8 devices equals one step on one device.
    assert s["data_parallel_loss_diff"] <= 1e-5 and s["data_parallel_param_diff"] <= 1e-5
    assert finite(*s["data_parallel_ms"].values())


def test_mgn_datasets(tmp_path, monkeypatch):
    s = execute("05_mgn_datasets.ipynb", tmp_path, monkeypatch)
    assert s["records"] == 2 and s["converted"] == {"train": 2, "valid": 1}
    assert s["identical"] is True
    assert set(s["fields"]) == {"cells", "mesh_pos", "node_type", "velocity", "pressure"}
    assert s["fields"]["velocity"][0] == 12  # frames
    assert s["trained_steps"] == 12 and s["losses"] and finite(*s["losses"])


def test_particles(tmp_path, monkeypatch):
    s = execute("06_particles.ipynb", tmp_path, monkeypatch)
    assert s["radius_graph_equals_cKDTree"] is True and s["edges"] > s["particles"]
    assert s["rollout_shape"][0] == 24 - 5 and s["rollout_shape"][2] == 2  # C = 5 history frames
    assert s["overflow_steps"] == 0 and s["last_loss"] < s["first_loss"]
    scores = s["scores"]
    for key in ("mse5", "mse20", "mseall", "kinetic_energy_mse"):
        assert finite(scores[f"{key}_model"], scores[f"{key}_baseline"])
    assert scores["penetrations_truth"] == 0


@pytest.mark.parametrize("name", ALL)
def test_notebooks_are_committed_without_outputs(name):
    """Outputs, execution counts and execution timings are stripped; the first code cell
    is the parameters cell reading the size from the environment."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count is not None)
    ]
    assert not dirty, f"{name}: cells {dirty} have outputs or execution counts (strip them)"
    timed = [i for i, c in enumerate(nb.cells) if "execution" in c.get("metadata", {})]
    assert not timed, f"{name}: cells {timed} carry execution timings in their metadata"
    assert "parameters" in code[0].metadata.get("tags", []), f"{name}: no parameters cell"
    assert SIZE_VARIABLE in code[0].source


def test_the_kernel_is_this_interpreter():
    """nbclient's "python3" kernel is the venv's ipykernel, launched as sys.executable."""
    pytest.importorskip("ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    # jupyter_client replaces a bare "python" with sys.executable at launch.
    assert spec.argv[0] in ("python", sys.executable), (spec.argv, spec.resource_dir)
