"""Training for RL (paper §6.3): one jitted meta-iteration per method.

Every method is the Omni-Loss (``omni_jax.omni``) with REINFORCE as the
pre-training algorithm and MAML-RL as the meta-training algorithm:

* ``baseline``: a plain Gaussian MLP policy, REINFORCE on sampled tasks only;
* ``maml``: the same policy, MAML-RL only;
* ``omni``: the Omni-Net policy with the full Omni-Loss (or the terms of
  ``config.omni``): the pre-flow by REINFORCE, the meta-flow by MAML-RL, the
  joint flow by both, EMA self-distillation on action means and log-stds.

One iteration (:func:`make_step`), all inside one jitted function:

1. sample ``meta_batch`` tasks;
2. one rollout, with every flow that needs data acting on its own slice of
   one vmapped batch of environments: the support trajectories of each
   meta-trained flow and the mini-batch of each pre-trained flow (the joint
   flow, trained by both, uses its support trajectories as its mini-batch:
   the same policy on the same tasks);
3. advantages (linear baseline per task), one inner REINFORCE step per task
   and meta-trained flow, and a second rollout of the adapted policies (the
   query trajectories). Both rollouts are one ``lax.scan`` of two phases, so
   the physics is compiled once per method (it dominates the compile time of
   the cheetah);
4. the Omni-Loss and its gradient, the outer SGD step, the EMA teacher
   (:func:`omni_jax.omni.omni_update`). A non-finite loss or gradient skips
   the update and is counted.

:func:`setup` makes one method's :class:`~omni_jax.training.runner.Program`
(its chunk of meta-iterations, built once per method and per run) and, with
``train.val_every``, its model-selection hook (:func:`selection_hook`): the
parameters with the best return on validation tasks are the ones tested.
"""
from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from omni_jax import config as config_lib
from omni_jax.nn import FLOWS, flow_apply
from omni_jax.nn.models import KERNEL_INITS
from omni_jax.omni import OmniLossWeights, omni_loss, omni_optimizer, omni_update
from omni_jax.rl import acting, losses
from omni_jax.rl.envs import BACKENDS, ENVS, make_env
from omni_jax.rl.evaluate import AdaptationEvaluator, PolicyApply
from omni_jax.rl.networks import GaussianPolicy
from omni_jax.training import (Chunk, TrainState, check_divisible, initial_best, prng_stream, replicate,
                               shard_tasks, validation_hook)
from omni_jax.training.runner import Program

TRAINED_METHODS = ("baseline", "maml", "omni")
STEP_RULES = ("sgd", "kl_bound")   # the test-time adaptation step (eval.step_rule)
OUTER_OPTIMIZERS = {"sgd": optax.sgd, "adam": optax.adam}  # the meta-update (train.outer_optimizer)


# ---------------------------------------------------------------------------- config


