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
4. the Omni-Loss and its gradient, the outer SGD step, the EMA teacher. A
   non-finite loss or gradient skips the update and is counted.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import optax

from omni_jax import config as config_lib
from omni_jax import omni as omni_lib
from omni_jax.omni import OmniLossWeights, ema_teacher, omni_loss, teacher_params
from omni_jax.rl import acting, losses
from omni_jax.rl.envs import BACKENDS, ENVS, make_env
from omni_jax.nn.models import KERNEL_INITS
from omni_jax.rl.networks import GaussianPolicy
from omni_jax.training import (CheckpointStore, MetricsWriter, TrainState, check_divisible, replicate,
                               scan_steps, shard_tasks, train_loop)

TRAINED_METHODS = ("baseline", "maml", "omni")


# ---------------------------------------------------------------------------- config


def validate(cfg: ml_collections.ConfigDict, mesh=None) -> None:
    """Checks the config's values; raises OmniJaxError naming the field."""
    req = config_lib.require
    req(cfg.env.name in ENVS, f"unknown env {cfg.env.name!r}; expected one of {', '.join(ENVS)}")
    req(cfg.env.backend in BACKENDS,
        f"config field env.backend={cfg.env.backend!r} is unknown; expected one of {', '.join(BACKENDS)}")
    req(isinstance(cfg.env.horizon, int) and cfg.env.horizon > 0,
        f"config field env.horizon must be a positive integer, got {cfg.env.horizon!r}")
    config_lib.check_positive(cfg, "train.num_iterations", "train.meta_batch", "train.num_traj",
                              "train.inner_lr", "train.outer_lr", "train.chunk_size", "train.ckpt_every",
                              "policy.widths", "eval.num_tasks", "eval.num_traj", "eval.max_steps", "eval.lr",
                              "eval.task_chunk")
    req(0.0 < cfg.train.discount <= 1.0, f"config field train.discount must be in (0, 1], got {cfg.train.discount}")
    config_lib.check_choices(cfg.train.methods, TRAINED_METHODS, "train.methods")
    req(cfg.policy.kernel_init in KERNEL_INITS,
        f"config field policy.kernel_init={cfg.policy.kernel_init!r} is unknown; "
        f"expected one of {', '.join(KERNEL_INITS)}")
    req(cfg.eval.omni_head in ("joint", "pre", "meta"),
        f"config field eval.omni_head must be joint, pre or meta, got {cfg.eval.omni_head!r}")
    config_lib.check_multiples(cfg.train, "train", ("num_iterations", "ckpt_every"), of="chunk_size")
    config_lib.check_omni_group(cfg.omni)
    if mesh is not None:
        check_divisible(cfg.train.meta_batch, mesh, "train.meta_batch")
        check_divisible(cfg.eval.task_chunk, mesh, "eval.task_chunk")


def method_weights(cfg, method: str) -> OmniLossWeights:
    return omni_lib.method_weights(method, cfg.omni)


def fingerprint(cfg, method: str) -> dict:
    """What a method's checkpoint depends on (not the eval settings or the method list)."""
    d = config_lib.select(cfg, ["env", "policy", "train"])
    for k in ("methods", "ckpt_every"):
        d["train"].pop(k, None)
    d["seed"] = cfg.seed
    d["method"] = method
    if method == "omni":
        d["omni"] = config_lib.select(cfg, ["omni"])["omni"]
    return d


# ---------------------------------------------------------------------------- policy and optimizer


def make_env_from_config(cfg):
    return make_env(cfg.env.name, cfg.env.backend)


def make_policy(cfg, env, method: str) -> GaussianPolicy:
    p = cfg.policy
    return GaussianPolicy(env.action_size, widths=tuple(p.widths), activation=p.activation,
                          omni=(method == "omni"), init_log_std=p.init_log_std,
                          kernel_init=p.kernel_init)


def make_apply(policy):
    return lambda params, obs, flow: policy.apply(params, obs, flow)


def make_optimizer(cfg, weights: OmniLossWeights) -> optax.GradientTransformation:
    """Outer SGD (lr 0.03 in the paper), with the EMA teacher (Eq. 9) when distilling."""
    opt = optax.sgd(cfg.train.outer_lr)
    if weights.needs_teacher:
        opt = optax.chain(opt, ema_teacher(cfg.omni.ema_decay))
    return opt


