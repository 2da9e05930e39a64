"""Training for few-shot classification (paper §6.1): one mini-batch and one episode per step.

    create_train_state(...)  -> TrainState (params, Adam [+ EMA teacher], batch statistics, best model)
    make_train_step(...)     -> (state, split) -> (state, metrics), one step (the shared step signature)
    make_train_chunk(...)    -> a Chunk: (state, split) -> (state, metrics), ``chunk_size`` steps per call
    make_train_update(...)   -> (state, batch, episode) -> (state, metrics), the step on given data

Each step draws a mini-batch (cross-entropy pre-training, Eq. 16, on the
linear or Baseline++'s cosine head) and N-way K-shot episodes (ProtoNet, Eq.
20; MAML, Eq. 19, ``maml_tasks`` of them; MatchingNet, RelationNet or the GNN,
see ``omni_jax.algorithms``) from the training split on the device, augments them, and takes one Adam step on the
Omni-Loss (Eq. 15) of the method's terms (see ``methods.py``).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import optax

from omni_jax.algorithms.pretrain import cross_entropy_pretrain
from omni_jax.classification.augment import AugmentConfig, augment
from omni_jax.classification.episodes import DeviceSplit, sample_batch, sample_episode
from omni_jax.classification.methods import MethodSpec, meta_algorithm_of, softmax_outputs
from omni_jax.classification.model import StatsThread, init_variables
from omni_jax.nn.convnets import FewShotNet
from omni_jax.omni import omni_loss, omni_optimizer, omni_update
from omni_jax.training import Chunk, TrainState, initial_best, prng_stream


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64
    n_way: int = 5
    k_shot: int = 5
    n_query: int = 16
    meta_batch: int = 1         # episodes per step (all meta algorithms but MAML)
    lr: float = 1e-3
    ema_decay: float = 0.99
    maml_inner_lr: float = 0.01
    maml_steps: int = 5         # Chen et al.'s MAML: 5 inner steps, 4 tasks per meta-batch
    maml_tasks: int = 4         # episodes per step for MAML
    maml_first_order: bool = False
    maml_task_chunk: int = 1    # tasks adapted at once (maml.map_tasks; 0: all in one vmap). 1: one after another,
                                # unbatched convolutions; a vmap gives every task its own kernels, a batched
                                # convolution, slower on a CPU (docs/benchmarks.md)
    matching_fce: bool = True   # MatchingNet's full context embeddings (the module exists iff on)
    matching_scale: float = 100.0
    distill_on: str = "probs"   # what R_pre / R_meta compare: "probs" (softmax) or "logits"
    proto_distance: str = "euclidean"   # ProtoNet's distance: "euclidean" or "squared" (algorithms.protonet)

    def episodes_per_step(self, spec: MethodSpec) -> int:
        per_step = meta_algorithm_of(spec).tasks_per_step
        return per_step(self) if per_step is not None else self.meta_batch


def make_optimizer(spec: MethodSpec, tc: TrainConfig) -> optax.GradientTransformation:
    return omni_optimizer(optax.adam(tc.lr), spec.weights, tc.ema_decay)


def create_train_state(net: FewShotNet, spec: MethodSpec, tc: TrainConfig, image_shape, seed: int) -> TrainState:
    k_init, k_run = jax.random.split(prng_stream(seed, "init", spec.name))
    variables = init_variables(net, k_init, image_shape)
    params, stats = variables["params"], variables["batch_stats"]
    opt_state = make_optimizer(spec, tc).init(params)
    return TrainState(step=jnp.asarray(0, jnp.int32), params=params, opt_state=opt_state,
                      rng=jnp.asarray(k_run, jnp.uint32), batch_stats=stats, best=initial_best(params, stats))


def meta_algorithm(thread, spec: MethodSpec, tc: TrainConfig, outputs: Optional[str] = None):
    """The method's meta-training algorithm ``(params, episode, flow) -> (loss, outputs)`` on the
    apply functions of ``thread`` (a :class:`StatsThread`, or anything with ``fn(output)`` and
    ``module(params, flow, *args)``); ``outputs`` defaults to ``tc.distill_on``. Built by the
    registered :class:`~omni_jax.classification.methods.MetaAlgorithm`."""
    return meta_algorithm_of(spec).build(thread, tc, outputs or tc.distill_on)


def make_loss_fn(net: FewShotNet, spec: MethodSpec, tc: TrainConfig) -> Callable:
    """``(params, teacher, batch_stats, rng, batch, episode) -> (loss, (metrics, new_batch_stats))``."""

    def loss_fn(params, teacher, stats, rng, batch, episode):
        thread = StatsThread(net, params, stats, rng)
        pre = softmax_outputs(cross_entropy_pretrain(thread.fn("logits")), tc.distill_on)
        meta = meta_algorithm(thread, spec, tc)
        total, metrics = omni_loss(params, teacher, batch, episode, pre_algorithm=pre, meta_algorithm=meta,
                                   weights=spec.weights)
        return total, (metrics, thread.stats)

    return loss_fn


def sample_training_data(key, split: DeviceSplit, spec: MethodSpec, tc: TrainConfig, aug: AugmentConfig):
    """The step's augmented mini-batch and episodes (``None`` where the method needs none)."""
    k_b, k_e, k_ab, k_ae = jax.random.split(key, 4)
    batch = episode = None
    if spec.weights.needs_pre_data:
        b = sample_batch(k_b, split, tc.batch_size)
        batch = {"x": augment(k_ab, b["x"], aug), "y": b["y"]}
    if spec.weights.needs_meta_data:
        t, s, q = tc.episodes_per_step(spec), tc.n_way * tc.k_shot, tc.n_way * tc.n_query
        eps = jax.vmap(lambda k: sample_episode(k, split, tc.n_way, tc.k_shot, tc.n_query))(jax.random.split(k_e, t))
        x = jnp.concatenate([eps["support"]["x"].reshape((t * s,) + eps["support"]["x"].shape[2:]),
                             eps["query"]["x"].reshape((t * q,) + eps["query"]["x"].shape[2:])])
        x = augment(k_ae, x, aug)
        episode = {"support": {"x": x[:t * s].reshape(eps["support"]["x"].shape), "y": eps["support"]["y"]},
                   "query": {"x": x[t * s:].reshape(eps["query"]["x"].shape), "y": eps["query"]["y"]}}
    return batch, episode