def check(cfg: ml_collections.ConfigDict, mesh=None) -> None:
    """Checks the config's values; raises OmniJaxError naming the field."""
    config_lib.check_fields(cfg, "rl", config_lib.experiment_references("rl"))
    req = config_lib.require
    req(cfg.env.name in ENVS, f"unknown env {cfg.env.name!r}; expected one of {', '.join(ENVS)}")
    req(cfg.env.backend in BACKENDS,
        f"config field env.backend={cfg.env.backend!r} is unknown; expected one of {', '.join(BACKENDS)}")
    req(isinstance(cfg.env.horizon, int) and cfg.env.horizon > 0,
        f"config field env.horizon must be a positive integer, got {cfg.env.horizon!r}")
    config_lib.check_positive(cfg, "train.num_steps", "train.meta_batch", "train.num_traj",
                              "train.inner_lr", "train.outer_lr", "train.chunk_size", "train.ckpt_every",
                              "policy.widths", "eval.num_tasks", "eval.num_traj", "eval.max_steps", "eval.lr",
                              "eval.task_chunk", "train.task_chunk", "eval.max_kl")
    config_lib.check_test_tasks(cfg)
    req(0.0 < cfg.train.discount <= 1.0, f"config field train.discount must be in (0, 1], got {cfg.train.discount}")
    config_lib.check_choices(cfg.train.methods, TRAINED_METHODS, "train.methods")
    req(cfg.policy.kernel_init in KERNEL_INITS,
        f"config field policy.kernel_init={cfg.policy.kernel_init!r} is unknown; "
        f"expected one of {', '.join(KERNEL_INITS)}")
    req(cfg.train.outer_optimizer in OUTER_OPTIMIZERS,
        f"config field train.outer_optimizer={cfg.train.outer_optimizer!r} is unknown; "
        f"expected one of {', '.join(OUTER_OPTIMIZERS)}")
    req(cfg.eval.step_rule in STEP_RULES,
        f"config field eval.step_rule={cfg.eval.step_rule!r} is unknown; expected one of {', '.join(STEP_RULES)}")
    req(cfg.eval.omni_head in FLOWS,
        f"config field eval.omni_head must be joint, pre or meta, got {cfg.eval.omni_head!r}")
    config_lib.check_choices(cfg.eval.omni_heads, FLOWS, "eval.omni_heads")
    req(cfg.eval.omni_head in cfg.eval.omni_heads,
        f"config field eval.omni_heads={tuple(cfg.eval.omni_heads)!r} must include eval.omni_head="
        f"{cfg.eval.omni_head!r}, the head reported as omni")
    config_lib.check_multiples(cfg.train, "train", ("num_steps", "ckpt_every"), of="chunk_size")
    v = cfg.train.val_every
    req(isinstance(v, int) and v >= 0 and v % cfg.train.chunk_size == 0,
        f"config field train.val_every must be 0 (no model selection) or a positive multiple of "
        f"train.chunk_size={cfg.train.chunk_size}, got {v!r}")
    config_lib.check_positive(cfg, "train.val_tasks")
    config_lib.check_positive(cfg, "train.val_steps", allow_zero=True)
    config_lib.check_omni_group(cfg.omni)
    if mesh is not None:
        check_divisible(cfg.train.meta_batch, mesh, "train.meta_batch")
        check_divisible(cfg.eval.task_chunk, mesh, "eval.task_chunk")
        if cfg.train.val_every:
            check_divisible(cfg.train.val_tasks, mesh, "train.val_tasks")


def fingerprint(cfg, method: str) -> dict:
    """What a method's checkpoint depends on (not the eval settings or the method list)."""
    return config_lib.fingerprint(cfg, method, ["env", "policy", "train"], drop=("train.methods", "train.ckpt_every",
                                                                          "train.task_chunk"),
                                  added={"train.outer_optimizer": "sgd", "train.val_every": 0,
                                         "train.val_tasks": 40, "train.val_steps": 1},
                                  renamed={"train.num_steps": "train.num_iterations"})


# ---------------------------------------------------------------------------- policy and optimizer


def make_env_from_config(cfg, mesh=None):
    """The config's Brax environment (``env.name`` on ``env.backend``)."""
    return make_env(cfg.env.name, cfg.env.backend)


def make_policy(cfg, env, method: str) -> GaussianPolicy:
    p = cfg.policy
    return GaussianPolicy(env.action_size, widths=tuple(p.widths), activation=p.activation,
                          omni=(method == "omni"), init_log_std=p.init_log_std,
                          kernel_init=p.kernel_init)


def make_apply(policy):
    return flow_apply(policy)


def make_optimizer(cfg, weights: OmniLossWeights) -> optax.GradientTransformation:
    """The outer step at ``train.outer_lr``, with the EMA teacher (Eq. 9) when distilling.

    ``train.outer_optimizer``: ``"sgd"`` (the paper's outer SGD, lr 0.03) or ``"adam"`` (per-parameter
    scaled steps; the CPU-sized HalfCheetah protocols use it, see their config files)."""
    base = OUTER_OPTIMIZERS[cfg.train.outer_optimizer](cfg.train.outer_lr)
    return omni_optimizer(base, weights, cfg.omni.ema_decay)


def init_state(cfg, env, policy, optimizer, method: str) -> TrainState:
    """The initial state; with model selection (``train.val_every``) its ``best`` record holds the
    best parameters so far, their validation return and their iteration (:func:`selection_hook`)."""
    k_init, k_train = jax.random.split(prng_stream(cfg.seed, "init", method))
    params = policy.init(k_init, jnp.zeros((1, env.observation_size)))
    if cfg.policy.flows_start_as_joint:
        params = flows_start_as_joint(params)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params),
                      rng=k_train, best=initial_best(params) if cfg.train.val_every else None)


def validation_config(cfg) -> ml_collections.ConfigDict:
    """The evaluation settings of model selection, from ``train`` fields only (so the selection is
    part of what the checkpoint's fingerprint covers): ``train.val_tasks`` tasks of the validation
    stream, one batch, ``train.val_steps`` plain REINFORCE steps at the inner learning rate on
    ``train.num_traj`` trajectories each."""
    v = copy.deepcopy(cfg)
    t = cfg.train
    v.eval.num_tasks = v.eval.task_chunk = t.val_tasks
    v.eval.max_steps, v.eval.num_traj, v.eval.lr, v.eval.step_rule = t.val_steps, t.num_traj, t.inner_lr, "sgd"
    return v