def init_state(cfg, env, policy, optimizer, method: str) -> TrainState:
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), TRAINED_METHODS.index(method))
    k_init, k_train = jax.random.split(key)
    params = policy.init(k_init, jnp.zeros((1, env.observation_size)))
    if cfg.policy.flows_start_as_joint:
        params = flows_start_as_joint(params)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params),
                      rng=k_train, extra={"skipped_total": jnp.zeros((), jnp.int32)})


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
    for layer in inner["mean"]["backbone"].values():
        for b in ("pre", "meta"):
            if b in layer:
                layer[b] = jax.tree_util.tree_map(jnp.zeros_like, layer[b])
    head = inner["mean"]["head"]
    for b in ("pre", "meta"):
        head[b] = jax.tree_util.tree_map(jnp.copy, head["joint"])
        inner[f"log_std_{b}"] = jnp.copy(inner["log_std_joint"])
    return p


# ---------------------------------------------------------------------------- one meta-iteration


def flows_of(weights: OmniLossWeights):
    """``(pre_flows, meta_flows)``: the flows trained by REINFORCE and by MAML-RL."""
    pre = [f for f, on in (("joint", weights.joint_pre), ("pre", weights.pre)) if on]
    meta = [f for f, on in (("joint", weights.joint_meta), ("meta", weights.meta)) if on]
    return pre, meta


def make_step(cfg, env, policy, weights: OmniLossWeights, optimizer, mesh=None):
    """One meta-iteration ``step(state) -> (state, metrics)``; pure, jittable."""
    t = cfg.train
    apply = make_apply(policy)
    pre_alg = losses.reinforce(apply)
    meta_alg = losses.maml_rl(apply, inner_lr=t.inner_lr, first_order=t.first_order)
    pre_flows, meta_flows = flows_of(weights)
    first = meta_flows + [f for f in pre_flows if f not in meta_flows]  # who acts in the first rollout
    roll = dict(num_traj=t.num_traj, horizon=cfg.env.horizon)

    def sample(params, tasks, k_first, k_query):
        """The first rollout (every flow in ``first``) and the query rollout (the adapted
        meta-trained flows), as a ``lax.scan`` over the two phases so that the physics is
        compiled once. In the query phase the pre-only flow also acts (its samples are
        dropped): one wasted group of ``len(first)`` for Omni-Training, none for MAML."""
        if not meta_flows:
            traj = acting.rollout(env, [(apply, f, False) for f in first], [params] * len(first), tasks,
                                  k_first, **roll)
            return losses.add_advantages_batched(traj, t.discount), None
        policies = [(apply, f, True) for f in first]
        per_task = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (t.meta_batch,) + x.shape), params)

        def adapt_all(ps, traj):
            return [jax.vmap(lambda p, s, f=f: losses.adapt(apply, p, s, f, lr=t.inner_lr))(ps[g], acting.select(traj, g))
                    if f in meta_flows else ps[g] for g, f in enumerate(first)]

        def phase(ps, inp):
            key, is_first = inp
            traj = acting.rollout(env, policies, ps, tasks, key, **roll)
            traj = losses.add_advantages_batched(traj, t.discount)
            ps = jax.lax.cond(is_first, adapt_all, lambda ps, _: ps, ps, traj)
            return ps, traj

        _, trajs = jax.lax.scan(phase, [per_task] * len(first),
                                (jnp.stack([k_first, k_query]), jnp.array([True, False])))
        first_traj = jax.tree_util.tree_map(lambda x: x[0], trajs)
        query = jax.tree_util.tree_map(lambda x: x[1, :len(meta_flows)], trajs)
        return first_traj, query

    def step(state: TrainState):
        rng, k_tasks, k_first, k_query = jax.random.split(state.rng, 4)
        tasks = shard_tasks(env.sample_tasks(k_tasks, t.meta_batch), mesh)
        params = state.params
        metrics = {}

        traj, query = sample(params, tasks, k_first, k_query)
        sampled = {f: acting.select(traj, g) for g, f in enumerate(first)}
        for f in first:
            metrics[f"return/{f}"] = jnp.mean(acting.episode_returns(sampled[f]))
        metrics["baseline_reg_max"] = jnp.max(traj["baseline_reg"])
        batch = {f: sampled[f] for f in pre_flows}
        episode = {}
        for g, f in enumerate(meta_flows):
            episode[f] = {"support": sampled[f], "query": acting.select(query, g)}
            metrics[f"return/{f}_adapted"] = jnp.mean(acting.episode_returns(episode[f]["query"]))

        teacher = teacher_params(state.opt_state) if weights.needs_teacher else None
        loss_fn = lambda p: omni_loss(p, teacher, batch, episode, pre_algorithm=pre_alg,
                                      meta_algorithm=meta_alg, weights=weights)
        (loss, loss_metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, state.opt_state, params)
        new_params = optax.apply_updates(params, updates)
        grad_norm = optax.global_norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
        skipped = state.extra["skipped_total"] + (~ok).astype(jnp.int32)
        metrics.update(loss_metrics, grad_norm=grad_norm, skipped=(~ok).astype(jnp.float32),
                       skipped_total=skipped.astype(jnp.float32))
        return state.replace(step=state.step + 1, params=keep(new_params, params),
                             opt_state=keep(opt_state, state.opt_state), rng=rng,
                             extra={"skipped_total": skipped}), metrics

    return step


