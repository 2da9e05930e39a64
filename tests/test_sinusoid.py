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
from omni_jax.sinusoid import train_and_evaluate
from omni_jax.training import runner

TINY = ["--config.train.num_steps=100", "--config.train.chunk_size=50", "--config.train.ckpt_every=50",
        "--config.train.val_every=50", "--config.data.num_train_tasks=200", "--config.eval.num_tasks=8",
        "--config.train.val_tasks=8", "--config.eval.k_shots=(5,)"]


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


def train(cfg, method, directory, stop_after=None):
    program = tr.setup(cfg, method, tr.training_set(cfg))
    return runner.train_program(program, directory, tr.fingerprint(cfg, method), show_progress=False,
                                stop_after=stop_after)


@pytest.mark.slow
def test_resume_gives_the_same_final_state(tmp_path):
    cfg = tiny_config()
    full = train(cfg, "omni", tmp_path / "a")
    part = train(cfg, "omni", tmp_path / "b", stop_after=50)
    assert int(part.step) == 50
    resumed = train(cfg, "omni", tmp_path / "b")
    assert int(resumed.step) == 100
    chex.assert_trees_all_equal(resumed.params, full.params)
    chex.assert_trees_all_equal(resumed.opt_state, full.opt_state)
    steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [50, 100]
    # a different seed really changes the result (the check above can fail)
    other = train(tiny_config("seed=1"), "omni", tmp_path / "c")
    assert not np.allclose(jax.tree_util.tree_leaves(other.params)[0], jax.tree_util.tree_leaves(full.params)[0])


def test_a_methods_stream_depends_on_its_name_not_its_position():
    cfg = tiny_config()
    model = tr.make_model(cfg, "maml")
    opt = tr.make_optimizer(cfg, config_lib.loss_weights(cfg.omni, "maml"))
    a = tr.init_state(cfg, model, opt, "maml")
    b = tr.init_state(tiny_config("train.methods=('maml', 'baseline')"), model, opt, "maml")
    c = tr.init_state(cfg, model, opt, "joint")
    chex.assert_trees_all_equal(a.params, b.params)
    assert not all(np.allclose(x, y) for x, y in zip(jax.tree_util.tree_leaves(a.params),
                                                     jax.tree_util.tree_leaves(c.params)))


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
    """A finished tiny run of two methods (through the Python entry point), shared by the resume tests."""
    wd = tmp_path_factory.mktemp("run")
    records = train_and_evaluate(tiny_config("train.methods=('baseline','maml')"), wd, show_progress=False,
                                 log=lambda m: None)
    assert records == json.loads((wd / "results.json").read_text())
    assert {r["method"] for r in records} == {"baseline", "maml", "ensemble"}
    return wd


@pytest.mark.slow
def test_rerun_of_a_finished_workdir_restores_and_does_not_evaluate_again(trained_workdir, capsys):
    before = tree_hash(trained_workdir)
    code, out, err = run_cli(capsys, "sinusoid", "--quick", "--no-progress", "--workdir", str(trained_workdir),
                             *TINY, "--config.train.methods=('baseline','maml')")
    assert code == 0, err
    assert "restored finished baseline, maml (100 steps) and their evaluation" in out and "K=5 s=1" in out
    assert tree_hash(trained_workdir) == before  # nothing rewritten


@pytest.mark.slow
def test_changed_evaluation_settings_reuse_the_checkpoints(trained_workdir, tmp_path, capsys):
    import shutil
    wd = tmp_path / "copy"
    shutil.copytree(trained_workdir, wd)
    code, out, err = run_cli(capsys, "sinusoid", "--quick", "--no-progress", "--workdir", str(wd), *TINY,
                             "--config.train.methods=('baseline','maml')", "--config.eval.num_tasks=4")
    assert code == 0, err
    assert "baseline: restored the finished checkpoint (step 100)" in out
    records = json.loads((wd / "results.json").read_text())
    old = json.loads((trained_workdir / "results.json").read_text())
    assert len(records) == len(old) and records != old  # evaluated again, on 4 tasks
    ckpt = lambda root: {k: v for k, v in tree_hash(root).items() if "checkpoints" in k}
    assert ckpt(wd) == ckpt(trained_workdir)


