"""Training for sinusoid regression (paper §6.2).

Every method is the Omni-Loss (``omni_jax.omni``) with some terms on, trained
by the same jitted step:

* ``baseline``: a plain 2×64 MLP, L2 pre-training only (Eq. 17);
* ``maml``: the same MLP, MAML only (Eq. 19);
* ``joint``: the same MLP, both losses (Joint-Training, §3.3);
* ``omni``: the Omni-Net of the same backbone size with the full Omni-Loss
  (Eq. 15), or the terms chosen in ``config.omni`` (the ablation of Table 6).

Ensemble (§3.3) needs no training of its own: it averages the adapted
predictions of ``baseline`` and ``maml`` at test time.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import optax

from omni_jax import config as config_lib
from omni_jax.algorithms import l2_pretrain, maml, mse
from omni_jax.algorithms.maml import maml_dense
from omni_jax.data import sinusoid as sin_data
from omni_jax.errors import OmniJaxError
from omni_jax.nn import FLOWS, OmniMLP, flow_apply
from omni_jax.nn.models import KERNEL_INITS, mlp_dense_layers
from omni_jax.omni import OmniLossWeights, omni_loss, omni_optimizer, omni_update
from omni_jax.training import (Chunk, TrainState, check_divisible, prng_stream, replicate, shard_tasks,
                               validation_hook)
from omni_jax.training.runner import Program

TRAINED_METHODS = ("baseline", "maml", "joint", "omni")


# ---------------------------------------------------------------------------- config


def check(cfg: ml_collections.ConfigDict, mesh=None) -> None:
    """Checks the config's values; raises OmniJaxError naming the field."""
    config_lib.check_fields(cfg, "sinusoid", config_lib.experiment_references("sinusoid"))
    req = config_lib.require
    config_lib.check_positive(cfg, "train.num_steps", "train.meta_batch", "train.k_shot", "train.k_query",
                              "train.pre_batch", "train.inner_lr", "train.inner_steps", "train.outer_lr",
                              "train.chunk_size", "train.ckpt_every", "train.val_every", "train.val_tasks",
                              "data.num_train_tasks", "data.points_per_task", "model.widths",
                              "eval.num_tasks", "eval.k_shots", "eval.num_query", "eval.max_steps",
                              "eval.lr")
    config_lib.check_positive(cfg, "model.branch_rank", "train.final_lr_ratio", allow_zero=True)
    config_lib.check_test_tasks(cfg)
    for f in ("amp", "phase", "x"):
        lo, hi = cfg.data[f"{f}_min"], cfg.data[f"{f}_max"]
        req(lo < hi, f"config fields data.{f}_min < data.{f}_max expected, got {lo} and {hi}")
    req(cfg.train.k_shot + cfg.train.k_query <= cfg.data.points_per_task or not cfg.data.fixed_train_set,
        f"config fields train.k_shot + train.k_query ({cfg.train.k_shot + cfg.train.k_query}) must be at most "
        f"data.points_per_task ({cfg.data.points_per_task})")
    config_lib.check_choices(cfg.train.methods, TRAINED_METHODS, "train.methods")
    config_lib.check_positive(cfg, "train.task_chunk")
    config_lib.check_positive(cfg, "train.pre_chunk")
    req(cfg.train.maml_impl in ("dense", "generic"),
        f"config field train.maml_impl must be dense or generic, got {cfg.train.maml_impl!r}")
    req(cfg.train.maml_impl == "generic" or cfg.model.branch_rank == 0,
        "config field train.maml_impl='dense' needs full-width branches (model.branch_rank=0); "
        "use train.maml_impl='generic' with low-rank branches")
    req(cfg.model.kernel_init in KERNEL_INITS,
        f"config field model.kernel_init must be one of {', '.join(KERNEL_INITS)}, got {cfg.model.kernel_init!r}")
    req(cfg.train.optimizer in ("adam", "sgd"), f"config field train.optimizer must be adam or sgd, got {cfg.train.optimizer!r}")
    req(cfg.eval.omni_head in FLOWS + ("ensemble",),
        f"config field eval.omni_head must be joint, pre, meta or ensemble, got {cfg.eval.omni_head!r}")
    config_lib.check_multiples(cfg.train, "train", ("num_steps", "ckpt_every", "val_every"), of="chunk_size")
    config_lib.check_omni_group(cfg.omni)
    if mesh is not None:
        check_divisible(cfg.train.meta_batch, mesh, "train.meta_batch")
        check_divisible(cfg.train.pre_batch, mesh, "train.pre_batch")


