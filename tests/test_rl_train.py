"""RL training: resume equality, skipped non-finite updates, config errors (issue 3)."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax import config as config_lib
from omni_jax.errors import OmniJaxError
from omni_jax.omni import skipped_updates, teacher_params
from omni_jax.rl import train as tr
from omni_jax.training import runner


def tiny_config(**over):
    cfg = config_lib.load_config("rl_navigation2d")
    cfg.env.horizon = 5
    cfg.policy.widths = (8, 8)
    t = cfg.train
    t.num_steps, t.meta_batch, t.num_traj, t.chunk_size, t.ckpt_every = 4, 2, 3, 2, 2
    cfg.eval.num_tasks, cfg.eval.task_chunk, cfg.eval.num_traj, cfg.eval.max_steps = 4, 2, 3, 2
    return config_lib.apply_overrides(cfg, [f"{k}={v}" for k, v in over.items()])


def leaves_equal(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def train(cfg, method, directory, env, stop_after=None):
    program = tr.setup(cfg, method, env)
    return runner.train_program(program, directory, tr.fingerprint(cfg, method), show_progress=False,
                                stop_after=stop_after)


@pytest.mark.slow
def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    cfg = tiny_config()
    env = tr.make_env_from_config(cfg)
    full = train(cfg, "omni", tmp_path / "a", env)
    cut = train(cfg, "omni", tmp_path / "b", env, stop_after=2)
    assert int(cut.step) == 2
    resumed = train(cfg, "omni", tmp_path / "b", env)
    assert int(resumed.step) == int(full.step) == 4
    assert leaves_equal(full.params, resumed.params)
    assert leaves_equal(full.opt_state, resumed.opt_state)  # the EMA teacher too
    assert not leaves_equal(full.params, cut.params)
    # the metrics log has each step once
    from omni_jax.training import MetricsWriter
    steps = [r["step"] for r in MetricsWriter(tmp_path / "b" / "metrics.jsonl").read()]
    assert steps == [2, 4]


@pytest.mark.slow
def test_non_finite_update_is_skipped_and_counted():
    cfg = tiny_config()
    env = tr.make_env_from_config(cfg)
    w = config_lib.loss_weights(cfg.omni, "maml")
    policy, opt = tr.make_policy(cfg, env, "maml"), tr.make_optimizer(cfg, w)
    state = tr.init_state(cfg, env, policy, opt, "maml")
    bad = jax.tree_util.tree_map(lambda x: x, state.params)
    bad["params"]["log_std_joint"] = jnp.array([jnp.nan, 0.0])
    state = state.replace(params=bad)
    new, metrics = tr.setup(cfg, "maml", env).chunk(state)
    assert float(metrics["skipped"]) == 1.0 and float(metrics["skipped_total"]) == 1.5  # chunk means of 1, 2
    assert int(skipped_updates(new.opt_state)[1]) == 2
    assert leaves_equal(new.params, state.params)  # nothing trained on NaN
    assert int(new.step) == 2


def test_initial_flows_are_the_joint_flow():
    cfg = tiny_config()
    env = tr.make_env_from_config(cfg)
    w = config_lib.loss_weights(cfg.omni, "omni")
    policy = tr.make_policy(cfg, env, "omni")
    state = tr.init_state(cfg, env, policy, tr.make_optimizer(cfg, w), "omni")
    obs = jax.random.normal(jax.random.PRNGKey(0), (7, 2))
    outs = [policy.apply(state.params, obs, f) for f in ("joint", "pre", "meta")]
    for m, s in outs[1:]:
        np.testing.assert_array_equal(m, outs[0][0])
        np.testing.assert_array_equal(s, outs[0][1])


@pytest.mark.parametrize("override,message", [
    ({"env.horizon": 0}, "env.horizon must be a positive integer"),
    ({"env.horizon": -3}, "env.horizon must be a positive integer"),
    ({"env.backend": "warp"}, "env.backend='warp' is unknown"),
    ({"train.chunk_size": 3}, "must be a multiple of train.chunk_size"),
    ({"eval.omni_head": "both"}, "eval.omni_head"),
    ({"policy.kernel_init": "orthogonal"}, "policy.kernel_init='orthogonal' is unknown"),
    ({"train.task_chunk": 0}, "train.task_chunk must be > 0"),
    ({"eval.step_rule": "adam"}, "eval.step_rule='adam' is unknown"),
    ({"train.outer_optimizer": "rmsprop"}, "train.outer_optimizer='rmsprop' is unknown"),
    ({"eval.omni_heads": ("pre", "meta")}, r"eval.omni_heads=\('pre', 'meta'\) must include eval.omni_head='joint'"),
    ({"eval.omni_heads": ("joint", "both")}, r"eval.omni_heads has unknown value\(s\) \['both'\]"),
])
def test_bad_config_is_a_clear_error(override, message):
    with pytest.raises(OmniJaxError, match=message):
        tr.check(tiny_config(**override))


@pytest.mark.parametrize("kernel_init", ["lecun_normal", "xavier_uniform"])
def test_policy_kernel_init(kernel_init):
    """policy.kernel_init reaches every Dense kernel of the policy (backbone, branches, heads):
    lecun_normal's std is 1/sqrt(fan_in), xavier_uniform's sqrt(2/(fan_in+fan_out))."""
    cfg = tiny_config(**{"policy.kernel_init": kernel_init, "policy.widths": (256, 256)})
    env = tr.make_env_from_config(cfg)
    params = tr.make_policy(cfg, env, "omni").init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))["params"]["mean"]
    kernels = {jax.tree_util.keystr(path): x for path, x in jax.tree_util.tree_leaves_with_path(params)
               if "kernel" in jax.tree_util.keystr(path)}
    assert len(kernels) == 3 * 3  # 2 Omni-Layers and the Omni-Head, 3 flows each
    for name, k in kernels.items():
        fan_in, fan_out = k.shape
        want = (1 / np.sqrt(fan_in) if kernel_init == "lecun_normal" else np.sqrt(2 / (fan_in + fan_out)))
        assert abs(float(np.std(k)) / want - 1) < (0.1 if k.size > 500 else 0.35), (name, float(np.std(k)), want)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_outer_optimizer(name):
    """train.outer_optimizer's first step on a known gradient: SGD moves by -lr·g; Adam (bias-corrected
    moments of one gradient) by -lr·g/(|g| + eps), i.e. lr against the sign of each nonzero entry."""
    cfg = tiny_config(**{"train.outer_optimizer": name, "train.outer_lr": 0.01})
    opt = tr.make_optimizer(cfg, config_lib.loss_weights(cfg.omni, "omni"))
    params = {"w": jnp.array([1.0, -2.0, 3.0, 0.5])}
    grads = {"w": jnp.array([0.5, -4.0, 0.0, 1e-3])}
    updates, state = opt.update(grads, opt.init(params), params)
    step = np.asarray(updates["w"])
    if name == "sgd":
        np.testing.assert_allclose(step, -0.01 * np.asarray(grads["w"]), rtol=1e-6)
    else:
        np.testing.assert_allclose(step, [-0.01, 0.01, 0.0, -0.01 * 1e-3 / (1e-3 + 1e-8)], rtol=1e-5)
    # the EMA teacher (Eq. 9) moves (1 - β) of the way to the updated parameters, whatever the optimizer
    np.testing.assert_allclose(teacher_params(state)["w"], np.asarray(params["w"]) + (1 - cfg.omni.ema_decay) * step,
                               rtol=1e-6)
    assert tr.fingerprint(cfg, "omni")["train"].get("outer_optimizer") == (None if name == "sgd" else "adam")


def test_meta_batch_must_divide_over_devices():
    three_devices = types.SimpleNamespace(devices=np.empty(3))
    with pytest.raises(OmniJaxError, match="train.meta_batch=2 does not divide over the 3 devices"):
        tr.check(tiny_config(), three_devices)


def test_cli_errors_are_one_line(capsys, tmp_path):
    from omni_jax import cli
    assert cli.main(["rl", "--env", "cartpole", "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown env 'cartpole'" in err
    assert cli.main(["rl", "--env", "navigation2d", "--workdir", str(tmp_path), "--config.env.horizon=0"]) == 2
    assert "env.horizon must be a positive integer" in capsys.readouterr().err
    assert cli.main(["rl", "--env", "halfcheetah_vel", "--workdir", str(tmp_path),
                     "--config.env.backend=warp"]) == 2
    assert "env.backend='warp' is unknown" in capsys.readouterr().err
    # --config alone takes the config's env; with a different --env it is an error
    assert cli.main(["rl", "--config", "rl_halfcheetah_dir_cpu", "--env", "navigation2d", "--workdir",
                     str(tmp_path)]) == 2
    assert "is for env 'halfcheetah_dir', not --env navigation2d" in capsys.readouterr().err
    assert cli.main(["rl", "--config", "rl_halfcheetah_dir_cpu", "--workdir", str(tmp_path),
                     "--config.env.horizon=0"]) == 2       # the config loaded: its own check fails
    assert "env.horizon must be a positive integer" in capsys.readouterr().err


@pytest.mark.slow
def test_precompiled_programs_are_the_ones_training_and_evaluation_run(tmp_path):
    """The runner compiles the training chunks and the evaluation in worker threads; training and
    evaluation must then run those executables (no second compilation), on the trained parameters."""
    from omni_jax.rl import evaluate as ev
    from omni_jax.rl.experiment import train_and_evaluate
    compiled, recording = [], [True]

    def listener(name, duration, **kw):
        if recording[0] and name == "/jax/core/compile/backend_compile_duration":
            compiled.append(kw.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    cfg = tiny_config(**{"train.discount": 0.98, "train.methods": ("maml", "omni")})  # programs no other test compiled
    try:
        records = train_and_evaluate(cfg, tmp_path, show_progress=False, log=lambda m: None)
    finally:
        recording[0] = False
    assert compiled.count("jit(chunk)") == 2 and compiled.count("jit(fn)") == 1, compiled
    # the trained parameters went in: a new evaluator on the checkpoints gives the same returns,
    # and the initial parameters give other returns
    env = tr.make_env_from_config(cfg)
    programs = {m: tr.setup(cfg, m, env) for m in ("maml", "omni")}
    trained = {m: train(cfg, m, tmp_path / m, env) for m in programs}
    # the reference (eval.random_reference, on by default) is the untrained plain policy of its own stream
    reference = {"random": tr.random_policy(cfg, env)}
    entries = lambda states: ev.entries_for({**{m: (programs[m].model, states[m].params) for m in programs},
                                             **reference})
    returns = ev.adaptation_returns(cfg, env, entries(trained))
    again = ev.records_from_returns(cfg.env.name, [e[0] for e in entries(trained)], returns, "joint")
    assert again == records
    assert [r["steps"] for r in records if r["method"] == "random"] == list(range(cfg.eval.max_steps + 1))
    initial = ev.adaptation_returns(cfg, env, entries({m: p.state for m, p in programs.items()}))
    assert returns.shape == initial.shape == (cfg.eval.max_steps + 1, 5, cfg.eval.num_tasks)
    assert not np.allclose(initial[:, :4], returns[:, :4])
    np.testing.assert_array_equal(initial[:, 4], returns[:, 4])      # the reference is not trained


def test_random_reference_is_a_fresh_plain_policy():
    cfg = tiny_config()
    env = tr.make_env_from_config(cfg)
    policy, params = tr.random_policy(cfg, env)
    assert policy == tr.make_policy(cfg, env, "baseline")             # plain: one flow, no branches
    assert "log_std_pre" not in params["params"]
    assert leaves_equal(params, tr.random_policy(cfg, env)[1])        # deterministic
    maml = tr.setup(cfg, "maml", env).state.params
    assert not leaves_equal(params, maml)                            # not any method's starting point
    np.testing.assert_array_equal(np.asarray(params["params"]["log_std_joint"]), cfg.policy.init_log_std)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["maml", "omni"])
def test_reusing_the_sampled_adaptation_gives_the_recomputed_update(method):
    """One meta-iteration with the adapted parameters taken from sampling the queries equals the
    one that recomputes the inner step in the loss (same trajectories, same update up to float32
    rounding; for Omni-Training the teacher still adapts itself)."""
    cfg = tiny_config()
    env = tr.make_env_from_config(cfg)
    w = config_lib.loss_weights(cfg.omni, method)
    policy, opt = tr.make_policy(cfg, env, method), tr.make_optimizer(cfg, w)
    state = tr.init_state(cfg, env, policy, opt, method)
    # move the teacher away from the student so that using the student's adapted parameters for
    # the teacher would show
    state = state.replace(params=jax.tree_util.tree_map(lambda x: x * 1.1, state.params))
    out = {}
    for reuse in (True, False):
        step = jax.jit(tr.make_step(cfg, env, policy, w, opt, reuse_adaptation=reuse))
        out[reuse] = step(state)
    (new_a, m_a), (new_b, m_b) = out[True], out[False]
    assert float(m_a["skipped"]) == 0.0
    for k in m_b:
        if k.startswith("loss/") or k.startswith("return/"):
            np.testing.assert_allclose(float(m_a[k]), float(m_b[k]), rtol=2e-4, atol=1e-6, err_msg=k)
    for a, b in zip(jax.tree_util.tree_leaves(new_a.params), jax.tree_util.tree_leaves(new_b.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-6)
    assert not leaves_equal(new_a.params, state.params)


@pytest.mark.slow
def test_kl_bounded_evaluation_and_validation_tasks():
    """``eval.step_rule="kl_bound"`` with a bound no step reaches gives the plain steps' returns; a
    tight bound changes them; ``stream="validation"`` draws tasks other than the test tasks."""
    from omni_jax.rl import evaluate as ev
    cfg = tiny_config()
    env = tr.make_env_from_config(cfg)
    policy = tr.make_policy(cfg, env, "maml")
    params = tr.init_state(cfg, env, policy, tr.make_optimizer(cfg, config_lib.loss_weights(cfg.omni, "maml")),
                           "maml").params
    entries = ev.entries_for({"maml": (policy, params)})
    plain = ev.AdaptationEvaluator(cfg, env, entries).returns()
    cfg.eval.step_rule, cfg.eval.max_kl = "kl_bound", 1e9
    np.testing.assert_allclose(ev.AdaptationEvaluator(cfg, env, entries).returns(), plain, rtol=1e-5, atol=1e-5)
    cfg.eval.max_kl = 1e-8
    tight = ev.AdaptationEvaluator(cfg, env, entries).returns()
    np.testing.assert_allclose(tight[0], plain[0], rtol=1e-6)          # step 0: no adaptation yet
    assert not np.allclose(tight[1:], plain[1:])
    cfg.eval.step_rule = "sgd"
    validation = ev.AdaptationEvaluator(cfg, env, entries, stream="validation").returns()
    assert not np.allclose(validation[0], plain[0])


@pytest.mark.slow
def test_trained_models_restores_finished_methods_and_refuses_unfinished_ones(tmp_path):
    from omni_jax.rl.experiment import trained_models
    cfg = tiny_config(**{"train.methods": ("maml",)})
    env = tr.make_env_from_config(cfg)
    with pytest.raises(OmniJaxError, match="has trained 0 of 4"):
        trained_models(cfg, tmp_path)
    assert not (tmp_path / "maml").exists()          # looking creates nothing
    train(cfg, "maml", tmp_path / "maml", env, stop_after=2)
    with pytest.raises(OmniJaxError, match="has trained 2 of 4"):
        trained_models(cfg, tmp_path)
    final = train(cfg, "maml", tmp_path / "maml", env)
    (policy, params), = trained_models(cfg, tmp_path).values()
    assert leaves_equal(params, final.params) and policy == tr.make_policy(cfg, env, "maml")


def test_results_table_keeps_a_space_between_wide_cells():
    from omni_jax.rl import evaluate as ev
    recs = [{"method": "omni_meta", "steps": s, "return": -81.2, "ci95": 12.04, "median": -78.5} for s in range(3)]
    row = ev.results_table(recs).splitlines()[1]
    assert row.count(") -81") == 2, row


def test_only_the_omni_heads_asked_for_are_evaluated():
    from omni_jax.rl import evaluate as ev
    models = {"maml": ("p", "a"), "omni": ("q", "b"), "random": ("r", "c")}
    assert [e[0] for e in ev.entries_for(models)] == ["maml", "omni_joint", "omni_pre", "omni_meta", "random"]
    entries = ev.entries_for(models, ("meta", "joint"))
    assert [(e[0], e[2], e[3]) for e in entries] == [("maml", "a", "joint"), ("omni_joint", "b", "joint"),
                                                     ("omni_meta", "b", "meta"), ("random", "c", "joint")]
