"""REINFORCE with the linear feature baseline (paper §5.1, Eq. 18) and MAML-RL (§5.2, Eq. 19).

Every loss is a pure function of the parameters and of trajectories already
sampled (``omni_jax.rl.acting``), with the signature the Omni-Loss expects:
``(params, data, flow) -> (loss, outputs)``. ``outputs`` are the policy's
action means and log-stds on the trajectories' observations, concatenated on
the last axis (zero on the masked steps): what the EMA self-distillation
compares (Eqs. 10 and 13).

Advantages are computed once per batch of trajectories (:func:`add_advantages`)
and carry no gradient: discounted returns minus the linear feature baseline
(Duan et al. 2016), refitted on each task's trajectories, then normalised
over the task's valid steps, as pytorch-maml-rl does (without normalisation
the first outer SGD step at lr 0.03 diverges).
"""
from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
from jax import lax

from omni_jax.algorithms.maml import map_tasks, sgd_adapt
from omni_jax.nn.flows import FlowApply
from omni_jax.rl.networks import gaussian_kl, gaussian_log_prob

Params = Any
ApplyFn = FlowApply   # here (params, obs, flow) -> (mean, log_std), a policy

# Ridge regularisers tried in turn (on the RMS-scaled features); the first
# whose system is well conditioned is used (pytorch-maml-rl raises 1e-5 by 10x
# when its solve fails; in float32 "fails" means "ill-conditioned").
RIDGE_LADDER = tuple(1e-5 * 10.0 ** k for k in range(8))
MAX_CONDITION = 1e6


# ---------------------------------------------------------------------------- returns and baseline


def discounted_returns(rewards: jnp.ndarray, mask: jnp.ndarray, discount: float) -> jnp.ndarray:
    """R_t = sum_{k>=t} discount^(k-t) r_k over the valid steps; ``[..., T]``."""
    r = jnp.moveaxis(rewards * mask, -1, 0)

    def back(acc, rt):
        acc = rt + discount * acc
        return acc, acc

    _, out = lax.scan(back, jnp.zeros(r.shape[1:], r.dtype), r, reverse=True)
    return jnp.moveaxis(out, 0, -1) * mask


