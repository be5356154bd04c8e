"""Tests for meshsim.evaluation.metrics: masked errors, rollout RMSE, persistence baseline."""

import jax
import numpy as np
import pytest

from meshsim.evaluation import metrics


def _rollout(seed=0, t=12, n=5, f=2):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(t, n, f)).astype(np.float32)
    pred = truth + rng.normal(scale=0.1, size=truth.shape).astype(np.float32)
    pred[0] = truth[0]  # frame 0 is the shared initial condition
    return pred, truth


def test_masked_mse_by_hand():
    pred = np.array([[1.0, 3.0], [0.0, 0.0], [100.0, np.nan]])
    target = np.zeros((3, 2))
    mask = np.array([True, True, False])  # third node is padding, holding garbage
    # node errors (feature mean): (1 + 9) / 2 = 5 and 0 -> mean over 2 nodes = 2.5
    assert float(metrics.masked_mse(pred, target, mask)) == pytest.approx(2.5)
    assert float(metrics.masked_rmse(pred, target, mask)) == pytest.approx(np.sqrt(2.5))
    # MeshGraphNets training loss sums over features: (10 + 0) / 2
    assert float(metrics.masked_mse(pred, target, mask, feature_reduction="sum")) == 5.0
    assert float(metrics.masked_mse(pred, target, np.zeros(3, bool))) == 0.0
    batched = metrics.masked_mse(np.stack([pred, pred]), np.stack([target, target]), mask)
    assert float(batched) == pytest.approx(2.5)
    jitted = jax.jit(metrics.masked_mse)(pred, target, mask)
    assert float(jitted) == pytest.approx(2.5)


def test_rollout_rmse_matches_numpy():
    pred, truth = _rollout()
    mask = np.array([1, 1, 0, 1, 1], bool)
    got = metrics.rollout_rmse(pred, truth, mask, horizons=(1, 10, 50))
    assert set(got) == {"1", "10", "all"}  # 50 > 11 predicted steps: skipped
    err = ((pred - truth) ** 2).mean(-1)[:, mask].astype(np.float64)  # [T, kept nodes]
    for key, frames in (("1", err[1:2]), ("10", err[1:11]), ("all", err[1:])):
        assert got[key] == pytest.approx(np.sqrt(frames.mean()), rel=1e-5)


def test_rollout_rmse_mask_excludes_nodes():
    pred, truth = _rollout(seed=1)
    mask = np.array([1, 1, 1, 1, 0], bool)
    spoiled = pred.copy()
    spoiled[:, 4] = 1e6
    np.testing.assert_allclose(
        list(metrics.rollout_rmse(spoiled, truth, mask).values()),
        list(metrics.rollout_rmse(pred, truth, mask).values()),
    )


def test_rollout_rmse_without_initial_frame():
    pred, truth = _rollout(seed=2, t=3)
    got = metrics.rollout_rmse(pred, truth, includes_initial=False, horizons=(1, 2))
    err = ((pred - truth) ** 2).mean(-1).astype(np.float64)
    assert got["1"] == pytest.approx(np.sqrt(err[0].mean()), rel=1e-5)
    assert got["all"] == pytest.approx(np.sqrt(err.mean()), rel=1e-5)


def test_persistence_baseline():
    initial = np.random.default_rng(3).normal(size=(4, 2)).astype(np.float32)
    baseline = metrics.persistence_rollout(initial, 6)
    assert baseline.shape == (6, 4, 2)
    constant_truth = np.broadcast_to(initial, (6, 4, 2))
    assert metrics.rollout_rmse(baseline, constant_truth) == {"1": 0.0, "all": 0.0}
    moving = constant_truth + np.arange(6, dtype=np.float32)[:, None, None]
    got = metrics.rollout_rmse(baseline, moving, horizons=(1,))
    assert got["1"] == pytest.approx(1.0)  # step 1 is off by exactly 1
    assert got["all"] == pytest.approx(np.sqrt(np.mean(np.arange(1, 6) ** 2)))


def test_aggregate_rollout_metrics():
    out = metrics.aggregate_rollout_metrics([{"1": 1.0, "10": 3.0}, {"1": 3.0}])
    assert out == {"1": 2.0, "10": 3.0}
    with pytest.raises(ValueError, match="empty"):
        metrics.aggregate_rollout_metrics([])


def test_validation_errors():
    pred, truth = _rollout(t=4)
    with pytest.raises(ValueError, match="same shape"):
        metrics.rollout_rmse(pred, truth[:, :3])
    with pytest.raises(ValueError, match="mask"):
        metrics.rollout_rmse(pred, truth, np.ones(3, bool))
    with pytest.raises(ValueError, match=r"pred must have shape \[T, N, F\]"):
        metrics.rollout_rmse(pred[0], truth[0])
    with pytest.raises(ValueError, match="horizons"):
        metrics.rollout_rmse(pred, truth, horizons=(0,))
    with pytest.raises(ValueError, match="no predicted frame"):
        metrics.rollout_rmse(pred[:1], truth[:1])
    with pytest.raises(ValueError, match="feature_reduction"):
        metrics.masked_mse(pred, truth, feature_reduction="max")
    with pytest.raises(ValueError, match="initial"):
        metrics.persistence_rollout(pred, 3)
