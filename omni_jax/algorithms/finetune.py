"""Baseline's test-time head (Chen et al., "A Closer Look at Few-shot Classification").

For a new task, a new linear classifier is trained on the frozen support
features with cross-entropy: 100 epochs over the shuffled support set in
batches of 4, SGD with learning rate 0.01, momentum 0.9 and weight decay
1e-3 (PyTorch semantics: the decay is added to the gradient, then the
momentum buffer). The last batch of an epoch may be short; it is padded and
masked so the whole loop is one ``lax.scan`` that vmaps over tasks.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 100
    batch_size: int = 4
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-3


def finetune_linear_head(key: jax.Array, support_f: jnp.ndarray, support_y: jnp.ndarray, n_way: int,
                         cfg: FinetuneConfig = FinetuneConfig()) -> dict:
    """Trains a new ``Dense(n_way)`` on ``support_f [S, D]``; returns ``{"w" [D, N], "b" [N]}``."""
    support_f, support_y = jnp.asarray(support_f), jnp.asarray(support_y)
    s, d = support_f.shape
    bs = min(cfg.batch_size, s)
    nb = math.ceil(s / bs)
    k_init, k_perm = jax.random.split(key)
    bound = 1.0 / math.sqrt(d)  # PyTorch nn.Linear's default init
    kw, kb = jax.random.split(k_init)
    params = {"w": jax.random.uniform(kw, (d, n_way), minval=-bound, maxval=bound),
              "b": jax.random.uniform(kb, (n_way,), minval=-bound, maxval=bound)}

    def loss_fn(p, idx, mask):
        logits = support_f[idx] @ p["w"] + p["b"]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, support_y[idx])
        return jnp.sum(ce * mask) / jnp.maximum(jnp.sum(mask), 1.0)

    def batch_step(carry, xs):
        p, buf = carry
        idx, mask = xs
        g = jax.grad(loss_fn)(p, idx, mask)
        g = jax.tree_util.tree_map(lambda gi, pi: gi + cfg.weight_decay * pi, g, p)
        buf = jax.tree_util.tree_map(lambda bi, gi: cfg.momentum * bi + gi, buf, g)
        p = jax.tree_util.tree_map(lambda pi, bi: pi - cfg.lr * bi, p, buf)
        return (p, buf), None

    def epoch(carry, k):
        perm = jax.random.permutation(k, s)
        pad = nb * bs - s
        idx = jnp.concatenate([perm, jnp.zeros((pad,), perm.dtype)]).reshape(nb, bs)
        mask = jnp.concatenate([jnp.ones((s,)), jnp.zeros((pad,))]).reshape(nb, bs)
        carry, _ = jax.lax.scan(batch_step, carry, (idx, mask))
        return carry, None

    buf0 = jax.tree_util.tree_map(jnp.zeros_like, params)
    (params, _), _ = jax.lax.scan(epoch, (params, buf0), jax.random.split(k_perm, cfg.epochs))
    return params


def finetune_logits(key, support_f, support_y, query_f, n_way: int,
                    cfg: FinetuneConfig = FinetuneConfig()) -> jnp.ndarray:
    """Query logits ``[Q, n_way]`` of a new linear head fine-tuned on the support set."""
    p = finetune_linear_head(key, support_f, support_y, n_way, cfg)
    return query_f @ p["w"] + p["b"]
