"""A rollout's physical diagnostics, model against truth: one call, or chunk by chunk.

`RolloutDiagnostics` takes the truth and the mesh once and the predicted frames as
they come off the device (`meshsim.rollout.iter_rollout` chunks), keeping only
per-frame numbers and, for a flow, one probe node's velocity: host memory stays
O(T) however long the rollout. Each kind of physics is a subclass:
`FlowDiagnostics` (incompressible flow: energy, divergence, Strouhal number) and
`ClothDiagnostics` (edge strain). A task names its class (`Task.diagnostics`);
nothing here knows task names. `rollout_diagnostics` runs one on whole arrays;
`summarize` reduces an evaluation's trajectories to a few numbers and
`report_rows` lays those out for a table. Host-side numpy; not jit-safe.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from meshsim.diagnostics._checks import MissingFlowParameter, _mesh, _trajectory
from meshsim.diagnostics.cloth import mean_abs_strain, strain_error
from meshsim.diagnostics.flow import (
    FlowParameters,
    kinetic_energy,
    mean_abs_divergence,
    shedding_frequency,
)
from meshsim.diagnostics.flow import flow_parameters as _flow_parameters

logger = logging.getLogger(__name__)

Row = tuple[str, float | None, float | None]  # (diagnostic, model, truth) of a report table


def _json(x: Any) -> Any:
    """Plain floats (lists of them for arrays); None for non-finite values."""
    if x is None:
        return None
    if np.ndim(x):
        return [_json(v) for v in np.asarray(x, dtype=np.float64).ravel()]
    return float(x) if math.isfinite(float(x)) else None


def _state(x: Any, name: str, field: str) -> np.ndarray:
    if isinstance(x, Mapping):
        if field not in x:
            raise ValueError(f"{name}: expected a {field!r} field, got {sorted(x)}")
        x = x[field]
    return np.asarray(x)


def _mean(values: Sequence[float | None]) -> float | None:
    """Mean of the finite values; None if there are none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(finite)) if finite else None


def _time_mean(series: Sequence[float | None] | None, frames: int) -> float | None:
    """Mean over the first `frames` frames; None if any is missing (a blow-up)."""
    if not series:
        return None
    values = series[:frames]
    return None if any(v is None for v in values) else float(np.mean(values))


