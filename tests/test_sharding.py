"""Sharded (8 fake CPU devices) against single-device gradients, in a subprocess
(XLA_FLAGS must be set before JAX starts)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_sharded_matches_single_device(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    script = Path(__file__).with_name("sharding_check.py")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "w")], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gradients: sharded == single-device" in proc.stdout
    assert "training steps: sharded == single-device" in proc.stdout
    assert "does not divide over the 8 devices" in proc.stderr
    assert proc.stdout.strip().endswith("OK")


@pytest.mark.slow
def test_rl_sharded_matches_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    script = Path(__file__).with_name("rl_sharding_check.py")
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for method in ("maml", "omni"):
        assert f"{method} meta-iterations: sharded == single-device" in proc.stdout
        assert f"{method} adaptation returns: sharded == single-device" in proc.stdout
    assert proc.stdout.strip().endswith("OK")
