"""RL model selection on validation tasks (``train.val_every``) and ``--train-only`` (issue 13)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax.errors import OmniJaxError
from omni_jax.rl import evaluate as ev
from omni_jax.rl import train as tr
from omni_jax.training import Best, MetricsWriter, runner, selected
from omni_jax.training.selection import NO_SCORE

from test_rl_train import leaves_equal, tiny_config, train


def selecting_config(**over):
    return tiny_config(**{"train.val_every": 2, "train.val_tasks": 2, **over})


@pytest.mark.parametrize("override,message", [
    ({"train.val_every": 3}, "train.val_every must be 0 .* or a positive multiple of train.chunk_size=2, got 3"),
    ({"train.val_every": -2}, "train.val_every must be 0"),
    ({"train.val_tasks": 0}, "train.val_tasks must be > 0"),
    ({"train.val_steps": -1}, "train.val_steps must be >= 0"),
])
def test_bad_selection_config_is_a_clear_error(override, message):
    with pytest.raises(OmniJaxError, match=message):
        tr.check(tiny_config(**override))


def test_fingerprint_leaves_selection_out_when_it_is_off():
    """Work directories from before model selection resume (the fields are left out at 0), and a
    run that selects never restores one that did not (its state holds the best parameters)."""
    off = tr.fingerprint(tiny_config(), "maml")
    assert "val_every" not in off["train"] and "val_tasks" not in off["train"]
    assert tr.fingerprint(selecting_config(), "maml") != off
    assert tr.fingerprint(selecting_config(**{"train.val_tasks": 4}), "maml") != tr.fingerprint(selecting_config(), "maml")


def test_validation_settings_come_from_the_training_fields():
    cfg = selecting_config(**{"eval.lr": 0.5, "eval.num_traj": 7, "eval.step_rule": "kl_bound", "train.val_steps": 2})
    v = tr.validation_config(cfg)
    assert (v.eval.num_tasks, v.eval.task_chunk, v.eval.max_steps) == (2, 2, 2)
    assert (v.eval.lr, v.eval.num_traj, v.eval.step_rule) == (cfg.train.inner_lr, cfg.train.num_traj, "sgd")
    assert cfg.eval.lr == 0.5 and cfg.eval.num_tasks == 4   # the config itself is left as it was


def test_selected_params_are_the_best_when_selecting():
    state = runner.TrainState(step=jnp.asarray(4), params={"w": jnp.ones(2)}, opt_state=(), rng=jnp.zeros(2, jnp.uint32))
    assert leaves_equal(selected(state).params, state.params) and selected(state).score is None
    chosen = state.replace(best=Best(params={"w": jnp.zeros(2)}, batch_stats=None, score=jnp.asarray(1.0),
                                     step=jnp.asarray(2)))
    assert leaves_equal(selected(chosen).params, {"w": jnp.zeros(2)})
    assert (selected(chosen).step, selected(chosen).score) == (2, 1.0)


@pytest.mark.slow
def test_the_hook_scores_on_validation_tasks_and_keeps_the_best():
    cfg = selecting_config()
    env = tr.make_env_from_config(cfg)
    program = tr.setup(cfg, "maml", env)
    state = program.state
    assert float(state.best.score) == NO_SCORE and int(state.best.step) == 0
    state = state.replace(step=jnp.asarray(2))
    new, metrics = program.hook.fn(state)
    # by hand: the mean return after val_steps=1 plain steps on the validation stream's tasks
    entries = ev.entries_for({"maml": (program.model, state.params)})
    by_hand = ev.AdaptationEvaluator(tr.validation_config(cfg), env, entries, stream="validation").returns()
    assert by_hand.shape == (2, 1, 2)
    np.testing.assert_allclose(metrics["val/return"], by_hand[-1, 0].mean(), rtol=1e-6)
    test_tasks = ev.AdaptationEvaluator(tr.validation_config(cfg), env, entries).returns()
    assert not np.allclose(test_tasks, by_hand)                          # never the test tasks
    assert int(new.best.step) == 2 and float(new.best.score) == pytest.approx(metrics["val/return"])
    assert program.hook.fn(state)[1] == metrics                          # deterministic in the state
    # a worse state later does not replace the best; a better one does
    worse = new.replace(step=jnp.asarray(4), params=jax.tree_util.tree_map(lambda x: x + 5.0, new.params),
                        best=new.best.replace(score=jnp.asarray(1e9, jnp.float32)))
    kept, _ = program.hook.fn(worse)
    assert int(kept.best.step) == 2 and leaves_equal(kept.best.params, state.params)
    better = worse.replace(best=worse.best.replace(score=jnp.asarray(NO_SCORE, jnp.float32)))
    taken, _ = program.hook.fn(better)
    assert int(taken.best.step) == 4 and leaves_equal(taken.best.params, worse.params)


@pytest.mark.slow
def test_selection_resumes_exactly_and_the_evaluation_tests_the_selected_policy(tmp_path):
    from omni_jax.rl.experiment import RLExperiment, trained_models
    cfg = selecting_config(**{"train.methods": ("maml",), "eval.random_reference": False})
    env = tr.make_env_from_config(cfg)
    full = train(cfg, "maml", tmp_path / "a" / "maml", env)
    train(cfg, "maml", tmp_path / "b" / "maml", env, stop_after=2)
    resumed = train(cfg, "maml", tmp_path / "b" / "maml", env)
    assert leaves_equal(full, resumed)
    logged = [r["val/return"] for r in MetricsWriter(tmp_path / "a" / "maml" / "metrics.jsonl").read()]
    assert len(logged) == 2
    best = int(np.argmax(logged))
    assert int(full.best.step) == 2 * (best + 1)
    assert float(full.best.score) == pytest.approx(logged[best])
    # the evaluation and trained_models use the selected parameters, and the records say which
    (policy, params), = trained_models(cfg, tmp_path / "a").values()
    assert leaves_equal(params, full.best.params)
    program = tr.setup(cfg, "maml", env)
    moved = full.replace(params=jax.tree_util.tree_map(lambda x: x + 1.0, full.params))   # not what is tested
    evaluator = RLExperiment().evaluator(cfg, {"maml": program}, env, None)
    records = evaluator({"maml": runner.Trained(program, moved)})
    returns = ev.adaptation_returns(cfg, env, ev.entries_for({"maml": (policy, full.best.params)}))
    assert [r["return"] for r in records] == pytest.approx(list(returns[:, 0].mean(-1)), rel=1e-6)
    assert {r["selected_step"] for r in records} == {int(full.best.step)}
    assert {r["val_return"] for r in records} == {round(float(full.best.score), 3)}


@pytest.mark.slow
def test_train_only_then_eval_only_from_the_command_line(tmp_path, capsys):
    from omni_jax import cli
    args = ["rl", "--env", "navigation2d", "--workdir", str(tmp_path), "--no-progress", "--config.env.horizon=5",
            "--config.policy.widths=(8,8)", "--config.train.num_steps=4", "--config.train.meta_batch=2",
            "--config.train.num_traj=3", "--config.train.chunk_size=2", "--config.train.ckpt_every=2",
            "--config.eval.num_tasks=4", "--config.eval.task_chunk=2", "--config.eval.num_traj=3",
            "--config.eval.max_steps=1", "--config.eval.random_reference=False"]
    assert cli.main(args + ["--train-only", "--eval-only"]) == 2
    assert "--eval-only and --train-only exclude each other" in capsys.readouterr().err
    # one process per method, then one evaluation of both
    assert cli.main(args + ["--train-only", "--config.train.methods=('maml',)"]) == 0
    assert cli.main(args + ["--train-only", "--config.train.methods=('baseline',)"]) == 0
    assert "not evaluated: --train-only" in capsys.readouterr().out
    assert not (tmp_path / "results.json").exists()
    assert cli.main(args + ["--eval-only", "--config.train.methods=('baseline','maml')"]) == 0
    records = json.loads((tmp_path / "results.json").read_text())
    assert sorted({r["method"] for r in records}) == ["baseline", "maml"]


@pytest.mark.slow
def test_evaluating_the_joint_head_only(tmp_path):
    from omni_jax.rl.experiment import train_and_evaluate
    cfg = tiny_config(**{"train.methods": ("omni",), "eval.omni_heads": ("joint",), "eval.max_steps": 1})
    records = train_and_evaluate(cfg, tmp_path, show_progress=False, log=lambda m: None)
    assert [(r["method"], r["steps"]) for r in records] == [("omni", 0), ("omni", 1), ("random", 0), ("random", 1)]
    assert {r.get("head") for r in records if r["method"] == "omni"} == {"joint"}
