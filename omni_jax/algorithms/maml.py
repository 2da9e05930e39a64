"""MAML (paper §5.2, Eq. 19) with a ``lax.scan`` inner loop.

The inner loop takes ``num_steps`` SGD steps built with ``jax.grad`` on the
support set; the meta-loss is the task loss of the adapted parameters on the
query set, vmapped over a batch of tasks. Second-order by default: the
meta-gradient flows through the inner gradients. ``first_order=True`` stops
the gradient through them (FOMAML).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax

from omni_jax.algorithms.pretrain import ApplyFn

Params = Any
MetaAlgorithm = Callable[[Params, dict, str], Tuple[jnp.ndarray, jnp.ndarray]]


def sgd_adapt(loss_fn: Callable[[Params], jnp.ndarray], params: Params, *, lr: float, num_steps: int,
              first_order: bool = False, mask: Optional[Params] = None,
              observe: Optional[Callable[[Params], Any]] = None):
    """``num_steps`` of plain SGD on ``loss_fn``, as a ``lax.scan``.

    Args:
      loss_fn: scalar loss of the parameters (the support loss).
      lr: the inner learning rate.
      first_order: drop second-order terms (stop the gradient of the inner gradients).
      mask: optional pytree of 0/1 like ``params``; only entries with 1 adapt.
      observe: optional function of the parameters after each step; its
        outputs are stacked along a leading ``num_steps`` axis.

    Returns:
      ``(adapted_params, observed)``; ``observed`` is ``None`` without ``observe``.
    """

    def step(p, _):
        g = jax.grad(loss_fn)(p)
        if first_order:
            g = lax.stop_gradient(g)
        if mask is not None:
            g = jax.tree_util.tree_map(lambda gi, mi: gi * mi, g, mask)
        p = jax.tree_util.tree_map(lambda pi, gi: pi - lr * gi, p, g)
        return p, (observe(p) if observe is not None else None)

    return lax.scan(step, params, None, length=num_steps)


def maml(apply_fn: ApplyFn, task_loss: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray], *,
         inner_lr: float, num_steps: int = 1, first_order: bool = False) -> MetaAlgorithm:
    """MAML meta-loss over a batch of tasks.

    The returned function takes ``(params, episode, flow)`` where ``episode``
    is ``{"support": {"x", "y"}, "query": {"x", "y"}}`` with a leading task
    axis, and returns ``(mean query loss, query predictions [tasks, ...])``.
    """

    def one_task(params, task, flow):
        support, query = task["support"], task["query"]
        support_loss = lambda p: task_loss(apply_fn(p, support["x"], flow), support["y"])
        adapted, _ = sgd_adapt(support_loss, params, lr=inner_lr, num_steps=num_steps,
                               first_order=first_order)
        pred = apply_fn(adapted, query["x"], flow)
        return task_loss(pred, query["y"]), pred

    def meta_loss(params, episode, flow):
        losses, preds = jax.vmap(one_task, in_axes=(None, 0, None))(params, episode, flow)
        return jnp.mean(losses), preds

    return meta_loss