def selection_hook(cfg, env, policy, method: str, mesh=None):
    """Validation-based model selection (:func:`omni_jax.training.selection.validation_hook`)
    every ``train.val_every`` iterations (``None`` when it is 0).

    Scores the current parameters by the mean return after ``train.val_steps`` adaptation steps on
    ``train.val_tasks`` validation tasks (:func:`validation_config`; the same tasks and rollout keys
    at every check, drawn from the training seed's ``validation`` PRNG stream, never the test
    tasks; Omni-Training is scored on its joint flow), and keeps the best in ``state.best``, which
    is checkpointed, so a resumed run selects exactly as an uninterrupted one. Logged as
    ``val/return``.
    """
    if not cfg.train.val_every:
        return None
    label = "omni_joint" if method == "omni" else method
    entry = (label, PolicyApply(policy), None, FLOWS[0])
    evaluator = AdaptationEvaluator(validation_config(cfg), env, [entry], mesh=mesh, stream="validation")

    def validate(params, _):
        val = float(np.mean(evaluator.returns([params])[-1, 0]))
        return val, {"val/return": val}

    return validation_hook(validate, cfg.train.val_every)


def random_policy(cfg, env):
    """``(policy, params)``: the reference of the evaluation (``eval.random_reference``), a plain
    Gaussian policy freshly initialised from its own PRNG stream (``init``, ``random``): the
    methods' starting point, whose actions are noise of std ``exp(policy.init_log_std)`` around an
    untrained network's output."""
    policy = make_policy(cfg, env, "random")
    return policy, policy.init(prng_stream(cfg.seed, "init", "random"), jnp.zeros((1, env.observation_size)))


def flows_start_as_joint(params):
    """Makes every flow of a fresh Omni-Net policy the joint flow's function.

    The backbone's pre- and meta-branches are zeroed (they still get
    gradients: d/dW of a zero branch is not zero) and the pre- and meta-heads
    and log-stds are copied from the joint ones. With independently
    initialised branches the pre- and meta-flows start as policies that
    drive far off (returns around -1,000 against -30 for the joint flow on
    navigation2d), and the EMA self-distillation then holds them there or
    blows up through the adapted teacher.
    """
    p = jax.tree_util.tree_map(lambda x: x, params)  # a copy
    inner = p["params"]
    if "log_std_pre" not in inner:
        return params  # a plain policy
    joint, branches = FLOWS[0], FLOWS[1:]
    for layer in inner["mean"]["backbone"].values():
        for b in branches:
            if b in layer:
                layer[b] = jax.tree_util.tree_map(jnp.zeros_like, layer[b])
    head = inner["mean"]["head"]
    for b in branches:
        head[b] = jax.tree_util.tree_map(jnp.copy, head[joint])
        inner[f"log_std_{b}"] = jnp.copy(inner[f"log_std_{joint}"])
    return p


# ---------------------------------------------------------------------------- one meta-iteration


def flows_of(weights: OmniLossWeights):
    """``(pre_flows, meta_flows)``: the flows trained by REINFORCE and by MAML-RL."""
    joint, pre_flow, meta_flow = FLOWS
    pre = [f for f, on in ((joint, weights.joint_pre), (pre_flow, weights.pre)) if on]
    meta = [f for f, on in ((joint, weights.joint_meta), (meta_flow, weights.meta)) if on]
    return pre, meta


