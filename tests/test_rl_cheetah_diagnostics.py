"""scripts/rl_cheetah_diagnostics.py: its statistics by hand, and one small run on the cheetah."""
import importlib.util
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax import config as config_lib

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "rl_cheetah_diagnostics.py"


@pytest.fixture(scope="module")
def diag():
    spec = importlib.util.spec_from_file_location("rl_cheetah_diagnostics", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_explained_variance_by_hand(diag):
    y = jnp.array([[1.0, 2.0, 3.0, 99.0]])
    mask = jnp.array([[1.0, 1.0, 1.0, 0.0]])       # the masked step is ignored
    # residuals 0, 1, 0: variance 2/9 against Var(y) = 2/3, so 1 - 1/3
    np.testing.assert_allclose(diag.explained_variance(y, jnp.array([[1.0, 1.0, 3.0, 0.0]]), mask), 2 / 3, rtol=1e-6)
    # a constant offset is not penalised (a baseline only needs to track the variation)
    np.testing.assert_allclose(diag.explained_variance(y, y + 5.0, mask), 1.0, rtol=1e-6)
    np.testing.assert_allclose(diag.explained_variance(y, jnp.zeros_like(y), mask), 0.0, atol=1e-6)


@pytest.mark.slow
def test_measure_on_a_tiny_cheetah(diag):
    cfg = config_lib.load_config("rl_halfcheetah_vel_cpu")
    cfg.env.horizon = 6
    rows = diag.measure(cfg, ["lecun_normal", "xavier_uniform"], tasks_per_batch=2, num_traj=4, repeats=3, seed=0)
    assert [r["kernel_init"] for r in rows] == ["lecun_normal", "xavier_uniform"]
    for r in rows:
        assert r["batch"] == "2x4"
        assert -1.0 <= r["grad_cos"] <= 1.0 and r["grad_snr"] >= 0.0 and r["grad_norm"] > 0.0
        assert 0.0 <= r["saturated"] <= 1.0
        assert r["baseline_ev_in"] <= 1.0 + 1e-5
        # six steps: a return is a sum of six rewards, each at most 0 (|v - v_goal| and the control cost)
        assert -6 * (2.0 + 10.0) < r["return"] < 0.0 and r["still_return"] < 0.0
        assert r["velocity_sd"] > 0.0
    # the inits differ in their parameters only; the same batches are drawn for both
    assert rows[0]["still_return"] == pytest.approx(rows[1]["still_return"], rel=1e-6)


def test_gradient_stats_by_hand(diag):
    # opposite gradients: no signal, all noise (mean 0; noise 1 per gradient, x K/(K-1) = 2)
    s = diag.gradient_stats(np.array([[1.0, 0.0], [-1.0, 0.0]]))
    assert s["grad_norm"] == pytest.approx(1.0) and s["grad_cos"] == pytest.approx(-1.0) and s["grad_snr"] == 0.0
    # mean (2, 0), deviations (0, +-1): noise 2, signal |mean|^2 - noise / K = 4 - 1 = 3
    s = diag.gradient_stats(np.array([[2.0, 1.0], [2.0, -1.0]]))
    assert s["grad_cos"] == pytest.approx(3 / 5) and s["grad_snr"] == pytest.approx(1.5)
    assert s["grad_norm"] == pytest.approx(np.sqrt(5.0))
    assert diag.gradient_stats(np.array([[1.0, 2.0], [1.0, 2.0]]))["grad_snr"] == float("inf")


@pytest.mark.slow
def test_measure_meta_on_a_tiny_cheetah(diag):
    cfg = config_lib.load_config("rl_halfcheetah_dir_cpu")
    cfg.env.horizon = 6
    starts = diag.meta_starts(cfg, None, seed=0)
    assert list(starts) == ["untrained"]
    rows = diag.measure_meta(cfg, starts, tasks_per_batch=2, num_traj=4, repeats=3, seed=0)
    (r,) = rows
    assert r["start"] == "untrained" and r["batch"] == "2x4"
    assert r["inner_gain"] == pytest.approx(r["adapted_return"] - r["return"], abs=1e-4)
    # the meta-gradient read off an outer SGD step of lr 1 is the step's own gradient
    assert r["grad_norm"] == pytest.approx(r["step_grad_norm"], rel=1e-4)
    assert -1.0 <= r["grad_cos"] <= 1.0 and r["grad_snr"] >= 0.0 and r["grad_norm"] > 0.0
