"""The Omni-Loss and the EMA teacher (paper §4.2-4.3, Eqs. 7-15).

    L_Omni = L_joint + (L_pre + λ·R_pre) + (L_meta + λ·R_meta)        (Eq. 15)

* ``L_joint`` (Eq. 7): the pre-training loss on a mini-batch plus the
  meta-training loss on an episode, both on the joint flow.
* ``L_pre`` (Eq. 8) and ``L_meta`` (Eq. 12): the same losses on the pre- and
  meta-flow.
* ``R_pre`` (Eq. 10) and ``R_meta`` (Eq. 13): the squared error between the
  flow's outputs and the outputs of the same flow of the EMA teacher (Eq. 9).

The pre- and meta-training algorithms are arguments: any pure functions
``(params, data, flow) -> (loss, outputs)`` (see ``omni_jax.algorithms``).
Every term can be switched off (the ablation of Table 6); the comparison
methods are special cases: Baseline uses only the joint pre term, MAML only
the joint meta term, Joint-Training both joint terms.

Training on it: :func:`omni_optimizer` (the outer optimizer with the EMA
teacher, skipping non-finite updates) and :func:`omni_update` (one gradient
step, returning an :class:`OmniUpdate`), shared by every experiment.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import optax

Params = Any
Algorithm = Callable[[Params, Any, str], Tuple[jnp.ndarray, jnp.ndarray]]

TERMS = ("joint_pre", "joint_meta", "pre", "meta", "distill_pre", "distill_meta")


@dataclasses.dataclass(frozen=True)
class OmniLossWeights:
    """Which terms of Eq. 15 are on, and λ (Eqs. 11, 14). Hashable, so it can be static."""

    joint_pre: bool = True
    joint_meta: bool = True
    pre: bool = True
    meta: bool = True
    distill_pre: bool = True
    distill_meta: bool = True
    lam: float = 3.0

    def __post_init__(self):
        if self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")
        if self.distill_pre and not self.pre:
            raise ValueError("distill_pre needs the pre term (R_pre regularises the pre-flow)")
        if self.distill_meta and not self.meta:
            raise ValueError("distill_meta needs the meta term (R_meta regularises the meta-flow)")
        if not any(getattr(self, t) for t in TERMS):
            raise ValueError("at least one Omni-Loss term must be on")

    @property
    def needs_teacher(self) -> bool:
        return (self.distill_pre or self.distill_meta) and self.lam > 0

    @property
    def needs_pre_data(self) -> bool:
        return self.joint_pre or self.pre

    @property
    def needs_meta_data(self) -> bool:
        return self.joint_meta or self.meta


# The comparison methods of §3.3 / §6.2 as Omni-Loss configurations.
METHOD_WEIGHTS = {
    "baseline": OmniLossWeights(joint_meta=False, pre=False, meta=False, distill_pre=False, distill_meta=False),
    "maml": OmniLossWeights(joint_pre=False, pre=False, meta=False, distill_pre=False, distill_meta=False),
    "joint": OmniLossWeights(pre=False, meta=False, distill_pre=False, distill_meta=False),
    "omni": OmniLossWeights(),
}


def squared_error(student: jnp.ndarray, teacher: jnp.ndarray) -> jnp.ndarray:
    """The l2 of Eqs. 10 and 13: squared error summed over the output's last
    axis, averaged over everything else. The teacher gets no gradient."""
    d = student - jax.lax.stop_gradient(teacher)
    return jnp.mean(jnp.sum(jnp.square(d), axis=-1))


def omni_loss(params: Params, teacher_params: Optional[Params], batch: Any, episode: Any, *,
              pre_algorithm: Algorithm, meta_algorithm: Algorithm,
              weights: OmniLossWeights = OmniLossWeights(),
              teacher_episode: Any = None) -> Tuple[jnp.ndarray, dict]:
    """The Omni-Loss, Eq. 15. Returns ``(total, metrics)``.

    Args:
      params: the student's parameters (all three flows).
      teacher_params: the EMA teacher's parameters (Eq. 9); may be ``None``
        when no distillation term is on.
      batch: the standard mini-batch for the pre-training algorithm.
      episode: the task episode(s) for the meta-training algorithm.
      pre_algorithm, meta_algorithm: ``(params, data, flow) -> (loss, outputs)``.
      weights: which terms are on, and λ.
      teacher_episode: the episode the teacher's meta-flow outputs are
        computed on (R_meta, Eq. 13); by default ``episode``. The same tasks
        and data, without anything cached for the student's parameters (the
        RL meta-iteration passes the student's adapted parameters in
        ``episode``).

    ``metrics`` holds every computed term (``loss/<term>``) and the total.
    """
    w = weights
    terms = {}
    if w.joint_pre:
        terms["joint_pre"] = pre_algorithm(params, batch, "joint")[0]
    if w.joint_meta:
        terms["joint_meta"] = meta_algorithm(params, episode, "joint")[0]
    if w.needs_teacher and teacher_params is None:
        raise ValueError("a distillation term is on but teacher_params is None")
    teacher = jax.lax.stop_gradient(teacher_params) if w.needs_teacher else None
    if w.pre:
        terms["pre"], out = pre_algorithm(params, batch, "pre")
        if w.distill_pre and w.lam > 0:
            terms["distill_pre"] = squared_error(out, pre_algorithm(teacher, batch, "pre")[1])
    if w.meta:
        terms["meta"], out = meta_algorithm(params, episode, "meta")
        if w.distill_meta and w.lam > 0:
            t_episode = episode if teacher_episode is None else teacher_episode
            terms["distill_meta"] = squared_error(out, meta_algorithm(teacher, t_episode, "meta")[1])
    total = sum(w.lam * v if k.startswith("distill") else v for k, v in terms.items())
    metrics = {f"loss/{k}": v for k, v in terms.items()}
    metrics["loss/total"] = total
    return total, metrics


# ----------------------------------------------------------------------------
# EMA teacher (Eq. 9) as an optax transformation.


class EmaTeacherState(NamedTuple):
    """The EMA teacher's parameters θ̃, tracked in the optimizer state."""

    teacher: Params


