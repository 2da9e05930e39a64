"""The sinusoid experiment: resume equality, the CLI's error paths, and a small end-to-end run."""
import hashlib
import json
import math
from pathlib import Path

import chex
import jax
import numpy as np
import pytest

from omni_jax import config as config_lib
from omni_jax.cli import main as cli_main
from omni_jax.data import sinusoid as sin_data
from omni_jax.sinusoid import evaluate as ev
from omni_jax.sinusoid import train as tr

TINY = ["--config.train.num_steps=100", "--config.train.chunk_size=50", "--config.train.ckpt_every=50",
        "--config.train.eval_every=50", "--config.data.num_train_tasks=200", "--config.eval.num_tasks=8",
        "--config.eval.num_val_tasks=8", "--config.eval.k_shots=(5,)"]


def tiny_config(*extra):
    cfg = config_lib.load_config("sinusoid", quick=True)
    return config_lib.apply_overrides(cfg, [o.removeprefix("--config.") for o in TINY + list(extra)])


def tree_hash(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(capsys, *argv):
    code = cli_main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_training_set_and_episode_shapes():
    data = sin_data.make_training_set(jax.random.PRNGKey(0), 30, 50, (0.1, 5.0), (0, math.pi), (-5, 5))
    chex.assert_shape([data.x, data.y], (30, 50, 1))
    ep = sin_data.episode_from_dataset(jax.random.PRNGKey(1), data, 4, 10, 7)
    chex.assert_shape([ep["support"]["x"], ep["support"]["y"]], (4, 10, 1))
    chex.assert_shape([ep["query"]["x"], ep["query"]["y"]], (4, 7, 1))
    # support and query of a task are distinct points of that task
    for t in range(4):
        xs = set(np.asarray(ep["support"]["x"][t, :, 0]).tolist()) | set(np.asarray(ep["query"]["x"][t, :, 0]).tolist())
        assert len(xs) == 17
    # every target lies on a sine of the configured amplitude range
    assert float(np.abs(data.y).max()) <= 5.0 + 1e-5
    b = sin_data.batch_from_dataset(jax.random.PRNGKey(2), data, 9)
    chex.assert_shape([b["x"], b["y"]], (9, 1))


def test_resume_gives_the_same_final_state(tmp_path):
    cfg = tiny_config()
    data = tr.training_set(cfg)
    full, _ = tr.train_method(cfg, "omni", tmp_path / "a", data=data, show_progress=False)
    part, _ = tr.train_method(cfg, "omni", tmp_path / "b", data=data, show_progress=False, stop_after=50)
    assert int(part.step) == 50
    resumed, _ = tr.train_method(cfg, "omni", tmp_path / "b", data=data, show_progress=False)
    assert int(resumed.step) == 100
    chex.assert_trees_all_equal(resumed.params, full.params)
    chex.assert_trees_all_equal(resumed.opt_state, full.opt_state)
    steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "omni" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [50, 100]
    # a different seed really changes the result (the check above can fail)
    other, _ = tr.train_method(tiny_config("seed=1"), "omni", tmp_path / "c", data=data, show_progress=False)
    assert not np.allclose(jax.tree_util.tree_leaves(other.params)[0], jax.tree_util.tree_leaves(full.params)[0])


@pytest.mark.parametrize("override,field", [
    ("--config.train.nope=1", "train.nope"),
    ("--config.train.k_shot=0", "train.k_shot"),
    ("--config.eval.k_shots=(5,-1)", "eval.k_shots"),
    ("--config.train.outer_lr=-0.1", "train.outer_lr"),
    ("--config.train.inner_lr=-1.0", "train.inner_lr"),
    ("--config.train.num_steps=0", "train.num_steps"),
    ("--config.eval.max_steps=0", "eval.max_steps"),
    ("--config.train.k_shot=abc", "train.k_shot"),
    ("--config.train.methods=('maml','mamal')", "train.methods"),
    ("--config.train.ckpt_every=77", "train.ckpt_every"),
    ("--config.omni.lam=-1.0", "omni.lam"),
    ("--config.omni.ema_decay=1.5", "omni.ema_decay"),
    ("--config.omni.pre=False", "distill_pre needs the pre term"),
])
def test_cli_rejects_bad_config(tmp_path, capsys, override, field):
    code, out, err = run_cli(capsys, "sinusoid", "--quick", "--workdir", str(tmp_path / "w"), override)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("omni-jax: error:") and field in err
    assert "Traceback" not in err
    assert not (tmp_path / "w").exists()


def test_cli_rejects_missing_config_file(tmp_path, capsys):
    code, _, err = run_cli(capsys, "sinusoid", "--config", str(tmp_path / "nope.py"))
    assert code == 2 and "nope.py" in err and "does not exist" in err


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
    """A finished tiny run of two methods, shared by the resume-error tests."""
    wd = tmp_path_factory.mktemp("run")
    code = cli_main(["sinusoid", "--quick", "--no-progress", "--workdir", str(wd), *TINY,
                     "--config.train.methods=('baseline','maml')"])
    assert code == 0
    return wd


def test_cli_incompatible_checkpoint_is_an_error_and_overwrites_nothing(trained_workdir, capsys):
    before = tree_hash(trained_workdir)
    code, _, err = run_cli(capsys, "sinusoid", "--quick", "--no-progress", "--workdir", str(trained_workdir), *TINY,
                           "--config.train.methods=('baseline','maml')", "--config.train.inner_lr=0.05")
    assert code == 2 and "incompatible config" in err and "train.inner_lr" in err and err.count("\n") == 1
    assert tree_hash(trained_workdir) == before


def test_cli_corrupted_checkpoint_is_an_error_and_overwrites_nothing(trained_workdir, tmp_path, capsys):
    import shutil
    wd = tmp_path / "copy"
    shutil.copytree(trained_workdir, wd)
    ckpt = wd / "maml" / "checkpoints" / "100"
    victims = [p for p in ckpt.rglob("*") if p.is_file() and p.stat().st_size > 0 and "metadata" not in p.name]
    assert victims
    for p in victims:
        p.write_bytes(b"\x00garbage" * 4)
    before = tree_hash(wd)
    code, _, err = run_cli(capsys, "sinusoid", "--quick", "--no-progress", "--workdir", str(wd), *TINY,
                           "--config.train.methods=('baseline','maml')")
    assert code == 2 and "corrupted" in err and "maml" in err and err.count("\n") == 1
    assert "Traceback" not in err
    assert tree_hash(wd) == before


def test_end_to_end_quick_run(trained_workdir, tmp_path, capsys):
    wd = tmp_path / "e2e"
    code, out, err = run_cli(capsys, "sinusoid", "--quick", "--no-progress", "--workdir", str(wd),
                             *TINY[:-1], "--config.train.num_steps=300", "--config.eval.k_shots=(5,10)")
    assert code == 0, err
    records = json.loads((wd / "results.json").read_text())
    methods = {"baseline", "maml", "ensemble", "joint", "omni", "omni_joint", "omni_pre", "omni_meta", "omni_ensemble"}
    assert {r["method"] for r in records} == methods
    assert len(records) == len(methods) * 2 * 10
    for r in records:
        assert set(r) == {"method", "k_shot", "steps", "mse", "ci95"}
        assert r["k_shot"] in (5, 10) and 1 <= r["steps"] <= 10
        assert math.isfinite(r["mse"]) and r["mse"] >= 0 and r["ci95"] >= 0
    get = {(r["method"], r["k_shot"], r["steps"]): r["mse"] for r in records}
    for k in (5, 10):
        for s in range(1, 11):
            assert get[("omni", k, s)] == get[("omni_joint", k, s)]  # omni = the configured head
    # pooled L2 pre-training learns (about) the zero function; MAML adapts far better already
    assert get[("baseline", 10, 10)] > 2.0
    assert get[("maml", 10, 10)] < 0.5 * get[("baseline", 10, 10)]
    assert (wd / "fig5_mse_vs_steps.png").stat().st_size > 10_000
    assert (wd / "fig6_recovered_waves.png").stat().st_size > 10_000
    assert "omni_ensemble" in out and "K=10 s=10" in out
    for m in ("baseline", "maml", "joint", "omni"):
        lines = (wd / m / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(l)["step"] for l in lines] == list(range(50, 301, 50))
        assert "val/mse_step10" in lines[-1] or "val/mse_step10_joint" in lines[-1]


def test_results_table_lists_each_method_once():
    recs = [{"method": m, "k_shot": 5, "steps": s, "mse": 1.0, "ci95": 0.1} for m in ("maml", "omni") for s in range(1, 11)]
    table = ev.results_table(recs)
    assert table.splitlines()[0].split()[:2] == ["method", "K=5"]
    assert [l.split()[0] for l in table.splitlines()[1:]] == ["maml", "omni"]
