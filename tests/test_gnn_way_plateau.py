"""scripts/gnn_way_plateau.py: the synthetic episodes, the escape step, one short run (issue 11)."""
import importlib.util
import json
from pathlib import Path

import jax
import numpy as np
import pytest

spec = importlib.util.spec_from_file_location("gnn_way_plateau", Path(__file__).parents[1] / "scripts" / "gnn_way_plateau.py")
plateau = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plateau)


def test_synthetic_episode_is_class_major_and_near_its_prototypes():
    sf, so, qf, qy = plateau.synthetic_episode(jax.random.PRNGKey(0), 4, 2, 3, 16, 0.0)
    assert sf.shape == (1, 8, 16) and so.shape == (1, 8, 4) and qf.shape == (1, 12, 16) and qy.shape == (1, 12)
    np.testing.assert_array_equal(np.asarray(so[0]).argmax(-1), [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(np.asarray(qy[0]), [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    # without noise every query is its class's support point
    np.testing.assert_allclose(np.asarray(qf[0, 3]), np.asarray(sf[0, 2]))
    assert not np.allclose(np.asarray(sf[0, 0]), np.asarray(sf[0, 2]))


def test_escape_step_is_the_first_window_at_the_threshold():
    acc = [0.1] * 10 + [0.4, 0.6] * 5 + [0.9] * 10
    assert plateau.escape_step(acc, 10, 0.5) == 20       # window 11-20 has mean 0.5
    assert plateau.escape_step(acc, 10, 0.8) == 30
    assert plateau.escape_step(acc, 10, 0.95) is None
    assert plateau.escape_step(acc, 7, 0.5) == 21         # windows end at 7, 14, 21


@pytest.mark.slow
def test_a_short_run_prints_the_table_and_the_json_line(capsys):
    assert plateau.main(["--ways", "3", "--steps", "20", "--window", "10", "--dim", "8"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])["gnn_way_plateau"]["3-way"]
    assert summary["chance_loss"] == pytest.approx(np.log(3), abs=1e-4)
    assert set(summary) == {"escape_step", "chance_loss", "first_window_loss", "final_accuracy", "seconds"}
    assert any(line.strip().startswith("11-20") for line in out)