class RolloutDiagnostics:
    """Accumulates a rollout's diagnostics as it arrives chunk by chunk (a base class).

    Per-frame series cover every predicted frame for the model (past the data too:
    a long rollout's energy is diagnosed where there is no truth) and the truth's
    frames for the truth; quantities that compare the two use the frames that have
    both. Non-finite predictions give None entries, never errors.

    Usage: `d = FlowDiagnostics(truth, static, meta=meta)`, then `d.add(frames)` for
    each chunk `[n, N, F]` in order (frame 0 the initial state), then `d.result()`.

    Args:
      truth: `[K, N, F]` float ground truth of frames 0..K-1 (the subclass's
        `state_field`), or a trajectory dict holding it.
      static: `mesh_pos [1, N, 2]` float, `cells [1, C, 3]` int (leading axes
        optional) and what the subclass needs besides; None: from `truth`.
      meta: the dataset's meta.json dict, or None.
      **options: the subclass's `options`.

    Raises:
      ValueError, TypeError: an unknown option, missing or malformed mesh fields, a
        bad option value.
    """

    state_field: ClassVar[str] = ""  # the trajectory field diagnosed
    options: ClassVar[tuple[str, ...]] = ()  # keyword options the constructor takes
    caption: ClassVar[str] = ""  # what `report_rows` shows, for a report
    reference_label: ClassVar[str] = "truth"  # the third column of `report_rows`

    def __init__(
        self,
        truth: Mapping[str, np.ndarray] | np.ndarray,
        static: Mapping[str, np.ndarray] | None = None,
        *,
        meta: Mapping[str, Any] | None = None,
        **options: Any,
    ):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(
                f"options: {type(self).__name__} accepts {list(self.options)}, got unknown "
                f"{unknown}"
            )
        if static is None:
            if not isinstance(truth, Mapping):
                raise ValueError(
                    "static: expected the mesh fields when truth is an array, got None"
                )
            static = truth
        missing = sorted(set(self.static_fields) - set(static))
        if missing:
            raise ValueError(
                f"static: expected fields {' and '.join(self.static_fields)}, missing {missing}"
            )
        self._nodes = self._read_static(static, meta)
        self._truth = _trajectory(_state(truth, "truth", self.state_field), "truth", self._nodes)
        self._frames = 0
        self._series: dict[str, list[np.ndarray]] = {}
        # The truth's series now: they check the mesh (degenerate cells, zero-length
        # edges) before any frame is predicted.
        self._truth_series = self._truth_diagnostics()
        self._setup(static, meta, dict(options))

    # ------------------------------------------------------------------ subclass hooks

    static_fields: ClassVar[tuple[str, ...]] = ("mesh_pos", "cells")  # what `static` holds

    def _read_static(self, static: Mapping[str, np.ndarray], meta) -> int:
        """Checks and keeps the static fields; returns the node count. Default: the mesh
        (`self._pos [N, 2]`, `self._cells [C, 3]`)."""
        self._pos, self._cells = _mesh(static["mesh_pos"], static["cells"])
        return len(self._pos)

    def _truth_diagnostics(self) -> dict[str, np.ndarray]:
        """{name: [K] per-frame series of the truth}."""
        raise NotImplementedError

    def _setup(self, static, meta, options) -> None:
        """Reads the subclass's options and meta (called once, after the truth's series)."""

    def _add(self, x: np.ndarray, known: np.ndarray) -> None:
        """Diagnoses predicted frames `x [n, N, F]`; `known [<= n, N, F]` their truth."""
        raise NotImplementedError

    def _result(self, truth: np.ndarray, known: dict[str, np.ndarray]) -> dict[str, Any]:
        """The subclass's values; `truth` the frames with a prediction, `known` the truth's
        series cut to them."""
        raise NotImplementedError

    @classmethod
    def summarize(cls, trajectories: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """A few numbers from the `result()` of each evaluated trajectory (means over
        trajectories, None where none gives a finite value)."""
        raise NotImplementedError

    @classmethod
    def report_rows(cls, summary: Mapping[str, Any]) -> list[Row]:
        """(diagnostic, model, truth) rows of a report table from a `summarize` dict."""
        raise NotImplementedError

    @classmethod
    def gate(cls, summary: Mapping[str, Any]) -> tuple[bool, str] | None:
        """(whether a demo passes on these diagnostics, a sentence saying why) from a
        `summarize` dict, or None: the diagnostics set no bar of their own."""
        del summary
        return None

    # ------------------------------------------------------------------ shared

    @property
    def frames(self) -> int:
        """Predicted frames added so far (the initial state included)."""
        return self._frames

    def _append(self, key: str, values: np.ndarray) -> None:
        self._series.setdefault(key, []).append(np.asarray(values))

    def _joined(self, key: str, width: tuple[int, ...] = ()) -> np.ndarray:
        parts = self._series.get(key)
        return np.concatenate(parts) if parts else np.zeros((0, *width))

    def add(self, frames: Mapping[str, np.ndarray] | np.ndarray) -> None:
        """Adds the next predicted frames `[n, N, F]` float (or a dict holding them).

        Cost: O(n (N + C)) for a flow, O(n E) for a cloth (E edges)."""
        x = _trajectory(_state(frames, "frames", self.state_field), "frames", self._nodes)
        if x.shape[2] != self._truth.shape[2]:
            raise ValueError(
                f"frames: expected {self._truth.shape[2]} components like the truth, got {x.shape}"
            )
        start, self._frames = self._frames, self._frames + len(x)
        self._add(x, self._truth[start : self._frames])

    def result(self) -> dict[str, list[float | None] | float | None]:
        """JSON-ready values (plain floats, None where not finite); keys per subclass.

        Raises:
          ValueError: if no frame was added.
        """
        if self._frames == 0:
            raise ValueError("frames: expected at least one add() before result(), got none")
        truth = self._truth[: self._frames]  # the frames that have a prediction
        known = {key: value[: self._frames] for key, value in self._truth_series.items()}
        return {key: _json(value) for key, value in self._result(truth, known).items()}


class FlowDiagnostics(RolloutDiagnostics):
    """An incompressible flow's diagnostics (`velocity`).

    Per-frame `kinetic_energy_{model,truth}` (½∫|u|² dA over all nodes) and
    `mean_abs_divergence_{model,truth}`; `shedding_frequency_*`, `strouhal_{model,
    truth}` over the frames that have both, and the `dt`, `diameter`,
    `velocity_scale`, `probe_x`, `probe_y` used (None, logged, without an obstacle,
    inlet or dt). `static` also needs `node_type [1, N, 1]` int for the Strouhal
    number; `meta` gives `dt`. Options: `dt`, `diameter`, `velocity_scale`, `probe`
    (see `meshsim.diagnostics.strouhal_number`), `skip` (frames left out of the
    frequency).
    """

    state_field = "velocity"
    options = ("dt", "diameter", "velocity_scale", "probe", "skip")
    caption = (
        "Strouhal number St = f D / U from the cross-flow velocity at a probe 2 D behind "
        "the obstacle, over the frames with truth; mean |∇·u| is the area-weighted mean "
        "over cells of the P1 divergence, averaged over time; kinetic energy ½∫|u|² dA."
    )

    def _truth_diagnostics(self) -> dict[str, np.ndarray]:
        pos, cells, truth = self._pos, self._cells, self._truth
        return {
            "kinetic_energy_truth": kinetic_energy(truth, pos, cells),
            "mean_abs_divergence_truth": mean_abs_divergence(truth, pos, cells),
        }

    def _setup(self, static, meta, options) -> None:
        self._params: FlowParameters | None = None
        self._skip = options.pop("skip", 0)
        trajectory = {**static, "velocity": self._truth}
        try:
            self._params = _flow_parameters(trajectory, meta, **options)
        except MissingFlowParameter as e:  # e.g. a channel without an obstacle: no shedding
            logger.warning("no Strouhal number: %s", e)

    def _add(self, x: np.ndarray, known: np.ndarray) -> None:
        pos, cells = self._pos, self._cells
        self._append("kinetic_energy_model", kinetic_energy(x, pos, cells))
        self._append("mean_abs_divergence_model", mean_abs_divergence(x, pos, cells))
        if self._params is not None:
            self._append("probe", x[: len(known), self._params.probe])

    def _result(self, truth: np.ndarray, known: dict[str, np.ndarray]) -> dict[str, Any]:
        pos = self._pos
        out: dict[str, Any] = {
            "kinetic_energy_model": self._joined("kinetic_energy_model"),
            "kinetic_energy_truth": known["kinetic_energy_truth"],
            "mean_abs_divergence_model": self._joined("mean_abs_divergence_model"),
            "mean_abs_divergence_truth": known["mean_abs_divergence_truth"],
        }
        p = self._params
        signals = {}
        if p is not None:
            model = self._joined("probe", (truth.shape[2],))
            signals = {"model": model, "truth": truth[: len(model), p.probe]}
        for name in ("model", "truth"):
            f = None
            if p is not None:
                signal = signals[name][:, None, :]  # [T, 1, F]: the probe node alone
                f = (
                    shedding_frequency(
                        signal, pos[p.probe][None], probe=0, dt=p.dt, skip=self._skip
                    )
                    if len(signal) > self._skip
                    else float("nan")
                )
            out[f"shedding_frequency_{name}"] = f
            out[f"strouhal_{name}"] = f * p.diameter / p.velocity_scale if p else None
        out["probe_x"], out["probe_y"] = pos[p.probe] if p else (None, None)
        for key in ("dt", "diameter", "velocity_scale"):
            out[key] = getattr(p, key) if p else None
        return out

    @classmethod
    def summarize(cls, trajectories: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """`strouhal_{model,truth}` and `strouhal_trajectories` (how many gave both);
        `mean_abs_divergence_{model,truth}` (time mean over the frames with truth; a
        blown-up model rollout gives None for that trajectory);
        `kinetic_energy_ratio_final` (KE_model / KE_truth at the last frame with truth).
        """
        out: dict[str, Any] = {}
        pairs = [(t.get("strouhal_model"), t.get("strouhal_truth")) for t in trajectories]
        out["strouhal_model"] = _mean([m for m, _ in pairs])
        out["strouhal_truth"] = _mean([t for _, t in pairs])
        out["strouhal_trajectories"] = sum(m is not None and t is not None for m, t in pairs)
        for name in ("model", "truth"):
            out[f"mean_abs_divergence_{name}"] = _mean(
                [
                    _time_mean(t.get(f"mean_abs_divergence_{name}"), len(t["kinetic_energy_truth"]))
                    for t in trajectories
                ]
            )
        ratios = []
        for t in trajectories:
            last = len(t["kinetic_energy_truth"]) - 1
            model, truth = t["kinetic_energy_model"][last], t["kinetic_energy_truth"][last]
            ratios.append(model / truth if model is not None and truth else None)
        out["kinetic_energy_ratio_final"] = _mean(ratios)
        return out

    @classmethod
    def report_rows(cls, summary: Mapping[str, Any]) -> list[Row]:
        s = summary
        return [
            ("Strouhal number", s["strouhal_model"], s["strouhal_truth"]),
            ("mean |∇·u|", s["mean_abs_divergence_model"], s["mean_abs_divergence_truth"]),
            (
                "kinetic energy at the last frame, model / truth",
                s["kinetic_energy_ratio_final"],
                1.0,
            ),
        ]


class ClothDiagnostics(RolloutDiagnostics):
    """A cloth's diagnostics (`world_pos`): per-frame `strain_error` (frames with truth)
    and `mean_abs_strain_{model,truth}` of the mesh edges against their rest lengths."""

    state_field = "world_pos"
    caption = "Edge strain against the rest lengths of the mesh, means over frames."

    def _truth_diagnostics(self) -> dict[str, np.ndarray]:
        return {"mean_abs_strain_truth": mean_abs_strain(self._truth, self._pos, self._cells)}

    def _add(self, x: np.ndarray, known: np.ndarray) -> None:
        pos, cells = self._pos, self._cells
        self._append("mean_abs_strain_model", mean_abs_strain(x, pos, cells))
        if len(known):
            self._append("strain_error", strain_error(x[: len(known)], known, pos, cells))

    def _result(self, truth: np.ndarray, known: dict[str, np.ndarray]) -> dict[str, Any]:
        return {
            "strain_error": self._joined("strain_error"),
            "mean_abs_strain_model": self._joined("mean_abs_strain_model"),
            **known,
        }

    @classmethod
    def summarize(cls, trajectories: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """`strain_error` and `mean_abs_strain_{model,truth}` (time means over the frames
        with truth, then means over trajectories)."""
        out: dict[str, Any] = {}
        for key in ("strain_error", "mean_abs_strain_model", "mean_abs_strain_truth"):
            known = [len(t.get("strain_error") or []) for t in trajectories]
            out[key] = _mean([_time_mean(t.get(key), k) for t, k in zip(trajectories, known)])
        return out

    @classmethod
    def report_rows(cls, summary: Mapping[str, Any]) -> list[Row]:
        s = summary
        return [
            ("mean |edge strain|", s["mean_abs_strain_model"], s["mean_abs_strain_truth"]),
            ("strain error |strain_model − strain_truth|", s["strain_error"], 0.0),
        ]


def rollout_diagnostics(
    kind: type[RolloutDiagnostics],
    pred: Mapping[str, np.ndarray] | np.ndarray,
    truth: Mapping[str, np.ndarray] | np.ndarray,
    static: Mapping[str, np.ndarray] | None = None,
    *,
    meta: Mapping[str, Any] | None = None,
    **options: Any,
) -> dict[str, list[float | None] | float | None]:
    """The diagnostics `kind` (e.g. `FlowDiagnostics`) of a whole rollout, JSON-ready.

    Keys as `kind.result`. Values are plain floats, None where not finite, so
    `json.dumps(..., allow_nan=False)` accepts them.

    Args:
      kind: a `RolloutDiagnostics` subclass.
      pred: `[T, N, F]` float predicted states (`kind.state_field`), or a trajectory
        dict holding them.
      truth: the true states, the shape of `pred`, or a trajectory dict holding them.
      static: as `RolloutDiagnostics`.
      meta: as `RolloutDiagnostics`.
      **options: as `RolloutDiagnostics`.
    """
    if not (isinstance(kind, type) and issubclass(kind, RolloutDiagnostics)):
        raise TypeError(f"kind: expected a RolloutDiagnostics subclass, got {kind!r}")
    states = [_state(x, name, kind.state_field) for name, x in (("pred", pred), ("truth", truth))]
    if states[0].shape != states[1].shape:
        raise ValueError(
            f"pred, truth: expected equal shapes, got {states[0].shape}, {states[1].shape}"
        )
    if static is None and not isinstance(truth, Mapping):
        raise ValueError("static: expected the mesh fields when truth is an array, got None")
    diagnostics = kind(states[1], truth if static is None else static, meta=meta, **options)
    diagnostics.add(states[0])
    return diagnostics.result()