_CHUNK_FNS: dict = {}
_CHUNK_LOCK = threading.Lock()


def make_chunk_fn(cfg, env, policy, weights, optimizer, mesh=None, chunk_size: Optional[int] = None):
    """``chunk_size`` meta-iterations as one jitted ``lax.scan``.

    Cached on everything the step depends on, so training the same method
    again in one process (a resume) does not recompile.
    """
    chunk_size = chunk_size or cfg.train.chunk_size
    key = (config_lib.to_json(cfg), repr(policy), weights, chunk_size, id(mesh), type(env).__name__,
           getattr(env, "backend", None))
    with _CHUNK_LOCK:  # precompile() builds chunk functions from worker threads
        if key not in _CHUNK_FNS:
            step = make_step(cfg, env, policy, weights, optimizer, mesh)
            _CHUNK_FNS[key] = jax.jit(scan_steps(step, chunk_size))
        return _CHUNK_FNS[key]


def setup_method(cfg, method: str, env, mesh=None):
    """``(policy, chunk_fn, initial_state)`` of one method; ``chunk_fn`` is cached (:func:`make_chunk_fn`)."""
    weights = method_weights(cfg, method)
    policy = make_policy(cfg, env, method)
    optimizer = make_optimizer(cfg, weights)
    chunk_fn = make_chunk_fn(cfg, env, policy, weights, optimizer, mesh)
    state = replicate(init_state(cfg, env, policy, optimizer, method), mesh)
    return policy, chunk_fn, state


def precompile(chunk_fn, state) -> None:
    """Compiles a training chunk (from :func:`setup_method`) ahead of time: the later call to the
    same cached ``chunk_fn`` finds the executable in jit's cache. XLA releases the GIL while
    compiling, so compiling the methods in threads overlaps what dominates a short cheetah run
    (each program compiles the Brax physics again)."""
    chunk_fn.lower(state).compile()


def train_method(cfg, method: str, workdir: Path, *, env=None, mesh=None, show_progress: bool = True,
                 stop_after: Optional[int] = None, progress_fn=None):
    """Trains (or resumes) one method in ``workdir/method``; returns ``(state, policy)``."""
    env = env or make_env_from_config(cfg)
    policy, chunk_fn, state = setup_method(cfg, method, env, mesh)
    t = cfg.train
    store = CheckpointStore(Path(workdir) / method / "checkpoints", fingerprint(cfg, method))
    try:
        state = train_loop(state, chunk_fn, total_steps=t.num_iterations, chunk_size=t.chunk_size, store=store,
                           metrics=MetricsWriter(Path(workdir) / method / "metrics.jsonl"),
                           ckpt_every=t.ckpt_every, desc=method, progress_fn=progress_fn,
                           show_progress=show_progress, stop_after=stop_after)
    finally:
        store.close()
    return state, policy