def baseline_features(obs: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """obs, obs^2, t/100, (t/100)^2, (t/100)^3 and 1, zero on masked steps; ``[N, T, 2*d+4]``."""
    T = obs.shape[-2]
    o = jnp.clip(obs, -10.0, 10.0)
    t = jnp.broadcast_to((jnp.arange(T, dtype=obs.dtype) / 100.0)[:, None], obs.shape[:-1] + (1,))
    ones = jnp.ones_like(t)
    feats = jnp.concatenate([o, o * o, t, t ** 2, t ** 3, ones], axis=-1)
    return feats * mask[..., None]


def ridge_fit(x: jnp.ndarray, y: jnp.ndarray, ladder=RIDGE_LADDER, max_condition: float = MAX_CONDITION):
    """Ridge regression ``y ~ x @ w`` on rows ``x [n, f]`` (zero rows are ignored).

    The columns are scaled to unit RMS first (the ridge penalty is then
    scale-free), and the regulariser is the first of ``ladder`` that brings
    the condition number of the scaled normal equations under
    ``max_condition``. Returns ``(w, reg)``.
    """
    a = x.T @ x
    b = x.T @ y
    scale = jnp.sqrt(jnp.maximum(jnp.diag(a), 1e-12))
    a_s = a / scale[:, None] / scale[None, :]
    b_s = b / scale
    evals, evecs = jnp.linalg.eigh(a_s)
    evals = jnp.maximum(evals, 0.0)
    regs = jnp.asarray(ladder, a.dtype)
    cond = (evals[-1] + regs) / (evals[0] + regs)
    ok = cond <= max_condition
    reg = jnp.where(jnp.any(ok), regs[jnp.argmax(ok)], regs[-1])
    u = evecs @ ((evecs.T @ b_s) / (evals + reg))
    return u / scale, reg


def linear_baseline(obs: jnp.ndarray, returns: jnp.ndarray, mask: jnp.ndarray):
    """The linear feature baseline fitted on one task's trajectories ``[N, T, ...]``.

    Returns ``(values [N, T], reg)``; values are zero on masked steps.
    """
    feats = baseline_features(obs, mask)
    f = feats.reshape(-1, feats.shape[-1])
    w, reg = ridge_fit(f, (returns * mask).reshape(-1))
    return (feats @ w) * mask, reg


def normalize(x: jnp.ndarray, mask: jnp.ndarray, eps: float = 1e-8) -> jnp.ndarray:
    """(x - mean) / std over the valid entries (pytorch-maml-rl's weighted_normalize)."""
    n = jnp.maximum(jnp.sum(mask), 1.0)
    mean = jnp.sum(x * mask) / n
    var = jnp.sum(jnp.square(x - mean) * mask) / n
    return (x - mean) / (jnp.sqrt(var) + eps) * mask


def add_advantages(traj: dict, discount: float, normalize_advantages: bool = True) -> dict:
    """Adds ``advantages`` (and ``baseline_reg``) to one task's trajectories ``[N, T, ...]``."""
    returns = discounted_returns(traj["rewards"], traj["mask"], discount)
    values, reg = linear_baseline(traj["obs"], returns, traj["mask"])
    adv = (returns - values) * traj["mask"]
    if normalize_advantages:
        adv = normalize(adv, traj["mask"])
    return {**traj, "advantages": lax.stop_gradient(adv), "baseline_reg": reg}


def add_advantages_batched(traj: dict, discount: float, normalize_advantages: bool = True) -> dict:
    """:func:`add_advantages` for each task of ``[..., N, T, ...]`` trajectories (any leading axes)."""
    lead = traj["rewards"].ndim - 2
    fn = lambda t: add_advantages(t, discount, normalize_advantages)
    for _ in range(lead):
        fn = jax.vmap(fn)
    return fn(traj)


# ---------------------------------------------------------------------------- REINFORCE


def policy_outputs(mean, log_std, mask):
    """What self-distillation compares: the action means and log-stds, zeroed on masked steps.

    Scaled by ``1/sqrt(2·|A|)``, so that the Omni-Loss's squared error (summed
    over the last axis, Eqs. 10 and 13) is the mean over the ``2·|A|`` outputs
    rather than their sum. With the sum, λ·R grows with the action size, and
    plain SGD on it is unstable: on the head's weights R has curvature
    ``2·λmax(E[h hᵀ])`` per output (``h`` the 64 tanh features), and on
    HalfCheetah (6 actions, observations of order 10 that saturate the tanh
    units) ``lr·λ·2·λmax`` at lr 0.03 and λ 3 exceeds 2, so the distillation
    terms grew ~30x per iteration until the updates were non-finite. The
    mean keeps it under 1 for any tanh features.
    """
    out = jnp.concatenate([mean, log_std], axis=-1) * mask[..., None]
    return out / jnp.sqrt(jnp.asarray(out.shape[-1], out.dtype))


def reinforce_task_loss(apply_fn: ApplyFn, params: Params, traj: dict, flow: str):
    """REINFORCE surrogate on one task's trajectories ``[N, T, ...]`` (Eq. 18).

    ``-mean_n( sum_t log pi(a_t|s_t) A_t / length_n )``, the per-episode
    weighted mean of pytorch-maml-rl. Its gradient is the policy gradient.
    """
    mean, log_std = apply_fn(params, traj["obs"], flow)
    logp = gaussian_log_prob(traj["actions"], mean, log_std)
    mask = traj["mask"]
    lengths = jnp.maximum(jnp.sum(mask, axis=-1), 1.0)
    per_episode = jnp.sum(logp * traj["advantages"] * mask, axis=-1) / lengths
    return -jnp.mean(per_episode), policy_outputs(mean, log_std, mask)


def reinforce(apply_fn: ApplyFn):
    """REINFORCE pre-training over a batch of tasks: ``data[flow]`` holds ``[B, N, T, ...]``
    trajectories sampled from that flow's policy (with advantages)."""

    def pre_loss(params, data, flow):
        losses, outs = jax.vmap(lambda t: reinforce_task_loss(apply_fn, params, t, flow))(data[flow])
        return jnp.mean(losses), outs

    return pre_loss


# ---------------------------------------------------------------------------- MAML-RL


def adapt(apply_fn: ApplyFn, params: Params, support: dict, flow: str, *, lr: float, num_steps: int = 1,
          first_order: bool = False) -> Params:
    """``num_steps`` REINFORCE SGD steps on one task's support trajectories (the inner loop)."""
    loss = lambda p: reinforce_task_loss(apply_fn, p, support, flow)[0]
    adapted, _ = sgd_adapt(loss, params, lr=lr, num_steps=num_steps, first_order=first_order)
    return adapted


def adapt_kl_bounded(apply_fn: ApplyFn, params: Params, support: dict, flow: str, *, lr: float,
                     max_kl: float) -> Params:
    """One REINFORCE SGD step on one task's support trajectories, shortened so that the policy moves
    by about ``max_kl`` at most (a trust region on the plain gradient direction, as TRPO's step
    before its line search).

    The step ``-lr·g`` is taken as it is when the mean KL divergence
    ``KL(π_θ ‖ π_θ')`` over the support trajectories' valid states is at most
    ``max_kl``; otherwise it is scaled by ``sqrt(max_kl / KL)``: the
    shortened step's KL is ``max_kl`` where the KL is quadratic in the step's
    length and below it where it grows faster (large steps; tested). A policy with a small σ has a REINFORCE
    gradient of order 1/σ, and the plain step at a fixed lr moves it the
    furthest: the bound makes the step's size a property of the policy's
    distribution rather than of its parameterisation.
    """
    g = jax.grad(lambda p: reinforce_task_loss(apply_fn, p, support, flow)[0])(params)
    step = lambda scale: jax.tree_util.tree_map(lambda p, gi: p - scale * lr * gi, params, g)
    mask = support["mask"]
    m0, s0 = apply_fn(params, support["obs"], flow)
    m1, s1 = apply_fn(step(1.0), support["obs"], flow)
    kl = jnp.sum(gaussian_kl(m0, s0, m1, s1) * mask) / jnp.maximum(jnp.sum(mask), 1.0)
    scale = jnp.where(kl > max_kl, jnp.sqrt(max_kl / jnp.maximum(kl, 1e-30)), 1.0)
    return step(lax.stop_gradient(scale))


def adapt_tasks(apply_fn: ApplyFn, params: Params, supports: dict, flow: str, *, lr: float,
                task_chunk: Optional[int] = None, max_kl: Optional[float] = None) -> Params:
    """:func:`adapt` (one step) of each task's own parameters on its own support trajectories; both
    have a leading task axis. ``task_chunk`` as in :func:`maml_rl`; with ``max_kl`` the steps are
    :func:`adapt_kl_bounded`."""
    if max_kl is None:
        one = lambda _, task: adapt(apply_fn, task[0], task[1], flow, lr=lr)
    else:
        one = lambda _, task: adapt_kl_bounded(apply_fn, task[0], task[1], flow, lr=lr, max_kl=max_kl)
    return map_tasks(one, None, (params, supports), task_chunk)


def adapted_as_known(apply_fn: ApplyFn, params: Params, support: dict, adapted: Params, flow: str, *,
                     lr: float, first_order: bool = False) -> Params:
    """θ' = θ - α∇L_support(θ) for one task, as a function of θ whose value ``adapted`` is already known.

    The query trajectories of MAML-RL are sampled with θ', so the inner step
    has been taken once before the meta-loss is formed (``omni_jax.rl.train``).
    Recomputing it in the loss costs a forward and backward pass over every
    support trajectory and then a backward pass through that (reverse over
    reverse). Here the forward value is the known θ', and the backward pass
    applies the inner step's Jacobian directly: a cotangent ``v`` becomes
    ``v - α·H v`` with ``H = ∇²L_support(θ)`` (a Hessian-vector product,
    forward over reverse), or ``v`` when ``first_order``. Only first
    derivatives pass through it (enough for the meta-gradient); ``adapted``
    must be :func:`adapt` of the same ``params`` and ``support`` with one
    step and the same ``lr`` (the tests check the gradients equal the
    recomputing path's).
    """
    loss = lambda p, s: reinforce_task_loss(apply_fn, p, s, flow)[0]

    @jax.custom_vjp
    def known(p, s, a):
        return a

    def fwd(p, s, a):
        return a, (p, s)

    def bwd(res, v):
        p, s = res
        if first_order:
            dp = v
        else:
            hv = jax.jvp(lambda q: jax.grad(loss)(q, s), (p,), (v,))[1]
            dp = jax.tree_util.tree_map(lambda vi, hi: vi - lr * hi, v, hv)
        zeros = lambda t: jax.tree_util.tree_map(jnp.zeros_like, t)
        return dp, zeros(s), zeros(v)

    known.defvjp(fwd, bwd)
    return known(params, support, adapted)


def maml_rl(apply_fn: ApplyFn, *, inner_lr: float, first_order: bool = False, task_chunk: Optional[int] = None):
    """MAML-RL meta-loss (Eq. 19): ``data[flow]`` is ``{"support", "query"}``, each ``[B, N, T, ...]``,
    and optionally ``"adapted"``: each task's θ' (leading axis ``B``) as computed to sample the queries.

    Per task, one REINFORCE step on the support trajectories (sampled with
    θ) gives θ'; the loss is REINFORCE of θ' on the query trajectories
    (sampled with θ'). Second-order unless ``first_order``: the
    meta-gradient flows through the inner gradient. With ``"adapted"`` the
    inner step is not recomputed (:func:`adapted_as_known`); it is only valid
    for the parameters that produced it, so the Omni-Loss's teacher gets the
    episode without it (``omni_loss(..., teacher_episode=...)``). Tasks are
    processed ``task_chunk`` at a time (:func:`omni_jax.algorithms.maml.map_tasks`;
    ``1``: one after the other, fastest on a CPU; ``None`` or at least the
    number of tasks: all at once).
    """

    def one_task(params, support, query, adapted, flow):
        if adapted is None:
            adapted = adapt(apply_fn, params, support, flow, lr=inner_lr, first_order=first_order)
        else:
            adapted = adapted_as_known(apply_fn, params, support, adapted, flow, lr=inner_lr,
                                       first_order=first_order)
        return reinforce_task_loss(apply_fn, adapted, query, flow)

    def meta_loss(params, data, flow):
        ep = data[flow]
        task = lambda p, e: one_task(p, e["support"], e["query"], e.get("adapted"), flow)
        losses, outs = map_tasks(task, params, ep, task_chunk)
        return jnp.mean(losses), outs

    return meta_loss