# Fields added after work directories existed, with the value that gives the behaviour from before
# them: at that value they are left out of the fingerprint, so those work directories still resume.
_FIELDS_ADDED = {"model.kernel_init": "lecun_normal"}


def fingerprint(cfg, method: str) -> dict:
    """What a method's checkpoint depends on (not the eval settings, the method list, the
    validation, which only logs here, or the task chunk, which changes the speed and memory of a
    step but not its result)."""
    return config_lib.fingerprint(cfg, method, ["data", "model", "train"],
                                  drop=("train.methods", "train.val_every", "train.val_tasks", "train.ckpt_every",
                                        "train.task_chunk", "train.pre_chunk"), added=_FIELDS_ADDED)


# ---------------------------------------------------------------------------- model and losses


def make_model(cfg, method: str) -> OmniMLP:
    m = cfg.model
    return OmniMLP(out_features=1, widths=tuple(m.widths), activation=m.activation, omni=(method == "omni"),
                   branch_rank=m.branch_rank or None, kernel_init=m.kernel_init)


def make_apply(model):
    """The model as the algorithms take it, ``(params, x, flow) -> y`` (:func:`omni_jax.nn.flow_apply`)."""
    return flow_apply(model)


def make_meta_algorithm(cfg, model):
    """MAML (Eq. 19) on the sinusoid tasks: ``train.maml_impl="dense"`` is the exact fast path for
    dense networks (:func:`omni_jax.algorithms.maml.maml_dense`), ``"generic"`` the plain one."""
    t = cfg.train
    kw = dict(inner_lr=t.inner_lr, num_steps=t.inner_steps, first_order=t.first_order, task_chunk=t.task_chunk)
    if t.maml_impl == "dense":
        return maml_dense(lambda p, flow: mlp_dense_layers(model, p, flow), mse, **kw)
    return maml(make_apply(model), mse, **kw)


def make_loss_fn(cfg, model, weights: OmniLossWeights):
    """``loss(params, teacher, batch, episode) -> (total, metrics)``: the Omni-Loss with
    L2 pre-training (Eq. 17) and MAML (Eq. 19) on the sinusoid tasks."""
    pre = l2_pretrain(make_apply(model), batch_chunk=cfg.train.pre_chunk)
    meta = make_meta_algorithm(cfg, model)

    def loss(params, teacher, batch, episode):
        total, metrics = omni_loss(params, teacher, batch, episode, pre_algorithm=pre, meta_algorithm=meta,
                                   weights=weights)
        return total, (metrics, None)

    return loss


def make_optimizer(cfg, weights: OmniLossWeights) -> optax.GradientTransformation:
    """Outer optimizer, lr decayed linearly (§6.2), with the EMA teacher (Eq. 9) when distilling."""
    t = cfg.train
    schedule = optax.linear_schedule(t.outer_lr, t.outer_lr * t.final_lr_ratio, t.num_steps)
    opt = optax.adam(schedule) if t.optimizer == "adam" else optax.sgd(schedule)
    return omni_optimizer(opt, weights, cfg.omni.ema_decay)