def ema_teacher(decay: float = 0.99) -> optax.GradientTransformation:
    """Keeps θ̃_i = β·θ̃_{i-1} + (1-β)·θ_i (Eq. 9) in the optimizer state.

    Put it last in an ``optax.chain``: it passes the updates through unchanged
    and applies them to ``params`` itself to get θ_i, so ``update`` must be
    given ``params``. The teacher starts equal to the initial parameters.
    Read it back with :func:`teacher_params`.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")

    def init_fn(params):
        return EmaTeacherState(teacher=jax.tree_util.tree_map(jnp.asarray, params))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("ema_teacher needs params: call update(updates, state, params)")
        new_params = optax.apply_updates(params, updates)
        teacher = optax.incremental_update(new_params, state.teacher, step_size=1.0 - decay)
        return updates, EmaTeacherState(teacher=teacher)

    return optax.GradientTransformation(init_fn, update_fn)


def teacher_params(opt_state) -> Params:
    """The EMA teacher's parameters held in an optimizer state built with :func:`ema_teacher`."""
    found = optax.tree_utils.tree_get_all_with_path(opt_state, "teacher")
    if not found:
        raise ValueError("this optimizer state has no ema_teacher transformation")
    if len(found) > 1:
        raise ValueError("this optimizer state has more than one ema_teacher transformation")
    return found[0][1]


# ----------------------------------------------------------------------------
# The outer optimizer and one update step on the Omni-Loss.

# ``apply_if_finite`` gives up skipping after this many consecutive non-finite updates; never, here.
_NEVER = 2 ** 31 - 1