@pytest.mark.slow
def test_cli_incompatible_checkpoint_is_an_error_and_overwrites_nothing(trained_workdir, capsys):
    before = tree_hash(trained_workdir)
    code, _, err = run_cli(capsys, "sinusoid", "--quick", "--no-progress", "--workdir", str(trained_workdir), *TINY,
                           "--config.train.methods=('baseline','maml')", "--config.train.inner_lr=0.05")
    assert code == 2 and "incompatible config" in err and "train.inner_lr" in err and err.count("\n") == 1
    assert tree_hash(trained_workdir) == before


@pytest.mark.slow
def test_cli_every_checkpoint_damaged_is_an_error_and_overwrites_nothing(trained_workdir, tmp_path, capsys):
    import shutil
    wd = tmp_path / "copy"
    shutil.copytree(trained_workdir, wd)
    # every step is damaged (a damaged newest step with an intact earlier one is recovered from:
    # tests/test_damage.py), so there is nothing to resume from
    steps = sorted((wd / "maml" / "checkpoints").glob("[0-9]*"))
    assert [s.name for s in steps] == ["100", "50"] or [s.name for s in steps] == ["50", "100"]
    for ckpt in steps:
        victims = [p for p in ckpt.rglob("*") if p.is_file() and p.stat().st_size > 0 and "metadata" not in p.name]
        assert victims
        for p in victims:
            p.write_bytes(b"\x00garbage" * 4)
    before = tree_hash(wd)
    # another evaluation setting, so that the finished checkpoints must be read
    code, _, err = run_cli(capsys, "sinusoid", "--quick", "--no-progress", "--workdir", str(wd), *TINY,
                           "--config.train.methods=('baseline','maml')", "--config.eval.num_tasks=4")
    assert code == 2 and "every checkpoint" in err and "damaged" in err and "maml" in err, err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert tree_hash(wd) == before


@pytest.mark.slow
def test_end_to_end_quick_run(trained_workdir, tmp_path, capsys):
    wd = tmp_path / "e2e"
    code, out, err = run_cli(capsys, "sinusoid", "--quick", "--no-progress", "--workdir", str(wd),
                             *TINY[:-1], "--config.train.num_steps=300", "--config.eval.k_shots=(5,10)")
    assert code == 0, err
    records = json.loads((wd / "results.json").read_text())
    methods = {"baseline", "maml", "ensemble", "joint", "omni", "omni_pre", "omni_meta", "omni_ensemble"}
    assert {r["method"] for r in records} == methods
    assert len(records) == len(methods) * 2 * 10
    for r in records:
        assert set(r) == {"method", "k_shot", "steps", "mse", "ci95"} | ({"head"} if r["method"] == "omni" else set())
        assert r["k_shot"] in (5, 10) and 1 <= r["steps"] <= 10
        assert math.isfinite(r["mse"]) and r["mse"] >= 0 and r["ci95"] >= 0
    assert {r["head"] for r in records if r["method"] == "omni"} == {"joint"}
    get = {(r["method"], r["k_shot"], r["steps"]): r["mse"] for r in records}
    # pooled L2 pre-training learns (about) the zero function; MAML adapts far better already
    assert get[("baseline", 10, 10)] > 2.0
    assert get[("maml", 10, 10)] < 0.5 * get[("baseline", 10, 10)]
    assert (wd / "fig5_mse_vs_steps.png").stat().st_size > 10_000
    assert (wd / "fig6_recovered_waves.png").stat().st_size > 10_000
    assert "omni_ensemble" in out and "K=10 s=10" in out
    assert max(len(line) for line in out.splitlines() if "±" in line) <= 100  # the table
    for m in ("baseline", "maml", "joint", "omni"):
        lines = (wd / m / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(l)["step"] for l in lines] == list(range(50, 301, 50))
        last = json.loads(lines[-1])
        assert "val/mse_step10" in last and "val/mse_step1" in last          # the joint flow, every method's
        assert ("val/mse_step10_meta" in last and "val/mse_step10_pre" in last) == (m == "omni")
        assert json.loads(lines[-1])["skipped_total"] == 0
    # Reported as omni with another head: only the evaluation runs again, and omni is then that head.
    code, out, err = run_cli(capsys, "sinusoid", "--quick", "--no-progress", "--workdir", str(wd),
                             *TINY[:-1], "--config.train.num_steps=300", "--config.eval.k_shots=(5,10)",
                             "--config.eval.omni_head=meta")
    assert code == 0, err
    again = {(r["method"], r["k_shot"], r["steps"]): r["mse"] for r in json.loads((wd / "results.json").read_text())}
    assert ("omni_meta", 5, 1) not in again and ("omni_joint", 5, 1) in again
    for k in (5, 10):
        for s in range(1, 11):
            assert again[("omni", k, s)] == get[("omni_meta", k, s)]
            assert again[("omni_joint", k, s)] == get[("omni", k, s)]