def make_step(cfg, env, policy, weights: OmniLossWeights, optimizer, mesh=None, reuse_adaptation: bool = True):
    """One meta-iteration ``step(state, data) -> (state, metrics)``; pure, jittable (``data`` is
    unused: tasks and trajectories are sampled inside).

    ``reuse_adaptation``: the meta-loss takes each task's adapted parameters
    from the sampling of the query trajectories instead of recomputing the
    inner step (:func:`omni_jax.rl.losses.adapted_as_known`; the same
    gradients, one pass over the support trajectories fewer). ``False``
    recomputes it (the reference the benchmark compares against)."""
    t = cfg.train
    apply = make_apply(policy)
    pre_alg = losses.reinforce(apply)
    meta_alg = losses.maml_rl(apply, inner_lr=t.inner_lr, first_order=t.first_order, task_chunk=t.task_chunk)
    pre_flows, meta_flows = flows_of(weights)

    def loss_fn(params, teacher, batch, episode):
        # the adapted parameters in ``episode`` are the student's: the teacher adapts itself
        teacher_episode = {f: {k: v for k, v in e.items() if k != "adapted"} for f, e in episode.items()}
        total, metrics = omni_loss(params, teacher, batch, episode, pre_algorithm=pre_alg,
                                   meta_algorithm=meta_alg, weights=weights, teacher_episode=teacher_episode)
        return total, (metrics, None)

    update = omni_update(loss_fn, optimizer)
    first = meta_flows + [f for f in pre_flows if f not in meta_flows]  # who acts in the first rollout
    roll = dict(num_traj=t.num_traj, horizon=cfg.env.horizon)

    def sample(params, tasks, k_first, k_query):
        """The first rollout (every flow in ``first``) and the query rollout (the adapted
        meta-trained flows), as a ``lax.scan`` over the two phases so that the physics is
        compiled once. In the query phase the pre-only flow also acts (its samples are
        dropped): one wasted group of ``len(first)`` for Omni-Training, none for MAML.
        Returns ``(first_traj, query, adapted)``: ``adapted`` lists the per-task
        parameters each group acted with in the query phase."""
        if not meta_flows:
            traj = acting.rollout(env, [(apply, f, False) for f in first], [params] * len(first), tasks,
                                  k_first, **roll)
            return losses.add_advantages_batched(traj, t.discount), None, None
        policies = [(apply, f, True) for f in first]
        per_task = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (t.meta_batch,) + x.shape), params)

        def adapt_all(ps, traj):
            return [losses.adapt_tasks(apply, ps[g], acting.select(traj, g), f, lr=t.inner_lr, task_chunk=t.task_chunk)
                    if f in meta_flows else ps[g] for g, f in enumerate(first)]

        def phase(ps, inp):
            key, is_first = inp
            traj = acting.rollout(env, policies, ps, tasks, key, **roll)
            traj = losses.add_advantages_batched(traj, t.discount)
            ps = jax.lax.cond(is_first, adapt_all, lambda ps, _: ps, ps, traj)
            return ps, traj

        adapted, trajs = jax.lax.scan(phase, [per_task] * len(first),
                                (jnp.stack([k_first, k_query]), jnp.array([True, False])))
        first_traj = jax.tree_util.tree_map(lambda x: x[0], trajs)
        query = jax.tree_util.tree_map(lambda x: x[1, :len(meta_flows)], trajs)
        return first_traj, query, adapted

    def step(state: TrainState, data=None):
        rng, k_tasks, k_first, k_query = jax.random.split(state.rng, 4)
        tasks = shard_tasks(env.sample_tasks(k_tasks, t.meta_batch), mesh)
        metrics = {}

        traj, query, adapted = sample(state.params, tasks, k_first, k_query)
        sampled = {f: acting.select(traj, g) for g, f in enumerate(first)}
        for f in first:
            metrics[f"return/{f}"] = jnp.mean(acting.episode_returns(sampled[f]))
        metrics["baseline_reg_max"] = jnp.max(traj["baseline_reg"])
        batch = {f: sampled[f] for f in pre_flows}
        episode = {}
        for g, f in enumerate(meta_flows):
            episode[f] = {"support": sampled[f], "query": acting.select(query, g)}
            if reuse_adaptation:
                episode[f]["adapted"] = adapted[g]  # meta_flows lead ``first``: group g is flow f
            metrics[f"return/{f}_adapted"] = jnp.mean(acting.episode_returns(episode[f]["query"]))

        params, opt_state, _, _, loss_metrics = update(state.params, state.opt_state, batch, episode)
        metrics.update(loss_metrics)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state, rng=rng), metrics

    return step


def setup(cfg, method: str, env, mesh=None) -> Program:
    """One method set up to train: its policy, initial state and chunk of meta-iterations."""
    weights = config_lib.loss_weights(cfg.omni, method)
    policy = make_policy(cfg, env, method)
    optimizer = make_optimizer(cfg, weights)
    t = cfg.train
    return Program(state=replicate(init_state(cfg, env, policy, optimizer, method), mesh),
                   chunk=Chunk(make_step(cfg, env, policy, weights, optimizer, mesh), t.chunk_size),
                   num_steps=t.num_steps, ckpt_every=t.ckpt_every, model=policy,
                   hook=selection_hook(cfg, env, policy, method, mesh))
