"""Fields against their climatology: when a map shows anomalies, and its colours.

A field such as geopotential is mostly its time mean: a pole-to-equator slope or a
jet's step that does not move. Drawn as is, its colour range is spent on that fixed
pattern and the weather (the part that changes) hides in one or two colour bands.
The map then shows the anomaly, field − climatology, on a diverging colour map
centred at 0.

The rule (`mean_dominates`): anomalies are drawn when the climatology's spatial
standard deviation exceeds the anomaly's, i.e. when the fixed time-mean pattern
carries more of the map's spatial variation than the departures from it. Both are
taken over the truth's finite values only, so a blown-up forecast does not decide
how the truth is drawn.
"""

from __future__ import annotations

import numpy as np

from meshsim.plotting._figures import finite_range

__all__ = ["ANOMALY_CMAP", "FIELD_CMAP", "FieldColours", "field_colours", "mean_dominates"]

FIELD_CMAP = "viridis"  # absolute fields
ANOMALY_CMAP = "RdBu_r"  # anomalies and errors: diverging, white at 0


def check_climatology(climatology, shape: tuple[int, ...]) -> np.ndarray:
    """`climatology` as float64 of `shape` (a field's spatial shape, e.g. [H, W] or [N]);
    a flat [H·W] is reshaped to [H, W]. Raises ValueError naming the shapes."""
    values = np.asarray(climatology, np.float64)
    if values.shape != shape:
        if values.size != int(np.prod(shape)) or values.ndim != 1:
            raise ValueError(
                f"climatology: expected shape {list(shape)} or [{int(np.prod(shape))}], "
                f"got {list(values.shape)}"
            )
        values = values.reshape(shape)
    if not np.isfinite(values).all():
        raise ValueError(f"climatology: expected finite values, got {np.isnan(values).sum()} NaN")
    return values


def mean_dominates(truth, climatology) -> bool:
    """Whether `truth` is mostly its time mean (see the module doc for the rule).

    Args:
      truth: [..., *S] float fields (one or more frames).
      climatology: [*S] float time mean per point, broadcast against `truth`.
    """
    truth = np.asarray(truth, np.float64)
    anomaly = truth - climatology
    finite = np.isfinite(anomaly)
    if not finite.any():
        return False
    fixed = np.broadcast_to(climatology, truth.shape)[finite]
    return float(np.std(fixed)) > float(np.std(anomaly[finite]))


class FieldColours:
    """How forecast and truth panels are drawn: what is shown, the colour limits and map.

    Attributes:
      anomaly: whether the panels show field − climatology.
      vmin: the lower colour limit (-vmax for anomalies).
      vmax: the upper colour limit.
      cmap: the colour map name.
      climatology: [*S] float64, what is subtracted (a 0-d zero when not an anomaly).
    """

    def __init__(self, anomaly: bool, vmin: float, vmax: float, climatology: np.ndarray):
        self.anomaly = anomaly
        self.vmin, self.vmax = vmin, vmax
        self.cmap = ANOMALY_CMAP if anomaly else FIELD_CMAP
        self.climatology = climatology

    def shown(self, field: np.ndarray) -> np.ndarray:
        """The field as drawn: the anomaly, or the field itself."""
        return field - self.climatology if self.anomaly else field

    def label(self, name: str) -> str:
        """A panel title: "forecast" or "forecast anomaly (− climatology)"."""
        return f"{name} anomaly (− climatology)" if self.anomaly else name


def field_colours(
    truth, climatology=None, *, anomaly: bool | None = None, where=None
) -> FieldColours:
    """Chooses how to draw a field: anomalies when asked, or by `mean_dominates`.

    Args:
      truth: [..., *S] float true fields; the colour limits come from their finite values.
      climatology: [*S] float64 (already checked) or None (never anomalies).
      anomaly: True / False forces the choice (True needs a climatology); None applies
        the rule.
      where: optional [*S] bool, the points whose values set the colour limits (a zoomed
        map's region); all points when None or when it selects none.

    Returns:
      A `FieldColours`: anomalies get limits ±max|truth − climatology|, fields the
      truth's finite range.
    """
    truth = np.asarray(truth, np.float64)
    if anomaly and climatology is None:
        raise ValueError("anomaly: True needs a climatology, got climatology=None")
    if anomaly is None:
        anomaly = climatology is not None and mean_dominates(truth, climatology)
    values = truth - climatology if anomaly else truth
    if where is not None and np.asarray(where).any():
        values = values[..., np.asarray(where, bool)]
    if anomaly:
        finite = np.abs(values[np.isfinite(values)])
        limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        return FieldColours(True, -limit, limit, np.asarray(climatology, np.float64))
    vmin, vmax = finite_range(values)
    return FieldColours(False, vmin, vmax, np.zeros(()))