def test_results_table_lists_each_method_once():
    recs = [{"method": m, "k_shot": 5, "steps": s, "mse": 1.0, "ci95": 0.1} for m in ("maml", "omni") for s in range(1, 11)]
    table = ev.results_table(recs)
    assert table.splitlines()[0].split()[:2] == ["method", "K=5"]
    assert [l.split()[0] for l in table.splitlines()[1:]] == ["maml", "omni"]


@pytest.mark.slow
def test_trained_models_restore_what_was_evaluated_and_refuse_unfinished_methods(trained_workdir, tmp_path):
    from omni_jax.errors import OmniJaxError
    from omni_jax.sinusoid.experiment import trained_models
    cfg = tiny_config("train.methods=('baseline','maml')")
    models = trained_models(cfg, trained_workdir)
    assert set(models) == {"baseline", "maml"}
    # the restored models give the work directory's own results, evaluated again
    assert ev.evaluate(models, cfg) == json.loads((trained_workdir / "results.json").read_text())
    before = tree_hash(trained_workdir)
    with pytest.raises(OmniJaxError, match=r"joint has trained 0 of 100 steps"):
        trained_models(cfg, trained_workdir, methods=("baseline", "joint"))
    with pytest.raises(OmniJaxError, match="has trained 0 of 100"):
        trained_models(cfg, tmp_path / "empty")
    assert tree_hash(trained_workdir) == before and not (tmp_path / "empty").exists()   # looking creates nothing


def test_evaluation_on_validation_tasks_uses_other_tasks_than_the_test():
    cfg = tiny_config("eval.max_steps=2")
    model = tr.make_model(cfg, "maml")
    params = model.init(jax.random.PRNGKey(0), np.zeros((1, 1), np.float32))
    test = ev.evaluate({"maml": (model, params)}, cfg)
    val = ev.evaluate({"maml": (model, params)}, cfg, stream="validation")
    assert [(r["k_shot"], r["steps"]) for r in val] == [(r["k_shot"], r["steps"]) for r in test]
    assert all(v["mse"] != t["mse"] for v, t in zip(val, test))
    assert val == ev.evaluate({"maml": (model, params)}, cfg, stream="validation")   # the same tasks each time
    with pytest.raises(ValueError, match="stream must be"):
        ev.evaluate({"maml": (model, params)}, cfg, stream="train")


def test_kernel_init_is_a_config_field_and_only_a_new_value_enters_the_fingerprint():
    from omni_jax.errors import OmniJaxError
    cfg = tiny_config()
    # A work directory from before the field: its fingerprint had no model.kernel_init.
    old = config_lib.apply_overrides(cfg, [])
    del old.model["kernel_init"]
    assert tr.fingerprint(cfg, "omni") == config_lib.fingerprint(
        old, "omni", ["data", "model", "train"],
        drop=("train.methods", "train.val_every", "train.val_tasks", "train.ckpt_every", "train.task_chunk", "train.pre_chunk"))
    assert "kernel_init" not in tr.fingerprint(cfg, "maml")["model"]
    torch_cfg = tiny_config("model.kernel_init=torch")
    assert tr.fingerprint(torch_cfg, "maml")["model"]["kernel_init"] == "torch"
    # the model uses it: PyTorch's nn.Linear scale is 1/sqrt(3) of lecun_normal's
    x = np.zeros((1, 1), np.float32)
    k = lambda c: np.asarray(tr.make_model(c, "maml").init(jax.random.PRNGKey(0), x)["params"]["backbone"]["layer1"]
                             ["joint"]["kernel"])
    assert abs(k(torch_cfg).std() * math.sqrt(3 * 64) - 1) < 0.05 and abs(k(cfg).std() * math.sqrt(64) - 1) < 0.1
    assert np.abs(k(torch_cfg)).max() <= 1 / math.sqrt(64)
    with pytest.raises(OmniJaxError, match="model.kernel_init must be one of"):
        tr.check(tiny_config("model.kernel_init=glorot"))