def make_train_update(net: FewShotNet, spec: MethodSpec, tc: TrainConfig):
    """``(state, batch, episode) -> (state, metrics)``: the step of :func:`make_train_step` on given data.

    ``step(state, split)`` is ``update(state, *sample_training_data(k_data, ...))`` with ``k_data`` the
    step's data key, so this times (or reuses) the step without its sampling and augmentation.
    A non-finite step is skipped (:func:`omni_jax.omni.omni_update`), BatchNorm statistics included.
    """
    update_fn = omni_update(make_loss_fn(net, spec, tc), make_optimizer(spec, tc))

    def update(state: TrainState, batch, episode):
        rng, _, k_drop = jax.random.split(state.rng, 3)
        old = state.batch_stats
        params, opt_state, stats, finite, metrics = update_fn(state.params, state.opt_state, old, k_drop,
                                                              batch, episode)
        stats = jax.tree_util.tree_map(lambda new, o: jnp.where(finite, new, o), stats, old)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state, rng=rng,
                             batch_stats=stats), metrics

    return update


def make_train_step(net: FewShotNet, spec: MethodSpec, tc: TrainConfig, aug: AugmentConfig):
    update = make_train_update(net, spec, tc)

    def step(state: TrainState, split: DeviceSplit):
        _, k_data, _ = jax.random.split(state.rng, 3)
        return update(state, *sample_training_data(k_data, split, spec, tc, aug))

    return step


def make_train_chunk(net: FewShotNet, spec: MethodSpec, tc: TrainConfig, aug: AugmentConfig,
                     chunk_size: int) -> Chunk:
    """``chunk(state, split) -> (state, mean metrics)`` running ``chunk_size`` steps, each jitted
    alone and dispatched from Python (``Chunk(scan=False)``): on XLA:CPU a Conv-4 step inside a
    ``lax.scan`` runs far slower than the same step jitted alone (docs/benchmarks.md)."""
    return Chunk(make_train_step(net, spec, tc, aug), chunk_size, scan=False)