def omni_optimizer(base: optax.GradientTransformation, weights: OmniLossWeights,
                   ema_decay: float = 0.99) -> optax.GradientTransformation:
    """The outer optimizer of every experiment: ``base`` (Adam, SGD, ...), then the EMA teacher
    (Eq. 9) when a distillation term is on, wrapped in ``optax.apply_if_finite`` so that an update
    whose gradient is not finite is skipped (parameters, teacher and moments unchanged) and
    counted in the state (:func:`skipped_updates`)."""
    tx = optax.chain(base, ema_teacher(ema_decay)) if weights.needs_teacher else base
    return optax.apply_if_finite(tx, max_consecutive_errors=_NEVER)


def skipped_updates(opt_state) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """``(skipped_last, skipped_total)`` of an :func:`omni_optimizer` state, as int32 scalars."""
    found = optax.tree_utils.tree_get_all_with_path(opt_state, "total_notfinite")
    if len(found) != 1:
        raise ValueError("this optimizer state was not built by omni_optimizer (no apply_if_finite state)")
    last = optax.tree_utils.tree_get(opt_state, "last_finite")
    return (~last).astype(jnp.int32), found[0][1]


def _find_teacher(opt_state) -> Optional[Params]:
    found = optax.tree_utils.tree_get_all_with_path(opt_state, "teacher")
    return found[0][1] if len(found) == 1 else None


class OmniUpdate(NamedTuple):
    """What one :func:`omni_update` step returns. A tuple: ``params, opt_state, aux, finite,
    metrics = update(...)`` unpacks it in this order; a pytree, so it comes out of ``jax.jit``
    and ``lax.scan`` as an ``OmniUpdate``."""

    params: Params          # the parameters after the step (unchanged when it was skipped)
    opt_state: Any          # the optimizer state after it (the EMA teacher and the skip counts in it)
    aux: Any                # the loss's ``aux`` at the old parameters (BatchNorm statistics, ...)
    finite: jnp.ndarray     # bool scalar: the loss and the gradient were finite, the step was taken
    metrics: dict           # the loss's metrics, plus ``grad_norm``, ``skipped``, ``skipped_total``


def omni_update(loss_fn: Callable, optimizer: optax.GradientTransformation) -> Callable[..., OmniUpdate]:
    """One gradient step on a loss, shared by every experiment (Brax's ``gradient_update_fn``).

    Args:
      loss_fn: ``loss_fn(params, teacher, *args) -> (loss, (metrics, aux))``; ``teacher`` is the
        EMA teacher's parameters held in the optimizer state, or ``None`` when there is none.
        ``aux`` is anything the step carries on (BatchNorm statistics, for example).
      optimizer: built by :func:`omni_optimizer`.

    Returns:
      ``update(params, opt_state, *args) -> OmniUpdate(params, opt_state, aux, finite, metrics)``,
      pure and jittable (:class:`OmniUpdate` is a named tuple: unpacking it in that order works).
      When the loss or the gradient is not finite, the update is skipped: the gradient handed to
      the optimizer is NaN, so ``apply_if_finite`` leaves the parameters and the optimizer state
      (teacher included) as they were and counts the skip; ``finite`` is False, so the caller can
      keep its old ``aux`` too. ``metrics`` adds ``grad_norm``, ``skipped`` (this step) and
      ``skipped_total`` (since the start of training) to the loss's metrics.
    """

    def update(params, opt_state, *args) -> OmniUpdate:
        teacher = _find_teacher(opt_state)
        (loss, (metrics, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, teacher, *args)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        grads = jax.tree_util.tree_map(lambda g: jnp.where(finite, g, jnp.nan), grads)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)  # zero updates when skipped
        last, total = skipped_updates(opt_state)
        metrics = dict(metrics, grad_norm=grad_norm, skipped=last.astype(jnp.float32),
                       skipped_total=total.astype(jnp.float32))
        return OmniUpdate(params, opt_state, aux, finite, metrics)

    return update
