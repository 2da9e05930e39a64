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
