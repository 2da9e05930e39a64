"""Pre-training losses (paper §5.1).

A pre-training algorithm is a pure function ``(params, batch, flow) -> (loss,
outputs)`` on a standard mini-batch ``{"x": ..., "y": ...}``; ``outputs`` are
the flow's predictions, the target of the self-distillation term (Eq. 10).
"""
from __future__ import annotations

from typing import Any, Callable, Tuple

import jax.numpy as jnp
import optax

Params = Any
ApplyFn = Callable[[Params, jnp.ndarray, str], jnp.ndarray]
PreAlgorithm = Callable[[Params, dict, str], Tuple[jnp.ndarray, jnp.ndarray]]


def mse(pred: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """Mean squared error, Eq. 17 averaged over points (and output dims)."""
    return jnp.mean(jnp.square(pred - y))


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Mean cross-entropy of integer labels, Eq. 16."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def supervised(apply_fn: ApplyFn, loss: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]) -> PreAlgorithm:
    """Plain supervised pre-training on a mini-batch with ``loss(pred, y)``."""

    def pre_loss(params, batch, flow):
        pred = apply_fn(params, batch["x"], flow)
        return loss(pred, batch["y"]), pred

    return pre_loss


def l2_pretrain(apply_fn: ApplyFn) -> PreAlgorithm:
    """Regression pre-training with the L2 loss (Eq. 17)."""
    return supervised(apply_fn, mse)


def cross_entropy_pretrain(apply_fn: ApplyFn) -> PreAlgorithm:
    """Classification pre-training, Baseline of Chen et al. (Eq. 16)."""
    return supervised(apply_fn, cross_entropy)
