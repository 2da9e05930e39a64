"""Pre-training losses (paper §5.1).

A pre-training algorithm is a pure function ``(params, batch, flow) -> (loss,
outputs)`` on a standard mini-batch ``{"x": ..., "y": ...}``; ``outputs`` are
the flow's predictions, the target of the self-distillation term (Eq. 10).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from omni_jax.nn.flows import FlowApply

Params = Any
ApplyFn = FlowApply   # (params, x, flow) -> outputs: a network as every algorithm takes it
PreAlgorithm = Callable[[Params, dict, str], Tuple[jnp.ndarray, jnp.ndarray]]


def mse(pred: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """Mean squared error, Eq. 17 averaged over points (and output dims)."""
    return jnp.mean(jnp.square(pred - y))


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Mean cross-entropy of integer labels, Eq. 16."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def supervised(apply_fn: ApplyFn, loss: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray], *,
               batch_chunk: Optional[int] = None) -> PreAlgorithm:
    """Plain supervised pre-training on a mini-batch with ``loss(pred, y)``.

    ``batch_chunk``: a batch of more examples is processed that many at a time (strided chunks
    under ``lax.map``, each rematerialised, as :func:`omni_jax.algorithms.maml.map_tasks` does for
    tasks), so a very large batch keeps its working set in cache and the step's memory is one
    chunk's. The loss is then the size-weighted mean of the chunks' losses, which is the batch's
    loss for a loss that is a mean over examples (:func:`mse`, :func:`cross_entropy`) and a
    network that treats examples independently (no BatchNorm in training mode). ``None``: the
    whole batch at once.
    """

    def whole(params, batch, flow):
        pred = apply_fn(params, batch["x"], flow)
        return loss(pred, batch["y"]), pred

    def pre_loss(params, batch, flow):
        n = jax.tree_util.tree_leaves(batch)[0].shape[0]
        if not batch_chunk or n <= batch_chunk:
            return whole(params, batch, flow)
        k, c = n // batch_chunk, batch_chunk          # chunk i: examples i, i + k, i + 2k, ...
        main = jax.tree_util.tree_map(lambda a: a[:k * c].reshape((c, k) + a.shape[1:]).swapaxes(0, 1), batch)
        body = jax.checkpoint(lambda p, b: whole(p, b, flow))
        losses, preds = lax.map(lambda b: body(params, b), main)
        total = jnp.sum(losses) * c
        pred = preds.swapaxes(0, 1).reshape((k * c,) + preds.shape[2:])
        if k * c < n:
            rest_loss, rest = whole(params, jax.tree_util.tree_map(lambda a: a[k * c:], batch), flow)
            total, pred = total + rest_loss * (n - k * c), jnp.concatenate([pred, rest])
        return total / n, pred

    return pre_loss


def l2_pretrain(apply_fn: ApplyFn, *, batch_chunk: Optional[int] = None) -> PreAlgorithm:
    """Regression pre-training with the L2 loss (Eq. 17); ``batch_chunk`` as in :func:`supervised`."""
    return supervised(apply_fn, mse, batch_chunk=batch_chunk)


def cross_entropy_pretrain(apply_fn: ApplyFn) -> PreAlgorithm:
    """Classification pre-training, Baseline of Chen et al. (Eq. 16)."""
    return supervised(apply_fn, cross_entropy)