def sample_data(cfg, key, data: Optional[sin_data.SinusoidDataset], weights: OmniLossWeights):
    """The iteration's mini-batch (pre-training) and episode (meta-training), inside jit."""
    t, d = cfg.train, cfg.data
    kb, ke = jax.random.split(key)
    ranges = dict(amp_range=(d.amp_min, d.amp_max), phase_range=(d.phase_min, d.phase_max),
                  x_range=(d.x_min, d.x_max))
    batch = episode = None
    if weights.needs_pre_data:
        batch = (sin_data.batch_from_dataset(kb, data, t.pre_batch) if data is not None
                 else sin_data.batch_on_the_fly(kb, t.pre_batch, **ranges))
    if weights.needs_meta_data:
        episode = (sin_data.episode_from_dataset(ke, data, t.meta_batch, t.k_shot, t.k_query) if data is not None
                   else sin_data.episode_on_the_fly(ke, t.meta_batch, t.k_shot, t.k_query, **ranges))
    return batch, episode


def make_step(cfg, model, weights: OmniLossWeights, optimizer, mesh=None):
    """One training iteration ``step(state, data) -> (state, metrics)``; pure, jittable.

    ``data`` is the fixed training set (or ``None`` to sample tasks on the fly).
    A non-finite loss or gradient skips the update (:func:`omni_jax.omni.omni_update`).
    """
    update = omni_update(make_loss_fn(cfg, model, weights), optimizer)

    def step(state: TrainState, data):
        rng, key = jax.random.split(state.rng)
        batch, episode = sample_data(cfg, key, data, weights)
        batch, episode = shard_tasks(batch, mesh), shard_tasks(episode, mesh)
        params, opt_state, _, _, metrics = update(state.params, state.opt_state, batch, episode)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state, rng=rng), metrics

    return step


def init_state(cfg, model, optimizer, method: str) -> TrainState:
    k_init, k_train = jax.random.split(prng_stream(cfg.seed, "init", method))
    params = model.init(k_init, jnp.zeros((1, 1)))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params),
                      rng=k_train)


def training_set(cfg, mesh=None) -> Optional[sin_data.SinusoidDataset]:
    """The fixed training set (the paper's 30,000 tasks), on every device of ``mesh``; ``None``
    when tasks are sampled on the fly (``data.fixed_train_set=False``)."""
    d = cfg.data
    if not d.fixed_train_set:
        return None
    return replicate(sin_data.make_training_set(prng_stream(cfg.seed, "dataset"), d.num_train_tasks,
                                                d.points_per_task, (d.amp_min, d.amp_max),
                                                (d.phase_min, d.phase_max), (d.x_min, d.x_max)), mesh)


def setup(cfg, method: str, data=None, mesh=None, model=None) -> Program:
    """One method set up to train (see :class:`omni_jax.training.runner.Program`); ``data`` is
    :func:`training_set`'s result. Its hook logs the validation MSE every ``train.val_every`` steps
    (no selection: the last step is tested, as in the paper). ``model``: the network (default
    :func:`make_model`'s); any Flax module called as ``model(x, flow=...)`` with ``[N, 1]`` inputs,
    such as ``omni_jax.omnify`` of a plain MLP (``benchmarks/sinusoid_throughput.py --omnify``); the
    dense MAML path (``train.maml_impl="dense"``) needs an :class:`~omni_jax.nn.OmniMLP`."""
    from omni_jax.sinusoid.evaluate import validation_fn
    weights = config_lib.loss_weights(cfg.omni, method)
    if model is None:
        model = make_model(cfg, method)
    elif cfg.train.maml_impl == "dense" and not isinstance(model, OmniMLP):
        raise OmniJaxError("config field train.maml_impl='dense' reads an OmniMLP's layers; "
                           "use train.maml_impl='generic' with another model")
    optimizer = make_optimizer(cfg, weights)
    validation = validation_fn(cfg, method)
    t = cfg.train
    return Program(state=replicate(init_state(cfg, model, optimizer, method), mesh),
                   chunk=Chunk(make_step(cfg, model, weights, optimizer, mesh), t.chunk_size),
                   num_steps=t.num_steps, ckpt_every=t.ckpt_every, data=replicate(data, mesh),
                   hook=validation_hook(lambda params, _: validation(model, params), t.val_every, select=False),
                   model=model)
